//! containerlab topologies (`*.clab.yml`) read into MiniVM topologies, with
//! a report of everything not carried over. No I/O: files the lab names
//! (startup configs, binds) are read through the caller's reader, relative
//! to the .clab.yml.
//!
//! What carries over, and how:
//! - Node settings resolve as containerlab resolves them: a node's own
//!   value, else its group's (`topology.groups`), else its kind's
//!   (`topology.kinds`), else `topology.defaults`; `binds`, `env` and
//!   `labels` merge across those levels (the node's entry wins for the same
//!   container path or key).
//! - `kind: linux` and `kind: frr` become VMs (image `frr` when the kind or
//!   the container image says FRR, else `tiny`; `--image-map` patterns
//!   first); `kind: bridge` becomes a network; other kinds only when an
//!   image map names an image for them, else they are reported with their
//!   links.
//! - Every link becomes a network of its two ends (named after them); a
//!   link to a bridge node joins that bridge's network. Interface names are
//!   kept: the management network is eth0, so `ethN` in the file is `ethN`
//!   in the guest; a gap in a node's numbering gets an unplugged NIC.
//! - `startup-config` (frr) → `/etc/frr/frr.conf`; `extras.frr.daemons` →
//!   `/etc/frr/daemons`; binds of files → `files`, of directories → their
//!   files; `exec` → `exec`, except `ip addr add` and `ip route add` lines,
//!   which become the NIC's address and the node's routes; addresses an
//!   frr.conf gives an interface are recorded on the NIC too; `mgmt` and
//!   `mgmt-ipv4` → the management network (NAT on, as containerlab's).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::model::{Defaults, FileSpec, Mgmt, Network, Nic, Node, Route, Topology};
use crate::net::Ipv4Cidr;

/// The management subnet containerlab uses when the file names none.
pub const DEFAULT_MGMT_SUBNET: &str = "172.20.20.0/24";
/// Files taken from one bound directory, at most.
pub const MAX_DIR_FILES: usize = 16;

/// Why a file cannot be imported at all (nothing is created).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClabError {
    #[error("not YAML: {0}")]
    NotYaml(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("not a containerlab topology: {0}")]
    NotClab(String),
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

fn invalid(path: impl Into<String>, reason: impl Into<String>) -> ClabError {
    ClabError::Invalid {
        path: path.into(),
        reason: reason.into(),
    }
}

/// What the reader found at a path the lab names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(String),
    /// A directory's files: (path relative to it, text).
    Dir(Vec<(String, String)>),
}

/// How to read the files a lab names (relative to the .clab.yml).
pub type Reader<'a> = dyn FnMut(&str) -> Result<Source, String> + 'a;

/// Choices of the person importing.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The lab's name (else the file's `name`, made valid).
    pub name: Option<String>,
    /// `PATTERN=IMAGE`: a node whose kind or container image matches the
    /// pattern (`*` matches any run of characters) gets IMAGE; the first
    /// match wins, before the built-in guesses.
    pub image_map: Vec<(String, String)>,
}

/// Parses `--image-map PATTERN=IMAGE`.
pub fn parse_image_map(s: &str) -> Result<(String, String), String> {
    let (p, i) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected PATTERN=IMAGE, e.g. 'ceos*=tiny'"))?;
    if p.is_empty() || i.is_empty() {
        return Err(format!("{s:?}: expected PATTERN=IMAGE, e.g. 'ceos*=tiny'"));
    }
    crate::names::check_image_name(i).map_err(|e| format!("{s:?}: image {i:?} {e}"))?;
    Ok((p.to_string(), i.to_string()))
}

/// `*`-glob match.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// The result: the lab and what was not carried over (or was changed), a
/// line each.
#[derive(Debug, Clone, PartialEq)]
pub struct Imported {
    pub topology: Topology,
    pub report: Vec<String>,
}

/// A containerlab name made a MiniVM name: lowercase, `_` and `.` as `-`,
/// starting with a letter, at most 32 characters.
fn clean_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            'a'..='z' | '0'..='9' | '-' => c,
            _ => '-',
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "n-");
    }
    while out.ends_with('-') && out.len() > 1 {
        out.pop();
    }
    out.truncate(32);
    out
}

/// The settings of one node after inheritance.
#[derive(Debug, Default)]
struct Resolved {
    kind: Option<String>,
    image: Option<String>,
    startup_config: Option<String>,
    exec: Vec<String>,
    binds: Vec<String>,
    env: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    mgmt_ipv4: Option<String>,
    daemons: Option<String>,
    ports: Vec<String>,
    cmd: Option<String>,
    /// containerlab's memory limit (`512Mb`, `1Gb`), in MiB.
    memory_mib: Option<u32>,
    /// Fields present that have no meaning here.
    ignored: BTreeSet<String>,
}

/// Node fields this importer understands (the rest are reported).
const KNOWN: &[&str] = &[
    "kind",
    "image",
    "group",
    "startup-config",
    "exec",
    "binds",
    "env",
    "labels",
    "mgmt-ipv4",
    "extras",
    "ports",
    "cmd",
    "memory",
];

/// containerlab's memory limit (`512Mb`, `1Gb`, `256MiB`) in MiB.
fn memory_mib(s: &str) -> Option<u32> {
    let t = s.trim();
    let at = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(at);
    let n: u32 = n.parse().ok()?;
    match unit.trim().to_ascii_lowercase().as_str() {
        "mb" | "mib" | "m" => Some(n),
        "gb" | "gib" | "g" => n.checked_mul(1024),
        _ => None,
    }
}

fn str_of(v: &Value, path: &str) -> Result<Option<String>, ClabError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        _ => Err(invalid(path, "expected a string")),
    }
}

fn list_of(v: &Value, path: &str) -> Result<Vec<String>, ClabError> {
    match v {
        Value::Null => Ok(vec![]),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| {
                str_of(x, &format!("{path}[{i}]"))?
                    .ok_or_else(|| invalid(format!("{path}[{i}]"), "expected a string"))
            })
            .collect(),
        Value::String(s) => Ok(vec![s.clone()]),
        _ => Err(invalid(path, "expected a list of strings")),
    }
}

fn map_of(v: &Value, path: &str) -> Result<BTreeMap<String, String>, ClabError> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, x)| {
                Ok((
                    k.clone(),
                    str_of(x, &format!("{path}.{k}"))?.unwrap_or_default(),
                ))
            })
            .collect(),
        _ => Err(invalid(path, "expected a map")),
    }
}

/// Resolves one node through its group, kind and the defaults.
fn resolve(doc: &Value, name: &str, node: &Value) -> Result<Resolved, ClabError> {
    let topo = &doc["topology"];
    let npath = format!("topology.nodes.{name}");
    if !node.is_object() && !node.is_null() {
        return Err(invalid(&npath, "expected a map of node settings"));
    }
    let group_name = str_of(&node["group"], &format!("{npath}.group"))?;
    let group = match &group_name {
        Some(g) => {
            let v = &topo["groups"][g];
            if v.is_null() {
                return Err(invalid(
                    format!("{npath}.group"),
                    format!("no group {g:?} in topology.groups"),
                ));
            }
            v
        }
        None => &Value::Null,
    };
    let defaults = &topo["defaults"];
    let kind = match str_of(&node["kind"], &format!("{npath}.kind"))? {
        Some(k) => Some(k),
        None => match str_of(
            &group["kind"],
            &format!(
                "topology.groups.{}.kind",
                group_name.clone().unwrap_or_default()
            ),
        )? {
            Some(k) => Some(k),
            None => str_of(&defaults["kind"], "topology.defaults.kind")?,
        },
    };
    let kind_v = match &kind {
        Some(k) => &topo["kinds"][k],
        None => &Value::Null,
    };
    // Levels, most specific first, with their paths for errors.
    let levels: Vec<(&Value, String)> = vec![
        (node, npath.clone()),
        (
            group,
            format!("topology.groups.{}", group_name.clone().unwrap_or_default()),
        ),
        (
            kind_v,
            format!("topology.kinds.{}", kind.clone().unwrap_or_default()),
        ),
        (defaults, "topology.defaults".to_string()),
    ];
    let first_str = |key: &str| -> Result<Option<String>, ClabError> {
        for (v, p) in &levels {
            if let Some(s) = str_of(&v[key], &format!("{p}.{key}"))? {
                return Ok(Some(s));
            }
        }
        Ok(None)
    };
    let first_list = |key: &str| -> Result<Vec<String>, ClabError> {
        for (v, p) in &levels {
            let l = list_of(&v[key], &format!("{p}.{key}"))?;
            if !l.is_empty() {
                return Ok(l);
            }
        }
        Ok(vec![])
    };
    let mut r = Resolved {
        kind,
        image: first_str("image")?,
        startup_config: first_str("startup-config")?,
        exec: first_list("exec")?,
        ports: first_list("ports")?,
        cmd: first_str("cmd")?,
        mgmt_ipv4: str_of(&node["mgmt-ipv4"], &format!("{npath}.mgmt-ipv4"))?,
        ..Default::default()
    };
    if let Some(m) = first_str("memory")? {
        r.memory_mib = Some(memory_mib(&m).ok_or_else(|| {
            invalid(
                format!("{npath}.memory"),
                format!("{m:?}: expected a size like 512Mb or 1Gb"),
            )
        })?);
    }
    // Merged, least specific first so that the node's entries win.
    let mut binds: BTreeMap<String, String> = BTreeMap::new();
    for (v, p) in levels.iter().rev() {
        for b in list_of(&v["binds"], &format!("{p}.binds"))? {
            let dest = b.split(':').nth(1).unwrap_or(&b).to_string();
            binds.insert(dest, b);
        }
        r.env.extend(map_of(&v["env"], &format!("{p}.env"))?);
        r.labels
            .extend(map_of(&v["labels"], &format!("{p}.labels"))?);
        if let Some(d) = str_of(
            &v["extras"]["frr"]["daemons"],
            &format!("{p}.extras.frr.daemons"),
        )? {
            r.daemons = Some(d);
        }
    }
    r.binds = binds.into_values().collect();
    for (v, _) in &levels {
        if let Value::Object(m) = v {
            for k in m.keys().filter(|k| !KNOWN.contains(&k.as_str())) {
                r.ignored.insert(k.clone());
            }
        }
    }
    Ok(r)
}

/// One end of a link: (node, interface).
fn endpoint(v: &Value, path: &str) -> Result<(String, String), ClabError> {
    match v {
        Value::String(s) => {
            let (n, i) = s
                .split_once(':')
                .ok_or_else(|| invalid(path, format!("{s:?}: expected NODE:INTERFACE")))?;
            if n.is_empty() || i.is_empty() {
                return Err(invalid(path, format!("{s:?}: expected NODE:INTERFACE")));
            }
            Ok((n.to_string(), i.to_string()))
        }
        Value::Object(_) => {
            let n = str_of(&v["node"], &format!("{path}.node"))?
                .ok_or_else(|| invalid(format!("{path}.node"), "missing"))?;
            let i = str_of(&v["interface"], &format!("{path}.interface"))?
                .ok_or_else(|| invalid(format!("{path}.interface"), "missing"))?;
            Ok((n, i))
        }
        _ => Err(invalid(
            path,
            "expected \"NODE:INTERFACE\" or {node, interface}",
        )),
    }
}

/// `ethN` → N.
fn eth_index(ifname: &str) -> Option<usize> {
    ifname.strip_prefix("eth")?.parse().ok()
}

/// The destination of `ip route add DEST`: `default`, a prefix, or one
/// address (a /32), as a network in CIDR form.
fn route_dest(s: &str) -> Option<String> {
    if s == "default" {
        return Some("0.0.0.0/0".into());
    }
    let c: Ipv4Cidr = if s.contains('/') {
        s.parse().ok()?
    } else {
        Ipv4Cidr {
            addr: s.parse().ok()?,
            prefix: 32,
        }
    };
    Some(format!("{}/{}", c.network(), c.prefix))
}

/// Addresses an frr.conf gives its interfaces: (ifname, address/prefix).
fn frr_addresses(conf: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in conf.lines() {
        let t = line.trim();
        if let Some(i) = t.strip_prefix("interface ") {
            current = Some(i.split_whitespace().next().unwrap_or("").to_string());
        } else if t == "!" || t == "exit" || (!line.starts_with(' ') && !t.is_empty()) {
            current = None;
        } else if let (Some(i), Some(a)) = (&current, t.strip_prefix("ip address ")) {
            out.push((i.clone(), a.trim().to_string()));
        }
    }
    out
}

/// Whether `text` reads as a containerlab topology (a map with
/// `topology.nodes` and no MiniVM `version`), not a MiniVM one.
pub fn looks_like(text: &str) -> bool {
    if text.len() > crate::MAX_FILE_BYTES
        || crate::parse::nesting_depth(text, crate::Format::Yaml) > crate::parse::MAX_NESTING
    {
        return false;
    }
    serde_yaml_ng::from_str::<Value>(text)
        .is_ok_and(|d| d["topology"]["nodes"].is_object() && d.get("version").is_none())
}

/// Reads a containerlab topology into a MiniVM one. `read` gives the files
/// the lab names, relative to the .clab.yml.
pub fn import(text: &str, opts: &Options, read: &mut Reader<'_>) -> Result<Imported, ClabError> {
    if text.len() > crate::MAX_FILE_BYTES {
        return Err(ClabError::TooLarge(format!(
            "the file is {} bytes; at most {} are read",
            text.len(),
            crate::MAX_FILE_BYTES
        )));
    }
    if crate::parse::nesting_depth(text, crate::Format::Yaml) > crate::parse::MAX_NESTING {
        return Err(ClabError::TooLarge("the file nests too deeply".into()));
    }
    let doc: Value =
        serde_yaml_ng::from_str(text).map_err(|e| ClabError::NotYaml(e.to_string()))?;
    if !doc.is_object() {
        return Err(ClabError::NotClab("the file is not a map".into()));
    }
    let nodes_v = &doc["topology"]["nodes"];
    let Value::Object(nodes_map) = nodes_v else {
        return Err(ClabError::NotClab(
            "it has no topology.nodes map (a .clab.yml has `topology: {nodes: ..., links: ...}`)"
                .into(),
        ));
    };
    let mut report = Vec::new();
    let raw_name = match (&opts.name, str_of(&doc["name"], "name")?) {
        (Some(n), _) => n.clone(),
        (None, Some(n)) => n,
        (None, None) => return Err(invalid("name", "missing (or give --name)")),
    };
    let lab = clean_name(&raw_name);
    if lab != raw_name {
        report.push(format!("name: {raw_name:?} is {lab:?} here (MiniVM names are lowercase letters, digits and '-')"));
    }
    for (k, _) in doc.as_object().expect("a map") {
        if !["name", "topology", "mgmt", "prefix"].contains(&k.as_str()) {
            report.push(format!("{k}: not carried over (no meaning here)"));
        }
    }

    // Node names, made valid, with collisions refused.
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut taken: BTreeMap<String, String> = BTreeMap::new();
    for n in nodes_map.keys() {
        let c = clean_name(n);
        if let Some(other) = taken.insert(c.clone(), n.clone()) {
            return Err(invalid(
                format!("topology.nodes.{n}"),
                format!("its name {c:?} here collides with node {other:?}; rename one"),
            ));
        }
        if &c != n {
            report.push(format!("topology.nodes.{n}: named {c:?} here"));
        }
        names.insert(n.clone(), c);
    }

    // Resolve every node; decide VM, bridge or skipped.
    #[derive(PartialEq)]
    enum Role {
        Vm(String),
        Bridge,
        Skipped(String),
    }
    let mut resolved: BTreeMap<String, (Resolved, Role)> = BTreeMap::new();
    for (n, v) in nodes_map {
        let r = resolve(&doc, n, v)?;
        let kind = r.kind.clone().unwrap_or_default();
        let mapped = opts
            .image_map
            .iter()
            .find(|(p, _)| glob(p, &kind) || r.image.as_deref().is_some_and(|i| glob(p, i)));
        let frr_like = kind == "frr"
            || r.image
                .as_deref()
                .is_some_and(|i| i.to_lowercase().contains("frr"));
        let role = match (kind.as_str(), mapped) {
            ("bridge" | "ovs-bridge", _) => Role::Bridge,
            (_, Some((_, image))) => Role::Vm(image.clone()),
            ("linux" | "frr", None) if frr_like => Role::Vm("frr".into()),
            ("linux" | "frr", None) => Role::Vm("tiny".into()),
            ("", None) => {
                return Err(invalid(
                    format!("topology.nodes.{n}.kind"),
                    "no kind (set it on the node, its group or topology.defaults)",
                ))
            }
            (k, None) => Role::Skipped(format!(
                "kind {k:?} has no image here; map one with --image-map '{k}=IMAGE' to bring it in as a VM"
            )),
        };
        resolved.insert(n.clone(), (r, role));
    }

    // Links: each a network; a link to a bridge node joins its network.
    let links = match &doc["topology"]["links"] {
        Value::Null => vec![],
        Value::Array(a) => a.clone(),
        _ => return Err(invalid("topology.links", "expected a list")),
    };
    let mut networks: Vec<Network> = Vec::new();
    // node → (guest eth index → network)
    let mut plugs: BTreeMap<String, BTreeMap<usize, String>> = BTreeMap::new();
    for (n, (_, role)) in &resolved {
        if *role == Role::Bridge {
            networks.push(Network {
                name: names[n].clone(),
                subnet: None,
                position: None,
            });
        }
    }
    for (i, l) in links.iter().enumerate() {
        let path = format!("topology.links[{i}]");
        if let Some(t) = str_of(&l["type"], &format!("{path}.type"))? {
            if t != "veth" {
                report.push(format!(
                    "{path}: a link of type {t:?} is not carried over (only veth links are)"
                ));
                continue;
            }
        }
        let eps = match &l["endpoints"] {
            Value::Array(a) if a.len() == 2 => a,
            Value::Array(_) => {
                return Err(invalid(
                    format!("{path}.endpoints"),
                    "a link has exactly two endpoints",
                ))
            }
            _ => {
                return Err(invalid(
                    format!("{path}.endpoints"),
                    "missing, or not a list",
                ))
            }
        };
        let a = endpoint(&eps[0], &format!("{path}.endpoints[0]"))?;
        let b = endpoint(&eps[1], &format!("{path}.endpoints[1]"))?;
        let mut ends = Vec::new();
        let mut skipped = None;
        for (k, (node, ifname)) in [a.clone(), b.clone()].into_iter().enumerate() {
            if ["host", "macvlan", "mgmt-net"].contains(&node.as_str()) {
                skipped = Some(format!(
                    "its end {node}:{ifname} is on the host, which a lab here does not reach"
                ));
                continue;
            }
            let Some((_, role)) = resolved.get(&node) else {
                return Err(invalid(
                    format!("{path}.endpoints[{k}]"),
                    format!("no node {node:?} in topology.nodes"),
                ));
            };
            match role {
                Role::Skipped(_) => skipped = Some(format!("node {node:?} is not imported")),
                Role::Bridge => ends.push((node, None)),
                Role::Vm(_) => {
                    let idx = eth_index(&ifname).filter(|n| (1..=crate::validate::MAX_NICS).contains(n)).ok_or_else(|| {
                        invalid(
                            format!("{path}.endpoints[{k}]"),
                            format!("{node}:{ifname}: a VM's interfaces here are eth1 to eth{} (eth0 is the management network)", crate::validate::MAX_NICS),
                        )
                    })?;
                    ends.push((node, Some(idx)));
                }
            }
        }
        if let Some(why) = skipped {
            report.push(format!(
                "{path} ({}:{} — {}:{}): not carried over: {why}",
                a.0, a.1, b.0, b.1
            ));
            continue;
        }
        let bridge = ends
            .iter()
            .find(|(_, i)| i.is_none())
            .map(|(n, _)| names[n].clone());
        let net = match bridge {
            Some(br) => br,
            None => {
                let mut name = format!("{}-{}-{}-{}", names[&a.0], a.1, names[&b.0], b.1);
                if name.len() > 32 || networks.iter().any(|n| n.name == name) {
                    name = format!("link{}", i + 1);
                }
                networks.push(Network {
                    name: name.clone(),
                    subnet: None,
                    position: None,
                });
                name
            }
        };
        for (node, idx) in ends {
            if let Some(idx) = idx {
                let slot = plugs.entry(node.clone()).or_default();
                if slot.insert(idx, net.clone()).is_some() {
                    return Err(invalid(
                        path.clone(),
                        format!("{node}:eth{idx} is the end of another link already"),
                    ));
                }
            }
        }
    }

    // The management network.
    let mgmt_subnet = match str_of(&doc["mgmt"]["ipv4-subnet"], "mgmt.ipv4-subnet")? {
        Some(s) => s,
        None => DEFAULT_MGMT_SUBNET.to_string(),
    };
    if let Value::Object(m) = &doc["mgmt"] {
        for k in m.keys().filter(|k| k.as_str() != "ipv4-subnet") {
            report.push(format!("mgmt.{k}: not carried over (the management network here is a bridge of the lab's own, with NAT)"));
        }
    }

    // Nodes.
    let mut out_nodes = Vec::new();
    let mut mgmt_ports = Vec::new();
    for (n, (r, role)) in &resolved {
        let image = match role {
            Role::Vm(i) => i.clone(),
            Role::Bridge => continue,
            Role::Skipped(why) => {
                report.push(format!("topology.nodes.{n}: not imported: {why}"));
                continue;
            }
        };
        let name = names[n].clone();
        let path = format!("topology.nodes.{n}");
        let mut files: Vec<FileSpec> = Vec::new();
        let mut add_file = |dest: &str, content: String| {
            files.retain(|f| f.path != dest);
            files.push(FileSpec {
                path: dest.to_string(),
                content: Some(content),
                source: None,
                mode: None,
            });
        };
        if let Some(sc) = &r.startup_config {
            if r.kind.as_deref() == Some("frr") || image == "frr" {
                // Inline (a multi-line string) or a file.
                let text = if sc.contains('\n') {
                    Some(sc.clone())
                } else {
                    match read(sc) {
                        Ok(Source::File(t)) => Some(t),
                        Ok(Source::Dir(_)) => {
                            report.push(format!(
                                "{path}.startup-config: {sc:?} is a directory; skipped"
                            ));
                            None
                        }
                        Err(why) => {
                            report.push(format!(
                                "{path}.startup-config: cannot read {sc:?} ({why}); skipped"
                            ));
                            None
                        }
                    }
                };
                if let Some(t) = text {
                    add_file("/etc/frr/frr.conf", t);
                }
            } else {
                report.push(format!(
                    "{path}.startup-config: only an FRR node's startup config is carried over"
                ));
            }
        }
        if let Some(d) = &r.daemons {
            add_file("/etc/frr/daemons", d.clone());
        }
        for b in &r.binds {
            let parts: Vec<&str> = b.split(':').collect();
            if parts.len() < 2 || parts[0].is_empty() || !parts[1].starts_with('/') {
                return Err(invalid(
                    format!("{path}.binds"),
                    format!("{b:?}: expected HOST_PATH:CONTAINER_PATH[:ro]"),
                ));
            }
            let (host, dest) = (parts[0], parts[1]);
            if host.starts_with('/') || host.starts_with('~') {
                report.push(format!("{path}.binds: {b:?} binds a path of the host outside the lab's directory; skipped"));
                continue;
            }
            let mut depth: i32 = 0;
            for c in host.split('/') {
                match c {
                    ".." => depth -= 1,
                    "" | "." => {}
                    _ => depth += 1,
                }
                if depth < 0 {
                    return Err(invalid(
                        format!("{path}.binds"),
                        format!("{b:?}: {host:?} escapes the lab's directory"),
                    ));
                }
            }
            match read(host) {
                Ok(Source::File(t)) => {
                    add_file(dest, t);
                }
                Ok(Source::Dir(list)) => {
                    if list.len() > MAX_DIR_FILES {
                        report.push(format!("{path}.binds: {host:?} has {} files; the first {MAX_DIR_FILES} are carried over", list.len()));
                    }
                    for (rel, t) in list.into_iter().take(MAX_DIR_FILES) {
                        add_file(&format!("{}/{rel}", dest.trim_end_matches('/')), t);
                    }
                }
                Err(why) => report.push(format!(
                    "{path}.binds: cannot read {host:?} ({why}); skipped"
                )),
            }
        }

        // NICs: guest ethN is own NIC N-1; gaps get an unplugged NIC.
        let slots = plugs.remove(n).unwrap_or_default();
        let highest = slots.keys().max().copied().unwrap_or(0);
        let mut nics = Vec::new();
        for idx in 1..=highest {
            let network = match slots.get(&idx) {
                Some(net) => net.clone(),
                None => {
                    let unused = format!("{name}-unused");
                    if !networks.iter().any(|x| x.name == unused) {
                        networks.push(Network {
                            name: unused.clone(),
                            subnet: None,
                            position: None,
                        });
                    }
                    report.push(format!("{path}: eth{idx} is in no link; it is plugged into the unconnected network {unused:?} so that the interfaces after it keep their names"));
                    unused
                }
            };
            nics.push(Nic {
                network,
                address: None,
                mac: None,
                up: true,
                impair: crate::Impair::NONE,
            });
        }
        // Addresses and routes the exec lines set become fields.
        let mut routes = Vec::new();
        let mut exec = Vec::new();
        let mut forwards = false;
        for line in &r.exec {
            let w: Vec<String> = match crate::words::split_words(line) {
                Ok(w) => w,
                Err(e) => return Err(invalid(format!("{path}.exec"), format!("{line:?}: {e}"))),
            };
            let w: Vec<&str> = w.iter().map(String::as_str).collect();
            match w.as_slice() {
                ["ip", "addr" | "address" | "a", "add", addr, "dev", dev]
                    if addr.parse::<Ipv4Cidr>().is_ok()
                        && eth_index(dev).is_some_and(|i| i >= 1 && i <= nics.len())
                        && nics[eth_index(dev).unwrap() - 1].address.is_none() =>
                {
                    nics[eth_index(dev).unwrap() - 1].address = Some(addr.to_string());
                }
                ["ip", "route" | "r", "add" | "replace", dest, "via", gw]
                    if route_dest(dest).is_some() && gw.parse::<std::net::Ipv4Addr>().is_ok() =>
                {
                    routes.push(Route {
                        to: route_dest(dest).expect("checked"),
                        via: gw.to_string(),
                    });
                }
                ["sysctl", "-w", "net.ipv4.ip_forward=1"] => forwards = true,
                _ => exec.push(line.clone()),
            }
        }
        // The frr.conf the VM gets, however it came (startup-config, a
        // bound file or a bound directory).
        let frr_conf = files
            .iter()
            .find(|f| f.path == "/etc/frr/frr.conf")
            .and_then(|f| f.content.clone());
        if let Some(conf) = &frr_conf {
            for (ifname, addr) in frr_addresses(conf) {
                if let Some(i) = eth_index(&ifname).filter(|i| *i >= 1 && *i <= nics.len()) {
                    if nics[i - 1].address.is_none() && addr.parse::<Ipv4Cidr>().is_ok() {
                        nics[i - 1].address = Some(addr);
                    }
                }
            }
        }
        // Published ports: forwards from the host to the VM's management
        // address. containerlab publishes `HOST:PORT` on every host
        // address; here it is 127.0.0.1 (exposing more is the host's
        // choice, `up --expose`, never a lab file's), and a privileged
        // host port is not taken.
        for (k, p) in r.ports.iter().enumerate() {
            match published_port(p, &name) {
                Ok((forward, widened)) => {
                    if widened {
                        report.push(format!("{path}.ports[{k}]: {p:?} is forwarded from 127.0.0.1 only (containerlab publishes on every address; write 0.0.0.0:{forward_rest} and run `up --expose` to expose it)", forward_rest = forward.split_once(':').map_or("", |(_, r)| r)));
                    }
                    mgmt_ports.push(forward);
                }
                Err(why) => report.push(format!(
                    "{path}.ports[{k}]: {p:?} is not carried over ({why})"
                )),
            }
        }
        for (what, present) in [
            ("env", !r.env.is_empty()),
            ("labels", !r.labels.is_empty()),
            ("cmd", r.cmd.is_some()),
        ] {
            if present {
                report.push(format!(
                    "{path}.{what}: not carried over (a VM here has no container {what})"
                ));
            }
        }
        for k in &r.ignored {
            report.push(format!("{path}.{k}: not carried over (no meaning here)"));
        }
        let is_frr = image == "frr" || r.kind.as_deref() == Some("frr");
        let ip_forward = is_frr || forwards;
        out_nodes.push(Node {
            name,
            image: Some(image),
            cpus: None,
            memory_mib: r.memory_mib.or(if is_frr { Some(192) } else { None }),
            nics,
            routes,
            ip_forward,
            restart: None,
            files,
            exec,
            mgmt_address: r.mgmt_ipv4.clone(),
            position: None,
            kind: Some(if is_frr {
                crate::model::DeviceKind::Router
            } else {
                crate::model::DeviceKind::Host
            }),
        });
    }
    Ok(Imported {
        topology: Topology {
            version: crate::FORMAT_VERSION,
            name: lab,
            defaults: Some(Defaults {
                image: None,
                cpus: Some(1),
                memory_mib: Some(128),
                restart: None,
            }),
            networks,
            nodes: out_nodes,
            network_mode: Default::default(),
            mgmt: Some(Mgmt {
                subnet: mgmt_subnet,
                nat: true,
                ports: mgmt_ports,
            }),
            tests: Vec::new(),
        },
        report,
    })
}

/// A lab written as containerlab's format: the .clab.yml text and the files
/// it names (paths relative to it).
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub clab: String,
    pub files: Vec<(String, String)>,
    /// What containerlab's format cannot say (a subnet, positions, ...).
    pub report: Vec<String>,
}

/// Writes `t` in containerlab's format so that importing it gives `t`
/// back (for labs made by [`import`]): VMs as `kind: frr` (image `frr`) or
/// `kind: linux`, networks of two NICs as links, others as `kind: bridge`
/// nodes, the management network as `mgmt`, addresses, routes and IP
/// forwarding as `exec` lines, frr.conf as `startup-config`, the daemons
/// file as `extras.frr.daemons`, other files as binds.
pub fn export(t: &Topology) -> Exported {
    use serde_json::json;
    let mut report = Vec::new();
    let mut files = Vec::new();
    let own = |k: usize| format!("eth{}", k + 1);
    // Which NICs are on each network.
    let mut members: BTreeMap<&str, Vec<(&str, usize)>> = BTreeMap::new();
    for n in &t.nodes {
        for (k, nic) in n.nics.iter().enumerate() {
            members
                .entry(nic.network.as_str())
                .or_default()
                .push((n.name.as_str(), k));
        }
    }
    let mut nodes = serde_json::Map::new();
    let mut links = Vec::new();
    for net in &t.networks {
        if net.subnet.is_some() {
            report.push(format!("network {:?}: its subnet is not carried (containerlab has none); its NICs' addresses are", net.name));
        }
        let m = members.get(net.name.as_str()).cloned().unwrap_or_default();
        let is_gap = m.len() == 1 && net.name == format!("{}-unused", m[0].0);
        if is_gap {
            continue;
        }
        if m.len() == 2 {
            links.push(json!({"endpoints": [format!("{}:{}", m[0].0, own(m[0].1)), format!("{}:{}", m[1].0, own(m[1].1))]}));
        } else {
            nodes.insert(net.name.clone(), json!({"kind": "bridge"}));
            for (i, (vm, k)) in m.iter().enumerate() {
                links.push(json!({"endpoints": [format!("{vm}:{}", own(*k)), format!("{}:eth{}", net.name, i + 1)]}));
            }
        }
    }
    for n in &t.nodes {
        let image = t.node_image(n).unwrap_or("tiny");
        let frr = image == "frr";
        let mut v = serde_json::Map::new();
        v.insert("kind".into(), json!(if frr { "frr" } else { "linux" }));
        v.insert("image".into(), json!(image));
        let default_memory = if frr {
            192
        } else {
            t.node_memory_mib(&Node {
                memory_mib: None,
                ..n.clone()
            })
        };
        let memory = t.node_memory_mib(n);
        if memory != default_memory {
            v.insert("memory".into(), json!(format!("{memory}Mb")));
        }
        if let Some(a) = &n.mgmt_address {
            v.insert("mgmt-ipv4".into(), json!(a));
        }
        let ports: Vec<String> = t
            .mgmt
            .iter()
            .flat_map(|m| &m.ports)
            .filter_map(|p| crate::mgmt::parse_port(p).ok())
            .filter(|f| f.node == n.name)
            .map(|f| {
                let proto = match f.proto {
                    crate::mgmt::Proto::Tcp => "",
                    crate::mgmt::Proto::Udp => "/udp",
                };
                format!("{}:{}:{}{proto}", f.host_addr, f.host_port, f.port)
            })
            .collect();
        if !ports.is_empty() {
            v.insert("ports".into(), json!(ports));
        }
        let mut binds = Vec::new();
        for f in &n.files {
            let content = f.content.clone().unwrap_or_default();
            match f.path.as_str() {
                "/etc/frr/frr.conf" if frr => {
                    let rel = format!("{}/frr.conf", n.name);
                    v.insert("startup-config".into(), json!(rel));
                    files.push((rel, content));
                }
                "/etc/frr/daemons" if frr => {
                    v.insert("extras".into(), json!({"frr": {"daemons": content}}));
                }
                p => {
                    let rel = format!("{}/files{p}", n.name);
                    binds.push(format!("{rel}:{p}"));
                    files.push((rel, content));
                    if f.mode.is_some() {
                        report.push(format!("{}: the mode of {p} is not carried", n.name));
                    }
                }
            }
        }
        if !binds.is_empty() {
            v.insert("binds".into(), json!(binds));
        }
        let mut exec = Vec::new();
        for (k, nic) in n.nics.iter().enumerate() {
            if let Some(a) = &nic.address {
                exec.push(format!("ip addr add {a} dev {}", own(k)));
            }
        }
        for r in &n.routes {
            let dest = if r.to == "0.0.0.0/0" {
                "default".to_string()
            } else {
                r.to.clone()
            };
            exec.push(format!("ip route add {dest} via {}", r.via));
        }
        if n.ip_forward && !frr {
            exec.push("sysctl -w net.ipv4.ip_forward=1".into());
        }
        exec.extend(n.exec.iter().cloned());
        if !exec.is_empty() {
            v.insert("exec".into(), json!(exec));
        }
        if n.position.is_some() {
            report.push(format!(
                "{}: its position on the canvas is not carried",
                n.name
            ));
        }
        nodes.insert(n.name.clone(), serde_json::Value::Object(v));
    }
    let mut doc = serde_json::Map::new();
    doc.insert("name".into(), json!(t.name));
    if let Some(m) = &t.mgmt {
        doc.insert("mgmt".into(), json!({"ipv4-subnet": m.subnet}));
    }
    doc.insert("topology".into(), json!({"nodes": nodes, "links": links}));
    Exported {
        clab: serde_yaml_ng::to_string(&serde_json::Value::Object(doc)).expect("serializes"),
        files,
        report,
    }
}

/// A containerlab published port `[ADDR:]HOST:PORT[/PROTO]` of node
/// `node` as a forward, and whether containerlab would have published it on
/// every address (it is 127.0.0.1 here); why not, if it cannot be one.
fn published_port(p: &str, node: &str) -> Result<(String, bool), String> {
    let (spec, proto) = match p.rsplit_once('/') {
        Some((spec, proto)) => (spec, format!("/{proto}")),
        None => (p, String::new()),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (forward, widened) = match parts.as_slice() {
        [host, guest] => (format!("127.0.0.1:{host}:{node}:{guest}{proto}"), true),
        [addr, host, guest] => (format!("{addr}:{host}:{node}:{guest}{proto}"), false),
        _ => return Err("expected [ADDRESS:]HOST_PORT:PORT[/tcp|/udp]".into()),
    };
    let f = crate::mgmt::parse_port(&forward)?;
    if f.host_port < crate::mgmt::MIN_HOST_PORT {
        return Err(format!(
            "host port {} is below {}, where the host's own services listen; forward from {} or above",
            f.host_port,
            crate::mgmt::MIN_HOST_PORT,
            crate::mgmt::MIN_HOST_PORT
        ));
    }
    Ok((forward, widened))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIANGLE: &str = include_str!("../../examples/clab/frr-triangle/frr-triangle.clab.yml");

    fn triangle_files(p: &str) -> Result<Source, String> {
        Ok(Source::File(
            match p {
                "router1/frr.conf" => {
                    include_str!("../../examples/clab/frr-triangle/router1/frr.conf")
                }
                "router2/frr.conf" => {
                    include_str!("../../examples/clab/frr-triangle/router2/frr.conf")
                }
                "router3/frr.conf" => {
                    include_str!("../../examples/clab/frr-triangle/router3/frr.conf")
                }
                _ => return Err("No such file or directory".into()),
            }
            .to_string(),
        ))
    }

    fn no_files(_: &str) -> Result<Source, String> {
        Err("No such file or directory".into())
    }

    fn run(text: &str) -> Result<Imported, ClabError> {
        import(text, &Options::default(), &mut no_files)
    }

    #[test]
    fn the_frr_triangle_imports_whole_and_valid() {
        let i = import(TRIANGLE, &Options::default(), &mut triangle_files).unwrap();
        let t = &i.topology;
        assert_eq!(crate::validate(t), vec![], "{}", crate::to_yaml(t));
        assert_eq!(t.name, "frr-triangle");
        assert_eq!(t.mgmt.as_ref().unwrap().subnet, "172.20.30.0/24");
        let r1 = t.node("router1").unwrap();
        assert_eq!(r1.image.as_deref(), Some("frr"));
        assert!(r1.ip_forward);
        assert_eq!(r1.mgmt_address.as_deref(), Some("172.20.30.11"));
        let paths: Vec<&str> = r1.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["/etc/frr/frr.conf", "/etc/frr/daemons"]);
        assert!(r1.files[1]
            .content
            .as_deref()
            .unwrap()
            .contains("ospfd=yes"));
        // eth1..eth3 in the file are eth1..eth3 here: own NICs 0..2.
        let nets: Vec<&str> = r1.nics.iter().map(|n| n.network.as_str()).collect();
        assert_eq!(
            nets,
            [
                "router1-eth1-router2-eth1",
                "router1-eth2-router3-eth1",
                "pc1-eth1-router1-eth3"
            ]
        );
        // Addresses from frr.conf are on the NICs too.
        let addrs: Vec<Option<&str>> = r1.nics.iter().map(|n| n.address.as_deref()).collect();
        assert_eq!(
            addrs,
            [
                Some("10.0.12.1/30"),
                Some("10.0.13.1/30"),
                Some("192.168.11.1/24")
            ]
        );
        // A PC: its exec lines became its address and default route.
        let pc1 = t.node("pc1").unwrap();
        assert_eq!(pc1.image.as_deref(), Some("tiny"));
        assert_eq!(pc1.nics[0].address.as_deref(), Some("192.168.11.2/24"));
        assert_eq!(
            pc1.routes,
            vec![Route {
                to: "0.0.0.0/0".into(),
                via: "192.168.11.1".into()
            }]
        );
        assert!(pc1.exec.is_empty(), "{:?}", pc1.exec);
        // The extended link form is read like the short one.
        assert!(t.network("router2-eth2-router3-eth2").is_some());
        assert!(
            i.report
                .iter()
                .any(|l| l.contains("\"frr_triangle\" is \"frr-triangle\"")),
            "{:?}",
            i.report
        );
        assert!(
            i.report
                .iter()
                .any(|l| l == "topology.nodes.Router1: named \"router1\" here"),
            "{:?}",
            i.report
        );
    }

    #[test]
    fn inheritance_is_node_then_group_then_kind_then_defaults_with_merged_binds_and_env() {
        let text = r#"
name: inh
topology:
  defaults: {kind: linux, image: d-img, env: {A: d, B: d}, binds: ["d.txt:/etc/d", "x-d:/etc/x"], exec: ["echo defaults"]}
  kinds:
    linux: {image: k-img, env: {B: k, C: k}, binds: ["x-k:/etc/x"], exec: ["echo kind"]}
  groups:
    g: {image: g-img, binds: ["g.txt:/etc/g"]}
  nodes:
    a: {group: g, binds: ["x-n:/etc/x"], exec: ["echo node"]}
    b: {}
    c: {group: g, image: frr-n}
"#;
        let mut seen = Vec::new();
        let i = import(text, &Options::default(), &mut |p: &str| {
            seen.push(p.to_string());
            Ok(Source::File(format!("from {p}\n")))
        })
        .unwrap();
        let t = &i.topology;
        let file = |n: &str, path: &str| {
            t.node(n)
                .unwrap()
                .files
                .iter()
                .find(|f| f.path == path)
                .and_then(|f| f.content.clone())
        };
        // binds merge: the node's /etc/x wins over the kind's and the defaults'.
        assert_eq!(file("a", "/etc/x").as_deref(), Some("from x-n\n"));
        assert_eq!(file("a", "/etc/g").as_deref(), Some("from g.txt\n"));
        assert_eq!(file("a", "/etc/d").as_deref(), Some("from d.txt\n"));
        assert_eq!(file("b", "/etc/x").as_deref(), Some("from x-k\n"));
        assert_eq!(file("b", "/etc/g"), None);
        // exec: the most specific non-empty list.
        assert_eq!(t.node("a").unwrap().exec, ["echo node"]);
        assert_eq!(t.node("b").unwrap().exec, ["echo kind"]);
        // The image: node, else group, else kind, else defaults; FRR-like → frr.
        assert_eq!(t.node("c").unwrap().image.as_deref(), Some("frr"));
        assert_eq!(t.node("a").unwrap().image.as_deref(), Some("tiny"));
        // env merges too, and is reported (a VM has no container env).
        assert!(i.report.iter().any(
            |l| l == "topology.nodes.a.env: not carried over (a VM here has no container env)"
        ));
    }

    #[test]
    fn interface_gaps_keep_the_names_after_them() {
        let text = "name: gaps\ntopology:\n  nodes:\n    a: {kind: linux}\n    b: {kind: linux}\n  links:\n    - endpoints: [\"a:eth1\", \"b:eth1\"]\n    - endpoints: [\"a:eth3\", \"b:eth2\"]\n";
        let i = run(text).unwrap();
        let a = i.topology.node("a").unwrap();
        let nets: Vec<&str> = a.nics.iter().map(|n| n.network.as_str()).collect();
        assert_eq!(nets, ["a-eth1-b-eth1", "a-unused", "a-eth3-b-eth2"]);
        assert!(i.report.iter().any(|l| l.contains("eth2 is in no link")));
        assert_eq!(crate::validate(&i.topology), vec![]);
    }

    #[test]
    fn other_kinds_are_reported_with_their_links_unless_mapped_and_bridges_are_networks() {
        let text = "name: mixed\ntopology:\n  nodes:\n    srl: {kind: nokia_srlinux, image: ghcr.io/nokia/srlinux}\n    br1: {kind: bridge}\n    h1: {kind: linux}\n    h2: {kind: linux}\n  links:\n    - endpoints: [\"srl:e1-1\", \"h1:eth1\"]\n    - endpoints: [\"h1:eth2\", \"br1:eth1\"]\n    - endpoints: [\"h2:eth1\", \"br1:eth2\"]\n    - endpoints: [\"h2:eth2\", \"host:veth-h2\"]\n";
        let i = run(text).unwrap();
        let t = &i.topology;
        assert!(t.node("srl").is_none());
        assert!(
            i.report
                .iter()
                .any(|l| l.contains("topology.nodes.srl: not imported: kind \"nokia_srlinux\"")),
            "{:?}",
            i.report
        );
        assert!(
            i.report
                .iter()
                .any(|l| l.starts_with("topology.links[0] (srl:e1-1 — h1:eth1): not carried over")),
            "{:?}",
            i.report
        );
        assert!(
            i.report.iter().any(|l| l.starts_with("topology.links[3]")),
            "{:?}",
            i.report
        );
        // h1 and h2 share the bridge's network; h1's eth1 (its srl link) is a gap.
        assert_eq!(t.node("h1").unwrap().nics[1].network, "br1");
        assert_eq!(t.node("h2").unwrap().nics[0].network, "br1");
        assert_eq!(crate::validate(t), vec![]);
        // Mapped, srl comes in as a VM (its e1-1 is no ethN: refused, named).
        let opts = Options {
            name: None,
            image_map: vec![parse_image_map("nokia_*=tiny").unwrap()],
        };
        let err = import(text, &opts, &mut no_files).unwrap_err();
        assert!(
            err.to_string()
                .contains("topology.links[0].endpoints[0]: srl:e1-1"),
            "{err}"
        );
    }

    #[test]
    fn missing_files_are_reported_and_skipped_not_fatal() {
        let text = "name: m\ntopology:\n  nodes:\n    r1: {kind: frr, startup-config: r1.conf, binds: [\"daemons:/etc/frr/daemons\", \"/lib/modules:/lib/modules:ro\"]}\n";
        let i = run(text).unwrap();
        let r = &i.report;
        assert!(
            r.iter()
                .any(|l| l.contains("startup-config: cannot read \"r1.conf\"")),
            "{r:?}"
        );
        assert!(
            r.iter().any(|l| l.contains("cannot read \"daemons\"")),
            "{r:?}"
        );
        assert!(
            r.iter()
                .any(|l| l.contains("\"/lib/modules:/lib/modules:ro\" binds a path of the host")),
            "{r:?}"
        );
        assert!(i.topology.node("r1").unwrap().files.is_empty());
    }

    #[test]
    fn a_bound_directory_brings_its_files() {
        let text =
            "name: d\ntopology:\n  nodes:\n    r1: {kind: frr, binds: [\"conf:/etc/frr\"]}\n";
        let i = import(text, &Options::default(), &mut |p: &str| {
            assert_eq!(p, "conf");
            Ok(Source::Dir(vec![
                ("frr.conf".into(), "hostname r1\n".into()),
                ("daemons".into(), "ospfd=yes\n".into()),
            ]))
        })
        .unwrap();
        let paths: Vec<&str> = i
            .topology
            .node("r1")
            .unwrap()
            .files
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(paths, ["/etc/frr/frr.conf", "/etc/frr/daemons"]);
    }

    #[test]
    fn bad_inputs_are_refused_naming_the_place() {
        let cases: &[(&str, &str)] = &[
            ("", "not a containerlab topology"),
            ("[1, 2]", "not a containerlab topology: the file is not a map"),
            ("name: x\n", "has no topology.nodes map"),
            ("name: x\ntopology: {}\n", "has no topology.nodes map"),
            ("name: x\ntopology: {nodes: [a, b]}\n", "has no topology.nodes map"),
            ("name: [\n", "not YAML"),
            ("topology: {nodes: {a: {kind: linux}}}\n", "name: missing"),
            ("name: {a: 1}\ntopology: {nodes: {a: {kind: linux}}}\n", "name: expected a string"),
            ("name: x\ntopology: {nodes: {a: 5}}\n", "topology.nodes.a: expected a map of node settings"),
            ("name: x\ntopology: {nodes: {a: {}}}\n", "topology.nodes.a.kind: no kind"),
            ("name: x\ntopology: {nodes: {a: {kind: [linux]}}}\n", "topology.nodes.a.kind: expected a string"),
            ("name: x\ntopology: {nodes: {a: {kind: linux, group: g}}}\n", "topology.nodes.a.group: no group \"g\""),
            ("name: x\ntopology: {nodes: {a: {kind: linux, exec: {x: 1}}}}\n", "topology.nodes.a.exec: expected a list of strings"),
            ("name: x\ntopology: {nodes: {a: {kind: linux, exec: [[1]]}}}\n", "topology.nodes.a.exec[0]: expected a string"),
            ("name: x\ntopology: {nodes: {a: {kind: linux, env: [A]}}}\n", "topology.nodes.a.env: expected a map"),
            ("name: x\ntopology: {nodes: {a: {kind: linux, binds: [\"nocolon\"]}}}\n", "topology.nodes.a.binds: \"nocolon\": expected HOST_PATH:CONTAINER_PATH"),
            ("name: x\ntopology: {nodes: {a: {kind: linux, binds: [\"a:relative\"]}}}\n", "expected HOST_PATH:CONTAINER_PATH"),
            ("name: x\ntopology: {nodes: {a: {kind: linux, binds: [\"../../etc/passwd:/etc/p\"]}}}\n", "escapes the lab's directory"),
            ("name: x\ntopology: {nodes: {a: {kind: linux, binds: [\"d/../../x:/etc/p\"]}}}\n", "escapes the lab's directory"),
            ("name: x\ntopology: {nodes: {a: {kind: linux, exec: [\"echo 'unclosed\"]}}}\n", "topology.nodes.a.exec"),
            ("name: x\ntopology: {defaults: {kind: [x]}, nodes: {a: {}}}\n", "topology.defaults.kind: expected a string"),
            ("name: x\ntopology: {kinds: {linux: {image: [x]}}, nodes: {a: {kind: linux}}}\n", "topology.kinds.linux.image: expected a string"),
            ("name: x\ntopology: {nodes: {a: {kind: linux}}, links: {x: 1}}\n", "topology.links: expected a list"),
            ("name: x\ntopology: {nodes: {a: {kind: linux}}, links: [{}]}\n", "topology.links[0].endpoints: missing"),
            ("name: x\ntopology: {nodes: {a: {kind: linux}}, links: [{endpoints: [\"a:eth1\"]}]}\n", "exactly two endpoints"),
            ("name: x\ntopology: {nodes: {a: {kind: linux}}, links: [{endpoints: [\"a:eth1\", \"b:eth1\"]}]}\n", "topology.links[0].endpoints[1]: no node \"b\""),
            ("name: x\ntopology: {nodes: {a: {kind: linux}, b: {kind: linux}}, links: [{endpoints: [\"a-eth1\", \"b:eth1\"]}]}\n", "expected NODE:INTERFACE"),
            ("name: x\ntopology: {nodes: {a: {kind: linux}, b: {kind: linux}}, links: [{endpoints: [\":eth1\", \"b:eth1\"]}]}\n", "expected NODE:INTERFACE"),
            ("name: x\ntopology: {nodes: {a: {kind: linux}, b: {kind: linux}}, links: [{endpoints: [\"a:eth0\", \"b:eth1\"]}]}\n", "eth0 is the management network"),
            ("name: x\ntopology: {nodes: {a: {kind: linux}, b: {kind: linux}}, links: [{endpoints: [\"a:e1-1\", \"b:eth1\"]}]}\n", "a:e1-1"),
            ("name: x\ntopology: {nodes: {a: {kind: linux}, b: {kind: linux}}, links: [{endpoints: [\"a:eth99\", \"b:eth1\"]}]}\n", "eth1 to eth16"),
            ("name: x\ntopology: {nodes: {a: {kind: linux}, b: {kind: linux}, c: {kind: linux}}, links: [{endpoints: [\"a:eth1\", \"b:eth1\"]}, {endpoints: [\"a:eth1\", \"c:eth1\"]}]}\n", "a:eth1 is the end of another link already"),
            ("name: x\ntopology: {nodes: {a: {kind: linux}, b: {kind: linux}}, links: [{type: veth, endpoints: [{node: a}, \"b:eth1\"]}]}\n", "topology.links[0].endpoints[0].interface: missing"),
            ("name: x\ntopology: {nodes: {a: {kind: linux}, b: {kind: linux}}, links: [{endpoints: [5, \"b:eth1\"]}]}\n", "topology.links[0].endpoints[0]: expected"),
            ("name: x\ntopology: {nodes: {Ab: {kind: linux}, ab: {kind: linux}}}\n", "collides with node"),
            ("name: x\ntopology: {nodes: {a: {kind: linux, extras: {frr: {daemons: [1]}}}}}\n", "extras.frr.daemons: expected a string"),
            ("name: x\nmgmt: {ipv4-subnet: [1]}\ntopology: {nodes: {a: {kind: linux}}}\n", "mgmt.ipv4-subnet: expected a string"),
        ];
        assert!(cases.len() >= 30);
        for (text, want) in cases {
            match run(text) {
                Ok(i) => panic!("accepted: {text:?}\n{:?}", i.report),
                Err(e) => assert!(
                    e.to_string().contains(want),
                    "{text:?}: {e} (wanted {want:?})"
                ),
            }
        }
    }

    /// import → export → import gives the same lab.
    fn round_trips(text: &str, read: &mut Reader<'_>) {
        let first = import(text, &Options::default(), read).unwrap().topology;
        let out = export(&first);
        let mut files: BTreeMap<String, String> = out.files.into_iter().collect();
        let second = import(&out.clab, &Options::default(), &mut |p: &str| {
            files
                .remove(p)
                .map(Source::File)
                .ok_or_else(|| format!("{p} not exported"))
        })
        .unwrap()
        .topology;
        assert_eq!(first, second, "{}", out.clab);
    }

    #[test]
    fn import_export_import_is_identical_on_every_fixture() {
        round_trips(TRIANGLE, &mut triangle_files);
        for text in [
            "name: gaps\ntopology:\n  nodes:\n    a: {kind: linux}\n    b: {kind: linux}\n  links:\n    - endpoints: [\"a:eth1\", \"b:eth1\"]\n    - endpoints: [\"a:eth3\", \"b:eth2\"]\n",
            "name: mixed\ntopology:\n  nodes:\n    br1: {kind: bridge}\n    h1: {kind: linux, memory: 256Mb, exec: [\"ip addr add 10.0.0.1/24 dev eth1\", \"sysctl -w net.ipv4.ip_forward=1\", \"echo hi\"]}\n    h2: {kind: linux, mgmt-ipv4: 172.20.20.9, ports: [\"8080:80\", \"127.0.0.1:5353:53/udp\"]}\n    h3: {kind: linux}\n  links:\n    - endpoints: [\"h1:eth1\", \"br1:eth1\"]\n    - endpoints: [\"h2:eth1\", \"br1:eth2\"]\n    - endpoints: [\"h3:eth1\", \"br1:eth3\"]\n",
            "name: d\ntopology:\n  nodes:\n    r1: {kind: frr, binds: [\"conf:/etc/frr\", \"motd:/etc/motd\"], exec: [\"ip route add 10.9.0.0/16 via 172.20.20.1\"]}\n    r2: {kind: linux, image: quay.io/frrouting/frr:9, mgmt-ipv4: 172.20.20.40}\n  links:\n    - endpoints: [\"r1:eth2\", \"r2:eth1\"]\n",
        ] {
            round_trips(text, &mut |p: &str| match p {
                "conf" => Ok(Source::Dir(vec![
                    ("frr.conf".into(), "interface eth2\n ip address 10.1.0.1/24\n!\n".into()),
                    ("daemons".into(), "ospfd=yes\n".into()),
                    ("vtysh.conf".into(), "service integrated-vtysh-config\n".into()),
                ])),
                "motd" => Ok(Source::File("hello\n".into())),
                _ => Err("No such file or directory".into()),
            });
        }
    }

    #[test]
    fn published_ports_become_port_forwards_to_the_vm() {
        // containerlab publishes "8080:80" and "22:22" on every host
        // address: here 8080 is forwarded from 127.0.0.1 only, and the
        // host's own port 22 is never taken.
        let text = "name: p\ntopology:\n  nodes:\n    web: {kind: linux, ports: [\"8080:80\", \"127.0.0.1:5353:53/udp\", \"bad\", \"22:22\", \"0.0.0.0:8443:443\"]}\n";
        let i = run(text).unwrap();
        assert_eq!(
            i.topology.mgmt.as_ref().unwrap().ports,
            [
                "127.0.0.1:8080:web:80",
                "127.0.0.1:5353:web:53/udp",
                "0.0.0.0:8443:web:443"
            ]
        );
        let said = |prefix: &str, what: &str| {
            assert!(
                i.report
                    .iter()
                    .any(|l| l.starts_with(prefix) && l.contains(what)),
                "{prefix} {what}: {:?}",
                i.report
            )
        };
        said("topology.nodes.web.ports[0]: \"8080:80\"", "127.0.0.1 only");
        said("topology.nodes.web.ports[2]: \"bad\"", "not carried over");
        said("topology.nodes.web.ports[3]: \"22:22\"", "below 1024");
        assert_eq!(crate::validate(&i.topology), vec![]);
    }

    #[test]
    fn image_maps_parse_and_glob() {
        assert_eq!(
            parse_image_map("ceos*=tiny").unwrap(),
            ("ceos*".into(), "tiny".into())
        );
        assert!(parse_image_map("ceos").is_err());
        assert!(parse_image_map("=tiny").is_err());
        assert!(parse_image_map("x=../evil").is_err());
        assert!(glob("nokia_*", "nokia_srlinux"));
        assert!(glob("*srlinux*", "ghcr.io/nokia/srlinux:latest"));
        assert!(!glob("ceos", "ceos2"));
        assert!(glob("a*c*e", "abcde"));
    }
}
