//! Links changed live on a running lab, for real (QEMU, the guest's own
//! view of its NIC, nftables at the TAP in the lab's namespace): loss 100%
//! on one NIC fails exactly the pairs whose traffic it sends, a link set
//! down is seen by the guest as lost carrier, and every change is one
//! in-place step: no QEMU restarts. (Delay, which takes netem or the
//! `minivm relay` program, is tested through the CLI in
//! server/tests/links_cli.rs.) Needs root.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use engine::lab::Engine;
use engine::ops::LinkEdit;
use engine::LabStore;
use topology::Topology;

const LAB: &str = "version: 1
name: links
defaults: {image: tiny}
networks:
  - {name: lan, subnet: 10.30.0.0/24}
nodes:
  - {name: h1, nics: [{network: lan, address: 10.30.0.11/24}]}
  - {name: h2, nics: [{network: lan, address: 10.30.0.12/24}]}
  - {name: h3, nics: [{network: lan, address: 10.30.0.13/24}]}
";

fn pids(engine: &Engine, t: &Topology) -> std::collections::BTreeMap<String, u32> {
    engine::lab::vm_states(engine, t)
        .into_iter()
        .filter_map(|(vm, s)| Some((vm, s.pid?)))
        .collect()
}

/// The pairs `minivm check` finds failing, as "from→to".
fn failing(engine: &Engine, t: &Topology) -> BTreeSet<String> {
    engine::check::run(engine, t, 6)
        .into_iter()
        .filter(|o| !o.ok)
        .map(|o| format!("{}→{}", o.pair.from, o.pair.to))
        .collect()
}

/// What `argv` prints in `vm`'s guest.
fn guest(engine: &Engine, lab: &str, vm: &str, argv: &[&str]) -> String {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let r = engine
        .exec(lab, vm, &argv, Duration::from_secs(30))
        .unwrap();
    r.stdout.trim().to_string()
}

/// h1's eth0 carrier as its guest reads it: "1" up, "0" lost.
fn h1_carrier(engine: &Engine, lab: &str) -> String {
    guest(
        engine,
        lab,
        "h1",
        &["/bin/cat", "/sys/class/net/eth0/carrier"],
    )
}

/// `failing`, once it is `want` (a guest takes a moment to act on its
/// carrier coming back: ARP entries that failed meanwhile are retried), or
/// what it still is after 30 s.
fn failing_settles(engine: &Engine, t: &Topology, want: &BTreeSet<String>) -> BTreeSet<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let now = failing(engine, t);
        if &now == want || std::time::Instant::now() > deadline {
            return now;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

struct Down<'a>(&'a Engine, String);
impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.down(&self.1, true);
    }
}

#[test]
fn loss_and_link_down_change_live_and_fail_exactly_their_pairs() {
    let (state, _images, engine) = common::engine_with_image();
    let store = LabStore::open(state.path()).unwrap();
    let mut t = topology::parse_and_validate(LAB, topology::Format::Yaml).unwrap();
    t.name = format!("links-test-{}", std::process::id());
    let lab = t.name.clone();
    let _down = Down(&engine, lab.clone());
    store.put(&t, None).unwrap();
    engine::ops::up(&engine, &store, &t, None, Duration::from_secs(240), &|_| {}).unwrap();
    let before = pids(&engine, &t);
    assert_eq!(before.len(), 3);
    assert_eq!(
        failing(&engine, &t),
        BTreeSet::new(),
        "all pairs pass first"
    );

    let set = |edit: LinkEdit| {
        engine::ops::set_link(&engine, &store, &lab, "h1", 0, &edit, &|_| {}).unwrap()
    };

    // Loss 100% on h1's NIC: every pair with h1 fails (h1's requests, and
    // its replies to the others, are what that NIC sends); h2↔h3 pass.
    let r = set(LinkEdit {
        loss_pct: Some(100.0),
        ..Default::default()
    });
    assert_eq!(
        r.steps
            .iter()
            .map(|s| s.reason.as_str())
            .collect::<Vec<_>>(),
        ["h1 eth0: impairment none → 100% loss; changed in place, h1 keeps running"]
    );
    let (t, _) = store.get(&lab).unwrap();
    assert_eq!(t.nodes[0].nics[0].impair.loss_pct, 100.0, "stored");
    let want: BTreeSet<String> = ["h1→h2", "h1→h3", "h2→h1", "h3→h1"]
        .map(String::from)
        .into();
    assert_eq!(failing_settles(&engine, &t, &want), want);
    assert_eq!(
        engine::plan::plan(&t, &engine.observe(&t).unwrap()),
        vec![],
        "observed as applied: a second up plans nothing"
    );
    let status = engine::status::lab_status(&engine, &t);
    assert_eq!(status.vms[0].nics[0].impair_label, "100% loss");

    // Cleared: all pass again.
    set(LinkEdit {
        clear: true,
        ..Default::default()
    });
    let (t, _) = store.get(&lab).unwrap();
    assert_eq!(
        failing_settles(&engine, &t, &BTreeSet::new()),
        BTreeSet::new()
    );

    // Down: the guest sees no carrier, its pairs fail; up: all pass.
    let r = set(LinkEdit {
        up: Some(false),
        ..Default::default()
    });
    assert_eq!(r.steps.len(), 1, "{:?}", r.steps);
    assert_eq!(h1_carrier(&engine, &lab), "0");
    let (t, _) = store.get(&lab).unwrap();
    assert_eq!(failing_settles(&engine, &t, &want), want);
    assert_eq!(engine::plan::plan(&t, &engine.observe(&t).unwrap()), vec![]);
    assert_eq!(
        engine::status::lab_status(&engine, &t).vms[0].nics[0].carrier,
        Some(false)
    );
    set(LinkEdit {
        up: Some(true),
        ..Default::default()
    });
    assert_eq!(h1_carrier(&engine, &lab), "1");
    let (t, _) = store.get(&lab).unwrap();
    assert_eq!(
        failing_settles(&engine, &t, &BTreeSet::new()),
        BTreeSet::new()
    );

    // Declared in the file: `up` applies them in place, one step per NIC.
    let (mut t, _) = store.get(&lab).unwrap();
    t.nodes[1].nics[0].impair.loss_pct = 100.0;
    t.nodes[2].nics[0].up = false;
    let report =
        engine::ops::up(&engine, &store, &t, None, Duration::from_secs(240), &|_| {}).unwrap();
    let mut reasons: Vec<&str> = report.steps.iter().map(|s| s.reason.as_str()).collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "h2 eth0: impairment none → 100% loss; changed in place, h2 keeps running",
            "h3 eth0: the guest sees its link up (set down); changed in place, h3 keeps running"
        ]
    );
    let want: BTreeSet<String> = ["h1→h2", "h1→h3", "h2→h1", "h2→h3", "h3→h1", "h3→h2"]
        .map(String::from)
        .into();
    assert_eq!(failing_settles(&engine, &t, &want), want);
    assert_eq!(engine::plan::plan(&t, &engine.observe(&t).unwrap()), vec![]);

    assert_eq!(pids(&engine, &t), before, "no QEMU restarted throughout");
}
