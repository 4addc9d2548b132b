//! Faults injected into a real lab (isolated mode, its own namespace): a
//! full disk while one VM's overlay is made, a VM whose image is not in the
//! store, a bridge name already taken by an interface MiniVM does not own,
//! a base image removed under a stopped VM, and a QEMU binary that cannot
//! start or exits at once. Each fails only its VM or network, with an error
//! that names it and says why; the rest of the lab comes up and keeps
//! running. Needs root.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use engine::lab::Engine;
use engine::store::LabStore;
use topology::names::{bridge_ifname, netns_name};

const LAB: &str = "version: 1
name: faults
defaults: {image: tiny, memory_mib: 128}
networks:
  - {name: lan, subnet: 10.78.0.0/24}
  - {name: taken, subnet: 10.79.0.0/24}
nodes:
  - {name: ok1, nics: [{network: lan}]}
  - {name: ok2, nics: [{network: lan}]}
  - {name: full, nics: [{network: lan}]}
  - {name: noimg, image: gone, nics: [{network: lan}]}
  - {name: blocked, nics: [{network: taken}]}
";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
}

/// Undoes what the test made, even when it fails: the tmpfs, the lab.
struct Cleanup<'a> {
    engine: &'a Engine,
    lab: String,
    mount: PathBuf,
}
impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
        let _ = self.engine.down(&self.lab, true);
        let _ = Command::new("ip")
            .args(["netns", "del", &netns_name(&self.lab)])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn each_fault_fails_only_its_vm_or_network() {
    let (state, images, engine) = common::engine_with_image();
    let mut t = topology::parse_and_validate(LAB, topology::Format::Yaml).unwrap();
    t.name = format!("faults-test-{}", std::process::id());
    let lab = t.name.clone();
    let full_dir = engine.vm_dir(&lab, "full");
    std::fs::create_dir_all(&full_dir).unwrap();
    let _cleanup = Cleanup {
        engine: &engine,
        lab: lab.clone(),
        mount: full_dir.clone(),
    };

    // A disk with room for nothing: a 16 KiB tmpfs where `full`'s overlay goes.
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k,mode=755", "tmpfs"])
        .arg(&full_dir)
        .status()
        .unwrap();
    assert!(st.success());
    // The lab's namespace, with its bridge for `taken` already made by
    // someone else.
    let ns = netns_name(&lab);
    ip(&["netns", "add", &ns]);
    let foreign = bridge_ifname(&lab, "taken");
    ip(&["-n", &ns, "link", "add", &foreign, "type", "bridge"]);
    ip(&["-n", &ns, "link", "set", &foreign, "alias", "someone-else"]);

    let store = LabStore::open(state.path()).unwrap();
    let lines = std::sync::Mutex::new(Vec::new());
    let err = engine::ops::up(&engine, &store, &t, None, Duration::from_secs(240), &|l| {
        lines.lock().unwrap().push(l)
    })
    .unwrap_err();
    let err = engine::report(&err);
    eprintln!("up: {err}");
    let lines = lines.into_inner().unwrap();
    for (what, want) in [
        ("full disk", "full: qemu-img failed"),
        ("full disk", "No space left on device"),
        ("missing image", "noimg: no image named \"gone\""),
        (
            "foreign bridge",
            &format!(
                "network taken: {foreign} exists but is not ours (alias Some(\"someone-else\"))"
            ),
        ),
        (
            "foreign bridge",
            "blocked: not started: its network taken failed",
        ),
    ] {
        assert!(err.contains(want), "{what}: {want:?} not in {err:?}");
    }
    assert!(
        lines.iter().any(|l| l == "ok1 is ready")
            || lines.iter().any(|l| l.starts_with("ok1 is ready")),
        "{lines:#?}"
    );
    let states = engine::lab::vm_states(&engine, &t);
    let state_of = |vm: &str| Some(states[vm].state.to_string());
    assert_eq!(state_of("ok1").as_deref(), Some("running"));
    assert_eq!(state_of("ok2").as_deref(), Some("running"));
    for vm in ["full", "noimg", "blocked"] {
        assert!(
            !engine::lab::running_qemus(&lab).contains_key(vm),
            "{vm} has no QEMU"
        );
    }
    // The foreign bridge is untouched: same alias, nothing plugged in.
    let links = engine::net::links(Some(&ns)).unwrap();
    let b = links.iter().find(|l| l.name == foreign).unwrap();
    assert_eq!(b.alias.as_deref(), Some("someone-else"));
    assert!(!links.iter().any(|l| l.controller == Some(b.index)));
    // The healthy part works: ok1 reaches ok2.
    let ok2_addr = topology::resolve::nics(&t)["ok2"][0]
        .address
        .unwrap()
        .addr
        .to_string();
    let ping = engine
        .exec(
            &lab,
            "ok1",
            &["/bin/ping", "-c", "2", "-W", "5", &ok2_addr].map(String::from),
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(ping.exit_code, 0, "{ping:?}");
    let ok2_pid = engine::lab::running_qemus(&lab)["ok2"];

    let say = |_| {};
    // A base image removed from the store under a stopped VM: its start
    // says so; it comes back when the image does.
    engine::ops::stop(&engine, &t, &["ok1"], &say).unwrap();
    let base = images.path("tiny").unwrap();
    let aside = base.with_extension("aside");
    std::fs::rename(&base, &aside).unwrap();
    let err = engine::ops::start(&engine, &t, &["ok1"], Duration::from_secs(60), &say).unwrap_err();
    let err = engine::report(&err);
    std::fs::rename(&aside, &base).unwrap();
    assert!(
        err.contains("ok1: its base image \"tiny\" is missing from the image store"),
        "{err}"
    );

    // A QEMU binary that does not exist, then one that exits at once.
    let mut broken = common::engine_on(state.path());
    broken.qemu = state.path().join("no-such-qemu");
    let err = engine::ops::start(&broken, &t, &["ok1"], Duration::from_secs(60), &say).unwrap_err();
    let err = engine::report(&err);
    assert!(
        err.starts_with("ok1: ")
            && !err.contains("VM ok1")
            && err.contains("no-such-qemu cannot start: No such file"),
        "{err}"
    );
    let fake = state.path().join("fake-qemu");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'fake-qemu: could not initialise the machine' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    broken.qemu = fake;
    let err = engine::ops::start(&broken, &t, &["ok1"], Duration::from_secs(60), &say).unwrap_err();
    let err = engine::report(&err);
    assert_eq!(
        err, "ok1: QEMU exited: fake-qemu: could not initialise the machine",
        "QEMU's own words reach the user"
    );

    // Through all of it ok2 kept running, same process; ok1 starts again.
    assert_eq!(engine::lab::running_qemus(&lab).get("ok2"), Some(&ok2_pid));
    engine::ops::start(&engine, &t, &["ok1"], Duration::from_secs(240), &say).unwrap();
    assert_eq!(engine::lab::running_qemus(&lab).get("ok2"), Some(&ok2_pid));
}
