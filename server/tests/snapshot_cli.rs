//! Lab snapshots as a user runs them: a file in memory (/tmp) and one on
//! disk written in every VM, a snapshot taken, both changed, the snapshot
//! restored: every VM runs again with the snapshot's contents, resumed
//! (not booted). A VM stopped at snapshot time stays stopped with its
//! disk restored. Bad names and unknown snapshots are refused naming them.
//! `list` shows size and VMs; `rm` removes. Each VM's QEMU runs as an id
//! of its own, which reaches neither another VM's files nor a snapshot.
//! Needs root.

mod common;

use common::{minivm, ok, text, Down};

fn exec(state: &std::path::Path, lab: &str, vm: &str, script: &str) -> String {
    ok(minivm(state, &["exec", lab, vm, "--", "sh", "-c", script]))
}

/// Whether code running as `id` (what an escape from a VM's QEMU runs as)
/// opens `path`, for writing when `write`.
fn may_open(id: u32, path: &std::path::Path, write: bool) -> bool {
    use std::os::unix::process::CommandExt;
    let script = if write { ": >> \"$1\"" } else { ": < \"$1\"" };
    std::process::Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(path)
        .uid(id)
        .gid(id)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn restore_brings_back_every_vms_memory_and_disk() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let lab = format!("snap-cli-{}", std::process::id());
    let file = s.join("lab.yaml");
    std::fs::write(
        &file,
        format!("version: 1\nname: {lab}\ndefaults: {{image: tiny}}\nnetworks: [{{name: lan, subnet: 10.38.0.0/24}}]\nnodes:\n  - {{name: a, nics: [{{network: lan}}]}}\n  - {{name: b, nics: [{{network: lan}}]}}\n  - {{name: c, nics: [{{network: lan}}]}}\n"),
    )
    .unwrap();
    let _down = Down(s.to_path_buf(), lab.clone());
    ok(minivm(s, &["up", "-f", file.to_str().unwrap()]));
    for vm in ["a", "b", "c"] {
        exec(
            s,
            &lab,
            vm,
            "echo one > /tmp/mem; echo one > /root/disk; sync",
        );
    }
    // c is stopped when the snapshot is taken.
    ok(minivm(s, &["stop", &lab, "c"]));

    let out = minivm(s, &["snapshot", "save", &lab, "s1"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("3 VM(s)"),
        "{}",
        text(&out.stdout)
    );
    // A's QEMU, taken over: its own disk is its to write; b's disk, b's
    // directory and the snapshot's copy of its own memory are not.
    use std::os::unix::fs::MetadataExt;
    let vms = s.join("labs").join(&lab).join("vms");
    let id = |vm: &str| std::fs::metadata(vms.join(vm)).unwrap().uid();
    assert!(id("a") != id("b") && id("b") != id("c") && id("a") != id("c"));
    assert!(may_open(id("a"), &vms.join("a/overlay.qcow2"), true));
    assert!(!may_open(id("a"), &vms.join("b/overlay.qcow2"), true));
    assert!(!may_open(id("a"), &vms.join("b/overlay.qcow2"), false));
    assert!(!may_open(id("a"), &vms.join("b"), false));
    let snap = s.join("labs").join(&lab).join("snapshots/s1");
    for f in ["a.state", "a.qcow2", "snapshot.json"] {
        assert!(!may_open(id("a"), &snap.join(f), false), "{f} readable");
        assert!(!may_open(id("a"), &snap.join(f), true), "{f} writable");
    }
    let out = minivm(s, &["snapshot", "save", &lab, "s1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has a snapshot \"s1\" already"),
        "{}",
        text(&out.stderr)
    );
    let out = minivm(s, &["snapshot", "save", &lab, "../x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("snapshot name \"../x\""),
        "{}",
        text(&out.stderr)
    );

    let list: serde_json::Value =
        serde_json::from_str(&ok(minivm(s, &["snapshot", "list", &lab, "--json"]))).unwrap();
    assert_eq!(list[0]["name"], "s1");
    assert!(list[0]["bytes"].as_u64().unwrap() > 0);
    assert!(list[0]["vms"]["a"]["saved"].is_object());
    assert!(list[0]["vms"]["c"]["saved"].is_null());

    for vm in ["a", "b"] {
        exec(
            s,
            &lab,
            vm,
            "echo two > /tmp/mem; echo two > /root/disk; sync",
        );
    }
    ok(minivm(s, &["start", &lab, "c"]));
    exec(s, &lab, "c", "echo two > /root/disk; sync");

    let out = minivm(s, &["snapshot", "restore", &lab, "s1"]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("a is resumed from its saved state"), "{said}");
    for vm in ["a", "b"] {
        assert_eq!(
            exec(s, &lab, vm, "cat /tmp/mem /root/disk"),
            "one\none\n",
            "{vm}"
        );
    }
    let states = common::states(s, &lab);
    assert_eq!(states["a"].0, "running");
    assert_eq!(states["b"].0, "running");
    assert_eq!(states["c"].0, "stopped", "c was stopped in the snapshot");
    ok(minivm(s, &["start", &lab, "c"]));
    assert_eq!(exec(s, &lab, "c", "cat /root/disk"), "one\n");
    ok(minivm(s, &["check", &lab]));

    let out = minivm(s, &["snapshot", "restore", &lab, "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no snapshot \"nope\" (it has: s1)"),
        "{}",
        text(&out.stderr)
    );

    // A rename (the lab list's Rename) keeps the snapshot and the disks:
    // refused while VMs run, then the snapshot restores under the new name.
    let renamed = format!("{lab}-r");
    let _down_renamed = Down(s.to_path_buf(), renamed.clone());
    let server = common::Server::start(s);
    let (code, body) = server.call("rename_lab", &[("from", &lab), ("to", &renamed)]);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("while VMs run (a, b, c)"), "{body}");
    ok(minivm(s, &["stop", &lab, "a", "b", "c"]));
    let (code, body) = server.call("rename_lab", &[("from", &lab), ("to", &renamed)]);
    assert_eq!(code, 200, "{body}");
    drop(server);
    let list: serde_json::Value =
        serde_json::from_str(&ok(minivm(s, &["snapshot", "list", &renamed, "--json"]))).unwrap();
    assert_eq!(list[0]["name"], "s1", "{list}");
    ok(minivm(s, &["start", &renamed, "c"]));
    assert_eq!(
        exec(s, &renamed, "c", "cat /root/disk"),
        "one\n",
        "c's disk moved with the lab"
    );
    // The disks come back; the memory does not resume, and says why: the
    // lab's name is in its VMs' MACs, so they are other machines now.
    let out = minivm(s, &["snapshot", "restore", &renamed, "s1"]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("a's saved state is discarded (eth0 MAC "),
        "{said}"
    );
    assert_eq!(exec(s, &renamed, "a", "cat /root/disk"), "one\n");
    let lab = renamed;

    ok(minivm(s, &["snapshot", "rm", &lab, "s1"]));
    assert_eq!(
        ok(minivm(s, &["snapshot", "list", &lab, "--json"])).trim(),
        "[]"
    );

    ok(minivm(s, &["down", &lab, "--cleanup"]));
    assert_eq!(common::leftovers(s, &lab), Vec::<String>::new());
}
