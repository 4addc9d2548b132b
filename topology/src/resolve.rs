//! What a valid topology implies once defaults are applied: each NIC's
//! address (explicit, or the next free host of its network's subnet) and MAC.

use std::collections::{BTreeSet, HashMap};

use crate::model::Topology;
use crate::names::generated_mac;
use crate::net::{Ipv4Cidr, Mac};

/// One NIC, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedNic {
    pub network: String,
    /// Guest interface name: eth0, eth1, ... in order.
    pub ifname: String,
    pub mac: Mac,
    pub address: Option<Ipv4Cidr>,
}

/// The NICs of every node, by node name, in order. Automatic addresses are
/// handed out in file order (nodes, then NICs), lowest free host first, never
/// one that any NIC sets explicitly. Assumes a valid topology.
pub fn nics(t: &Topology) -> HashMap<String, Vec<ResolvedNic>> {
    let subnets: HashMap<&str, Ipv4Cidr> = t
        .networks
        .iter()
        .filter_map(|n| Some((n.name.as_str(), n.subnet.as_deref()?.parse().ok()?)))
        .collect();
    let mut used: HashMap<&str, BTreeSet<std::net::Ipv4Addr>> = HashMap::new();
    for node in &t.nodes {
        for nic in &node.nics {
            if let Some(a) = nic
                .address
                .as_deref()
                .and_then(|a| a.parse::<Ipv4Cidr>().ok())
            {
                used.entry(nic.network.as_str()).or_default().insert(a.addr);
            }
        }
    }
    let mut out = HashMap::new();
    for node in &t.nodes {
        let mut list = Vec::new();
        for (i, nic) in node.nics.iter().enumerate() {
            let mut address = nic.address.as_deref().and_then(|a| a.parse().ok());
            if address.is_none() {
                if let Some(subnet) = subnets.get(nic.network.as_str()) {
                    let taken = used.entry(nic.network.as_str()).or_default();
                    if let Some(ip) = subnet.hosts().find(|h| !taken.contains(h)) {
                        taken.insert(ip);
                        address = Some(Ipv4Cidr {
                            addr: ip,
                            prefix: subnet.prefix,
                        });
                    }
                }
            }
            list.push(ResolvedNic {
                network: nic.network.clone(),
                ifname: format!("eth{i}"),
                mac: nic
                    .mac
                    .as_deref()
                    .and_then(|m| m.parse().ok())
                    .unwrap_or_else(|| generated_mac(&t.name, &node.name, i)),
                address,
            });
        }
        out.insert(node.name.clone(), list);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn automatic_addresses_skip_explicit_ones() {
        let t = crate::parse(
            "version: 1\nname: a\ndefaults: {image: tiny}\nnetworks: [{name: lan, subnet: 10.0.0.0/29}]\nnodes:\n  - {name: x, nics: [{network: lan}]}\n  - {name: y, nics: [{network: lan, address: 10.0.0.1/29}]}\n  - {name: z, nics: [{network: lan}, {network: lan, mac: '52:54:00:00:00:09'}]}\n",
            crate::Format::Yaml,
        )
        .unwrap();
        assert!(crate::validate(&t).is_empty());
        let r = nics(&t);
        let addr = |n: &str, i: usize| r[n][i].address.map(|a| a.to_string());
        assert_eq!(addr("x", 0).as_deref(), Some("10.0.0.2/29"));
        assert_eq!(addr("y", 0).as_deref(), Some("10.0.0.1/29"));
        assert_eq!(addr("z", 0).as_deref(), Some("10.0.0.3/29"));
        assert_eq!(addr("z", 1).as_deref(), Some("10.0.0.4/29"));
        assert_eq!(r["z"][1].mac.to_string(), "52:54:00:00:00:09");
        assert_eq!(r["z"][1].ifname, "eth1");
        assert_eq!(r["x"][0].mac, generated_mac("a", "x", 0));
    }
}
