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
    /// A management network: eth0 of every VM on it (data NICs become
    /// eth1, eth2, ...), reachable from the host, optionally NATed to what
    /// the host reaches, with port forwards from the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mgmt: Option<Mgmt>,
    /// Lab tests: expectations run on demand (`minivm test`, the editor's
    /// Tests panel); see [`crate::labtest`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tests: Vec<LabTest>,
}

/// One lab test: a ping or a command in a VM, and what is expected of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LabTest {
    /// Shown with the result; unique in the lab.
    pub name: String,
    /// Ping from a VM to a node (its first address) or an IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<PingTest>,
    /// A command run in a VM by the guest agent (no shell: quotes group
    /// words as a shell's would).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecTest>,
    /// `pass` (default): the ping answers, the command exits 0 (with
    /// `stdout` in its output); `fail`: it does not.
    #[serde(default, skip_serializing_if = "Expect::is_pass")]
    pub expect: Expect,
    /// Exec tests: text the command's output must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Retried until it holds or this long has passed ("60s", "2m",
    /// "500ms"); by default it is tried once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_for: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PingTest {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecTest {
    pub vm: String,
    pub cmd: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    #[default]
    Pass,
    Fail,
}

impl Expect {
    pub fn is_pass(&self) -> bool {
        *self == Expect::Pass
    }
}

/// The lab's management network (like containerlab's): see [`crate::mgmt`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mgmt {
    /// IPv4 subnet, e.g. 172.20.20.0/24. The host takes its first address
    /// (the VMs' gateway); VMs get the next ones in order unless their
    /// `mgmt_address` says otherwise.
    pub subnet: String,
    /// VMs reach what the host reaches, masqueraded behind the host.
    #[serde(default, skip_serializing_if = "is_false")]
    pub nat: bool,
    /// Port forwards "[HOST_ADDRESS:]HOST_PORT:VM:PORT[/tcp|/udp]", e.g.
    /// "127.0.0.1:2201:r1:22" (the host address defaults to 127.0.0.1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<String>,
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
    /// The VM's address on the management network (`mgmt`), e.g.
    /// 172.20.20.11; otherwise the next free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mgmt_address: Option<String>,
    /// Forward IPv4 packets between NICs (a router VM sets true).
    #[serde(default, skip_serializing_if = "is_false")]
    pub ip_forward: bool,
    /// Restart policy; see [`RestartPolicy`]. Default: defaults.restart, else `no`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    /// Files written into the guest at boot, before its services start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
    /// Commands run through the guest agent once the VM is ready with every
    /// link up; words split like a shell's, no shell unless one is called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<Position>,
    /// What kind of device it is (host, router, switch, server): the
    /// editor draws each with its own icon. Changes nothing in the VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<DeviceKind>,
}

/// A kind of device, as GNS3 and CML users expect to see it drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Host,
    Router,
    Switch,
    Server,
}

impl DeviceKind {
    pub const ALL: [DeviceKind; 4] = [
        DeviceKind::Host,
        DeviceKind::Router,
        DeviceKind::Switch,
        DeviceKind::Server,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DeviceKind::Host => "host",
            DeviceKind::Router => "router",
            DeviceKind::Switch => "switch",
            DeviceKind::Server => "server",
        }
    }

    pub fn parse(s: &str) -> Option<DeviceKind> {
        DeviceKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// A file written into a guest at boot: its text in `content`, or in a file
/// named by `source` (relative to the topology file), which is read when
/// the lab is brought up from that file and stored as `content`, so the
/// lab stays self-contained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Absolute path in the guest, e.g. /etc/frr/frr.conf.
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Octal permissions, e.g. "0644" (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
}

impl FileSpec {
    /// The mode as a number (0o644 when unset or unreadable).
    pub fn mode_bits(&self) -> u32 {
        self.mode
            .as_deref()
            .and_then(|m| u32::from_str_radix(m, 8).ok())
            .unwrap_or(0o644)
    }
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
    /// The link as the guest sees it: false is carrier lost, both
    /// directions cut. Changed live, without restarting the VM.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub up: bool,
    /// Impairments of what the VM sends through this NIC. Changed live.
    #[serde(default, skip_serializing_if = "Impair::is_none")]
    pub impair: Impair,
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Impairments of the traffic a VM sends through one NIC (containerlab's
/// netem semantics: one direction, the sender's). Zero is "none".
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Impair {
    /// Added one-way delay, 0..=60000 ms.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    #[schemars(range(max = 60000))]
    pub delay_ms: u32,
    /// Random variation of the delay, 0..=delay_ms ms.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub jitter_ms: u32,
    /// Share of packets dropped, 0..=100 %, decimals allowed.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    #[schemars(range(min = 0, max = 100))]
    pub loss_pct: f64,
    /// Rate limit in kbit/s; 0 is unlimited.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    #[schemars(range(max = 100000000))]
    pub rate_kbit: u64,
    /// Share of packets with a flipped bit, 0..=100 %.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    #[schemars(range(min = 0, max = 100))]
    pub corrupt_pct: f64,
    /// Share of packets sent twice, 0..=100 %.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    #[schemars(range(min = 0, max = 100))]
    pub duplicate_pct: f64,
    /// Share of packets sent at once, ahead of delayed ones, 0..=100 %
    /// (needs delay_ms > 0).
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    #[schemars(range(min = 0, max = 100))]
    pub reorder_pct: f64,
}

impl Impair {
    pub const NONE: Impair = Impair {
        delay_ms: 0,
        jitter_ms: 0,
        loss_pct: 0.0,
        rate_kbit: 0,
        corrupt_pct: 0.0,
        duplicate_pct: 0.0,
        reorder_pct: 0.0,
    };

    /// No impairment at all.
    pub fn is_none(&self) -> bool {
        *self == Impair::NONE
    }

    /// A short label for the canvas and `status`: "40ms 5ms 0.5% 10mbit".
    pub fn label(&self) -> String {
        let Impair {
            delay_ms,
            jitter_ms,
            loss_pct,
            rate_kbit,
            corrupt_pct,
            duplicate_pct,
            reorder_pct,
        } = *self;
        let mut parts = Vec::new();
        if delay_ms > 0 {
            parts.push(if jitter_ms > 0 {
                format!("{delay_ms}ms±{jitter_ms}")
            } else {
                format!("{delay_ms}ms")
            });
        }
        if loss_pct > 0.0 {
            parts.push(format!("{loss_pct}% loss"));
        }
        if rate_kbit > 0 {
            parts.push(if rate_kbit % 1000 == 0 {
                format!("{}mbit", rate_kbit / 1000)
            } else {
                format!("{rate_kbit}kbit")
            });
        }
        for (v, what) in [
            (corrupt_pct, "corrupt"),
            (duplicate_pct, "dup"),
            (reorder_pct, "reorder"),
        ] {
            if v > 0.0 {
                parts.push(format!("{v}% {what}"));
            }
        }
        parts.join(" ")
    }
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_zero_f64(v: &f64) -> bool {
    *v == 0.0
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
