//! The engine as the web server runs it: the engine, the lab store and the
//! event bus together, and a watcher that turns what happens on the host
//! (whoever does it: this server, the CLI, a crash) into events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use topology::events::EventKind;
use topology::{RestartPolicy, Topology};

use crate::events::EventBus;
use crate::lab::Engine;
use crate::lifecycle::{VmState, VmStatus};
use crate::store::LabStore;

/// How often the watcher looks at the host.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(50);

pub struct Service {
    pub engine: Engine,
    pub store: LabStore,
    pub bus: EventBus,
    /// Packet captures started from the web page.
    pub captures: crate::captures::Captures,
    /// The revision of each lab last announced (LabChanged).
    revisions: std::sync::Mutex<BTreeMap<String, String>>,
    /// Operations under way, each on a thread of its own (see `spawn`).
    running: std::sync::atomic::AtomicUsize,
}

/// The most operations (starts, stops, live link changes, restarts) under
/// way at once: one more is refused, not queued without end.
pub const MAX_OPERATIONS: usize = 32;

/// An operation refused because [`MAX_OPERATIONS`] are under way.
#[derive(Debug, thiserror::Error)]
#[error("{MAX_OPERATIONS} operations are under way, the most this server runs at once; try again when one has ended")]
pub struct Busy;

/// What the watcher saw last: per lab, its revision and its VMs' states.
#[derive(Default)]
struct Seen {
    states: BTreeMap<(String, String), VmStatus>,
}

impl Service {
    pub fn new(engine: Engine, store: LabStore) -> Arc<Self> {
        Arc::new(Service {
            captures: crate::captures::Captures::open(&engine.state_dir),
            engine,
            store,
            bus: EventBus::new(),
            revisions: Default::default(),
            running: Default::default(),
        })
    }

    /// A closure that publishes a line of progress for `lab`.
    pub fn sayer(self: &Arc<Self>, lab: &str) -> impl Fn(String) + Sync + 'static {
        let me = self.clone();
        let lab = lab.to_string();
        move |message| {
            me.bus.publish(EventKind::Activity {
                lab: lab.clone(),
                message,
            });
        }
    }

    /// Runs `op` for `lab` on a blocking thread; its failure becomes an
    /// Error event (the page that asked has already had its answer).
    pub fn spawn(
        self: &Arc<Self>,
        lab: &str,
        op: impl FnOnce(&Arc<Service>) -> Result<(), crate::ops::OpsError> + Send + 'static,
    ) -> Result<(), Busy> {
        use std::sync::atomic::Ordering;
        let taken = self
            .running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_OPERATIONS).then_some(n + 1)
            });
        if taken.is_err() {
            return Err(Busy);
        }
        let me = self.clone();
        let lab = lab.to_string();
        std::thread::spawn(move || {
            if let Err(e) = op(&me) {
                let message = crate::report(&e);
                tracing::warn!(%lab, %message, "operation failed");
                me.bus.publish(EventKind::Error { lab, message });
            }
            me.running.fetch_sub(1, Ordering::SeqCst);
        });
        Ok(())
    }

    /// The VM states of a lab, as the watcher reports them.
    pub fn states(&self, t: &Topology) -> BTreeMap<String, VmStatus> {
        crate::lab::vm_states(&self.engine, t)
    }

    /// Watches the host forever (on its own thread): publishes a VmState
    /// for each VM whose state or pid changed, a LabChanged for each lab
    /// saved or deleted. Also reads the console of VMs that wait for a
    /// reader (started by a command that exited), so that they boot and
    /// their readiness is seen.
    ///
    /// A QEMU's exit is pushed, not polled: the watcher holds a pidfd of
    /// every live QEMU and sleeps in poll(2) on them, so it wakes the
    /// moment one exits. A crash is published with the VM's last console
    /// lines, and a VM whose restart policy is `on-failure` is started
    /// again after a backoff.
    pub fn watch(self: Arc<Self>) {
        std::thread::spawn(move || {
            let mut seen = Seen::default();
            let mut labs: Vec<(String, Topology)> = Vec::new();
            let mut exits = Exits::default();
            let mut restarts = Restarts::default();
            let mut tick = 0u64;
            loop {
                if tick.is_multiple_of(10) {
                    labs = self.store.list_with_topologies().unwrap_or_default();
                    self.diff_revisions(&mut seen);
                }
                let mut all = crate::lab::all_qemus();
                exits.track(all.values().flat_map(|vms| vms.values().copied()));
                for (_, t) in &labs {
                    let procs = all.remove(&t.name).unwrap_or_default();
                    for (vm, now) in crate::lab::vm_states_with(&self.engine, t, &procs) {
                        // Read every live VM's console: readiness is seen,
                        // and the scrollback grows from boot on.
                        if now.state.has_process() {
                            self.engine.watch_if_needed(&t.name, &vm);
                        }
                        let key = (t.name.clone(), vm.clone());
                        let before = seen.states.get(&key).map(|s| s.state);
                        if seen.states.get(&key) == Some(&now) {
                            continue;
                        }
                        let crashed = now.state == VmState::Crashed
                            && before.is_some_and(|b| b != VmState::Crashed);
                        let tail = if crashed {
                            crate::lab::console_tail(&self.engine.vm_dir(&t.name, &vm), 10)
                        } else {
                            vec![]
                        };
                        if crashed {
                            tracing::warn!(lab = %t.name, %vm, last = ?tail.last(), "VM crashed");
                        }
                        self.bus.publish(EventKind::VmState {
                            lab: t.name.clone(),
                            vm: vm.clone(),
                            state: now.state,
                            pid: now.pid,
                            tail,
                        });
                        restarts.saw(&key, now.state);
                        if crashed {
                            if let Some(node) = t.node(&vm) {
                                if t.node_restart(node) == RestartPolicy::OnFailure {
                                    let delay = restarts.next_delay(&key);
                                    self.restart_later(t, &vm, delay, restarts.attempts(&key));
                                }
                            }
                        }
                        seen.states.insert(key, now);
                    }
                }
                tick += 1;
                exits.wait(WATCH_INTERVAL);
            }
        });
    }

    /// The restart policy's step: after `delay`, starts `vm` again if it is
    /// still crashed (a stop or `down` in between wins) and the stored lab
    /// still asks for it.
    fn restart_later(self: &Arc<Self>, t: &Topology, vm: &str, delay: Duration, attempt: u32) {
        let say = self.sayer(&t.name);
        say(format!(
            "{vm} crashed; restart policy on-failure: restarting in {:.0} s (attempt {attempt})",
            delay.as_secs_f64()
        ));
        let lab = t.name.clone();
        let vm = vm.to_string();
        let who = vm.clone();
        let started = self.spawn(&lab.clone(), move |me| {
            std::thread::sleep(delay);
            let (t, _) = me.store.get(&lab)?;
            let wanted = t
                .node(&vm)
                .is_some_and(|n| t.node_restart(n) == RestartPolicy::OnFailure);
            if !wanted {
                return Ok(());
            }
            match crate::ops::restart_crashed(&me.engine, &t, &vm) {
                Ok(true) => {
                    me.sayer(&lab)(format!("{vm} restarted (attempt {attempt})"));
                    Ok(())
                }
                Ok(false) => Ok(()),
                Err(e) => Err(crate::ops::OpsError::Restart {
                    vm,
                    source: Box::new(e),
                }),
            }
        });
        if let Err(busy) = started {
            say(format!("{who}: not restarted: {busy}"));
        }
    }

    fn diff_revisions(&self, seen: &mut Seen) {
        // Held while the store is read: a save announced meanwhile
        // (`lab_saved`) is never followed by an older revision.
        let mut announced = self.revisions.lock().expect("not poisoned");
        let now: BTreeMap<String, String> = self
            .store
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(|l| (l.name, l.revision))
            .collect();
        for (lab, rev) in &now {
            if announced.get(lab) != Some(rev) {
                self.bus.publish(EventKind::LabChanged {
                    lab: lab.clone(),
                    revision: Some(rev.clone()),
                });
            }
        }
        for lab in announced.keys().filter(|l| !now.contains_key(*l)) {
            self.bus.publish(EventKind::LabChanged {
                lab: lab.clone(),
                revision: None,
            });
            seen.states.retain(|(l, _), _| l != lab);
        }
        *announced = now;
    }

    /// A save made by this server: announced at once (the watcher would
    /// see it within half a second), and only once.
    pub fn lab_saved(&self, lab: &str, revision: &str) {
        let mut announced = self.revisions.lock().expect("not poisoned");
        if announced.get(lab).map(String::as_str) != Some(revision) {
            self.bus.publish(EventKind::LabChanged {
                lab: lab.to_string(),
                revision: Some(revision.to_string()),
            });
            announced.insert(lab.to_string(), revision.to_string());
        }
    }
}

/// Backoff of the restart policy, per VM: 1 s, 2 s, 4 s, ... up to 30 s;
/// back to 1 s once the VM has been running for a minute.
#[derive(Default)]
struct Restarts {
    vms: BTreeMap<(String, String), Backoff>,
}

#[derive(Default)]
struct Backoff {
    attempts: u32,
    running_since: Option<std::time::Instant>,
}

/// The longest wait between restarts.
pub const RESTART_MAX_DELAY: Duration = Duration::from_secs(30);
/// A VM that ran this long before it crashed starts the backoff afresh.
pub const RESTART_RESET_AFTER: Duration = Duration::from_secs(60);

/// The wait before restart attempt `attempt` (from 1).
pub fn restart_delay(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.saturating_sub(1).min(5)).min(RESTART_MAX_DELAY)
}

impl Restarts {
    fn saw(&mut self, key: &(String, String), state: VmState) {
        let b = self.vms.entry(key.clone()).or_default();
        match state {
            VmState::Running => b.running_since = Some(std::time::Instant::now()),
            VmState::Crashed => {}
            _ => b.running_since = None,
        }
    }

    fn next_delay(&mut self, key: &(String, String)) -> Duration {
        let b = self.vms.entry(key.clone()).or_default();
        if b.running_since
            .is_some_and(|t| t.elapsed() >= RESTART_RESET_AFTER)
        {
            b.attempts = 0;
        }
        b.running_since = None;
        b.attempts += 1;
        restart_delay(b.attempts)
    }

    fn attempts(&self, key: &(String, String)) -> u32 {
        self.vms.get(key).map_or(0, |b| b.attempts)
    }
}

/// pidfds of the live QEMUs: poll(2) on them wakes the watcher the moment
/// one exits.
#[derive(Default)]
struct Exits {
    fds: BTreeMap<u32, std::os::fd::OwnedFd>,
}

impl Exits {
    /// Holds a pidfd for each of `live`, drops those of the others.
    fn track(&mut self, live: impl Iterator<Item = u32>) {
        use std::os::fd::FromRawFd;
        let live: std::collections::BTreeSet<u32> = live.collect();
        self.fds.retain(|pid, _| live.contains(pid));
        for pid in live {
            if self.fds.contains_key(&pid) {
                continue;
            }
            // SAFETY: pidfd_open(2) returns a new fd or -1.
            let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
            if fd >= 0 {
                // SAFETY: a fresh fd that nothing else owns.
                let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) };
                self.fds.insert(pid, fd);
            }
        }
    }

    /// Sleeps until `timeout` passes or a tracked QEMU exits; reaps those
    /// that were this process's children (started by the web app).
    fn wait(&mut self, timeout: Duration) {
        use std::os::fd::AsRawFd;
        let mut polls: Vec<libc::pollfd> = self
            .fds
            .values()
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll(2) on an array of valid pollfds we own.
        let n = unsafe {
            libc::poll(
                polls.as_mut_ptr(),
                polls.len() as libc::nfds_t,
                timeout.as_millis() as i32,
            )
        };
        if n <= 0 {
            return;
        }
        let pids: Vec<u32> = self.fds.keys().copied().collect();
        for (pid, p) in pids.into_iter().zip(&polls) {
            if p.revents != 0 {
                // SAFETY: waitpid(2) with WNOHANG; ECHILD when not ours.
                unsafe { libc::waitpid(pid as libc::pid_t, std::ptr::null_mut(), libc::WNOHANG) };
                self.fds.remove(&pid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_backoff_doubles_up_to_its_cap() {
        let got: Vec<u64> = (1..=8).map(|a| restart_delay(a).as_secs()).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn backoff_starts_afresh_after_a_long_run() {
        let mut r = Restarts::default();
        let k = ("lab".to_string(), "vm".to_string());
        r.saw(&k, VmState::Running);
        assert_eq!(r.next_delay(&k), Duration::from_secs(1));
        r.saw(&k, VmState::Starting);
        r.saw(&k, VmState::Running);
        assert_eq!(r.next_delay(&k), Duration::from_secs(2));
        r.saw(&k, VmState::Running);
        r.vms.get_mut(&k).unwrap().running_since =
            Some(std::time::Instant::now() - RESTART_RESET_AFTER);
        assert_eq!(r.next_delay(&k), Duration::from_secs(1));
    }

    /// A service on state directory `dir` (software emulation, no VM).
    fn service(dir: &std::path::Path) -> Arc<Service> {
        let engine = Engine::new(
            dir,
            crate::accel::Choice {
                accel: crate::accel::Accel::Tcg,
                reason: "test".into(),
            },
            None,
        )
        .unwrap();
        Service::new(engine, LabStore::open(dir).unwrap())
    }

    #[test]
    fn operations_past_the_limit_are_refused_and_room_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let gate = Arc::new(std::sync::Barrier::new(MAX_OPERATIONS + 1));
        for _ in 0..MAX_OPERATIONS {
            let gate = gate.clone();
            svc.spawn("l", move |_| {
                gate.wait();
                Ok(())
            })
            .unwrap();
        }
        let refused = svc.spawn("l", |_| Ok(())).unwrap_err();
        assert!(refused.to_string().contains("32 operations are under way"));
        gate.wait();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while svc.spawn("l", |_| Ok(())).is_err() {
            assert!(std::time::Instant::now() < deadline, "no room came back");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn a_save_is_announced_once_whoever_sees_it_first() {
        let dir = tempfile::tempdir().unwrap();
        let svc = service(dir.path());
        let mut t =
            topology::parse_and_validate(topology::examples::TRIANGLE, topology::Format::Yaml)
                .unwrap();
        let changed = |svc: &Service| {
            let (events, _) = svc.bus.subscribe(0);
            events
                .into_iter()
                .filter(|e| matches!(e.kind, EventKind::LabChanged { .. }))
                .count()
        };
        let mut seen = Seen::default();
        let rev = svc.store.put(&t, None).unwrap();
        svc.lab_saved(&t.name, &rev);
        assert_eq!(changed(&svc), 1, "announced by the save");
        svc.diff_revisions(&mut seen);
        svc.lab_saved(&t.name, &rev);
        assert_eq!(changed(&svc), 1, "not again");
        t.nodes[0].memory_mib = Some(160);
        svc.store.put(&t, Some(&rev)).unwrap();
        svc.diff_revisions(&mut seen);
        assert_eq!(changed(&svc), 2, "a save elsewhere is seen by the watcher");
    }

    #[test]
    fn a_pidfd_wakes_the_watcher_when_its_process_exits() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        let mut e = Exits::default();
        e.track([child.id()].into_iter());
        let t = std::time::Instant::now();
        e.wait(Duration::from_secs(5));
        let waited = t.elapsed();
        assert!(waited < Duration::from_secs(4), "woke after {waited:?}");
        assert!(e.fds.is_empty());
        let _ = child.wait();
    }
}
