//! Warm starts as a user runs them: eight VMs of one shape restored from
//! one warm image come up as eight different machines (their own MACs,
//! hostnames and addresses, their generators reseeded: different bytes from
//! /dev/urandom right after ready) and pass `check`; `up --cold` boots
//! without a warm image; a restarted VM (its disk used) boots cold and says
//! why; a rebuilt image makes the next start boot cold once to make a new
//! warm image, and says why; removing the image removes its warm images.
//! Needs root.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::{ok, text, Down};

/// `minivm` with a warm image store of the test's own (not the test run's
/// shared one), so what this test sees made and removed is its own.
fn minivm(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minivm"))
        .env("MINIVM_WARM_DIR", state.join("warm"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run minivm")
}

fn exec(state: &Path, lab: &str, vm: &str, script: &str) -> String {
    ok(minivm(state, &["exec", lab, vm, "--", "sh", "-c", script]))
}

fn warm_images(state: &Path) -> Vec<String> {
    std::fs::read_dir(state.join("warm"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn eight_warm_clones_are_eight_machines_and_pass_check() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let lab = format!("warm8-{}", std::process::id());
    let mut yaml = format!(
        "version: 1\nname: {lab}\ndefaults: {{image: tiny, memory_mib: 96}}\n\
         networks: [{{name: lan, subnet: 10.38.0.0/24}}]\nnodes:\n"
    );
    for i in 1..=8 {
        yaml += &format!("  - {{name: c{i}, nics: [{{network: lan, address: 10.38.0.{i}/24}}]}}\n");
    }
    let file = s.join("lab.yaml");
    std::fs::write(&file, yaml).unwrap();
    let _down = Down(s.to_path_buf(), lab.clone());
    let out = minivm(s, &["up", "-f", file.to_str().unwrap()]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    // One warm image made (its reason said), all eight restored from it.
    assert_eq!(said.matches("making a warm image").count(), 1, "{said}");
    assert!(
        said.contains("no warm image of tiny, 1 CPU, 96 MiB, 1 NIC yet"),
        "{said}"
    );
    assert_eq!(said.matches("warm start").count(), 8, "{said}");
    assert_eq!(warm_images(s).len(), 1);

    let status: serde_json::Value =
        serde_json::from_str(&ok(minivm(s, &["status", &lab, "--json"]))).unwrap();
    let mut macs = BTreeSet::new();
    let mut random = BTreeSet::new();
    for i in 1..=8 {
        let vm = format!("c{i}");
        // Right after ready: the generator's first bytes, then who it is.
        let out = exec(
            s,
            &lab,
            &vm,
            "head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; \
             hostname; cat /sys/class/net/eth0/address; ip -4 addr show eth0; \
             cat /sys/class/net/eth0/operstate",
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0].len(), 64, "{out}");
        random.insert(lines[0].to_string());
        assert_eq!(lines[1], vm, "{out}");
        // The MAC its QEMU was started with (the topology's).
        let pid = status[0]["vms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == vm.as_str())
            .and_then(|v| v["pid"].as_u64())
            .unwrap_or_else(|| panic!("no pid of {vm} in {status}"));
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
        let cmdline = String::from_utf8_lossy(&cmdline);
        let want_mac = cmdline
            .split("mac=")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_else(|| panic!("no mac= in {cmdline}"))
            .to_string();
        assert_eq!(lines[2], want_mac, "{out}");
        macs.insert(lines[2].to_string());
        assert!(out.contains(&format!("inet 10.38.0.{i}/24")), "{out}");
        assert_eq!(lines.last().copied(), Some("up"), "{out}");
    }
    assert_eq!(macs.len(), 8);
    assert_eq!(random.len(), 8, "{random:?}");

    let out = minivm(s, &["check", &lab]);
    let report = text(&out.stdout) + &text(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("56 pair(s): 56 passed"), "{report}");
    ok(minivm(s, &["down", &lab, "--cleanup"]));
}

#[test]
fn cold_when_asked_and_when_the_image_was_rebuilt_and_removed_with_it() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let lab = format!("warmfb-{}", std::process::id());
    let yaml = format!(
        "version: 1\nname: {lab}\ndefaults: {{image: tiny, memory_mib: 80}}\n\
         networks: [{{name: lan, subnet: 10.39.0.0/24}}]\n\
         nodes:\n  - {{name: a, nics: [{{network: lan}}]}}\n"
    );
    let file = s.join("lab.yaml");
    std::fs::write(&file, yaml).unwrap();
    let f = file.to_str().unwrap();
    let _down = Down(s.to_path_buf(), lab.clone());

    // --cold: no warm image used or made.
    let out = minivm(s, &["up", "--cold", "-f", f]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("warm start"));
    assert!(warm_images(s).is_empty());

    // A disk used by a boot is not what a warm image has cached: a restart
    // boots cold, and says so.
    ok(minivm(s, &["stop", &lab, "a"]));
    let out = minivm(s, &["start", &lab, "a"]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("its disk was used by an earlier boot"),
        "{said}"
    );
    assert!(warm_images(s).is_empty());

    // A new VM starts warm: the warm image made once, then used.
    ok(minivm(s, &["down", &lab, "--cleanup"]));
    let out = minivm(s, &["up", "-f", f]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("warm start"), "{said}");
    assert_eq!(warm_images(s).len(), 1);

    // The image rebuilt: the old warm image is of other content. The next
    // start says why it boots cold to make a new one, then starts warm.
    ok(minivm(s, &["down", &lab, "--cleanup"]));
    ok(minivm(s, &["image", "rm", "tiny"]));
    assert!(warm_images(s).is_empty(), "removed with its image");
    ok(minivm(s, &["image", "build"]));
    // A warm image of the old build, as a store keeps it across a rebuild
    // made elsewhere (another state directory sharing MINIVM_WARM_DIR).
    let other = common::state_dir();
    common::tiny_image(other.path());
    let old_lab = format!("warmold-{}", std::process::id());
    let old_file = other.path().join("lab.yaml");
    std::fs::write(
        &old_file,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace(&lab, &old_lab),
    )
    .unwrap();
    let _down_old = Down(other.path().to_path_buf(), old_lab.clone());
    let out = Command::new(env!("CARGO_BIN_EXE_minivm"))
        .env("MINIVM_WARM_DIR", s.join("warm"))
        .arg("--state-dir")
        .arg(other.path())
        .args(["up", "-f", old_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(warm_images(s).len(), 1);
    ok(minivm(other.path(), &["down", &old_lab, "--cleanup"]));

    let out = minivm(s, &["up", "-f", f]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("image tiny was rebuilt or replaced since its warm image was made"),
        "{said}"
    );
    assert!(said.contains("warm start"), "{said}");
    assert_eq!(warm_images(s).len(), 1, "the stale one replaced");
    ok(minivm(s, &["down", &lab, "--cleanup"]));
}
