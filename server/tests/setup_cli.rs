//! A node's `files` and `exec` as a user runs them: files (inline, and
//! read from beside the topology file) are in the guest at boot with their
//! modes; `exec` commands run once the VM is ready with its links up, each
//! outcome in `up`'s progress; a failing command makes `up` exit 1 naming
//! the VM and the command, the VM keeps running, `status` shows it, and a
//! second `up` says it again without running anything twice. A source
//! that is missing is refused naming the field and the path. Needs root.

mod common;

use common::{minivm, ok, text, Down};

#[test]
fn files_are_in_the_guest_and_exec_runs_once_per_boot() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let lab = format!("setup-cli-{}", std::process::id());
    std::fs::create_dir_all(s.join("conf/h1")).unwrap();
    std::fs::write(s.join("conf/h1/motd"), "hello from a source file\n").unwrap();
    let yaml = format!(
        r##"version: 1
name: {lab}
defaults: {{image: tiny}}
networks:
  - {{name: lan, subnet: 10.36.0.0/24}}
nodes:
  - name: h1
    nics: [{{network: lan, address: 10.36.0.11/24}}]
    files:
      - {{path: /etc/motd, source: conf/h1/motd}}
      - {{path: /opt/lab/run.sh, content: "#!/bin/sh\necho ran $1\n", mode: "0755"}}
    exec:
      - /opt/lab/run.sh first
      - sh -c "grep -qx 1 /sys/class/net/eth0/carrier && ping -c 1 -W 5 10.36.0.12"
  - name: h2
    nics: [{{network: lan, address: 10.36.0.12/24}}]
    exec:
      - "true"
      - sh -c "echo broken >&2; exit 3"
      - echo never
"##
    );
    let file = s.join("lab.yaml");
    std::fs::write(&file, &yaml).unwrap();
    let f = file.to_str().unwrap();

    // A missing source: refused naming the field and the path, nothing made.
    let bad = s.join("bad.yaml");
    std::fs::write(&bad, yaml.replace("conf/h1/motd", "conf/h1/nope")).unwrap();
    let out = minivm(s, &["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("nodes[0].files[0].source: cannot read \"conf/h1/nope\"")
            && err.contains("conf/h1/nope: No such file"),
        "{err}"
    );

    let _down = Down(s.to_path_buf(), lab.clone());
    let out = minivm(s, &["up", "-f", f]);
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("h1: exec \"/opt/lab/run.sh first\": exit 0\n    ran first"),
        "{stderr}"
    );
    assert!(stderr.contains("h2: exec \"true\": exit 0"), "{stderr}");
    assert!(
        stderr.contains(
            "h2: setup command \"sh -c \\\"echo broken >&2; exit 3\\\"\" exited 3: broken"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("echo never\": exit"),
        "a failing command stops its VM's list"
    );

    // The files, with their modes; both VMs keep running.
    let motd = ok(minivm(s, &["exec", &lab, "h1", "--", "cat", "/etc/motd"]));
    assert_eq!(motd, "hello from a source file\n");
    let mode = ok(minivm(
        s,
        &[
            "exec",
            &lab,
            "h1",
            "--",
            "stat",
            "-c",
            "%a",
            "/opt/lab/run.sh",
        ],
    ));
    assert_eq!(mode.trim(), "755");
    let st: serde_json::Value =
        serde_json::from_str(&ok(minivm(s, &["status", &lab, "--json"]))).unwrap();
    let vms = st[0]["vms"].as_array().unwrap();
    assert!(vms.iter().all(|v| v["state"] == "running"), "{st}");
    assert_eq!(vms[0]["setup"]["done"].as_array().unwrap().len(), 2, "{st}");
    assert!(vms[0]["setup"]["failed"].is_null());
    assert_eq!(vms[1]["setup"]["failed"]["exit_code"], 3);
    assert!(ok(minivm(s, &["status", &lab])).contains("setup FAILED"));

    // The stored lab carries the source's text: self-contained.
    let stored = std::fs::read_to_string(s.join("labs").join(&lab).join("topology.json")).unwrap();
    assert!(stored.contains("hello from a source file"), "{stored}");
    assert!(!stored.contains("conf/h1/motd"));

    // A second `up`: nothing runs again; the failure is said again.
    let out = minivm(s, &["up", "-f", f]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(!stderr.contains(": exec "), "nothing ran twice: {stderr}");
    assert!(stderr.contains("h2: setup command"), "{stderr}");

    // A new boot of h1 (its QEMU killed, brought back by `up`): its
    // commands run again, once.
    let pid = common::states(s, &lab)["h1"].1.unwrap();
    // SAFETY: kill(2) of the QEMU this test's lab started (by its pid).
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let out = minivm(s, &["up", "-f", f]);
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr
            .matches("h1: exec \"/opt/lab/run.sh first\": exit 0")
            .count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("h2: exec"), "h2 kept its boot: {stderr}");
}
