//! Validation of a parsed topology: every problem at once, each with the
//! path of the field and the reason.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::model::Topology;
use crate::names::{self, check_image_name, check_name};
use crate::net::{parse_ipv4, Ipv4Cidr, Mac};

/// One thing wrong with a topology: where (`nodes[2].nics[0].network`) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

pub const CPUS_RANGE: std::ops::RangeInclusive<u32> = 1..=64;
pub const MEMORY_MIB_RANGE: std::ops::RangeInclusive<u32> = 16..=65536;
pub const MAX_NODES: usize = 1000;
pub const MAX_NETWORKS: usize = 1000;
pub const MAX_NICS: usize = 16;
pub const MAX_ROUTES: usize = 64;

/// Checks everything that can be checked without the host. An empty result
/// means the topology is valid.
pub fn validate(t: &Topology) -> Vec<Problem> {
    let mut v = Validator {
        problems: Vec::new(),
    };
    v.check(t);
    v.problems
}

struct Validator {
    problems: Vec<Problem>,
}

impl Validator {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn name(&mut self, path: &str, name: &str) -> bool {
        match check_name(name) {
            Ok(()) => true,
            Err(e) => {
                self.push(path, format!("{name:?} {e}"));
                false
            }
        }
    }

    fn range(&mut self, path: &str, value: Option<u32>, range: std::ops::RangeInclusive<u32>) {
        if let Some(v) = value {
            if !range.contains(&v) {
                self.push(
                    path,
                    format!(
                        "{v} is out of range; allowed {}..={}",
                        range.start(),
                        range.end()
                    ),
                );
            }
        }
    }

    fn image(&mut self, path: &str, image: Option<&str>) {
        if let Some(image) = image {
            if let Err(e) = check_image_name(image) {
                self.push(path, format!("{image:?} {e}"));
            }
        }
    }

    fn position(&mut self, path: &str, p: Option<&crate::model::Position>) {
        if let Some(p) = p {
            if !p.x.is_finite() || !p.y.is_finite() {
                self.push(path, "x and y must be finite numbers");
            }
        }
    }

    fn check(&mut self, t: &Topology) {
        if t.version != crate::FORMAT_VERSION {
            self.push("version", version_message(t.version));
        }
        self.name("name", &t.name);
        if let Some(d) = &t.defaults {
            self.image("defaults.image", d.image.as_deref());
            self.range("defaults.cpus", d.cpus, CPUS_RANGE);
            self.range("defaults.memory_mib", d.memory_mib, MEMORY_MIB_RANGE);
        }
        if t.networks.len() > MAX_NETWORKS {
            self.push(
                "networks",
                format!(
                    "{} networks; at most {MAX_NETWORKS} are allowed",
                    t.networks.len()
                ),
            );
        }
        if t.nodes.len() > MAX_NODES {
            self.push(
                "nodes",
                format!("{} nodes; at most {MAX_NODES} are allowed", t.nodes.len()),
            );
        }

        // Networks: names, duplicates, subnets.
        let mut subnets: HashMap<&str, Ipv4Cidr> = HashMap::new();
        let mut seen = HashMap::new();
        let mut bridges = HashMap::new();
        for (i, net) in t.networks.iter().enumerate() {
            let path = format!("networks[{i}]");
            if self.name(&format!("{path}.name"), &net.name) {
                if let Some(first) = seen.insert(net.name.as_str(), i) {
                    self.push(
                        format!("{path}.name"),
                        format!(
                            "duplicate network name {:?} (also networks[{first}])",
                            net.name
                        ),
                    );
                }
                let br = names::bridge_ifname(&t.name, &net.name);
                if let Some(other) = bridges.insert(br.clone(), net.name.as_str()) {
                    if other != net.name {
                        self.push(
                            format!("{path}.name"),
                            format!(
                                "interface name {br} collides with network {other:?}; rename one"
                            ),
                        );
                    }
                }
            }
            if let Some(s) = &net.subnet {
                match s.parse::<Ipv4Cidr>() {
                    Err(e) => self.push(format!("{path}.subnet"), format!("{s:?}: {e}")),
                    Ok(c) if !c.is_network() => self.push(
                        format!("{path}.subnet"),
                        format!(
                            "{s:?} has host bits set; did you mean {}/{}?",
                            c.network(),
                            c.prefix
                        ),
                    ),
                    Ok(c) if c.prefix > 30 || c.prefix < 8 => self.push(
                        format!("{path}.subnet"),
                        format!("{s:?}: prefix must be from /8 to /30"),
                    ),
                    Ok(c) => {
                        subnets.insert(net.name.as_str(), c);
                    }
                }
            }
            self.position(&format!("{path}.position"), net.position.as_ref());
        }

        // Nodes.
        let mut node_seen = HashMap::new();
        let mut macs: HashMap<Mac, String> = HashMap::new();
        let mut addresses: HashMap<(String, Ipv4Addr), String> = HashMap::new();
        let mut taps: HashSet<String> = HashSet::new();
        let default_image = t.defaults.as_ref().and_then(|d| d.image.as_deref());
        for (i, node) in t.nodes.iter().enumerate() {
            let path = format!("nodes[{i}]");
            if self.name(&format!("{path}.name"), &node.name) {
                if let Some(first) = node_seen.insert(node.name.as_str(), i) {
                    self.push(
                        format!("{path}.name"),
                        format!("duplicate node name {:?} (also nodes[{first}])", node.name),
                    );
                }
            }
            match (&node.image, default_image) {
                (Some(img), _) => self.image(&format!("{path}.image"), Some(img)),
                (None, None) => self.push(
                    format!("{path}.image"),
                    "no image given, and defaults.image is not set",
                ),
                (None, Some(_)) => {}
            }
            self.range(&format!("{path}.cpus"), node.cpus, CPUS_RANGE);
            self.range(
                &format!("{path}.memory_mib"),
                node.memory_mib,
                MEMORY_MIB_RANGE,
            );
            self.position(&format!("{path}.position"), node.position.as_ref());
            if node.nics.len() > MAX_NICS {
                self.push(
                    format!("{path}.nics"),
                    format!("{} NICs; at most {MAX_NICS} are allowed", node.nics.len()),
                );
            }

            // The node's own connected prefixes, for checking routes.
            let mut connected: Vec<Ipv4Cidr> = Vec::new();
            let mut own: Vec<Ipv4Addr> = Vec::new();
            for (j, nic) in node.nics.iter().enumerate() {
                let npath = format!("{path}.nics[{j}]");
                let subnet = subnets.get(nic.network.as_str()).copied();
                if t.network(&nic.network).is_none() {
                    self.push(
                        format!("{npath}.network"),
                        format!("no network named {:?}", nic.network),
                    );
                } else if let Some(s) = subnet {
                    connected.push(s);
                }
                if let Some(mac) = &nic.mac {
                    match mac.parse::<Mac>() {
                        Err(e) => self.push(format!("{npath}.mac"), format!("{mac:?}: {e}")),
                        Ok(m) if !m.is_unicast() => self.push(format!("{npath}.mac"), format!("{mac:?} is a multicast address; a NIC needs a unicast one (even first octet)")),
                        Ok(m) if m.is_zero() => self.push(format!("{npath}.mac"), format!("{mac:?} is the all-zero address")),
                        Ok(m) => {
                            if let Some(other) = macs.insert(m, npath.clone()) {
                                self.push(format!("{npath}.mac"), format!("{mac:?} is already used by {other}"));
                            }
                        }
                    }
                } else if node_seen.get(node.name.as_str()) == Some(&i) {
                    let m = names::generated_mac(&t.name, &node.name, j);
                    if let Some(other) = macs.insert(m, npath.clone()) {
                        self.push(
                            format!("{npath}.mac"),
                            format!(
                                "the generated MAC {m} collides with {other}; set a mac explicitly"
                            ),
                        );
                    }
                }
                let tap = names::tap_ifname(&t.name, &node.name, j);
                if !taps.insert(tap.clone()) && node_seen.get(node.name.as_str()) == Some(&i) {
                    self.push(
                        npath.to_string(),
                        format!("interface name {tap} collides with another NIC; rename the node"),
                    );
                }
                if let Some(addr) = &nic.address {
                    match addr.parse::<Ipv4Cidr>() {
                        Err(e) => self.push(format!("{npath}.address"), format!("{addr:?}: {e}")),
                        Ok(c) => {
                            if let Some(s) = subnet {
                                if c.prefix != s.prefix || !s.contains(c.addr) {
                                    self.push(
                                        format!("{npath}.address"),
                                        format!(
                                            "{addr:?} is not inside network {:?}'s subnet {s}",
                                            nic.network
                                        ),
                                    );
                                    continue;
                                }
                            } else {
                                connected.push(Ipv4Cidr {
                                    addr: c.network(),
                                    prefix: c.prefix,
                                });
                            }
                            if c.prefix <= 30 && (c.addr == c.network() || c.addr == c.broadcast())
                            {
                                self.push(
                                    format!("{npath}.address"),
                                    format!(
                                        "{addr:?} is the network or broadcast address of {}/{}",
                                        c.network(),
                                        c.prefix
                                    ),
                                );
                            } else if let Some(other) =
                                addresses.insert((nic.network.clone(), c.addr), npath.clone())
                            {
                                self.push(
                                    format!("{npath}.address"),
                                    format!("{} is already used by {other}", c.addr),
                                );
                            }
                            own.push(c.addr);
                        }
                    }
                }
            }

            if node.routes.len() > MAX_ROUTES {
                self.push(
                    format!("{path}.routes"),
                    format!(
                        "{} routes; at most {MAX_ROUTES} are allowed",
                        node.routes.len()
                    ),
                );
            }
            for (k, route) in node.routes.iter().enumerate() {
                let rpath = format!("{path}.routes[{k}]");
                match route.to.parse::<Ipv4Cidr>() {
                    Err(e) => self.push(format!("{rpath}.to"), format!("{:?}: {e}", route.to)),
                    Ok(c) if !c.is_network() => self.push(
                        format!("{rpath}.to"),
                        format!(
                            "{:?} has host bits set; did you mean {}/{}?",
                            route.to,
                            c.network(),
                            c.prefix
                        ),
                    ),
                    Ok(_) => {}
                }
                match parse_ipv4(&route.via) {
                    Err(e) => self.push(format!("{rpath}.via"), e.to_string()),
                    Ok(via) if own.contains(&via) => self.push(
                        format!("{rpath}.via"),
                        format!("{via} is this node's own address"),
                    ),
                    Ok(via) if !connected.iter().any(|c| c.contains(via)) => self.push(
                        format!("{rpath}.via"),
                        format!(
                            "{via} is not reachable: it is on none of node {:?}'s networks",
                            node.name
                        ),
                    ),
                    Ok(_) => {}
                }
            }
        }
    }
}

/// The policy: topology format version N is first read by minivm 0.N.
fn version_message(v: u32) -> String {
    if v > crate::FORMAT_VERSION {
        format!(
            "this file needs minivm >= 0.{v} (format version {v}); this is minivm {}, which reads format version {}",
            env!("CARGO_PKG_VERSION"),
            crate::FORMAT_VERSION
        )
    } else {
        format!("format version {v} does not exist; the first version is 1")
    }
}
