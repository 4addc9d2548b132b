//! The commands that work on one VM, on a copy of examples/triangle.yaml:
//! every pair pings (`minivm exec`), exec passes output and exit codes,
//! `console` talks to the serial shell and detaches with Ctrl-], `stop`,
//! `start` and `restart` touch one VM only, and a second file using the
//! lab's name is refused without changing anything. Needs root.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{leftovers, minivm, ok, states, text, Down};

#[test]
fn triangle_pings_exec_console_start_stop_and_name_in_use() {
    let state = common::state_dir();
    let s = state.path();
    let lab = format!("vm-test-{}", std::process::id());
    let file = common::lab_file(s, "triangle", &lab);
    let f = file.to_str().unwrap();
    common::tiny_image(s);
    let _down = Down(s.to_path_buf(), lab.clone());
    let up = minivm(s, &["up", "-f", f]);
    let progress = text(&up.stderr);
    ok(up);
    assert!(
        progress.contains("[1/") && progress.contains("vm1 is ready"),
        "progress is shown:\n{progress}"
    );

    // Every ordered pair pings.
    let addr = |vm: &str| format!("10.10.0.1{}", &vm[2..]);
    for from in ["vm1", "vm2", "vm3"] {
        for to in ["vm1", "vm2", "vm3"].iter().filter(|t| **t != from) {
            let out = minivm(
                s,
                &[
                    "exec",
                    &lab,
                    from,
                    "--",
                    "ping",
                    "-c",
                    "1",
                    "-W",
                    "5",
                    &addr(to),
                ],
            );
            assert!(
                out.status.success(),
                "{from} -> {to}: {}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
    }

    // exec: stdout, stderr and the exit code come back as they are; no shell
    // is put in between.
    let out = minivm(
        s,
        &[
            "exec",
            &lab,
            "vm1",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
    );
    assert_eq!(
        (out.status.code(), text(&out.stdout), text(&out.stderr)),
        (Some(3), "out\n".into(), "err\n".into())
    );
    let out = minivm(s, &["exec", &lab, "vm1", "--", "echo", "$(hostname);"]);
    assert_eq!(text(&out.stdout), "$(hostname);\n");
    let out = minivm(s, &["exec", &lab, "nope", "--", "true"]);
    assert!(
        text(&out.stderr).contains("no VM named \"nope\""),
        "{}",
        text(&out.stderr)
    );

    // console: a command typed into the serial shell runs; Ctrl-] detaches.
    let mut console = Command::new(env!("CARGO_BIN_EXE_minivm"))
        .arg("--state-dir")
        .arg(s)
        .args(["console", &lab, "vm2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = console.stdin.take().unwrap();
    stdin
        .write_all(b"\necho mark-$((6*7)) $(hostname)\n")
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = console.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.contains("mark-42 vm2")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => seen.push(l),
            Err(_) => panic!("no answer from the serial shell:\n{}", seen.join("\n")),
        }
    }
    stdin.write_all(&[0x1d]).unwrap();
    let status = console.wait().unwrap();
    assert!(status.success());
    assert_eq!(
        states(s, &lab)["vm2"].0,
        "running",
        "detaching leaves the VM running"
    );

    // stop / start / restart touch the VM named, nothing else.
    let before = states(s, &lab);
    ok(minivm(s, &["stop", &lab, "vm3"]));
    let after = states(s, &lab);
    assert_eq!(after["vm3"], ("stopped".to_string(), None));
    assert_eq!(
        (&before["vm1"], &before["vm2"]),
        (&after["vm1"], &after["vm2"])
    );
    let out = minivm(s, &["exec", &lab, "vm3", "--", "true"]);
    assert!(
        text(&out.stderr).contains("not running (state stopped)"),
        "{}",
        text(&out.stderr)
    );
    ok(minivm(s, &["start", &lab, "vm3"]));
    let after = states(s, &lab);
    assert_eq!(after["vm3"].0, "running");
    assert_eq!(
        (&before["vm1"], &before["vm2"]),
        (&after["vm1"], &after["vm2"])
    );
    ok(minivm(
        s,
        &[
            "exec",
            &lab,
            "vm3",
            "--",
            "ping",
            "-c",
            "1",
            "-W",
            "5",
            "10.10.0.11",
        ],
    ));
    ok(minivm(s, &["restart", &lab, "vm1"]));
    let after2 = states(s, &lab);
    assert_eq!(after2["vm1"].0, "running");
    assert_ne!(after2["vm1"].1, after["vm1"].1, "vm1 has a new process");
    assert_eq!(
        (&after["vm2"], &after["vm3"]),
        (&after2["vm2"], &after2["vm3"])
    );

    // Another file with the lab's name and another topology: refused, and
    // nothing of the running lab changes.
    let other = s.join("other.yaml");
    std::fs::write(
        &other,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("memory_mib: 128", "memory_mib: 192"),
    )
    .unwrap();
    let stored = std::fs::read(s.join("labs").join(&lab).join("topology.json")).unwrap();
    let out = minivm(s, &["up", "-f", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is in use by the file")
            && text(&out.stderr).contains(&format!("{lab}.yaml")),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read(s.join("labs").join(&lab).join("topology.json")).unwrap(),
        stored
    );
    assert_eq!(states(s, &lab), after2);

    // A QEMU killed -9: `status` says crashed, with its last console lines.
    let pid = after2["vm2"].1.unwrap() as i32;
    // SAFETY: kill(2) of a QEMU this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    std::thread::sleep(std::time::Duration::from_millis(500));
    let status = ok(minivm(s, &["status", &lab]));
    let vm2: Vec<&str> = status
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("vm2 "))
        .take_while(|l| !l.trim_start().starts_with("vm3 "))
        .collect();
    assert!(vm2[0].contains("crashed"), "{status}");
    // Its last console lines are whatever it said last (the boot, or the
    // console step's typing, depending on timing): exactly the tail of its
    // console.log, which no one writes once QEMU is gone.
    let said = engine::lab::console_tail(&s.join("labs").join(&lab).join("vms/vm2"), 3);
    assert!(!said.is_empty(), "vm2's console.log is empty");
    let shown: Vec<&str> = vm2[1..]
        .iter()
        .filter_map(|l| l.trim_start().strip_prefix("| "))
        .collect();
    assert_eq!(shown, said, "{status}");

    ok(minivm(s, &["down", &lab, "--cleanup"]));
    assert_eq!(leftovers(s, &lab), Vec::<String>::new());
}
