//! The management network (`mgmt:`), as the engine sees it: one more
//! network, named [`NETWORK`], with a NIC on it first in every node (eth0;
//! the node's own NICs become eth1, eth2, ...), an address for each node,
//! and a default route via the host for nodes without one of their own.
//! [`effective`] makes that topology; the engine works on it, the editor
//! and the files keep the user's.
//!
//! The host holds the subnet's first address (the gateway). Port forwards
//! are written `[HOST_ADDRESS:]HOST_PORT:VM:PORT[/tcp|/udp]`.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use crate::model::{Network, Nic, Route, Topology};
use crate::net::Ipv4Cidr;
use crate::Impair;

/// The management network's name in the effective topology (reserved: a
/// lab with `mgmt` cannot have a network of its own by that name).
pub const NETWORK: &str = "mgmt";

/// A transport protocol of a port forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One port forward: connections to `host_addr:host_port` on the host go
/// to `node`'s management address, port `port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForward {
    pub host_addr: Ipv4Addr,
    pub host_port: u16,
    pub node: String,
    pub port: u16,
    pub proto: Proto,
}

/// The lowest host port a forward may take: below it are the privileged
/// ports where the host's own services (sshd, DNS, a web server) listen.
pub const MIN_HOST_PORT: u16 = 1024;

impl PortForward {
    /// Whether the forward is reachable only from the host itself (its
    /// host address is loopback); any other address needs the host's
    /// opt-in (`up --expose`), see the engine's `mgmt::check_forwards`.
    pub fn local_only(&self) -> bool {
        self.host_addr.is_loopback()
    }
}

/// Reads "[HOST_ADDRESS:]HOST_PORT:VM:PORT[/tcp|/udp]" (host address
/// 127.0.0.1 when not given).
pub fn parse_port(s: &str) -> Result<PortForward, String> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Proto::Tcp),
        Some((spec, "udp")) => (spec, Proto::Udp),
        Some((_, other)) => return Err(format!("protocol {other:?} is not tcp or udp")),
        None => (s, Proto::Tcp),
    };
    let parts: Vec<&str> = spec.split(':').collect();
    let (addr, rest) = match parts.len() {
        3 => ("127.0.0.1", &parts[..]),
        4 => (parts[0], &parts[1..]),
        _ => {
            return Err(
                "expected [HOST_ADDRESS:]HOST_PORT:VM:PORT, e.g. 127.0.0.1:2201:r1:22".into(),
            )
        }
    };
    let host_addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| format!("{addr:?} is not an IPv4 address"))?;
    let port = |p: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("{p:?} is not a port (1-65535)")),
            Ok(n) => Ok(n),
        }
    };
    Ok(PortForward {
        host_addr,
        host_port: port(rest[0])?,
        node: rest[1].to_string(),
        port: port(rest[2])?,
        proto,
    })
}

/// The host's address on the management network: the subnet's first host.
pub fn gateway(subnet: &Ipv4Cidr) -> Option<Ipv4Cidr> {
    Some(Ipv4Cidr {
        addr: subnet.hosts().next()?,
        prefix: subnet.prefix,
    })
}

/// Every node's management address: its `mgmt_address`, else the lowest
/// free host after the gateway, in file order. Empty without `mgmt` (or
/// with a subnet that does not parse).
pub fn addresses(t: &Topology) -> BTreeMap<String, Ipv4Cidr> {
    let mut out = BTreeMap::new();
    let Some(subnet) = t
        .mgmt
        .as_ref()
        .and_then(|m| m.subnet.parse::<Ipv4Cidr>().ok())
    else {
        return out;
    };
    let gw = gateway(&subnet).map(|g| g.addr);
    let explicit: BTreeSet<Ipv4Addr> = t
        .nodes
        .iter()
        .filter_map(|n| n.mgmt_address.as_deref()?.parse().ok())
        .collect();
    let mut free = subnet
        .hosts()
        .filter(|h| Some(*h) != gw && !explicit.contains(h));
    for n in &t.nodes {
        let addr = match n.mgmt_address.as_deref().and_then(|a| a.parse().ok()) {
            Some(a) => Some(a),
            None => free.next(),
        };
        if let Some(addr) = addr {
            out.insert(
                n.name.clone(),
                Ipv4Cidr {
                    addr,
                    prefix: subnet.prefix,
                },
            );
        }
    }
    out
}

/// The topology the engine runs: with `mgmt`, the management network, a
/// first NIC on it in every node, and a default route via the host for
/// nodes without their own. Without `mgmt` (or once applied) `t` itself.
pub fn effective(t: &Topology) -> Cow<'_, Topology> {
    let Some(m) = &t.mgmt else {
        return Cow::Borrowed(t);
    };
    if t.network(NETWORK).is_some() {
        return Cow::Borrowed(t);
    }
    let Some(gw) = m.subnet.parse::<Ipv4Cidr>().ok().and_then(|s| gateway(&s)) else {
        return Cow::Borrowed(t);
    };
    let addrs = addresses(t);
    let mut e = t.clone();
    e.networks.push(Network {
        name: NETWORK.into(),
        subnet: Some(m.subnet.clone()),
        position: None,
    });
    for node in &mut e.nodes {
        node.nics.insert(
            0,
            Nic {
                network: NETWORK.into(),
                address: addrs.get(&node.name).map(|a| a.to_string()),
                mac: None,
                up: true,
                impair: Impair::NONE,
            },
        );
        let has_default = node
            .routes
            .iter()
            .any(|r| r.to.parse::<Ipv4Cidr>().is_ok_and(|c| c.prefix == 0));
        if !has_default {
            node.routes.push(Route {
                to: "0.0.0.0/0".into(),
                via: gw.addr.to_string(),
            });
        }
    }
    Cow::Owned(e)
}

/// The index in `node.nics` of the NIC the guest calls `eth{guest}`:
/// `None` for the management NIC (eth0 with `mgmt`).
pub fn own_nic_index(t: &Topology, guest: usize) -> Option<usize> {
    match t.mgmt {
        Some(_) => guest.checked_sub(1),
        None => Some(guest),
    }
}

/// The guest name of a node's own NIC `index` (eth1... with `mgmt`).
pub fn guest_nic_index(t: &Topology, index: usize) -> usize {
    index + usize::from(t.mgmt.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(mgmt: &str) -> Topology {
        crate::parse(
            &format!(
                "version: 1\nname: m\ndefaults: {{image: tiny}}\n{mgmt}networks: [{{name: lan, subnet: 10.1.0.0/24}}]\nnodes:\n  - {{name: r1, nics: [{{network: lan}}], routes: [{{to: 0.0.0.0/0, via: 10.1.0.9}}]}}\n  - {{name: r2, mgmt_address: 172.20.20.2, nics: [{{network: lan}}]}}\n  - {{name: r3}}\n"
            ),
            crate::Format::Yaml,
        )
        .unwrap()
    }

    #[test]
    fn effective_puts_mgmt_first_addresses_and_default_routes() {
        let t = lab("mgmt: {subnet: 172.20.20.0/24, nat: true}\n");
        let e = effective(&t);
        assert_eq!(
            e.network(NETWORK).unwrap().subnet.as_deref(),
            Some("172.20.20.0/24")
        );
        let addr = |n: &str| e.node(n).unwrap().nics[0].address.clone().unwrap();
        // .1 is the gateway; r2 asked for .2, so r1 and r3 get .3 and .4.
        assert_eq!(addr("r1"), "172.20.20.3/24");
        assert_eq!(addr("r2"), "172.20.20.2/24");
        assert_eq!(addr("r3"), "172.20.20.4/24");
        assert_eq!(e.node("r1").unwrap().nics[1].network, "lan");
        // r1 has a default route of its own; the others get one via the host.
        assert_eq!(e.node("r1").unwrap().routes.len(), 1);
        assert_eq!(e.node("r2").unwrap().routes[0].via, "172.20.20.1");
        // Applying twice changes nothing.
        assert_eq!(effective(&e).as_ref(), e.as_ref());
        // Without mgmt: the topology itself.
        let plain = lab("");
        assert!(matches!(effective(&plain), Cow::Borrowed(_)));
        assert_eq!(own_nic_index(&t, 0), None);
        assert_eq!(own_nic_index(&t, 2), Some(1));
        assert_eq!(own_nic_index(&plain, 0), Some(0));
        assert_eq!(guest_nic_index(&t, 0), 1);
    }

    #[test]
    fn port_forwards_parse_with_defaults_and_reasons() {
        let p = parse_port("127.0.0.1:2201:r1:22").unwrap();
        assert_eq!(
            p,
            PortForward {
                host_addr: Ipv4Addr::LOCALHOST,
                host_port: 2201,
                node: "r1".into(),
                port: 22,
                proto: Proto::Tcp
            }
        );
        let p = parse_port("8053:dns:53/udp").unwrap();
        assert_eq!((p.host_addr, p.proto), (Ipv4Addr::LOCALHOST, Proto::Udp));
        assert!(parse_port("2201:r1").unwrap_err().contains("expected"));
        assert!(parse_port("1.2.3:2201:r1:22")
            .unwrap_err()
            .contains("not an IPv4"));
        assert!(parse_port("0:r1:22").unwrap_err().contains("not a port"));
        assert!(parse_port("22:r1:22/sctp").unwrap_err().contains("sctp"));
    }
}
