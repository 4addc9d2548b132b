//! The engine as the web server runs it: the engine, the lab store and the
//! event bus together, and a watcher that turns what happens on the host
//! (whoever does it: this server, the CLI, a crash) into events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use topology::events::EventKind;
use topology::Topology;

use crate::events::EventBus;
use crate::lab::Engine;
use crate::store::LabStore;

/// How often the watcher looks at the host.
pub const WATCH_INTERVAL: Duration = Duration::from_millis(50);

pub struct Service {
    pub engine: Engine,
    pub store: LabStore,
    pub bus: EventBus,
}

/// What the watcher saw last: per lab, its revision and its VMs' states.
#[derive(Default)]
struct Seen {
    revisions: BTreeMap<String, String>,
    states: BTreeMap<(String, String), (String, Option<u32>)>,
}

impl Service {
    pub fn new(engine: Engine, store: LabStore) -> Arc<Self> {
        Arc::new(Service {
            engine,
            store,
            bus: EventBus::new(),
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
        op: impl FnOnce(&Arc<Service>) -> Result<(), String> + Send + 'static,
    ) {
        let me = self.clone();
        let lab = lab.to_string();
        std::thread::spawn(move || {
            if let Err(message) = op(&me) {
                tracing::warn!(%lab, %message, "operation failed");
                me.bus.publish(EventKind::Error { lab, message });
            }
        });
    }

    /// The VM states of a lab, as the watcher reports them.
    pub fn states(&self, t: &Topology) -> BTreeMap<String, (String, Option<u32>)> {
        self.states_with(t, &crate::lab::running_qemus(&t.name))
    }

    fn states_with(
        &self,
        t: &Topology,
        procs: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, (String, Option<u32>)> {
        crate::lab::vm_states_with(&self.engine, t, procs)
            .into_iter()
            .map(|(vm, (s, pid))| {
                (
                    vm,
                    (
                        s.map(|s| s.to_string()).unwrap_or_else(|| "defined".into()),
                        pid,
                    ),
                )
            })
            .collect()
    }

    /// Watches the host forever (on its own thread): publishes a VmState
    /// for each VM whose state or pid changed, a LabChanged for each lab
    /// saved or deleted. Also reads the console of VMs that wait for a
    /// reader (started by a command that exited), so that they boot and
    /// their readiness is seen.
    pub fn watch(self: Arc<Self>) {
        std::thread::spawn(move || {
            let mut seen = Seen::default();
            let mut labs: Vec<(String, Topology)> = Vec::new();
            let mut tick = 0u64;
            loop {
                if tick % 10 == 0 {
                    labs = self.store.list_with_topologies().unwrap_or_default();
                    self.diff_revisions(&mut seen);
                }
                let mut procs = crate::lab::all_qemus();
                for (_, t) in &labs {
                    let procs = procs.remove(&t.name).unwrap_or_default();
                    for (vm, now) in self.states_with(t, &procs) {
                        // Read every live VM's console: readiness is seen,
                        // and the scrollback grows from boot on.
                        if now.0 == "starting" || now.0 == "running" {
                            self.engine.watch_if_needed(&t.name, &vm);
                        }
                        let key = (t.name.clone(), vm.clone());
                        if seen.states.get(&key) != Some(&now) {
                            self.bus.publish(EventKind::VmState {
                                lab: t.name.clone(),
                                vm,
                                state: now.0.clone(),
                                pid: now.1,
                            });
                            seen.states.insert(key, now);
                        }
                    }
                }
                tick += 1;
                std::thread::sleep(WATCH_INTERVAL);
            }
        });
    }

    fn diff_revisions(&self, seen: &mut Seen) {
        let now: BTreeMap<String, String> = self
            .store
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(|l| (l.name, l.revision))
            .collect();
        for (lab, rev) in &now {
            if seen.revisions.get(lab) != Some(rev) {
                self.bus.publish(EventKind::LabChanged {
                    lab: lab.clone(),
                    revision: Some(rev.clone()),
                });
            }
        }
        for lab in seen.revisions.keys().filter(|l| !now.contains_key(*l)) {
            self.bus.publish(EventKind::LabChanged {
                lab: lab.clone(),
                revision: None,
            });
            seen.states.retain(|(l, _), _| l != lab);
        }
        seen.revisions = now;
    }
}
