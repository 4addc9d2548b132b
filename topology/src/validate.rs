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
pub const MAX_DELAY_MS: u32 = 60_000;
/// Files of one node: how many, how large each, how large together.
pub const MAX_FILES: usize = 64;
pub const MAX_FILE_CONTENT: usize = 64 * 1024;
pub const MAX_NODE_FILES_BYTES: usize = 256 * 1024;
pub const MAX_EXEC: usize = 32;

/// What is wrong with a guest file path: absolute, normalised (no `.`,
/// `..` or empty components, no trailing `/`), plain characters only.
pub fn path_problem(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return Some(format!("{path:?} is not absolute"));
    }
    if path.len() > 255 {
        return Some("longer than 255 characters".into());
    }
    if let Some(c) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "/._-+@".contains(*c)))
    {
        return Some(format!(
            "{path:?} has the character {c:?}; use letters, digits and / . _ - + @"
        ));
    }
    let parts: Vec<&str> = path[1..].split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Some(format!(
            "{path:?} is not normalised (no empty, . or .. parts, no trailing /)"
        ));
    }
    None
}

/// What is wrong with a `source` path (relative to the topology file).
pub fn source_problem(source: &str) -> Option<String> {
    if source.starts_with('/') {
        return Some(format!(
            "{source:?} is absolute; it is read relative to the topology file"
        ));
    }
    if source.split('/').any(|p| p.is_empty() || p == "..") {
        return Some(format!(
            "{source:?} leaves the topology file's directory or has empty parts"
        ));
    }
    None
}
/// 100 Gbit/s: more than any TAP carries.
pub const MAX_RATE_KBIT: u64 = 100_000_000;

/// What is wrong with an impairment: (field, reason) for each problem.
/// Shared by the validator, `minivm link` and the editor's link panel.
pub fn impair_problems(i: &crate::model::Impair) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if i.delay_ms > MAX_DELAY_MS {
        out.push((
            "delay_ms",
            format!("{} ms; at most {MAX_DELAY_MS} are allowed", i.delay_ms),
        ));
    }
    if i.jitter_ms > i.delay_ms {
        out.push(("jitter_ms", "larger than delay_ms".to_string()));
    }
    if i.rate_kbit > MAX_RATE_KBIT {
        out.push((
            "rate_kbit",
            format!(
                "{} kbit/s; at most {MAX_RATE_KBIT} are allowed",
                i.rate_kbit
            ),
        ));
    }
    for (field, v) in [
        ("loss_pct", i.loss_pct),
        ("corrupt_pct", i.corrupt_pct),
        ("duplicate_pct", i.duplicate_pct),
        ("reorder_pct", i.reorder_pct),
    ] {
        if !(0.0..=100.0).contains(&v) {
            out.push((field, format!("{v} is not a percentage between 0 and 100")));
        }
    }
    if i.reorder_pct > 0.0 && i.delay_ms == 0 {
        out.push((
            "reorder_pct",
            "needs delay_ms > 0 (packets are reordered around delayed ones)".to_string(),
        ));
    }
    out
}

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
    fn check_files_and_exec(&mut self, path: &str, node: &crate::model::Node) {
        if node.files.len() > MAX_FILES {
            self.push(
                format!("{path}.files"),
                format!(
                    "{} files; at most {MAX_FILES} are allowed",
                    node.files.len()
                ),
            );
        }
        let mut total = 0;
        let mut seen = HashSet::new();
        for (k, f) in node.files.iter().enumerate() {
            let fpath = format!("{path}.files[{k}]");
            if let Some(why) = path_problem(&f.path) {
                self.push(format!("{fpath}.path"), why);
            } else if !seen.insert(f.path.as_str()) {
                self.push(
                    format!("{fpath}.path"),
                    format!("{:?} is given twice", f.path),
                );
            }
            match (&f.content, &f.source) {
                (None, None) => self.push(fpath.clone(), "give content or source".to_string()),
                (Some(_), Some(_)) => self.push(
                    fpath.clone(),
                    "give content or source, not both".to_string(),
                ),
                (None, Some(src)) => match source_problem(src) {
                    Some(why) => self.push(format!("{fpath}.source"), why),
                    None => self.push(
                        format!("{fpath}.source"),
                        format!("{src:?} was not read: sources are read when the lab is brought up from its file (`minivm up -f`); elsewhere give content"),
                    ),
                },
                (Some(c), None) => {
                    total += c.len();
                    if c.len() > MAX_FILE_CONTENT {
                        self.push(
                            format!("{fpath}.content"),
                            format!("{} bytes; at most {MAX_FILE_CONTENT} are allowed", c.len()),
                        );
                    }
                }
            }
            if let Some(m) = &f.mode {
                let ok = (3..=4).contains(&m.len())
                    && u32::from_str_radix(m, 8).is_ok_and(|v| v <= 0o7777);
                if !ok {
                    self.push(
                        format!("{fpath}.mode"),
                        format!("{m:?} is not an octal mode such as \"0644\""),
                    );
                }
            }
        }
        if total > MAX_NODE_FILES_BYTES {
            self.push(
                format!("{path}.files"),
                format!(
                    "{total} bytes in all; at most {MAX_NODE_FILES_BYTES} are allowed per node"
                ),
            );
        }
        if node.exec.len() > MAX_EXEC {
            self.push(
                format!("{path}.exec"),
                format!(
                    "{} commands; at most {MAX_EXEC} are allowed",
                    node.exec.len()
                ),
            );
        }
        for (k, line) in node.exec.iter().enumerate() {
            match crate::words::split_words(line) {
                Err(e) => self.push(format!("{path}.exec[{k}]"), format!("{line:?}: {e}")),
                Ok(w) if w.is_empty() => {
                    self.push(format!("{path}.exec[{k}]"), "an empty command".to_string())
                }
                Ok(_) => {}
            }
        }
    }
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
        self.problems.extend(crate::labtest::problems(t));
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

        let mgmt_subnet = self.check_mgmt(t, &subnets);

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
            self.check_files_and_exec(&path, node);
            if node.nics.len() > MAX_NICS {
                self.push(
                    format!("{path}.nics"),
                    format!("{} NICs; at most {MAX_NICS} are allowed", node.nics.len()),
                );
            }

            // The node's own connected prefixes, for checking routes.
            let mut connected: Vec<Ipv4Cidr> = mgmt_subnet.into_iter().collect();
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
                for (field, why) in impair_problems(&nic.impair) {
                    self.push(format!("{npath}.impair.{field}"), why);
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

impl Validator {
    /// `mgmt` and the nodes' `mgmt_address`; returns the management subnet
    /// when it is usable.
    fn check_mgmt(&mut self, t: &Topology, subnets: &HashMap<&str, Ipv4Cidr>) -> Option<Ipv4Cidr> {
        let Some(m) = &t.mgmt else {
            for (i, n) in t.nodes.iter().enumerate() {
                if n.mgmt_address.is_some() {
                    self.push(
                        format!("nodes[{i}].mgmt_address"),
                        "the lab has no management network (mgmt) to put it on",
                    );
                }
            }
            return None;
        };
        let subnet = match m.subnet.parse::<Ipv4Cidr>() {
            Err(e) => {
                self.push("mgmt.subnet", format!("{:?}: {e}", m.subnet));
                None
            }
            Ok(c) if !c.is_network() => {
                self.push(
                    "mgmt.subnet",
                    format!(
                        "{:?} has host bits set; did you mean {}/{}?",
                        m.subnet,
                        c.network(),
                        c.prefix
                    ),
                );
                None
            }
            Ok(c) if c.prefix > 29 || c.prefix < 8 => {
                self.push(
                    "mgmt.subnet",
                    format!("{:?}: prefix must be from /8 to /29", m.subnet),
                );
                None
            }
            Ok(c) => Some(c),
        };
        if let Some((i, _)) = t
            .networks
            .iter()
            .enumerate()
            .find(|(_, n)| n.name == crate::mgmt::NETWORK)
        {
            self.push(
                format!("networks[{i}].name"),
                format!(
                    "{:?} is the management network's name while mgmt is set; rename this network",
                    crate::mgmt::NETWORK
                ),
            );
        }
        let subnet = subnet?;
        let mut overlaps: Vec<_> = subnets
            .iter()
            .filter(|(_, c)| c.contains(subnet.network()) || subnet.contains(c.network()))
            .map(|(n, c)| format!("{n:?} ({c})"))
            .collect();
        overlaps.sort();
        if !overlaps.is_empty() {
            self.push(
                "mgmt.subnet",
                format!("{subnet} overlaps network {}", overlaps.join(", ")),
            );
        }
        let hosts = (1u64 << (32 - subnet.prefix)) - 2;
        if t.nodes.len() as u64 > hosts - 1 {
            self.push(
                "mgmt.subnet",
                format!(
                    "{subnet} has room for {} VMs besides the host; the lab has {}",
                    hosts - 1,
                    t.nodes.len()
                ),
            );
        }
        let gateway = crate::mgmt::gateway(&subnet).map(|g| g.addr);
        let mut used: HashMap<Ipv4Addr, usize> = HashMap::new();
        for (i, n) in t.nodes.iter().enumerate() {
            let Some(a) = &n.mgmt_address else { continue };
            let path = format!("nodes[{i}].mgmt_address");
            match parse_ipv4(a) {
                Err(e) => self.push(path, e.to_string()),
                Ok(ip) if !subnet.contains(ip) => {
                    self.push(path, format!("{ip} is not inside mgmt.subnet {subnet}"))
                }
                Ok(ip) if ip == subnet.network() || ip == subnet.broadcast() => self.push(
                    path,
                    format!("{ip} is the network or broadcast address of {subnet}"),
                ),
                Ok(ip) if Some(ip) == gateway => self.push(
                    path,
                    format!("{ip} is the host's address on the management network (its gateway)"),
                ),
                Ok(ip) => {
                    if let Some(first) = used.insert(ip, i) {
                        self.push(
                            path,
                            format!("{ip} is already used by nodes[{first}].mgmt_address"),
                        );
                    }
                }
            }
        }
        let mut forwards: HashMap<(Ipv4Addr, u16, crate::mgmt::Proto), usize> = HashMap::new();
        for (k, p) in m.ports.iter().enumerate() {
            let path = format!("mgmt.ports[{k}]");
            match crate::mgmt::parse_port(p) {
                Err(why) => self.push(path, format!("{p:?}: {why}")),
                Ok(f) if t.node(&f.node).is_none() => {
                    self.push(path, format!("{p:?}: no node named {:?}", f.node))
                }
                Ok(f) if f.host_port < crate::mgmt::MIN_HOST_PORT => self.push(
                    path,
                    format!(
                        "{p:?}: host port {} is below {} (a privileged port, where the host's own services listen); forward from {} or above",
                        f.host_port,
                        crate::mgmt::MIN_HOST_PORT,
                        crate::mgmt::MIN_HOST_PORT
                    ),
                ),
                Ok(f) => {
                    if let Some(first) = forwards.insert((f.host_addr, f.host_port, f.proto), k) {
                        self.push(
                            path,
                            format!(
                                "{p:?}: {}:{}/{} is already forwarded by mgmt.ports[{first}]",
                                f.host_addr,
                                f.host_port,
                                f.proto.as_str()
                            ),
                        );
                    }
                }
            }
        }
        Some(subnet)
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
