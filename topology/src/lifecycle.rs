//! A VM's state: one serde enum for the engine (which observes it), the
//! events every page receives, `minivm status`, and the wasm editor.
//!
//! States are observed, never driven: the engine reads a VM's state from its
//! files and its live QEMU (`engine::lab::observe`), whoever changed it (the
//! web app, the CLI, a crash), so there is no transition table to obey; the
//! plan decides what to do from what is observed.

use serde::{Deserialize, Serialize};

/// Where a VM is in its life. On the wire: its lowercase name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    /// In the topology; no process, maybe no overlay yet.
    #[default]
    Defined,
    /// QEMU runs; the guest has not said its network is configured.
    Starting,
    /// The guest said `minivm: ready`.
    Running,
    /// No process; the overlay is kept (stopped, or the guest powered off).
    Stopped,
    /// QEMU exited without being asked to.
    Crashed,
}

impl VmState {
    pub const ALL: [VmState; 5] = [
        VmState::Defined,
        VmState::Starting,
        VmState::Running,
        VmState::Stopped,
        VmState::Crashed,
    ];

    /// Its name on the wire and on screen.
    pub fn as_str(self) -> &'static str {
        match self {
            VmState::Defined => "defined",
            VmState::Starting => "starting",
            VmState::Running => "running",
            VmState::Stopped => "stopped",
            VmState::Crashed => "crashed",
        }
    }

    /// A QEMU process exists in this state.
    pub fn has_process(self) -> bool {
        matches!(self, VmState::Starting | VmState::Running)
    }
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A VM's state and its QEMU's pid while it has one: what `minivm status`,
/// the lab view and the `vm_state` event carry for each VM.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmStatus {
    pub state: VmState,
    pub pid: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_name_is_the_display_name() {
        for s in VmState::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(s.to_string(), s.as_str());
            let back: VmState = serde_json::from_value(s.as_str().into()).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn only_starting_and_running_vms_have_a_process() {
        let with: Vec<VmState> = VmState::ALL
            .into_iter()
            .filter(|s| s.has_process())
            .collect();
        assert_eq!(with, [VmState::Starting, VmState::Running]);
    }
}
