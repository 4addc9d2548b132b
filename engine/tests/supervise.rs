//! The server's watcher for real (engine::service, as `minivm serve` runs
//! it), on a two-VM lab in its own namespace: a QEMU killed with -9 is
//! published as crashed the moment it dies (pidfd, not the next poll), with
//! its last console lines; `restart: on-failure` starts it again after the
//! backoff, a VM without the policy stays crashed, and a guest that powers
//! itself off is stopped, not crashed, and not restarted. Needs root.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::service::Service;
use engine::store::LabStore;
use tokio::sync::broadcast::{error::TryRecvError, Receiver};
use topology::events::{Event, EventKind};

const LAB: &str = "version: 1
name: sup
defaults: {image: tiny, memory_mib: 128}
networks: [{name: lan, subnet: 10.77.0.0/24}]
nodes:
  - {name: a, restart: on-failure, nics: [{network: lan}]}
  - {name: b, nics: [{network: lan}]}
";

struct Down(Arc<Service>, String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = self.0.engine.down(&self.1, true);
    }
}

/// Waits for the first event that `want` accepts; panics with every event
/// seen when none comes in time.
fn next(rx: &mut Receiver<Event>, within: Duration, want: impl Fn(&EventKind) -> bool) -> Event {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        match rx.try_recv() {
            Ok(e) if want(&e.kind) => return e,
            Ok(e) => seen.push(e),
            Err(TryRecvError::Empty) => {
                assert!(
                    Instant::now() < deadline,
                    "not seen in {within:?}; got {seen:#?}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn state_of<'a>(
    e: &'a EventKind,
    lab: &str,
    vm: &str,
) -> Option<(&'a str, Option<u32>, &'a [String])> {
    match e {
        EventKind::VmState {
            lab: l,
            vm: v,
            state,
            pid,
            tail,
        } if l == lab && v == vm => Some((state.as_str(), *pid, tail.as_slice())),
        _ => None,
    }
}

fn is_state(lab: &str, vm: &str, want: &'static str) -> impl Fn(&EventKind) -> bool {
    let (lab, vm) = (lab.to_string(), vm.to_string());
    move |e| state_of(e, &lab, &vm).is_some_and(|(s, _, _)| s == want)
}

fn kill(pid: u32) -> Instant {
    let at = Instant::now();
    // SAFETY: kill(2) of a QEMU this test started.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    at
}

#[test]
fn crashes_are_pushed_with_their_console_and_restarted_by_policy() {
    let (state, _images, engine) = common::engine_with_image();
    let mut t = topology::parse_and_validate(LAB, topology::Format::Yaml).unwrap();
    t.name = format!("sup-test-{}", std::process::id());
    let lab = t.name.clone();
    let store = LabStore::open(state.path()).unwrap();
    store.put(&t, None).unwrap();
    let svc = Service::new(engine, store);
    let _down = Down(svc.clone(), lab.clone());
    let (_, mut rx) = svc.bus.subscribe(0);
    svc.clone().watch();

    engine::ops::up(
        &svc.engine,
        &svc.store,
        &t,
        None,
        Duration::from_secs(240),
        &|_| {},
    )
    .unwrap();
    let running = |vm| svc.states(&t)[vm];
    // Both reported running, in either order.
    let (mut a_up, mut b_up) = (false, false);
    while !(a_up && b_up) {
        let e = next(&mut rx, Duration::from_secs(10), |e| {
            is_state(&lab, "a", "running")(e) || is_state(&lab, "b", "running")(e)
        });
        a_up |= is_state(&lab, "a", "running")(&e.kind);
        b_up |= is_state(&lab, "b", "running")(&e.kind);
    }
    let a_pid = running("a").pid;

    // kill -9 of a: crashed at once, with what its console said last.
    let at = kill(a_pid.unwrap());
    let e = next(
        &mut rx,
        Duration::from_secs(5),
        is_state(&lab, "a", "crashed"),
    );
    let latency = at.elapsed();
    let (_, _, tail) = state_of(&e.kind, &lab, "a").unwrap();
    eprintln!("kill -9 -> crashed event: {latency:?}; tail: {tail:#?}");
    assert!(!tail.is_empty() && tail.len() <= 10, "{tail:?}");
    assert!(
        tail.iter().any(|l| l.contains("minivm: ready a")) || tail.len() == 10,
        "the last console lines of a booted guest: {tail:?}"
    );

    // on-failure: restarted after the first backoff step (1 s), boots again.
    let e = next(
        &mut rx,
        Duration::from_secs(5),
        |e| matches!(e, EventKind::Activity { message, .. } if message.contains("a crashed; restart policy on-failure: restarting in 1 s (attempt 1)")),
    );
    drop(e);
    let restarted = Instant::now();
    let e = next(
        &mut rx,
        Duration::from_secs(30),
        is_state(&lab, "a", "starting"),
    );
    let (_, new_pid, _) = state_of(&e.kind, &lab, "a").unwrap();
    assert!(
        new_pid.is_some() && new_pid != a_pid,
        "{new_pid:?} vs {a_pid:?}"
    );
    assert!(
        restarted.elapsed() >= Duration::from_millis(900),
        "the backoff was waited"
    );
    next(
        &mut rx,
        Duration::from_secs(240),
        is_state(&lab, "a", "running"),
    );

    // b has no policy: it stays crashed.
    let b_pid = running("b").pid;
    kill(b_pid.unwrap());
    next(
        &mut rx,
        Duration::from_secs(5),
        is_state(&lab, "b", "crashed"),
    );
    left_alone(&mut rx, &svc, &t, "b", "crashed");

    // The engine stopping a VM at once (QMP quit, as a stop without grace,
    // a save or a failed warm start does) is a stop, never a crash that
    // the restart policy would act on.
    svc.engine.stop_vm(&lab, "a", Duration::ZERO).unwrap();
    let e = next(&mut rx, Duration::from_secs(5), |e| {
        is_state(&lab, "a", "stopped")(e) || is_state(&lab, "a", "crashed")(e)
    });
    assert!(is_state(&lab, "a", "stopped")(&e.kind), "{e:?}");
    left_alone(&mut rx, &svc, &t, "a", "stopped");
    engine::ops::start(&svc.engine, &t, &["a"], Duration::from_secs(240), &|_| {}).unwrap();
    next(
        &mut rx,
        Duration::from_secs(240),
        is_state(&lab, "a", "running"),
    );

    // A guest that powers itself off is stopped, not crashed: no restart.
    let out = svc.engine.exec(
        &lab,
        "a",
        &["/sbin/poweroff".to_string()],
        Duration::from_secs(30),
    );
    eprintln!("poweroff: {out:?}");
    next(
        &mut rx,
        Duration::from_secs(60),
        is_state(&lab, "a", "stopped"),
    );
    left_alone(&mut rx, &svc, &t, "a", "stopped");
}

/// For 3 s, `vm` stays in `state` and no event about it comes.
fn left_alone(
    rx: &mut Receiver<Event>,
    svc: &Service,
    t: &topology::Topology,
    vm: &str,
    state: &str,
) {
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(svc.states(t)[vm].state.as_str(), state);
    while let Ok(e) = rx.try_recv() {
        assert!(
            state_of(&e.kind, &t.name, vm).is_none(),
            "{vm} is left {state}: {e:?}"
        );
    }
}
