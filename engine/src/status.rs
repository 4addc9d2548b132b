//! What `minivm status` reports of a lab: one typed record per VM, printed
//! as a table or serialized as JSON (`status --json`) without going
//! through an untyped value.

use serde::{Deserialize, Serialize};
use topology::Topology;

use crate::lab::Engine;
use crate::lifecycle::VmState;

/// One lab and its VMs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabStatus {
    pub lab: String,
    pub vms: Vec<VmReport>,
}

/// One VM as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmReport {
    pub name: String,
    pub state: VmState,
    pub pid: Option<u32>,
    /// `kvm` or `tcg`: what this host's VMs run with.
    pub accelerator: String,
    /// `ethN=address/prefix` of each NIC that has an address.
    pub addresses: Vec<String>,
    /// Since its QEMU started; `None` without a process.
    pub uptime_seconds: Option<u64>,
    /// A crashed VM's last console lines (empty otherwise).
    pub last_console: Vec<String>,
    /// Each NIC's link: as the topology wants it and as the host has it.
    pub nics: Vec<NicReport>,
    /// What the node's `exec` commands did on this boot (`None`: it has
    /// none, or they have not run yet).
    pub setup: Option<crate::ops::SetupRecord>,
    /// The size of its saved state (`stop --save`), which its next start
    /// resumes; `None` without one.
    pub saved_bytes: Option<u64>,
}

/// One NIC's link as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NicReport {
    /// `eth0`, `eth1`, ...
    pub name: String,
    pub network: String,
    /// The host's TAP.
    pub tap: String,
    /// The guest should see its link up (the topology's `up`).
    pub up: bool,
    /// The guest sees its link up now (`None`: no QEMU or no TAP).
    pub carrier: Option<bool>,
    /// The impairments in force now (`None`: the TAP is not there).
    pub impair: Option<topology::Impair>,
    /// `impair` in short ("40ms 0.5% loss"), empty for none.
    pub impair_label: String,
}

/// How many console lines a crashed VM shows.
pub const CRASH_LINES: usize = 3;

/// The status of lab `t` on this host.
pub fn lab_status(engine: &Engine, t: &Topology) -> LabStatus {
    let t = &*topology::mgmt::effective(t);
    let nics = topology::resolve::nics(t);
    let observed = engine.observe(t).ok();
    let vms = crate::lab::vm_states(engine, t)
        .into_iter()
        .map(|(vm, status)| {
            let files = engine.vm_files(&t.name, &vm);
            let uptime_seconds = status
                .pid
                .and(std::fs::metadata(files.pidfile()).ok())
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .map(|d| d.as_secs());
            let addresses = nics
                .get(&vm)
                .into_iter()
                .flatten()
                .filter_map(|n| n.address.map(|a| format!("{}={a}", n.ifname)))
                .collect();
            let last_console = if status.state == VmState::Crashed {
                crate::lab::console_tail(files.path(), CRASH_LINES)
            } else {
                vec![]
            };
            let nic_reports = t
                .node(&vm)
                .map(|node| {
                    node.nics
                        .iter()
                        .enumerate()
                        .map(|(i, nic)| {
                            let tap = topology::names::tap_ifname(&t.name, &vm, i);
                            let have = observed.as_ref().and_then(|o| o.links.get(&tap));
                            let impair = have.map(|l| l.impair);
                            NicReport {
                                name: format!("eth{i}"),
                                network: nic.network.clone(),
                                up: nic.up,
                                carrier: have.filter(|_| status.pid.is_some()).map(|l| l.carrier),
                                impair_label: impair.map(|i| i.label()).unwrap_or_default(),
                                impair,
                                tap,
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            let setup = t
                .node(&vm)
                .filter(|n| !n.exec.is_empty())
                .and_then(|_| crate::ops::setup_record(engine, &t.name, &vm));
            let saved_bytes = crate::lab::saved_state(&files).map(|s| s.bytes);
            VmReport {
                setup,
                saved_bytes,
                name: vm,
                nics: nic_reports,
                state: status.state,
                pid: status.pid,
                accelerator: engine.accel.accel.name().to_string(),
                addresses,
                uptime_seconds,
                last_console,
            }
        })
        .collect();
    LabStatus {
        lab: t.name.clone(),
        vms,
    }
}
