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
}

/// How many console lines a crashed VM shows.
pub const CRASH_LINES: usize = 3;

/// The status of lab `t` on this host.
pub fn lab_status(engine: &Engine, t: &Topology) -> LabStatus {
    let nics = topology::resolve::nics(t);
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
            VmReport {
                name: vm,
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
