//! Packet captures as the CLI, the server and the editor share them: what
//! is captured (a NIC or a network), a capture's limits, why it ended, its
//! counts, and a row of its packet table. Plain data; the capturing itself
//! is the engine's (`engine::capture`).

use serde::{Deserialize, Serialize};

use crate::model::Topology;
use crate::names::{bridge_ifname, tap_ifname};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("{0:?} is neither a NIC (VM:ethN) nor a network of lab {1:?}")]
    NoTarget(String, String),
    #[error("{vm} has no eth{nic}")]
    NoNic { vm: String, nic: usize },
}

/// What is captured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    /// One VM NIC, both directions.
    Nic { vm: String, nic: usize },
    /// A whole network: every frame its bridge forwards.
    Network { network: String },
}

impl Target {
    /// `h1:eth0` (a NIC) or `lan` (a network) of lab `t`.
    pub fn parse(t: &Topology, s: &str) -> Result<Target, TargetError> {
        let t = &*crate::mgmt::effective(t);
        if let Some((vm, nic)) = s.split_once(':') {
            let n: usize = nic
                .strip_prefix("eth")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| TargetError::NoTarget(s.into(), t.name.clone()))?;
            let node = t
                .node(vm)
                .ok_or_else(|| TargetError::NoTarget(s.into(), t.name.clone()))?;
            if n >= node.nics.len() {
                return Err(TargetError::NoNic {
                    vm: vm.into(),
                    nic: n,
                });
            }
            return Ok(Target::Nic {
                vm: vm.into(),
                nic: n,
            });
        }
        if t.network(s).is_some() {
            return Ok(Target::Network { network: s.into() });
        }
        Err(TargetError::NoTarget(s.into(), t.name.clone()))
    }

    /// The host interface captured on.
    pub fn ifname(&self, lab: &str) -> String {
        match self {
            Target::Nic { vm, nic } => tap_ifname(lab, vm, *nic),
            Target::Network { network } => bridge_ifname(lab, network),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Nic { vm, nic } => write!(f, "{vm}:eth{nic}"),
            Target::Network { network } => f.write_str(network),
        }
    }
}

/// When a capture ends by itself. Every capture has all three, so none
/// fills the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub packets: u64,
    pub seconds: u64,
    pub bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            packets: 100_000,
            seconds: 3600,
            bytes: 100 << 20,
        }
    }
}

/// Why a capture ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// Stopped (Ctrl-C, the Stop button).
    Stopped,
    PacketLimit,
    TimeLimit,
    ByteLimit,
    /// The interface went away (the lab went down).
    InterfaceGone,
}

/// What a capture saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub captured: u64,
    pub bytes: u64,
    /// Dropped by the kernel because the reader was too slow.
    pub dropped: u64,
}

/// A capture as the page lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureInfo {
    pub id: String,
    pub lab: String,
    pub target: Target,
    /// The canvas element it is on (`nic:h1:0`, `net:lan`).
    pub element: String,
    pub filter: String,
    pub limits: Limits,
    /// Unix seconds.
    pub started: u64,
    pub running: bool,
    /// Why it ended (`None` while running).
    pub ended: Option<Ended>,
    pub counts: Counts,
    /// Set when the capture failed after it started.
    pub error: Option<String>,
}

/// One row of the packet table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub no: u64,
    /// Seconds since the capture started.
    pub time: f64,
    pub source: String,
    pub destination: String,
    pub protocol: String,
    pub length: u32,
    pub info: String,
}

impl Ended {
    /// In words, for the CLI's last line and the page.
    pub fn describe(self) -> &'static str {
        match self {
            Ended::Stopped => "stopped",
            Ended::PacketLimit => "packet limit reached",
            Ended::TimeLimit => "time limit reached",
            Ended::ByteLimit => "byte limit reached",
            Ended::InterfaceGone => "the interface went away",
        }
    }
}
