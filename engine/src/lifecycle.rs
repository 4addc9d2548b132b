//! The VM lifecycle as an explicit transition table. Every state change the
//! engine makes or observes goes through [`VmState::transition`], which
//! refuses moves the table does not list.

use serde::{Deserialize, Serialize};

/// Where a VM is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VmState {
    /// In the topology; no process, maybe no overlay yet.
    Defined,
    /// QEMU runs; the guest has not said its network is configured.
    Starting,
    /// The guest said `minivm: ready`.
    Running,
    /// A powerdown was asked for; QEMU still runs.
    Stopping,
    /// No process; the overlay is kept.
    Stopped,
    /// QEMU exited without being asked to.
    Crashed,
}

/// What happened to a VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmEvent {
    /// The engine started QEMU.
    Launched,
    /// The guest announced readiness.
    Ready,
    /// The engine asked the guest to power down.
    StopRequested,
    /// QEMU exited after a stop request (or was quit by the engine).
    Exited,
    /// QEMU exited on its own, or was killed.
    Died,
    /// The VM's overlay and files were removed.
    Reset,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a VM that is {from:?} cannot take the event {event:?}")]
pub struct IllegalTransition {
    pub from: VmState,
    pub event: VmEvent,
}

impl std::fmt::Display for VmState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            VmState::Defined => "defined",
            VmState::Starting => "starting",
            VmState::Running => "running",
            VmState::Stopping => "stopping",
            VmState::Stopped => "stopped",
            VmState::Crashed => "crashed",
        })
    }
}

impl VmState {
    /// The transition table.
    pub fn transition(self, event: VmEvent) -> Result<VmState, IllegalTransition> {
        use VmEvent::*;
        use VmState::*;
        let to = match (self, event) {
            (Defined | Stopped | Crashed, Launched) => Starting,
            (Starting, Ready) => Running,
            (Starting | Running, StopRequested) => Stopping,
            (Stopping, StopRequested) => Stopping,
            (Stopping, Exited | Died) => Stopped,
            (Starting | Running, Died) => Crashed,
            (Starting | Running, Exited) => Crashed,
            (Stopped | Crashed | Defined, Reset) => Defined,
            (from, event) => return Err(IllegalTransition { from, event }),
        };
        Ok(to)
    }

    /// A QEMU process exists in this state.
    pub fn has_process(self) -> bool {
        matches!(
            self,
            VmState::Starting | VmState::Running | VmState::Stopping
        )
    }
}

#[cfg(test)]
mod tests {
    use super::VmEvent::*;
    use super::VmState::*;
    use super::*;

    const ALL_STATES: [VmState; 6] = [Defined, Starting, Running, Stopping, Stopped, Crashed];
    const ALL_EVENTS: [VmEvent; 6] = [Launched, Ready, StopRequested, Exited, Died, Reset];

    #[test]
    fn a_normal_life() {
        let mut s = Defined;
        for (e, want) in [
            (Launched, Starting),
            (Ready, Running),
            (StopRequested, Stopping),
            (Exited, Stopped),
            (Launched, Starting),
        ] {
            s = s.transition(e).unwrap();
            assert_eq!(s, want);
        }
    }

    #[test]
    fn a_crash_and_a_restart() {
        let s = Running.transition(Died).unwrap();
        assert_eq!(s, Crashed);
        assert_eq!(s.transition(Launched).unwrap(), Starting);
    }

    #[test]
    fn illegal_moves_are_refused() {
        assert_eq!(
            Defined.transition(Ready),
            Err(IllegalTransition {
                from: Defined,
                event: Ready
            })
        );
        assert!(Running.transition(Launched).is_err());
        assert!(
            Running.transition(Reset).is_err(),
            "a running VM's files are never removed"
        );
        assert!(Stopped.transition(Died).is_err());
    }

    #[test]
    fn only_states_with_a_process_can_lose_it() {
        for s in ALL_STATES {
            for e in [Exited, Died] {
                assert_eq!(s.transition(e).is_ok(), s.has_process(), "{s:?} {e:?}");
            }
        }
    }

    #[test]
    fn every_state_has_a_way_out() {
        for s in ALL_STATES {
            assert!(
                ALL_EVENTS
                    .iter()
                    .any(|e| s.transition(*e).is_ok_and(|t| t != s)),
                "{s:?} is a dead end"
            );
        }
    }
}
