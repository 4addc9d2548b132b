//! What the engine tells every open page, on the websocket `/ws/events`.
//! Shared by the server (which sends) and the wasm editor (which receives):
//! plain serde types, no I/O.

use serde::{Deserialize, Serialize};

/// One event. `seq` grows by one per event, from 1, for the life of the
/// server: a page that reconnects asks for everything after the last `seq`
/// it saw, and notices a gap if there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// A VM's state as observed on the host (whoever changed it: the web
    /// app, the CLI, a crash). On the wire `state` is its lowercase name:
    /// defined, starting, running, stopped, crashed.
    VmState {
        lab: String,
        vm: String,
        state: crate::lifecycle::VmState,
        pid: Option<u32>,
        /// With `crashed`: the VM's last console lines.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tail: Vec<String>,
    },
    /// A lab was saved (anywhere) with this revision; `None`: deleted.
    LabChanged {
        lab: String,
        revision: Option<String>,
    },
    /// What the engine is doing for a lab (a step with its reason, a VM
    /// that became ready).
    Activity { lab: String, message: String },
    /// An operation on a lab failed.
    Error { lab: String, message: String },
    /// The events after the page's `since` are no longer kept: reload.
    Resync,
}
