//! Serde types of topology format v1. The field names are a user-facing
//! contract: users' files rely on them. Unknown fields are errors.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A lab: networks (Linux bridges) and nodes (VMs) whose NICs attach to them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "MiniVM topology, format version 1")]
pub struct Topology {
    /// Format version of this file. This build reads version 1.
    pub version: u32,
    /// Lab name: lowercase letters, digits and '-', starting with a letter, at most 32 characters.
    pub name: String,
    /// Values used by nodes that do not set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,
    /// Linux bridges the nodes' NICs attach to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<Network>,
    /// Virtual machines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<Node>,
    /// Where the lab's bridges and TAPs live.
    #[serde(default, skip_serializing_if = "NetworkMode::is_default")]
    pub network_mode: NetworkMode,
}

/// Defaults for every node of the lab.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
}

/// What the server does when a VM's QEMU exits without being asked to
/// (a crash, a kill): `no` leaves it crashed; `on-failure` starts it again
/// after a backoff (1 s, doubling up to 30 s; reset once it has run 60 s).
/// A guest that powers itself off is stopped, not failed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    OnFailure,
}

/// A multi-access network: one Linux bridge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    pub name: String,
    /// IPv4 subnet in CIDR form, e.g. 10.10.0.0/24. Enables automatic
    /// addresses for NICs that do not set one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

/// A virtual machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub name: String,
    /// Base image name from the image store; optional when defaults.image is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    /// Ordered NICs: eth0, eth1, ... in the guest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nics: Vec<Nic>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Forward IPv4 packets between NICs (a router VM sets true).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ip_forward: bool,
    /// Restart policy; see [`RestartPolicy`]. Default: defaults.restart, else `no`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
}

/// One NIC of a node, attached to a network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Nic {
    /// Name of the network this NIC attaches to.
    pub network: String,
    /// IPv4 address with prefix, e.g. 10.10.0.11/24.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Unicast MAC, e.g. "52:54:00:00:00:11"; otherwise a stable generated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// A static route in the guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination in CIDR form, e.g. 10.20.0.0/24 (0.0.0.0/0 for a default route).
    pub to: String,
    /// Gateway address; must be on one of the node's networks.
    pub via: String,
}

/// Position on the editor's canvas.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub x: f64,
    pub y: f64,
}

/// Where the lab's bridges and TAPs live.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// In a network namespace of the lab's own: the lab never touches the host's network.
    #[default]
    Isolated,
    /// In the host's network namespace.
    Host,
}

impl NetworkMode {
    fn is_default(&self) -> bool {
        *self == NetworkMode::default()
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Node values once defaults are applied.
pub const DEFAULT_CPUS: u32 = 1;
pub const DEFAULT_MEMORY_MIB: u32 = 128;

impl Topology {
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.name == name)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Number of NICs in the lab (the links drawn in the editor).
    pub fn link_count(&self) -> usize {
        self.nodes.iter().map(|n| n.nics.len()).sum()
    }

    /// The image a node boots, after defaults.
    pub fn node_image<'a>(&'a self, node: &'a Node) -> Option<&'a str> {
        node.image
            .as_deref()
            .or_else(|| self.defaults.as_ref().and_then(|d| d.image.as_deref()))
    }

    pub fn node_cpus(&self, node: &Node) -> u32 {
        node.cpus
            .or_else(|| self.defaults.as_ref().and_then(|d| d.cpus))
            .unwrap_or(DEFAULT_CPUS)
    }

    pub fn node_restart(&self, node: &Node) -> RestartPolicy {
        node.restart
            .or_else(|| self.defaults.as_ref().and_then(|d| d.restart))
            .unwrap_or_default()
    }

    pub fn node_memory_mib(&self, node: &Node) -> u32 {
        node.memory_mib
            .or_else(|| self.defaults.as_ref().and_then(|d| d.memory_mib))
            .unwrap_or(DEFAULT_MEMORY_MIB)
    }
}
