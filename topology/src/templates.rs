//! Lab templates: a topology made from a few parameters. Built-in ones are
//! generators (a star of N hosts, a ring of N routers); a user's are files
//! (`<state>/templates/NAME.yaml`, written by "save as template" or by hand)
//! in this format:
//!
//! ```yaml
//! description: Two hosts on a LAN       # one line, shown in the gallery
//! params:                               # optional
//!   - {name: subnet, default: 10.0.0.0/24, description: the LAN}
//! topology:                             # a topology; "${subnet}" in any
//!   version: 1                          # string is replaced by the value
//!   name: two-hosts                     # (the name is the new lab's)
//!   networks: [{name: lan, subnet: "${subnet}"}]
//!   ...
//! ```
//!
//! Every template's lab carries `tests:` that pass once it is up.
//! Pure: no I/O (the engine reads and writes the files).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::model::Topology;
use crate::validate::Problem;

/// A parameter as the gallery and `minivm templates` show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Param {
    pub name: String,
    pub default: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// A count's bounds (built-in counts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<u32>,
}

/// A template as listed: built in or the user's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Info {
    pub name: String,
    pub description: String,
    pub params: Vec<Param>,
    pub builtin: bool,
}

/// A user's template file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateFile {
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<Param>,
    /// A topology with `${param}` in its strings (kept as a YAML value so
    /// that substitution never touches the syntax).
    pub topology: serde_yaml_ng::Value,
}

struct Builtin {
    name: &'static str,
    description: &'static str,
    params: fn() -> Vec<Param>,
    build: fn(&BTreeMap<String, String>) -> Value,
}

fn count(name: &str, default: u32, min: u32, max: u32, description: &str) -> Param {
    Param {
        name: name.into(),
        default: default.to_string(),
        description: description.into(),
        min: Some(min),
        max: Some(max),
    }
}

fn net16(default: &str) -> Param {
    Param {
        name: "net".into(),
        default: default.into(),
        description: "the address plan: a /16 whose /24s the lab's networks take".into(),
        min: None,
        max: None,
    }
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "lan",
        description: "Two hosts on a LAN",
        params: || vec![net16("10.10.0.0/16")],
        build: lan,
    },
    Builtin {
        name: "router",
        description: "A router between two LANs, a host on each",
        params: || vec![net16("10.20.0.0/16")],
        build: router,
    },
    Builtin {
        name: "star",
        description: "A star of N hosts on one switch (a bridge)",
        params: || {
            vec![
                count("n", 4, 2, 32, "how many hosts"),
                net16("10.30.0.0/16"),
            ]
        },
        build: star,
    },
    Builtin {
        name: "ospf-triangle",
        description: "An OSPF triangle of FRR routers with a host behind each",
        params: || vec![net16("10.40.0.0/16")],
        build: |v| ospf_ring(v, 3, true),
    },
    Builtin {
        name: "bgp",
        description: "BGP between three ASes in a line, a host at each end",
        params: || vec![net16("10.50.0.0/16")],
        build: bgp,
    },
    Builtin {
        name: "ospf-ring",
        description: "A ring of N FRR routers running OSPF",
        params: || {
            vec![
                count("n", 4, 3, 12, "how many routers"),
                net16("10.60.0.0/16"),
            ]
        },
        build: |v| {
            let n = v["n"].parse().expect("checked");
            ospf_ring(v, n, false)
        },
    },
];

/// The built-in templates, in gallery order.
pub fn builtins() -> Vec<Info> {
    BUILTINS
        .iter()
        .map(|b| Info {
            name: b.name.into(),
            description: b.description.into(),
            params: (b.params)(),
            builtin: true,
        })
        .collect()
}

/// A user's template file, as listed.
pub fn info_of_file(name: &str, f: &TemplateFile) -> Info {
    Info {
        name: name.into(),
        description: f.description.clone(),
        params: f.params.clone(),
        builtin: false,
    }
}

/// Parses `--set` words (`KEY=VALUE`).
pub fn parse_sets(words: &[String]) -> Result<Vec<(String, String)>, Problem> {
    words
        .iter()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .ok_or_else(|| Problem::new("--set", format!("{w:?} is not KEY=VALUE")))
        })
        .collect()
}

/// The values of `params` with `sets` applied: every key must be a
/// parameter; counts are checked against their bounds, `net` must be a /16.
fn values(
    template: &str,
    params: &[Param],
    sets: &[(String, String)],
) -> Result<BTreeMap<String, String>, Vec<Problem>> {
    let mut v: BTreeMap<String, String> = params
        .iter()
        .map(|p| (p.name.clone(), p.default.clone()))
        .collect();
    let mut problems = Vec::new();
    for (k, val) in sets {
        if !v.contains_key(k) {
            let names: Vec<_> = params.iter().map(|p| p.name.as_str()).collect();
            problems.push(Problem::new(
                format!("--set {k}"),
                if names.is_empty() {
                    format!("template {template} has no parameters")
                } else {
                    format!(
                        "template {template} has no parameter {k:?} (it has {})",
                        names.join(", ")
                    )
                },
            ));
            continue;
        }
        v.insert(k.clone(), val.clone());
    }
    for p in params {
        let val = &v[&p.name];
        if let (Some(min), Some(max)) = (p.min, p.max) {
            match val.parse::<u32>() {
                Ok(n) if (min..=max).contains(&n) => {}
                _ => problems.push(Problem::new(
                    format!("--set {}", p.name),
                    format!("{val:?} is not a whole number from {min} to {max}"),
                )),
            }
        }
    }
    if problems.is_empty() {
        Ok(v)
    } else {
        Err(problems)
    }
}

/// "10.20.0.0/16" → "10.20".
fn net_prefix(s: &str) -> Option<String> {
    let (addr, len) = s.split_once('/')?;
    let a: Ipv4Addr = addr.parse().ok()?;
    let o = a.octets();
    (len == "16" && o[2] == 0 && o[3] == 0).then(|| format!("{}.{}", o[0], o[1]))
}

/// A built-in template's lab named `lab`, valid, or every problem.
pub fn instantiate_builtin(
    template: &str,
    lab: &str,
    sets: &[(String, String)],
) -> Result<Topology, Vec<Problem>> {
    let b = BUILTINS
        .iter()
        .find(|b| b.name == template)
        .ok_or_else(|| vec![unknown(template)])?;
    let v = values(template, &(b.params)(), sets)?;
    if net_prefix(&v["net"]).is_none() {
        return Err(vec![Problem::new(
            "--set net",
            format!("{:?} is not a /16 such as 10.20.0.0/16", v["net"]),
        )]);
    }
    let mut value = (b.build)(&v);
    value["name"] = json!(lab);
    finish(value)
}

/// A user's template's lab named `lab`, valid, or every problem.
pub fn instantiate_file(
    template: &str,
    f: &TemplateFile,
    lab: &str,
    sets: &[(String, String)],
) -> Result<Topology, Vec<Problem>> {
    let v = values(template, &f.params, sets)?;
    let mut value: Value = serde_json::to_value(&f.topology)
        .map_err(|e| vec![Problem::new("topology", format!("not a topology: {e}"))])?;
    substitute(&mut value, &v);
    value["name"] = json!(lab);
    finish(value)
}

fn unknown(template: &str) -> Problem {
    let names: Vec<_> = BUILTINS.iter().map(|b| b.name).collect();
    Problem::new(
        "--template",
        format!(
            "no template named {template:?} (built in: {}; `minivm templates` lists yours too)",
            names.join(", ")
        ),
    )
}

/// `${name}` in every string of `v` replaced by its value.
fn substitute(v: &mut Value, values: &BTreeMap<String, String>) {
    match v {
        Value::String(s) => {
            for (k, val) in values {
                *s = s.replace(&format!("${{{k}}}"), val);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, values)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, values)),
        _ => {}
    }
}

fn finish(value: Value) -> Result<Topology, Vec<Problem>> {
    let text = serde_json::to_string(&value).expect("serializes");
    crate::parse_and_validate(&text, crate::Format::Json).map_err(|e| match e {
        crate::LoadError::Invalid(p) => p,
        other => vec![Problem::new("", other.to_string())],
    })
}

/// Reads a template file's text.
pub fn parse_file(text: &str) -> Result<TemplateFile, String> {
    if text.len() > crate::parse::MAX_FILE_BYTES {
        return Err(format!("{} bytes is too large", text.len()));
    }
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}

/// A template file's text (YAML).
pub fn to_text(f: &TemplateFile) -> String {
    serde_yaml_ng::to_string(f).expect("a template serializes")
}

/// A lab saved as a template: its topology (positions and all) with a
/// description and no parameters.
pub fn from_lab(t: &Topology, description: &str) -> TemplateFile {
    TemplateFile {
        description: description.trim().to_string(),
        params: Vec::new(),
        topology: serde_yaml_ng::to_value(t).expect("a topology serializes"),
    }
}

/// Positions on a circle of radius `r` around (cx, cy), starting at the top.
fn circle(i: usize, n: usize, cx: f64, cy: f64, r: f64) -> Value {
    let a = std::f64::consts::TAU * i as f64 / n.max(1) as f64 - std::f64::consts::FRAC_PI_2;
    json!({"x": (cx + r * a.cos()).round(), "y": (cy + r * a.sin()).round()})
}

fn host(name: &str, net: &str, addr: &str, gw: Option<&str>, pos: Value) -> Value {
    let mut h = json!({
        "name": name,
        "nics": [{"network": net, "address": addr}],
        "position": pos,
    });
    if let Some(gw) = gw {
        h["routes"] = json!([{"to": "0.0.0.0/0", "via": gw}]);
    }
    h
}

fn ping(from: &str, to: &str, retry: &str) -> Value {
    json!({"name": format!("{from} reaches {to}"), "ping": {"from": from, "to": to}, "retry_for": retry})
}

fn lan(v: &BTreeMap<String, String>) -> Value {
    let p = net_prefix(&v["net"]).expect("checked");
    json!({
        "version": 1, "name": "lan",
        "defaults": {"image": "tiny", "memory_mib": 96},
        "networks": [{"name": "lan", "subnet": format!("{p}.1.0/24"), "position": {"x": 300, "y": 200}}],
        "nodes": [
            host("h1", "lan", &format!("{p}.1.1/24"), None, json!({"x": 150, "y": 100})),
            host("h2", "lan", &format!("{p}.1.2/24"), None, json!({"x": 450, "y": 100})),
        ],
        "tests": [ping("h1", "h2", "20s"), ping("h2", "h1", "20s")],
    })
}

fn router(v: &BTreeMap<String, String>) -> Value {
    let p = net_prefix(&v["net"]).expect("checked");
    json!({
        "version": 1, "name": "router",
        "defaults": {"image": "tiny", "memory_mib": 96},
        "networks": [
            {"name": "lan1", "subnet": format!("{p}.1.0/24"), "position": {"x": 180, "y": 200}},
            {"name": "lan2", "subnet": format!("{p}.2.0/24"), "position": {"x": 520, "y": 200}},
        ],
        "nodes": [
            {"name": "r1", "ip_forward": true, "position": {"x": 350, "y": 80},
             "nics": [{"network": "lan1", "address": format!("{p}.1.1/24")},
                      {"network": "lan2", "address": format!("{p}.2.1/24")}]},
            host("h1", "lan1", &format!("{p}.1.10/24"), Some(&format!("{p}.1.1")), json!({"x": 80, "y": 320})),
            host("h2", "lan2", &format!("{p}.2.10/24"), Some(&format!("{p}.2.1")), json!({"x": 620, "y": 320})),
        ],
        "tests": [
            ping("h1", "r1", "20s"),
            ping("h1", "h2", "20s"),
            ping("h2", "h1", "20s"),
            {"name": "r1 forwards", "exec": {"vm": "r1", "cmd": "cat /proc/sys/net/ipv4/ip_forward"}, "stdout": "1"},
        ],
    })
}

fn star(v: &BTreeMap<String, String>) -> Value {
    let p = net_prefix(&v["net"]).expect("checked");
    let n: usize = v["n"].parse().expect("checked");
    let nodes: Vec<Value> = (1..=n)
        .map(|i| {
            host(
                &format!("h{i}"),
                "switch",
                &format!("{p}.1.{i}/24"),
                None,
                circle(i - 1, n, 350.0, 250.0, 180.0),
            )
        })
        .collect();
    let tests: Vec<Value> = (2..=n)
        .map(|i| ping("h1", &format!("h{i}"), "20s"))
        .collect();
    json!({
        "version": 1, "name": "star",
        "defaults": {"image": "tiny", "memory_mib": 96},
        "networks": [{"name": "switch", "subnet": format!("{p}.1.0/24"), "position": {"x": 350, "y": 250}}],
        "nodes": nodes,
        "tests": tests,
    })
}

const FRR_DAEMONS_OSPF: &str = "# FRR daemons to start (zebra and staticd always run).\n\
ospfd=yes\nvtysh_enable=yes\n\
zebra_options=\"  -A 127.0.0.1 -s 90000000\"\n\
ospfd_options=\"  -A 127.0.0.1\"\n\
staticd_options=\"-A 127.0.0.1\"\n";

const FRR_DAEMONS_BGP: &str = "# FRR daemons to start (zebra and staticd always run).\n\
bgpd=yes\nvtysh_enable=yes\n\
zebra_options=\"  -A 127.0.0.1 -s 90000000\"\n\
bgpd_options=\"  -A 127.0.0.1\"\n\
staticd_options=\"-A 127.0.0.1\"\n";

fn frr_files(daemons: &str, conf: String) -> Value {
    json!([
        {"path": "/etc/frr/daemons", "content": daemons},
        {"path": "/etc/frr/frr.conf", "content": conf},
    ])
}

/// N FRR routers in a ring (router i's eth0 to router i+1's eth1), OSPF
/// area 0 on point-to-point links with 1 s hellos, a loopback each
/// (P.255.0.i); with `hosts`, a LAN and a host behind each router.
fn ospf_ring(v: &BTreeMap<String, String>, n: usize, hosts: bool) -> Value {
    let p = net_prefix(&v["net"]).expect("checked");
    let link = |i: usize| {
        // Link i joins router i and router i+1 (1-based, wrapping).
        let (a, b) = (i, i % n + 1);
        (format!("r{a}-r{b}"), format!("{p}.{}.0/24", 100 + i))
    };
    let mut networks = Vec::new();
    let mut nodes = Vec::new();
    let mut tests = Vec::new();
    for i in 1..=n {
        let (name, subnet) = link(i);
        let mid = {
            let a = circle(i - 1, n, 400.0, 300.0, 200.0);
            let b = circle(i % n, n, 400.0, 300.0, 200.0);
            json!({"x": ((a["x"].as_f64().unwrap() + b["x"].as_f64().unwrap()) / 2.0).round(),
                   "y": ((a["y"].as_f64().unwrap() + b["y"].as_f64().unwrap()) / 2.0).round()})
        };
        networks.push(json!({"name": name, "subnet": subnet, "position": mid}));
    }
    for i in 1..=n {
        let prev = if i == 1 { n } else { i - 1 };
        let (out_net, _) = link(i);
        let (in_net, _) = link(prev);
        let out_addr = format!("{p}.{}.1/24", 100 + i);
        let in_addr = format!("{p}.{}.2/24", 100 + prev);
        let mut nics = vec![
            json!({"network": out_net, "address": out_addr}),
            json!({"network": in_net, "address": in_addr}),
        ];
        let lo = format!("{p}.255.{i}");
        let mut conf = format!(
            "frr defaults traditional\nhostname r{i}\nlog file /var/log/frr/frr.log\n!\n\
             interface lo\n ip address {lo}/32\n!\n"
        );
        for eth in ["eth0", "eth1"] {
            conf += &format!(
                "interface {eth}\n ip ospf network point-to-point\n ip ospf hello-interval 1\n ip ospf dead-interval 4\n!\n"
            );
        }
        // The whole /16 (links, LANs, loopbacks) in area 0.
        let networks_conf = format!(" network {p}.0.0/16 area 0\n");
        if hosts {
            let lan = format!("lan{i}");
            let pos = circle(i - 1, n, 400.0, 300.0, 330.0);
            networks.push(json!({"name": lan, "subnet": format!("{p}.{i}.0/24"), "position": pos}));
            nics.push(json!({"network": lan, "address": format!("{p}.{i}.1/24")}));
            conf += "interface eth2\n ip ospf passive\n!\n";
            nodes.push(json!({
                "name": format!("h{i}"), "image": "tiny", "memory_mib": 96,
                "nics": [{"network": lan, "address": format!("{p}.{i}.10/24")}],
                "routes": [{"to": "0.0.0.0/0", "via": format!("{p}.{i}.1")}],
                "position": circle(i - 1, n, 400.0, 300.0, 420.0),
            }));
        }
        conf += &format!("router ospf\n ospf router-id {lo}\n{networks_conf}!\n");
        nodes.push(json!({
            "name": format!("r{i}"), "image": "frr", "memory_mib": 192, "ip_forward": true,
            "nics": nics,
            "files": frr_files(FRR_DAEMONS_OSPF, conf),
            "position": circle(i - 1, n, 400.0, 300.0, 200.0),
        }));
        tests.push(json!({
            "name": format!("r{i} has its OSPF neighbours"),
            "exec": {"vm": format!("r{i}"), "cmd": "vtysh -c \"show ip ospf neighbor\""},
            "stdout": "Full/", "retry_for": "120s",
        }));
    }
    // Across the ring: the farthest router's loopback, or host to host.
    let far = n / 2 + 1;
    if hosts {
        for i in 2..=n {
            tests.push(json!({
                "name": format!("h1 reaches h{i}"),
                "ping": {"from": "h1", "to": format!("h{i}")}, "retry_for": "120s",
            }));
        }
    } else {
        tests.push(json!({
            "name": format!("r1 reaches r{far}'s loopback"),
            "ping": {"from": "r1", "to": format!("{p}.255.{far}")}, "retry_for": "120s",
        }));
    }
    json!({
        "version": 1, "name": "ospf",
        "defaults": {"image": "tiny"},
        "networks": networks,
        "nodes": nodes,
        "tests": tests,
    })
}

/// Three ASes in a line (r1 AS 65001 — r2 AS 65002 — r3 AS 65003), eBGP,
/// each end announcing its LAN, a host on each end's LAN.
fn bgp(v: &BTreeMap<String, String>) -> Value {
    let p = net_prefix(&v["net"]).expect("checked");
    let head = |i: usize| {
        format!(
            "frr defaults datacenter\nhostname r{i}\nlog file /var/log/frr/frr.log\n!\n\
             router bgp 6500{i}\n bgp router-id {p}.255.{i}\n no bgp ebgp-requires-policy\n timers bgp 3 9\n"
        )
    };
    let neighbor = |addr: String, asn: usize| {
        format!(" neighbor {addr} remote-as 6500{asn}\n neighbor {addr} timers connect 2\n")
    };
    let r1 = head(1)
        + &neighbor(format!("{p}.12.2"), 2)
        + &format!(" address-family ipv4 unicast\n  network {p}.1.0/24\n exit-address-family\n!\n");
    let r2 = head(2)
        + &neighbor(format!("{p}.12.1"), 1)
        + &neighbor(format!("{p}.23.3"), 3)
        + " address-family ipv4 unicast\n exit-address-family\n!\n";
    let r3 = head(3)
        + &neighbor(format!("{p}.23.2"), 2)
        + &format!(" address-family ipv4 unicast\n  network {p}.3.0/24\n exit-address-family\n!\n");
    let router = |i: usize, nics: Value, conf: String, x: u32| {
        json!({"name": format!("r{i}"), "image": "frr", "memory_mib": 192, "ip_forward": true,
               "nics": nics, "files": frr_files(FRR_DAEMONS_BGP, conf),
               "position": {"x": x, "y": 80}})
    };
    json!({
        "version": 1, "name": "bgp",
        "defaults": {"image": "tiny"},
        "networks": [
            {"name": "lan1", "subnet": format!("{p}.1.0/24"), "position": {"x": 80, "y": 200}},
            {"name": "r1-r2", "subnet": format!("{p}.12.0/24"), "position": {"x": 320, "y": 200}},
            {"name": "r2-r3", "subnet": format!("{p}.23.0/24"), "position": {"x": 560, "y": 200}},
            {"name": "lan3", "subnet": format!("{p}.3.0/24"), "position": {"x": 800, "y": 200}},
        ],
        "nodes": [
            router(1, json!([{"network": "r1-r2", "address": format!("{p}.12.1/24")},
                             {"network": "lan1", "address": format!("{p}.1.1/24")}]), r1, 200),
            router(2, json!([{"network": "r1-r2", "address": format!("{p}.12.2/24")},
                             {"network": "r2-r3", "address": format!("{p}.23.2/24")}]), r2, 440),
            router(3, json!([{"network": "r2-r3", "address": format!("{p}.23.3/24")},
                             {"network": "lan3", "address": format!("{p}.3.1/24")}]), r3, 680),
            {"name": "h1", "memory_mib": 96, "nics": [{"network": "lan1", "address": format!("{p}.1.10/24")}],
             "routes": [{"to": "0.0.0.0/0", "via": format!("{p}.1.1")}], "position": {"x": 80, "y": 340}},
            {"name": "h3", "memory_mib": 96, "nics": [{"network": "lan3", "address": format!("{p}.3.10/24")}],
             "routes": [{"to": "0.0.0.0/0", "via": format!("{p}.3.1")}], "position": {"x": 800, "y": 340}},
        ],
        "tests": [
            {"name": "r2 learned both ends' LANs", "exec": {"vm": "r2", "cmd": "vtysh -c \"show ip bgp\""},
             "stdout": format!("{p}.3.0/24"), "retry_for": "120s"},
            {"name": "h1 reaches h3", "ping": {"from": "h1", "to": "h3"}, "retry_for": "120s"},
            {"name": "h3 reaches h1", "ping": {"from": "h3", "to": "h1"}, "retry_for": "120s"},
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    #[test]
    fn every_builtin_instantiates_with_its_defaults_and_carries_tests() {
        for info in builtins() {
            let t = instantiate_builtin(&info.name, "lab-a", &[])
                .unwrap_or_else(|p| panic!("{}: {p:?}", info.name));
            assert_eq!(t.name, "lab-a");
            assert!(!t.tests.is_empty(), "{} has no tests", info.name);
            assert!(
                t.nodes.iter().all(|n| n.position.is_some()),
                "{} leaves nodes unplaced",
                info.name
            );
            assert!(!info.description.is_empty());
        }
    }

    #[test]
    fn parameters_change_the_lab() {
        let t =
            instantiate_builtin("star", "s", &[set("n", "7"), set("net", "10.99.0.0/16")]).unwrap();
        assert_eq!(t.nodes.len(), 7);
        assert_eq!(t.tests.len(), 6);
        assert_eq!(t.networks[0].subnet.as_deref(), Some("10.99.1.0/24"));
        let ring = instantiate_builtin("ospf-ring", "r", &[set("n", "5")]).unwrap();
        assert_eq!(ring.nodes.len(), 5);
        assert_eq!(ring.networks.len(), 5);
        // r5's eth0 closes the ring onto r1's eth1.
        let r5 = ring.node("r5").unwrap();
        let r1 = ring.node("r1").unwrap();
        assert_eq!(r5.nics[0].network, r1.nics[1].network);
        let tri = instantiate_builtin("ospf-triangle", "o", &[]).unwrap();
        assert_eq!(tri.nodes.len(), 6);
        let conf = tri.node("r2").unwrap().files[1].content.clone().unwrap();
        assert!(conf.contains(" ospf router-id 10.40.255.2\n"), "{conf}");
        assert!(conf.contains(" ip address 10.40.255.2/32\n"), "{conf}");
    }

    #[test]
    fn bad_parameters_are_named_and_refused() {
        let err = |t: &str, sets: &[(String, String)]| {
            instantiate_builtin(t, "x", sets).expect_err("refused")
        };
        let p = err("star", &[set("n", "40")]);
        assert_eq!(p[0].path, "--set n");
        assert!(p[0].message.contains("from 2 to 32"), "{p:?}");
        let p = err("star", &[set("n", "many")]);
        assert_eq!(p[0].path, "--set n");
        let p = err("lan", &[set("net", "10.1.2.0/24")]);
        assert_eq!(p[0].path, "--set net");
        let p = err("lan", &[set("hosts", "3")]);
        assert!(
            p[0].message.contains("no parameter \"hosts\" (it has net)"),
            "{p:?}"
        );
        let p = err("mesh", &[]);
        assert_eq!(p[0].path, "--template");
        let p = instantiate_builtin("lan", "Bad Name", &[]).unwrap_err();
        assert_eq!(p[0].path, "name");
        assert_eq!(
            parse_sets(&["n=3".into(), "oops".into()]).unwrap_err().path,
            "--set"
        );
    }

    #[test]
    fn a_saved_lab_is_a_template_file_that_gives_it_back_under_a_new_name() {
        let t = instantiate_builtin("router", "mine", &[]).unwrap();
        let f = from_lab(&t, "my router lab\n");
        let text = serde_yaml_ng::to_string(&f).unwrap();
        let back: TemplateFile = serde_yaml_ng::from_str(&text).unwrap();
        let again = instantiate_file("mine", &back, "copy", &[]).unwrap();
        assert_eq!(again.name, "copy");
        assert_eq!(again.nodes, t.nodes);
        assert_eq!(info_of_file("mine", &back).description, "my router lab");
    }

    #[test]
    fn a_users_file_substitutes_its_parameters_in_strings_only() {
        let text = r#"
description: Two hosts
params:
  - {name: subnet, default: 10.0.0.0/24}
  - {name: second, default: 10.0.0.2/24}
topology:
  version: 1
  name: two
  defaults: {image: tiny}
  networks: [{name: lan, subnet: "${subnet}"}]
  nodes:
    - {name: a, nics: [{network: lan}]}
    - {name: b, nics: [{network: lan, address: "${second}"}]}
"#;
        let f: TemplateFile = serde_yaml_ng::from_str(text).unwrap();
        let t = instantiate_file(
            "two",
            &f,
            "t2",
            &[set("subnet", "10.7.0.0/24"), set("second", "10.7.0.9/24")],
        )
        .unwrap();
        assert_eq!(t.networks[0].subnet.as_deref(), Some("10.7.0.0/24"));
        assert_eq!(t.nodes[1].nics[0].address.as_deref(), Some("10.7.0.9/24"));
        // A value that does not fit is the topology's problem, by field.
        let p = instantiate_file("two", &f, "t3", &[set("subnet", "nonsense")]).unwrap_err();
        assert!(p.iter().any(|p| p.path == "networks[0].subnet"), "{p:?}");
    }
}
