//! The reconciler over the [`Host`] seam: plan, apply, observe again, until
//! the plan is empty. [`Engine`] is the real host; the tests below drive a
//! fake one in memory.

use topology::Topology;

use super::{of_vm, Engine, LabError, Progress, Result, VmFault};
use crate::plan::{self, Action, ObservedLab, Step};

impl Engine {
    /// Makes the host match `t`; see [`reconcile`].
    pub fn reconcile(
        &self,
        t: &Topology,
        only: Option<&[&str]>,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Vec<Step>> {
        // A warm clone whose start was cut short (the process killed
        // between its launch and its identity) runs with no identity: it
        // is handed one first, or stopped when it cannot take it, so that
        // the plan sees it as it really is and boots it cold.
        let vms: Vec<&str> = match only {
            Some(o) => o.to_vec(),
            None => t.nodes.iter().map(|n| n.name.as_str()).collect(),
        };
        self.finish_pending_identities(t, &vms)?;
        reconcile(self, t, only, self.parallel, progress)
    }
}

/// The host as the reconciler sees it: what a lab has, and one step
/// applied. [`Engine`] is the real one (QEMU, netlink, qemu-img); another
/// backend (a cluster, later) or a fake in tests implements the same, and
/// [`reconcile`] drives any of them.
pub trait Host: Sync {
    fn observe(&self, t: &Topology) -> Result<ObservedLab>;
    fn apply(&self, t: &Topology, step: &Step) -> Result<()>;
}

impl Host for Engine {
    fn observe(&self, t: &Topology) -> Result<ObservedLab> {
        Engine::observe(self, t)
    }
    fn apply(&self, t: &Topology, step: &Step) -> Result<()> {
        Engine::apply(self, t, step)
    }
}

/// Makes the host match `t`: plan, apply, observe again, until the plan
/// is empty (at most a few rounds). Lab-wide network objects are made
/// first, then each VM's steps run (VMs in parallel, at most
/// `parallel` at once), then lab-wide removals. With `only`, just
/// those VMs are worked on (plus the networks they need); nothing else
/// is touched. Returns the steps applied. A VM whose steps fail does not
/// stop the others; the errors are reported together at the end.
pub fn reconcile(
    host: &dyn Host,
    t: &Topology,
    only: Option<&[&str]>,
    parallel: usize,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<Step>> {
    let mut done = Vec::new();
    for _ in 0..3 {
        let mut p = plan::phases(plan::plan(t, &host.observe(t)?));
        if let Some(only) = only {
            p.per_vm.retain(|(vm, _)| only.contains(&vm.as_str()));
            p.after.clear();
            // Only the networks those VMs plug into.
            let bridges: std::collections::BTreeSet<String> = only
                .iter()
                .filter_map(|vm| t.node(vm))
                .flat_map(|n| &n.nics)
                .map(|nic| topology::names::bridge_ifname(&t.name, &nic.network))
                .collect();
            p.before.retain(|s| match &s.action {
                Action::CreateNamespace { .. } => true,
                Action::CreateBridge { ifname, .. } => bridges.contains(ifname),
                _ => false,
            });
        }
        let total =
            p.before.len() + p.per_vm.iter().map(|(_, s)| s.len()).sum::<usize>() + p.after.len();
        if total == 0 {
            break;
        }
        let counter = std::sync::atomic::AtomicUsize::new(0);
        let run = |s: &Step| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            progress(Progress {
                done: n,
                total,
                step: s,
            });
            host.apply(t, s)
        };
        // Lab-wide objects first. A bridge that cannot be made (its name is
        // taken by something not ours, say) fails its network: the VMs
        // plugged into it are not started; the rest of the lab goes on.
        let mut errors = Vec::new();
        let mut failed_bridges = std::collections::BTreeMap::new();
        for s in &p.before {
            match (run(s), &s.action) {
                (Ok(()), _) => {}
                (Err(e), Action::CreateBridge { network, ifname }) => {
                    tracing::warn!(lab = %t.name, %network, error = %crate::report(&e), "network failed");
                    failed_bridges.insert(ifname.clone(), network.clone());
                    errors.push(LabError::Network {
                        network: network.clone(),
                        source: Box::new(e),
                    });
                }
                (Err(e), _) => return Err(e),
            }
        }
        p.per_vm.retain(|(vm, steps)| {
            let blocked = steps.iter().find_map(|s| match &s.action {
                Action::CreateTap { bridge, .. } | Action::UpdateLink { bridge, .. } => {
                    failed_bridges.get(bridge)
                }
                _ => None,
            });
            if let Some(network) = blocked {
                errors.push(LabError::vm(vm, VmFault::NetworkFailed(network.clone())));
            }
            blocked.is_none()
        });
        let queue = std::sync::Mutex::new(p.per_vm.iter());
        let errors = std::sync::Mutex::new(errors);
        std::thread::scope(|scope| {
            for _ in 0..parallel.max(1).min(p.per_vm.len()) {
                scope.spawn(|| loop {
                    let Some((vm, steps)) = queue.lock().expect("not poisoned").next() else {
                        break;
                    };
                    for s in steps {
                        if let Err(e) = run(s) {
                            tracing::warn!(lab = %t.name, %vm, error = %crate::report(&e), "step failed");
                            errors.lock().expect("not poisoned").push(of_vm(vm, e));
                            break;
                        }
                    }
                });
            }
        });
        let mut errors = errors.into_inner().expect("not poisoned");
        for s in &p.after {
            if let Err(e) = run(s) {
                errors.push(e);
            }
        }
        LabError::combine(errors)?;
        done.extend(p.before);
        done.extend(p.per_vm.into_iter().flat_map(|(_, s)| s));
        done.extend(p.after);
    }
    Ok(done)
}
#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;
    use crate::lifecycle::VmState;

    /// A host in memory: applying a step changes what is observed, as the
    /// real one does; VMs named in `fail` cannot start.
    #[derive(Default)]
    struct FakeHost {
        observed: Mutex<ObservedLab>,
        applied: Mutex<Vec<Step>>,
        fail: Vec<&'static str>,
        busy: AtomicUsize,
        most_busy: AtomicUsize,
    }

    impl Host for FakeHost {
        fn observe(&self, _: &Topology) -> Result<ObservedLab> {
            Ok(self.observed.lock().unwrap().clone())
        }

        fn apply(&self, t: &Topology, step: &Step) -> Result<()> {
            let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_busy.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            self.busy.fetch_sub(1, Ordering::SeqCst);
            let mut o = self.observed.lock().unwrap();
            match &step.action {
                Action::CreateNamespace { .. } => o.namespace = true,
                Action::CreateBridge { ifname, .. } => drop(o.bridges.insert(ifname.clone())),
                Action::CreateTap {
                    vm, nic, ifname, ..
                }
                | Action::UpdateLink {
                    vm, nic, ifname, ..
                } => {
                    o.taps.insert(ifname.clone());
                    o.links
                        .insert(ifname.clone(), crate::link::desired(t, vm, *nic).unwrap());
                }
                Action::CreateOverlay { vm, .. } => {
                    o.vms.entry(vm.clone()).or_default().has_overlay = true
                }
                Action::WriteSeed { .. } | Action::StopVm { .. } => {}
                Action::DiscardSaved { vm } => {
                    o.vms.entry(vm.clone()).or_default().saved = None;
                }
                Action::StartVm { vm } if self.fail.contains(&vm.as_str()) => {
                    return Err(LabError::vm(vm, VmFault::Exited("cannot start".into())))
                }
                Action::StartVm { vm } => {
                    let v = o.vms.entry(vm.clone()).or_default();
                    v.state = Some(VmState::Running);
                    v.hardware = plan::desired_hardware(t, vm);
                    v.seed_hash = plan::desired_seed_hash(t, vm);
                }
                Action::DeleteVm { vm } => drop(o.vms.remove(vm)),
                Action::DeleteTap { ifname } => {
                    o.taps.remove(ifname);
                    o.links.remove(ifname);
                }
                Action::DeleteBridge { ifname } => drop(o.bridges.remove(ifname)),
                Action::ConfigureMgmt { .. } => {
                    o.mgmt = crate::mgmt::Uplink::desired(t).map(|u| u.hash())
                }
                Action::RemoveMgmt { .. } => o.mgmt = None,
            }
            self.applied.lock().unwrap().push(step.clone());
            Ok(())
        }
    }

    fn lab(n: usize) -> Topology {
        let mut y = "version: 1\nname: t\ndefaults: {image: tiny}\nnetworks: [{name: lan, subnet: 10.1.0.0/24}]\nnodes:\n".to_string();
        for i in 1..=n {
            y += &format!("  - {{name: vm{i}, nics: [{{network: lan}}]}}\n");
        }
        topology::parse_and_validate(&y, topology::Format::Yaml).unwrap()
    }

    #[test]
    fn a_management_network_is_a_bridge_a_first_nic_and_its_host_side() {
        let host = FakeHost::default();
        let mut t = lab(2);
        t.mgmt = Some(topology::Mgmt {
            subnet: "172.20.20.0/24".into(),
            nat: true,
            ports: vec!["127.0.0.1:2201:vm1:22".into()],
        });
        let steps = reconcile(&host, &t, None, 2, &|_| {}).unwrap();
        let kinds: Vec<&str> = steps.iter().map(|s| s.action.kind()).collect();
        let mgmt_bridge = topology::names::bridge_ifname("t", topology::mgmt::NETWORK);
        let at = |k: &Action| steps.iter().position(|s| &s.action == k).unwrap();
        assert!(
            at(&Action::CreateBridge {
                network: "mgmt".into(),
                ifname: mgmt_bridge.clone()
            }) < at(&Action::ConfigureMgmt {
                ifname: topology::names::mgmt_host_ifname("t")
            }),
            "{kinds:?}"
        );
        // Two NICs a VM: eth0 on mgmt, eth1 on lan.
        assert_eq!(kinds.iter().filter(|k| **k == "create_tap").count(), 4);
        assert_eq!(reconcile(&host, &t, None, 2, &|_| {}).unwrap(), vec![]);
        // A new port forward: only the host side again.
        t.mgmt.as_mut().unwrap().ports.push("2202:vm2:22".into());
        let steps = reconcile(&host, &t, None, 2, &|_| {}).unwrap();
        assert_eq!(
            steps.iter().map(|s| s.action.kind()).collect::<Vec<_>>(),
            vec!["configure_mgmt"]
        );
        // Without mgmt: its host side and bridge go, the VMs are recreated
        // with their one NIC.
        t.mgmt = None;
        let steps = reconcile(&host, &t, None, 2, &|_| {}).unwrap();
        let kinds: Vec<&str> = steps.iter().map(|s| s.action.kind()).collect();
        assert!(kinds.contains(&"remove_mgmt"), "{kinds:?}");
        assert!(kinds.contains(&"delete_bridge"), "{kinds:?}");
        assert_eq!(host.observed.lock().unwrap().mgmt, None);
        assert_eq!(
            host.observed.lock().unwrap().vms["vm1"]
                .hardware
                .as_ref()
                .unwrap()
                .nics
                .len(),
            1
        );
    }

    #[test]
    fn converges_then_does_nothing() {
        let host = FakeHost::default();
        let t = lab(3);
        let steps = reconcile(&host, &t, None, 2, &|_| {}).unwrap();
        assert_eq!(steps.len(), 2 + 3 * 4);
        assert_eq!(plan::plan(&t, &host.observed.lock().unwrap()), vec![]);
        assert_eq!(reconcile(&host, &t, None, 2, &|_| {}).unwrap(), vec![]);
    }

    #[test]
    fn vms_run_in_parallel_within_the_bound_and_progress_counts_every_step() {
        let host = FakeHost::default();
        let seen = Mutex::new(Vec::new());
        reconcile(&host, &lab(6), None, 3, &|p| {
            seen.lock().unwrap().push((p.done, p.total))
        })
        .unwrap();
        let most = host.most_busy.load(Ordering::SeqCst);
        assert!(
            (2..=3).contains(&most),
            "at most 3 VMs at once, and more than one: {most}"
        );
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, (1..=26).map(|i| (i, 26)).collect::<Vec<_>>());
    }

    #[test]
    fn a_failing_vm_does_not_stop_the_others() {
        let host = FakeHost {
            fail: vec!["vm2"],
            ..Default::default()
        };
        let err = reconcile(&host, &lab(3), None, 1, &|_| {}).unwrap_err();
        assert_eq!(crate::report(&err), "vm2: QEMU exited: cannot start");
        let o = host.observed.lock().unwrap();
        assert_eq!(o.vms["vm1"].state, Some(VmState::Running));
        assert_eq!(o.vms["vm3"].state, Some(VmState::Running));
    }

    #[test]
    fn a_link_changed_on_the_host_is_set_back_in_place_and_its_vm_keeps_running() {
        let host = FakeHost::default();
        let t = lab(2);
        reconcile(&host, &t, None, 2, &|_| {}).unwrap();
        let tap = topology::names::tap_ifname("t", "vm2", 0);
        host.observed
            .lock()
            .unwrap()
            .links
            .get_mut(&tap)
            .unwrap()
            .up = false;
        host.applied.lock().unwrap().clear();
        let steps = reconcile(&host, &t, None, 2, &|_| {}).unwrap();
        assert_eq!(
            steps,
            [Step {
                action: Action::UpdateLink {
                    vm: "vm2".into(),
                    nic: 0,
                    ifname: tap.clone(),
                    bridge: topology::names::bridge_ifname("t", "lan"),
                },
                reason:
                    "vm2 eth0: its TAP is down on the host; changed in place, vm2 keeps running"
                        .into(),
            }]
        );
        assert!(host.observed.lock().unwrap().links[&tap].up);
        assert_eq!(reconcile(&host, &t, None, 2, &|_| {}).unwrap(), vec![]);
    }

    #[test]
    fn only_touches_the_vms_named_and_their_networks() {
        let host = FakeHost::default();
        let t = lab(3);
        let steps = reconcile(&host, &t, Some(&["vm2"]), 2, &|_| {}).unwrap();
        assert!(
            steps
                .iter()
                .all(|s| s.action.vm().is_none_or(|v| v == "vm2")),
            "{steps:?}"
        );
        let o = host.observed.lock().unwrap();
        assert!(o.namespace && o.bridges.len() == 1);
        assert_eq!(o.vms.keys().collect::<Vec<_>>(), ["vm2"]);
    }
}
