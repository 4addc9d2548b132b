//! The connectivity matrix (pingall): which ordered pairs of VMs should
//! reach each other (pure: from the topology), and pinging them through the
//! guest agents, in parallel with a bound.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use topology::net::Ipv4Cidr;
use topology::Topology;

use crate::lab::Engine;

/// One ordered pair the file implies can talk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    pub from: String,
    pub to: String,
    /// The address of `to` that `from` pings.
    pub address: Ipv4Addr,
    /// The network they share, or `None` for a routed pair.
    pub network: Option<String>,
}

/// What one ping said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    #[serde(flatten)]
    pub pair: Pair,
    pub ok: bool,
    pub rtt_ms: Option<f64>,
    /// Why it failed (ping's output, or the agent's error).
    pub error: Option<String>,
}

/// Every ordered pair of VMs that share a network (pinging the target's
/// address there), and every pair the routes imply: `from` has a route to a
/// subnet holding an address of `to` on a network they do not share.
pub fn pairs(t: &Topology) -> Vec<Pair> {
    // The management network never counts: a pair that reaches only over
    // it is not a pair of the lab's own networks (neither its addresses nor
    // the default routes via the host are used).
    let t = &*topology::mgmt::effective(t);
    let mgmt_gateway = t
        .mgmt
        .as_ref()
        .and_then(|m| m.subnet.parse::<Ipv4Cidr>().ok())
        .and_then(|s| topology::mgmt::gateway(&s))
        .map(|g| g.addr.to_string());
    let nics = topology::resolve::nics(t);
    let addrs = |vm: &str| -> Vec<(String, Ipv4Cidr)> {
        nics.get(vm)
            .into_iter()
            .flatten()
            .filter(|n| !(t.mgmt.is_some() && n.network == topology::mgmt::NETWORK))
            .filter_map(|n| Some((n.network.clone(), n.address?)))
            .collect()
    };
    let mut out = Vec::new();
    for from in &t.nodes {
        let mine = addrs(&from.name);
        for to in t.nodes.iter().filter(|n| n.name != from.name) {
            let theirs = addrs(&to.name);
            let shared = theirs
                .iter()
                .find(|(net, _)| mine.iter().any(|(m, _)| m == net));
            if let Some((net, a)) = shared {
                out.push(Pair {
                    from: from.name.clone(),
                    to: to.name.clone(),
                    address: a.addr,
                    network: Some(net.clone()),
                });
                continue;
            }
            let routed = theirs.iter().find(|(_, a)| {
                from.routes
                    .iter()
                    .filter(|r| Some(&r.via) != mgmt_gateway.as_ref())
                    .any(|r| r.to.parse::<Ipv4Cidr>().is_ok_and(|c| c.contains(a.addr)))
            });
            if let Some((_, a)) = routed {
                out.push(Pair {
                    from: from.name.clone(),
                    to: to.name.clone(),
                    address: a.addr,
                    network: None,
                });
            }
        }
    }
    out
}

/// The round-trip time in ping's output (`time=0.42 ms`).
pub fn rtt(output: &str) -> Option<f64> {
    let at = output.find("time=")? + 5;
    output[at..].split([' ', 'm']).next()?.parse().ok()
}

/// Pings every pair: one thread per source VM (its agent takes one client
/// at a time), at most `parallel` at once.
pub fn run(engine: &Engine, t: &Topology, parallel: usize) -> Vec<Outcome> {
    let mut by_from: BTreeMap<String, Vec<Pair>> = BTreeMap::new();
    for p in pairs(t) {
        by_from.entry(p.from.clone()).or_default().push(p);
    }
    let queue = std::sync::Mutex::new(by_from.into_values());
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..parallel.max(1) {
            scope.spawn(|| loop {
                let Some(batch) = queue.lock().expect("not poisoned").next() else {
                    break;
                };
                for pair in batch {
                    let argv: Vec<String> =
                        ["ping", "-c", "1", "-W", "2", &pair.address.to_string()]
                            .iter()
                            .map(|s| s.to_string())
                            .collect();
                    let outcome =
                        match engine.exec(&t.name, &pair.from, &argv, Duration::from_secs(15)) {
                            Ok(r) if r.exit_code == 0 => Outcome {
                                ok: true,
                                rtt_ms: rtt(&r.stdout),
                                error: None,
                                pair,
                            },
                            Ok(r) => Outcome {
                                ok: false,
                                rtt_ms: None,
                                error: Some(format!("{}{}", r.stdout, r.stderr).trim().to_string()),
                                pair,
                            },
                            Err(e) => Outcome {
                                ok: false,
                                rtt_ms: None,
                                error: Some(e.to_string()),
                                pair,
                            },
                        };
                    results.lock().expect("not poisoned").push(outcome);
                }
            });
        }
    });
    let mut r = results.into_inner().expect("not poisoned");
    r.sort_by(|a, b| (&a.pair.from, &a.pair.to).cmp(&(&b.pair.from, &b.pair.to)));
    r
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_management_network_never_makes_a_pair() {
        let mut t = topology::parse_and_validate(
            "version: 1\nname: m\ndefaults: {image: tiny}\nmgmt: {subnet: 172.20.20.0/24, nat: true}\nnetworks: [{name: a, subnet: 10.1.0.0/24}, {name: b, subnet: 10.2.0.0/24}]\nnodes:\n  - {name: x, nics: [{network: a}]}\n  - {name: y, nics: [{network: a}]}\n  - {name: z, nics: [{network: b}]}\n",
            topology::Format::Yaml,
        )
        .unwrap();
        let pairs = super::pairs(&t);
        let names: Vec<(String, String, Option<String>)> = pairs
            .iter()
            .map(|p| (p.from.clone(), p.to.clone(), p.network.clone()))
            .collect();
        // x and y share network a; z shares only mgmt with them: no pair.
        assert_eq!(
            names,
            vec![
                ("x".into(), "y".into(), Some("a".into())),
                ("y".into(), "x".into(), Some("a".into())),
            ]
        );
        assert!(pairs.iter().all(|p| p.address.octets()[0] == 10));
        // Without mgmt, the same lab has the same pairs.
        t.mgmt = None;
        assert_eq!(super::pairs(&t).len(), 2);
    }

    use super::*;

    fn names(ps: &[Pair]) -> Vec<String> {
        ps.iter().map(|p| format!("{}->{}", p.from, p.to)).collect()
    }

    #[test]
    fn router_pairs_are_direct_and_routed() {
        let t = topology::parse_and_validate(topology::examples::ROUTER, topology::Format::Yaml)
            .unwrap();
        let ps = pairs(&t);
        assert_eq!(
            names(&ps),
            ["r1->h1", "r1->h2", "h1->r1", "h1->h2", "h2->r1", "h2->h1"]
        );
        let h1h2 = ps.iter().find(|p| p.from == "h1" && p.to == "h2").unwrap();
        assert_eq!(
            (h1h2.address, h1h2.network.as_deref()),
            ("10.20.0.12".parse().unwrap(), None)
        );
        let r1h1 = ps.iter().find(|p| p.from == "r1" && p.to == "h1").unwrap();
        assert_eq!(
            (r1h1.address, r1h1.network.as_deref()),
            ("10.10.0.11".parse().unwrap(), Some("left"))
        );
    }

    #[test]
    fn no_route_no_pair() {
        let mut t =
            topology::parse_and_validate(topology::examples::ROUTER, topology::Format::Yaml)
                .unwrap();
        t.nodes
            .iter_mut()
            .find(|n| n.name == "h1")
            .unwrap()
            .routes
            .clear();
        assert_eq!(
            names(&pairs(&t)),
            ["r1->h1", "r1->h2", "h1->r1", "h2->r1", "h2->h1"]
        );
    }

    #[test]
    fn rtt_is_read_from_busybox_ping() {
        let out = "PING 10.10.0.12 (10.10.0.12): 56 data bytes\n64 bytes from 10.10.0.12: seq=0 ttl=64 time=1.234 ms\n";
        assert_eq!(rtt(out), Some(1.234));
        assert_eq!(rtt("no answer"), None);
    }
}
