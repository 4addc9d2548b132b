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

/// What can be done to VMs of a lab: the one command the CLI (`minivm
/// start|stop|restart`) and the web app (a VM's, the selection's and the
/// lab's buttons) send; `engine::ops::run_vm_action` carries it out. On the
/// wire it is its lowercase name; any other word is refused, never taken
/// for another action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmAction {
    Start,
    Stop,
    Restart,
    /// Stop with the guest's memory saved: the next start resumes it.
    Suspend,
}

/// A word that names no [`VmAction`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {0:?} (start, stop, restart, suspend)")]
pub struct UnknownAction(pub String);

impl VmAction {
    pub const ALL: [VmAction; 4] = [
        VmAction::Start,
        VmAction::Stop,
        VmAction::Restart,
        VmAction::Suspend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            VmAction::Start => "start",
            VmAction::Stop => "stop",
            VmAction::Restart => "restart",
            VmAction::Suspend => "suspend",
        }
    }

    /// The state the VMs are in once the action succeeded.
    pub fn outcome(self) -> VmState {
        match self {
            VmAction::Start | VmAction::Restart => VmState::Running,
            VmAction::Stop | VmAction::Suspend => VmState::Stopped,
        }
    }
}

impl std::str::FromStr for VmAction {
    type Err = UnknownAction;

    fn from_str(s: &str) -> Result<VmAction, UnknownAction> {
        VmAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction(s.to_string()))
    }
}

impl std::fmt::Display for VmAction {
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
    fn actions_are_their_names_and_no_other_word_is_one() {
        for a in VmAction::ALL {
            assert_eq!(a.as_str().parse::<VmAction>(), Ok(a));
            assert_eq!(serde_json::to_value(a).unwrap(), a.as_str());
        }
        for word in ["", "delete", "Start", "start ", "down"] {
            assert_eq!(
                word.parse::<VmAction>().unwrap_err().to_string(),
                format!("unknown action {word:?} (start, stop, restart, suspend)")
            );
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
