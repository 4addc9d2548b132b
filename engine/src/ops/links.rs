//! Changing links live: a NIC's carrier and impairments, one edit
//! ([`set_link`]) or the stored lab's whole set ([`apply_links`]).

use serde::{Deserialize, Serialize};
use topology::Topology;

use std::time::Instant;

use super::{check_vms, lock, step_line, OpsError, Result};
use crate::lab::Engine;
use crate::plan::Step;
use crate::store::LabStore;

/// A change to one NIC's link: each field set replaces the stored one;
/// `clear` first resets every impairment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkEdit {
    #[serde(default)]
    pub up: Option<bool>,
    #[serde(default)]
    pub clear: bool,
    #[serde(default)]
    pub delay_ms: Option<u32>,
    #[serde(default)]
    pub jitter_ms: Option<u32>,
    #[serde(default)]
    pub loss_pct: Option<f64>,
    #[serde(default)]
    pub rate_kbit: Option<u64>,
    #[serde(default)]
    pub corrupt_pct: Option<f64>,
    #[serde(default)]
    pub duplicate_pct: Option<f64>,
    #[serde(default)]
    pub reorder_pct: Option<f64>,
}

impl LinkEdit {
    /// `nic` with this edit made.
    pub fn apply_to(&self, nic: &mut topology::Nic) {
        let LinkEdit {
            up,
            clear,
            delay_ms,
            jitter_ms,
            loss_pct,
            rate_kbit,
            corrupt_pct,
            duplicate_pct,
            reorder_pct,
        } = self;
        if let Some(up) = up {
            nic.up = *up;
        }
        if *clear {
            nic.impair = topology::Impair::NONE;
        }
        let i = &mut nic.impair;
        i.delay_ms = delay_ms.unwrap_or(i.delay_ms);
        i.jitter_ms = jitter_ms.unwrap_or(i.jitter_ms);
        i.loss_pct = loss_pct.unwrap_or(i.loss_pct);
        i.rate_kbit = rate_kbit.unwrap_or(i.rate_kbit);
        i.corrupt_pct = corrupt_pct.unwrap_or(i.corrupt_pct);
        i.duplicate_pct = duplicate_pct.unwrap_or(i.duplicate_pct);
        i.reorder_pct = reorder_pct.unwrap_or(i.reorder_pct);
    }
}

/// What `set_link` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkReport {
    pub lab: String,
    pub vm: String,
    pub nic: usize,
    pub revision: String,
    /// The link now, as stored.
    pub up: bool,
    pub impair: topology::Impair,
    /// The steps applied live (none when the VM is not running: its next
    /// start applies them).
    pub steps: Vec<Step>,
    pub elapsed_ms: u64,
}

/// Changes one NIC's link in the stored lab (a new revision, so open pages
/// see it) and applies it live when its VM runs, without restarting it.
/// Bad input changes nothing.
pub fn set_link(
    engine: &Engine,
    store: &LabStore,
    lab: &str,
    vm: &str,
    nic: usize,
    edit: &LinkEdit,
    say: &(dyn Fn(String) + Sync),
) -> Result<LinkReport> {
    let started = Instant::now();
    let _lock = lock(engine, lab, say)?;
    let (mut t, revision) = store.get(lab)?;
    check_vms(&t, &[vm])?;
    // `nic` is the guest's ethN: with a management network, eth0 is that
    // network's NIC (not the lab's to shape) and the node's own start at eth1.
    let own = topology::mgmt::own_nic_index(&t, nic);
    let first = topology::mgmt::guest_nic_index(&t, 0);
    let node = t.nodes.iter_mut().find(|n| n.name == vm).expect("checked");
    let count = node.nics.len() + first;
    let n = own
        .and_then(|k| node.nics.get_mut(k))
        .ok_or_else(|| OpsError::NoNic {
            vm: vm.into(),
            nic,
            count,
        })?;
    edit.apply_to(n);
    let (up, impair) = (n.up, n.impair);
    let problems = topology::validate(&t);
    if !problems.is_empty() {
        return Err(OpsError::Invalid {
            lab: lab.into(),
            problems,
        });
    }
    let revision = store.put(&t, Some(&revision))?;
    let steps = if crate::lab::running_qemus(lab).contains_key(vm) {
        engine.reconcile(&t, Some(&[vm]), &|p| say(step_line(p)))?
    } else {
        say(format!(
            "{vm} is not running; its next start applies the link"
        ));
        vec![]
    };
    Ok(LinkReport {
        lab: lab.into(),
        vm: vm.into(),
        nic,
        revision,
        up,
        impair,
        steps,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Applies the link changes of a saved lab to its running VMs, in place
/// (the editor's save): nothing is started, stopped or recreated here.
pub fn apply_links(
    engine: &Engine,
    t: &Topology,
    say: &(dyn Fn(String) + Sync),
) -> Result<Vec<Step>> {
    let _lock = lock(engine, &t.name, say)?;
    let running = crate::lab::running_qemus(&t.name);
    let observed = engine.observe(t)?;
    let steps: Vec<Step> = crate::plan::plan(t, &observed)
        .into_iter()
        .filter(|s| {
            matches!(&s.action, crate::plan::Action::UpdateLink { vm, ifname, .. }
                if running.contains_key(vm) && observed.taps.contains(ifname))
        })
        .collect();
    for s in &steps {
        say(s.reason.clone());
        engine.apply(t, s)?;
    }
    Ok(steps)
}
