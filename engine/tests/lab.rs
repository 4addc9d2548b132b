//! The reconciler for real on examples/router.yaml (isolated mode: the
//! lab's bridges and TAPs live in its own namespace): up, ping through the
//! router, a second up does nothing, kill -9 of a QEMU is seen as crashed and
//! the next up brings it back, edits (a VM's memory, an added VM, a removed
//! link) touch only what they change, down --cleanup leaves nothing. Needs
//! root.

mod common;

use std::time::Duration;

use engine::lab::{qemu_alive, Engine};
use engine::lifecycle::VmState;
use engine::qga::Qga;
use topology::Topology;

fn pids(engine: &Engine, t: &Topology) -> std::collections::BTreeMap<String, u32> {
    engine::lab::vm_states(engine, t)
        .into_iter()
        .filter_map(|(vm, s)| Some((vm, s.pid?)))
        .collect()
}

/// h1 pings h2 (through r1) twice, through h1's guest agent.
fn h1_pings_h2(engine: &Engine, lab: &str) -> engine::qga::ExecResult {
    let h1 = engine.vm_dir(lab, "h1");
    let mut qga = Qga::connect(&engine::qemu::qga_socket(&h1), Duration::from_secs(60)).unwrap();
    qga.exec(
        "/bin/ping",
        &["-c", "2", "-W", "5", "10.20.0.12"],
        Duration::from_secs(60),
    )
    .unwrap()
}

/// Reconciles and waits for every VM; returns the steps.
fn up(engine: &Engine, t: &Topology) -> Vec<engine::plan::Step> {
    let steps = engine.reconcile(t, None, &|_| {}).unwrap();
    let vms: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
    engine
        .wait_ready(&t.name, &vms, Duration::from_secs(240), &|_, _| {})
        .unwrap();
    steps
}

/// The VMs a list of steps touches.
fn touched(steps: &[engine::plan::Step]) -> std::collections::BTreeSet<String> {
    steps
        .iter()
        .filter_map(|s| s.action.vm().map(str::to_string))
        .collect()
}

struct Down<'a>(&'a Engine, String);
impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.down(&self.1, true);
    }
}

#[test]
fn router_lab_up_ping_idempotent_crash_recovery_and_down() {
    let (_state, _images, engine) = common::engine_with_image();
    let mut t: Topology =
        topology::parse_and_validate(topology::examples::ROUTER, topology::Format::Yaml).unwrap();
    // A lab name of this test's own: its namespace and interfaces can never
    // be those of a real lab on this machine.
    t.name = format!("router-test-{}", std::process::id());
    let lab = t.name.clone();
    let _down = Down(&engine, lab.clone());

    let steps = up(&engine, &t);
    assert!(!steps.is_empty());

    // QEMU runs unprivileged: each VM as an id of its own (its directory's
    // owner, 0700), with no capabilities at all.
    let mut ids = std::collections::BTreeSet::new();
    for (vm, pid) in engine::lab::running_qemus(&lab) {
        use std::os::unix::fs::MetadataExt;
        let dir = std::fs::metadata(engine.vm_dir(&lab, &vm)).unwrap();
        assert!(
            engine::lab::Ids::in_host_range(dir.uid()),
            "{vm}: {}",
            dir.uid()
        );
        assert_eq!((dir.gid(), dir.mode() & 0o777), (dir.uid(), 0o700), "{vm}");
        assert!(ids.insert(dir.uid()), "{vm} shares its id {}", dir.uid());
        let id = dir.uid().to_string();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(field("Uid:"), [id.as_str(); 4], "{vm}: {status}");
        assert_eq!(field("Gid:"), [id.as_str(); 4], "{vm}");
        for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            let v = field(cap);
            assert!(v.len() == 1, "{vm}: {cap} {v:?}");
            if cap != "CapBnd:" {
                assert_eq!(v[0], "0000000000000000", "{vm}: {cap}");
            }
        }
        assert_eq!(
            field("NoNewPrivs:"),
            ["1"],
            "{vm}: no privilege gain (the seccomp sandbox sets it)"
        );
        assert_eq!(field("Seccomp:"), ["2"], "{vm}: the seccomp filter is on");
    }

    let ping = h1_pings_h2(&engine, &lab);
    assert_eq!(ping.exit_code, 0, "h1 -> h2 through r1: {ping:?}");

    // Level-triggered: nothing left to do.
    assert_eq!(engine::plan::plan(&t, &engine.observe(&t).unwrap()), vec![]);

    // A link changed on the host (h1's TAP set down by hand, in the lab's
    // namespace): one in-place step sets it back, no QEMU restarts, and
    // h1 reaches h2 again.
    let before = pids(&engine, &t);
    let tap = topology::names::tap_ifname(&lab, "h1", 0);
    let netns = topology::names::netns_name(&lab);
    let down = std::process::Command::new("ip")
        .args(["-n", &netns, "link", "set", &tap, "down"])
        .status()
        .unwrap();
    assert!(down.success());
    let steps = up(&engine, &t);
    assert_eq!(
        steps.iter().map(|s| s.action.kind()).collect::<Vec<_>>(),
        ["update_link"],
        "{steps:?}"
    );
    assert_eq!(
        steps[0].reason,
        "h1 eth0: its TAP is down on the host; changed in place, h1 keeps running"
    );
    assert_eq!(pids(&engine, &t), before, "no VM restarted");
    assert_eq!(engine::plan::plan(&t, &engine.observe(&t).unwrap()), vec![]);
    let ping = h1_pings_h2(&engine, &lab);
    assert_eq!(
        ping.exit_code, 0,
        "h1 -> h2 after its link was set up again: {ping:?}"
    );

    // kill -9 of a QEMU: observed as crashed, and the next reconcile restarts it.
    let h2 = engine.vm_dir(&lab, "h2");
    let pid: u32 = std::fs::read_to_string(h2.join("qemu.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: kill(2) on the pid of the QEMU this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while qemu_alive(pid, &lab, "h2") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        engine.observe(&t).unwrap().vms["h2"].state,
        Some(VmState::Crashed)
    );
    let steps = up(&engine, &t);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(steps[0].reason, "h2 crashed");

    // Edits touch only what they change. A VM's memory: that VM alone is
    // recreated.
    let before = pids(&engine, &t);
    t.nodes
        .iter_mut()
        .find(|n| n.name == "h1")
        .unwrap()
        .memory_mib = Some(160);
    let steps = up(&engine, &t);
    assert_eq!(touched(&steps), ["h1".to_string()].into(), "{steps:?}");
    assert!(
        steps
            .iter()
            .any(|s| s.reason.contains("memory 128 → 160 MiB")),
        "{steps:?}"
    );
    let after = pids(&engine, &t);
    assert_ne!(before["h1"], after["h1"]);
    assert_eq!(
        (before["r1"], before["h2"]),
        (after["r1"], after["h2"]),
        "r1 and h2 keep their processes"
    );

    // An added VM with two links: created and started, nothing else moves.
    let before = after;
    t.nodes.push(
        serde_json::from_value(serde_json::json!({
            "name": "h3",
            "nics": [{"network": "left", "address": "10.10.0.13/24"}, {"network": "right", "address": "10.20.0.13/24"}]
        }))
        .unwrap(),
    );
    let steps = up(&engine, &t);
    assert_eq!(touched(&steps), ["h3".to_string()].into(), "{steps:?}");
    let after = pids(&engine, &t);
    for vm in ["r1", "h1", "h2"] {
        assert_eq!(before[vm], after[vm], "{vm} keeps its process");
    }

    // A removed link: its VM is recreated and its TAP deleted; the others stay.
    let before = after;
    t.nodes
        .iter_mut()
        .find(|n| n.name == "h3")
        .unwrap()
        .nics
        .pop();
    let steps = up(&engine, &t);
    assert_eq!(touched(&steps), ["h3".to_string()].into(), "{steps:?}");
    let gone = topology::names::tap_ifname(&lab, "h3", 1);
    assert!(
        steps.iter().any(|s| s.action
            == engine::plan::Action::DeleteTap {
                ifname: gone.clone()
            }),
        "{steps:?}"
    );
    let ns = topology::names::netns_name(&lab);
    assert!(!engine::net::links(Some(&ns))
        .unwrap()
        .iter()
        .any(|l| l.name == gone));
    let after = pids(&engine, &t);
    for vm in ["r1", "h1", "h2"] {
        assert_eq!(before[vm], after[vm], "{vm} keeps its process");
    }
    assert_eq!(engine::plan::plan(&t, &engine.observe(&t).unwrap()), vec![]);

    engine.down(&lab, true).unwrap();
    assert!(!engine::net::namespace_exists(
        &topology::names::netns_name(&lab)
    ));
    assert!(!engine.lab_dir(&lab).exists());
    for vm in ["r1", "h1", "h2", "h3"] {
        let procs = std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok());
        assert!(
            !procs.into_iter().any(|p| qemu_alive(p, &lab, vm)),
            "a QEMU of {vm} is left"
        );
    }
}
