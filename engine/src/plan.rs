//! Planning: a pure function from the desired lab (the topology) and what is
//! observed on the host to the actions that make the host match, each with a
//! reason. No I/O here: the executor applies a plan, the reconciler observes
//! again afterwards (level-triggered: it is never told why it runs).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use topology::names::{bridge_ifname, netns_name, tap_ifname};
use topology::{NetworkMode, Topology};

use crate::lifecycle::VmState;

pub use crate::vmdir::VmHardware;

/// What the host has of one VM.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ObservedVm {
    pub state: Option<VmState>,
    pub has_overlay: bool,
    /// The hardware the running (or last) process was started with.
    pub hardware: Option<VmHardware>,
    /// Hash of the seed the VM booted with (addresses, routes, forwarding).
    pub seed_hash: Option<String>,
    /// Its saved state (`stop --save`), when whole.
    #[serde(default)]
    pub saved: Option<crate::vmdir::SavedState>,
}

/// What the host has of one lab: only objects that carry the lab's identity.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ObservedLab {
    pub namespace: bool,
    pub bridges: BTreeSet<String>,
    pub taps: BTreeSet<String>,
    /// What the host has of each TAP's link (by TAP name); a TAP missing
    /// here is not compared.
    pub links: BTreeMap<String, crate::link::LinkProps>,
    pub vms: BTreeMap<String, ObservedVm>,
    /// The hash of the management network's host side as applied
    /// (`crate::mgmt`), when it is there.
    #[serde(default)]
    pub mgmt: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateNamespace {
        name: String,
    },
    CreateBridge {
        network: String,
        ifname: String,
    },
    CreateTap {
        vm: String,
        nic: usize,
        ifname: String,
        bridge: String,
    },
    /// A NIC's link changed in place (`crate::link`): the VM keeps running.
    UpdateLink {
        vm: String,
        nic: usize,
        ifname: String,
        bridge: String,
    },
    CreateOverlay {
        vm: String,
        image: String,
    },
    WriteSeed {
        vm: String,
    },
    StopVm {
        vm: String,
    },
    StartVm {
        vm: String,
    },
    /// Deletes a VM's saved state (it no longer fits the VM).
    DiscardSaved {
        vm: String,
    },
    DeleteVm {
        vm: String,
    },
    DeleteTap {
        ifname: String,
    },
    DeleteBridge {
        ifname: String,
    },
    /// The management network's host side (`crate::mgmt`): veth, gateway
    /// address, nftables table.
    ConfigureMgmt {
        ifname: String,
    },
    RemoveMgmt {
        ifname: String,
    },
}

impl Action {
    /// The VM the action belongs to; `None` for lab-wide network objects.
    /// Actions of different VMs are independent and may run in parallel.
    pub fn vm(&self) -> Option<&str> {
        match self {
            Action::CreateTap { vm, .. }
            | Action::UpdateLink { vm, .. }
            | Action::CreateOverlay { vm, .. }
            | Action::WriteSeed { vm }
            | Action::StopVm { vm }
            | Action::StartVm { vm }
            | Action::DiscardSaved { vm }
            | Action::DeleteVm { vm } => Some(vm),
            Action::CreateNamespace { .. }
            | Action::CreateBridge { .. }
            | Action::DeleteTap { .. }
            | Action::DeleteBridge { .. }
            | Action::ConfigureMgmt { .. }
            | Action::RemoveMgmt { .. } => None,
        }
    }

    /// The action's name as in `--dry-run --json` (`create_tap`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Action::CreateNamespace { .. } => "create_namespace",
            Action::CreateBridge { .. } => "create_bridge",
            Action::CreateTap { .. } => "create_tap",
            Action::UpdateLink { .. } => "update_link",
            Action::CreateOverlay { .. } => "create_overlay",
            Action::WriteSeed { .. } => "write_seed",
            Action::StopVm { .. } => "stop_vm",
            Action::StartVm { .. } => "start_vm",
            Action::DiscardSaved { .. } => "discard_saved",
            Action::DeleteVm { .. } => "delete_vm",
            Action::DeleteTap { .. } => "delete_tap",
            Action::DeleteBridge { .. } => "delete_bridge",
            Action::ConfigureMgmt { .. } => "configure_mgmt",
            Action::RemoveMgmt { .. } => "remove_mgmt",
        }
    }
}

/// Steps split into the phases the executor runs: lab-wide creations in
/// order, then each VM's steps (in order within a VM; VMs in parallel),
/// then lab-wide removals.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Phases {
    pub before: Vec<Step>,
    pub per_vm: Vec<(String, Vec<Step>)>,
    pub after: Vec<Step>,
}

pub fn phases(steps: Vec<Step>) -> Phases {
    let mut p = Phases::default();
    for s in steps {
        match (s.action.vm().map(str::to_string), &s.action) {
            (Some(vm), _) => match p.per_vm.iter_mut().find(|(v, _)| *v == vm) {
                Some((_, list)) => list.push(s),
                None => p.per_vm.push((vm, vec![s])),
            },
            (
                None,
                Action::DeleteTap { .. } | Action::DeleteBridge { .. } | Action::RemoveMgmt { .. },
            ) => p.after.push(s),
            (None, _) => p.before.push(s),
        }
    }
    p
}

/// One action and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    #[serde(flatten)]
    pub action: Action,
    pub reason: String,
}

/// The hardware `vm` should have (a valid topology).
pub fn desired_hardware(t: &Topology, vm: &str) -> Option<VmHardware> {
    let t = &*topology::mgmt::effective(t);
    let node = t.node(vm)?;
    let nics = topology::resolve::nics(t);
    Some(VmHardware {
        image: t.node_image(node).unwrap_or_default().to_string(),
        cpus: t.node_cpus(node),
        memory_mib: t.node_memory_mib(node),
        nics: nics
            .get(vm)?
            .iter()
            .map(|n| (n.mac.to_string(), n.network.clone()))
            .collect(),
    })
}

/// Hash of the seed `vm` should boot with.
pub fn desired_seed_hash(t: &Topology, vm: &str) -> Option<String> {
    let t = &*topology::mgmt::effective(t);
    let s = crate::seed::render(t, vm)?;
    Some(format!(
        "{:016x}",
        topology::names::stable_hash(&[&s.minivm_conf, &s.network_config, &s.user_data])
    ))
}

/// Why a VM must be recreated, if its hardware differs. The whole value is
/// compared first, so a difference is never missed; the fields are then
/// destructured without `..`, so a field added to `VmHardware` does not
/// compile until it is explained here.
fn hardware_change(old: &VmHardware, new: &VmHardware) -> Option<String> {
    if old == new {
        return None;
    }
    let VmHardware {
        image,
        cpus,
        memory_mib,
        nics,
    } = new;
    let mut what = Vec::new();
    if &old.image != image {
        what.push(format!("image {} → {image}", old.image));
    }
    if &old.cpus != cpus {
        what.push(format!("cpus {} → {cpus}", old.cpus));
    }
    if &old.memory_mib != memory_mib {
        what.push(format!("memory {} → {memory_mib} MiB", old.memory_mib));
    }
    if old.nics.len() != nics.len() {
        what.push(format!("NICs {} → {}", old.nics.len(), nics.len()));
    } else {
        for (i, ((old_mac, old_net), (mac, net))) in old.nics.iter().zip(nics).enumerate() {
            if old_mac != mac {
                what.push(format!("eth{i} MAC {old_mac} → {mac}"));
            }
            if old_net != net {
                what.push(format!("eth{i} network {old_net} → {net}"));
            }
        }
    }
    if what.is_empty() {
        what.push("its hardware changed".into());
    }
    Some(what.join(", "))
}

/// The steps that make the host match `t`, in the order they must run:
/// namespace, bridges, TAPs, disks, restarts, starts, then removal of what
/// the lab owns but no longer wants. An empty plan means nothing to do.
pub fn plan(t: &Topology, observed: &ObservedLab) -> Vec<Step> {
    let t = &*topology::mgmt::effective(t);
    let mut steps = Vec::new();
    let mut push = |action, reason: String| steps.push(Step { action, reason });
    let lab = &t.name;

    if t.network_mode == NetworkMode::Isolated && !observed.namespace {
        push(
            Action::CreateNamespace {
                name: netns_name(lab),
            },
            "the lab's network namespace is missing".into(),
        );
    }
    let mut want_bridges = BTreeSet::new();
    for net in &t.networks {
        let ifname = bridge_ifname(lab, &net.name);
        if !observed.bridges.contains(&ifname) {
            push(
                Action::CreateBridge {
                    network: net.name.clone(),
                    ifname: ifname.clone(),
                },
                format!("network {:?} has no bridge", net.name),
            );
        }
        want_bridges.insert(ifname);
    }
    match (crate::mgmt::Uplink::desired(t), &observed.mgmt) {
        (Some(u), have) if have.as_deref() != Some(u.hash().as_str()) => push(
            Action::ConfigureMgmt { ifname: u.host_if },
            match have {
                None => "the management network has no way to the host".into(),
                Some(_) => "the management network's subnet, NAT or ports changed".into(),
            },
        ),
        (None, Some(_)) => push(
            Action::RemoveMgmt {
                ifname: topology::names::mgmt_host_ifname(lab),
            },
            "the lab no longer has a management network".into(),
        ),
        _ => {}
    }
    let mut want_taps = BTreeSet::new();
    for node in &t.nodes {
        for (i, nic) in node.nics.iter().enumerate() {
            let ifname = tap_ifname(lab, &node.name, i);
            if !observed.taps.contains(&ifname) {
                push(
                    Action::CreateTap {
                        vm: node.name.clone(),
                        nic: i,
                        ifname: ifname.clone(),
                        bridge: bridge_ifname(lab, &nic.network),
                    },
                    format!("{} eth{i} has no TAP", node.name),
                );
            }
            want_taps.insert(ifname);
        }
    }

    let mut restarts = Vec::new();
    let mut starts = Vec::new();
    for node in &t.nodes {
        let vm = node.name.clone();
        let hw = desired_hardware(t, &vm).expect("the node exists");
        let seed = desired_seed_hash(t, &vm).expect("the node exists");
        let obs = observed.vms.get(&vm).cloned().unwrap_or_default();
        let image_changed = obs.hardware.as_ref().is_some_and(|h| h.image != hw.image);
        if image_changed {
            push(
                Action::DeleteVm { vm: vm.clone() },
                format!("{vm}: its image changed; the overlay is rebuilt"),
            );
        }
        if !obs.has_overlay || image_changed {
            push(
                Action::CreateOverlay {
                    vm: vm.clone(),
                    image: hw.image.clone(),
                },
                format!("{vm} has no overlay"),
            );
        }
        if obs.seed_hash.as_deref() != Some(seed.as_str()) {
            push(
                Action::WriteSeed { vm: vm.clone() },
                format!("{vm}'s seed is missing or out of date"),
            );
        }
        let alive = obs.state.is_some_and(|s| s.has_process());
        if alive && !image_changed {
            let change = obs
                .hardware
                .as_ref()
                .and_then(|old| hardware_change(old, &hw));
            let reason = match change {
                Some(c) => Some(format!("{vm} is recreated: {c}")),
                None if obs.seed_hash.as_deref() != Some(seed.as_str()) => Some(format!(
                    "{vm} is restarted: its addresses or routes changed (read at boot)"
                )),
                None => None,
            };
            if let Some(r) = reason {
                restarts.push((vm.clone(), r));
            }
        } else {
            // A saved state resumes only onto what it was saved from.
            let resumes = match obs.saved.as_ref().filter(|_| !image_changed) {
                Some(saved) => {
                    let change = hardware_change(&saved.hardware, &hw).or_else(|| {
                        (saved.seed_hash != seed)
                            .then(|| "its addresses, routes or files changed".to_string())
                    });
                    if let Some(c) = &change {
                        push(
                            Action::DiscardSaved { vm: vm.clone() },
                            format!("{vm}'s saved state is discarded ({c}): it boots afresh"),
                        );
                    }
                    change.is_none()
                }
                None => false,
            };
            let why = match obs.state {
                _ if resumes => format!("{vm} is resumed from its saved state"),
                Some(VmState::Crashed) => format!("{vm} crashed"),
                _ if image_changed => format!("{vm} is recreated with its new image"),
                _ => format!("{vm} is not running"),
            };
            starts.push((vm.clone(), why));
        }
    }
    // Links after the starts: the guest's carrier is set on a live QEMU,
    // and a QEMU that is (re)started here starts with its links up.
    let booting: BTreeSet<String> = restarts
        .iter()
        .chain(&starts)
        .map(|(vm, _)| vm.clone())
        .collect();
    for (vm, reason) in restarts {
        push(Action::StopVm { vm: vm.clone() }, reason.clone());
        push(Action::StartVm { vm }, reason);
    }
    for (vm, reason) in starts {
        push(Action::StartVm { vm }, reason);
    }
    for (vm, i, ifname, want) in crate::link::all_desired(t) {
        // A TAP made by this plan is fresh: up, plugged in, unimpaired.
        let mut have = observed
            .links
            .get(&ifname)
            .cloned()
            .unwrap_or_else(|| want.fresh());
        if booting.contains(&vm) {
            have.carrier = true;
        }
        let Some(why) = crate::link::change(&have, &want) else {
            continue;
        };
        push(
            Action::UpdateLink {
                vm: vm.clone(),
                nic: i,
                ifname,
                bridge: want.bridge.unwrap_or_default(),
            },
            format!("{vm} eth{i}: {why}; changed in place, {vm} keeps running"),
        );
    }

    for vm in observed.vms.keys().filter(|v| t.node(v).is_none()) {
        push(
            Action::DeleteVm { vm: vm.clone() },
            format!("{vm} is no longer in the topology"),
        );
    }
    for tap in observed.taps.difference(&want_taps) {
        push(
            Action::DeleteTap {
                ifname: tap.clone(),
            },
            format!("{tap} belongs to no NIC of the topology"),
        );
    }
    for br in observed.bridges.difference(&want_bridges) {
        push(
            Action::DeleteBridge { ifname: br.clone() },
            format!("{br} belongs to no network of the topology"),
        );
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Topology {
        topology::parse_and_validate(topology::examples::ROUTER, topology::Format::Yaml).unwrap()
    }

    /// What the host looks like once `t` is fully up.
    fn up(t: &Topology) -> ObservedLab {
        let mut o = ObservedLab {
            namespace: true,
            ..Default::default()
        };
        for s in plan(t, &ObservedLab::default()) {
            match s.action {
                Action::CreateBridge { ifname, .. } => {
                    o.bridges.insert(ifname);
                }
                Action::CreateTap { ifname, .. } => {
                    o.taps.insert(ifname);
                }
                Action::StartVm { vm } => {
                    o.vms.insert(
                        vm.clone(),
                        ObservedVm {
                            state: Some(VmState::Running),
                            has_overlay: true,
                            hardware: desired_hardware(t, &vm),
                            seed_hash: desired_seed_hash(t, &vm),
                            saved: None,
                        },
                    );
                }
                _ => {}
            }
        }
        o
    }

    #[test]
    fn a_saved_state_is_resumed_onto_the_same_vm_and_discarded_with_the_reason_otherwise() {
        let t = topology::parse_and_validate(
            "version: 1\nname: s\ndefaults: {image: tiny}\nnetworks: [{name: lan, subnet: 10.1.0.0/24}]\nnodes: [{name: a, nics: [{network: lan}]}]\n",
            topology::Format::Yaml,
        )
        .unwrap();
        let mut o = up(&t);
        let vm = o.vms.get_mut("a").unwrap();
        vm.state = Some(VmState::Stopped);
        vm.saved = Some(crate::vmdir::SavedState {
            hardware: desired_hardware(&t, "a").unwrap(),
            seed_hash: desired_seed_hash(&t, "a").unwrap(),
            ready: true,
            saved_at: 0,
            bytes: 1,
        });
        let steps = plan(&t, &o);
        assert_eq!(kinds(&steps), ["start_vm"]);
        assert_eq!(steps[0].reason, "a is resumed from its saved state");
        // More memory: the state no longer fits; it is discarded, saying why.
        let mut bigger = t.clone();
        bigger.nodes[0].memory_mib = Some(256);
        let steps = plan(&bigger, &o);
        assert_eq!(kinds(&steps), ["discard_saved", "start_vm"]);
        assert_eq!(
            steps[0].reason,
            "a's saved state is discarded (memory 128 → 256 MiB): it boots afresh"
        );
        assert_eq!(steps[1].reason, "a is not running");
    }

    fn kinds(steps: &[Step]) -> Vec<String> {
        steps.iter().map(|s| s.action.kind().to_string()).collect()
    }

    #[test]
    fn kind_is_the_serialized_tag() {
        for s in plan(&router(), &ObservedLab::default()) {
            assert_eq!(
                serde_json::to_value(&s.action).unwrap()["action"],
                s.action.kind()
            );
        }
    }

    #[test]
    fn phases_keep_order_within_a_vm_and_put_network_first() {
        let t = router();
        let p = phases(plan(&t, &ObservedLab::default()));
        assert_eq!(
            kinds(&p.before),
            ["create_namespace", "create_bridge", "create_bridge"]
        );
        assert_eq!(
            p.per_vm.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>(),
            ["r1", "h1", "h2"]
        );
        for (vm, steps) in &p.per_vm {
            assert!(steps.iter().all(|s| s.action.vm() == Some(vm.as_str())));
            assert_eq!(
                kinds(steps).last().unwrap(),
                "start_vm",
                "{vm}: the start comes last"
            );
        }
        assert!(p.after.is_empty());
        // A removed VM: its deletion is its own group, its TAPs go afterwards.
        let mut smaller = t.clone();
        smaller.nodes.retain(|n| n.name != "h2");
        let p = phases(plan(&smaller, &up(&t)));
        assert_eq!(p.per_vm.len(), 1);
        assert_eq!(kinds(&p.per_vm[0].1), ["delete_vm"]);
        assert_eq!(kinds(&p.after), ["delete_tap"]);
    }

    #[test]
    fn a_fresh_host_gets_everything_in_order() {
        let steps = plan(&router(), &ObservedLab::default());
        let k = kinds(&steps);
        assert_eq!(k.iter().filter(|x| *x == "create_namespace").count(), 1);
        assert_eq!(k.iter().filter(|x| *x == "create_bridge").count(), 2);
        assert_eq!(k.iter().filter(|x| *x == "create_tap").count(), 4);
        assert_eq!(k.iter().filter(|x| *x == "create_overlay").count(), 3);
        assert_eq!(k.iter().filter(|x| *x == "start_vm").count(), 3);
        let pos = |kind: &str| k.iter().position(|x| x == kind).unwrap();
        assert!(pos("create_namespace") < pos("create_bridge"));
        assert!(pos("create_bridge") < pos("create_tap"));
        assert!(pos("create_tap") < pos("start_vm"));
        assert!(steps.iter().all(|s| !s.reason.is_empty()));
    }

    #[test]
    fn a_lab_that_is_up_plans_nothing() {
        let t = router();
        assert_eq!(plan(&t, &up(&t)), vec![]);
    }

    #[test]
    fn a_memory_change_recreates_only_that_vm() {
        let t = router();
        let o = up(&t);
        let mut t2 = t.clone();
        t2.nodes[1].memory_mib = Some(256);
        let steps = plan(&t2, &o);
        assert_eq!(kinds(&steps), ["stop_vm", "start_vm"]);
        assert_eq!(steps[0].action, Action::StopVm { vm: "h1".into() });
        assert!(
            steps[0].reason.contains("memory 128 → 256 MiB"),
            "{}",
            steps[0].reason
        );
    }

    #[test]
    fn every_hardware_difference_is_explained_and_equal_hardware_is_none() {
        let hw = desired_hardware(&router(), "r1").unwrap();
        assert_eq!(hardware_change(&hw, &hw), None);
        let mut other = hw.clone();
        other.cpus += 1;
        other.image = "big".into();
        assert_eq!(
            hardware_change(&hw, &other).unwrap(),
            format!(
                "image {} → big, cpus {} → {}",
                hw.image,
                hw.cpus,
                hw.cpus + 1
            )
        );
        other = hw.clone();
        other.nics[0].0 = "52:54:00:99:99:99".into();
        assert_eq!(
            hardware_change(&hw, &other).unwrap(),
            format!("eth0 MAC {} → 52:54:00:99:99:99", hw.nics[0].0)
        );
        other.nics.pop();
        assert_eq!(hardware_change(&hw, &other).unwrap(), "NICs 2 → 1");
    }

    #[test]
    fn an_added_vm_is_created_and_nothing_else_changes() {
        let t = router();
        let o = up(&t);
        let mut t2 = t.clone();
        let mut h3 = t2.nodes[1].clone();
        h3.name = "h3".into();
        h3.nics[0].address = Some("10.10.0.13/24".into());
        t2.nodes.push(h3);
        let steps = plan(&t2, &o);
        assert_eq!(
            kinds(&steps),
            ["create_tap", "create_overlay", "write_seed", "start_vm"]
        );
        assert!(steps.iter().all(|s| s.reason.starts_with("h3")));
    }

    #[test]
    fn a_removed_link_recreates_its_vm_and_deletes_its_tap() {
        let t = router();
        let o = up(&t);
        let mut t2 = t.clone();
        t2.nodes[0].nics.pop(); // r1 loses eth1
        let steps = plan(&t2, &o);
        let k = kinds(&steps);
        assert!(k.contains(&"delete_tap".to_string()), "{k:?}");
        assert_eq!(
            steps
                .iter()
                .find(|s| matches!(s.action, Action::StopVm { .. }))
                .unwrap()
                .action,
            Action::StopVm { vm: "r1".into() }
        );
        assert!(!steps
            .iter()
            .any(|s| matches!(&s.action, Action::StopVm { vm } if vm == "h1")));
    }

    #[test]
    fn an_address_change_restarts_with_a_new_seed() {
        let t = router();
        let o = up(&t);
        let mut t2 = t.clone();
        t2.nodes[1].nics[0].address = Some("10.10.0.99/24".into());
        let steps = plan(&t2, &o);
        assert_eq!(kinds(&steps), ["write_seed", "stop_vm", "start_vm"]);
        assert!(steps[1].reason.contains("addresses or routes changed"));
    }

    #[test]
    fn crashed_vms_are_started_and_orphans_removed() {
        let t = router();
        let mut o = up(&t);
        o.vms.get_mut("h2").unwrap().state = Some(VmState::Crashed);
        o.vms.insert(
            "old".into(),
            ObservedVm {
                state: Some(VmState::Running),
                has_overlay: true,
                ..Default::default()
            },
        );
        o.bridges.insert("mvb00000000".into());
        let steps = plan(&t, &o);
        assert_eq!(kinds(&steps), ["start_vm", "delete_vm", "delete_bridge"]);
        assert_eq!(steps[0].reason, "h2 crashed");
    }

    #[test]
    fn a_link_down_in_the_file_is_set_after_its_vm_starts_and_again_after_a_crash() {
        let mut t = router();
        t.nodes[1].nics[0].up = false;
        t.nodes[1].nics[0].impair.loss_pct = 5.0;
        let steps = plan(&t, &ObservedLab::default());
        let h1: Vec<String> = steps
            .iter()
            .filter(|s| s.action.vm() == Some("h1"))
            .map(|s| s.action.kind().to_string())
            .collect();
        assert_eq!(h1.last().unwrap(), "update_link", "after the start: {h1:?}");
        assert!(h1.contains(&"start_vm".to_string()));
        let reason = &steps.last().unwrap().reason;
        assert_eq!(
            reason,
            "h1 eth0: the guest sees its link up (set down), impairment none → 5% loss; changed in place, h1 keeps running"
        );
        // Applied and observed: nothing to do.
        let mut o = up(&t);
        let tap = tap_ifname(&t.name, "h1", 0);
        let want = crate::link::desired(&t, "h1", 0).unwrap();
        o.links.insert(tap.clone(), want.clone());
        assert_eq!(plan(&t, &o), vec![]);
        // A crash: the new QEMU starts with its link up, so it is set again;
        // the impairment on the TAP stays and is not.
        o.vms.get_mut("h1").unwrap().state = Some(VmState::Crashed);
        let steps = plan(&t, &o);
        assert_eq!(kinds(&steps), ["start_vm", "update_link"]);
        assert!(steps[1].reason.contains("set down") && !steps[1].reason.contains("loss"));
    }

    #[test]
    fn host_mode_needs_no_namespace() {
        let mut t = router();
        t.network_mode = NetworkMode::Host;
        assert!(
            !kinds(&plan(&t, &ObservedLab::default())).contains(&"create_namespace".to_string())
        );
    }
}
