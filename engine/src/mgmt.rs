//! The management network's host side (`mgmt:` in the topology; the guest
//! side is an ordinary network, see `topology::mgmt::effective`).
//!
//! An isolated lab's management bridge lives in its namespace; a veth
//! joins it to the host: the host end (`mvh…`, alias `minivm:<lab>:mgmt`)
//! holds the gateway address, so the host reaches every VM's management
//! address through the connected route that address brings. A host-mode
//! lab's bridge holds the address itself. NAT (masquerade of what VMs send
//! beyond the host) and port forwards (DNAT from a host address and port to
//! a VM's management address) are rules of the lab's own nftables table
//! `ip minivm-<lab>`: the host's own rules and routes are never edited.
//! The only host settings touched are two of the lab's own interface:
//! `forwarding` (VMs' traffic may be routed on) and `route_localnet` (a
//! forward from 127.0.0.1 may leave through it, masqueraded). The same
//! table guards the host from the guests: nothing from the lab's interface
//! to or from 127.0.0.0/8, and nothing into the host but replies to what
//! the host started and a ping of the gateway.
//!
//! What was applied is recorded in `<lab>/mgmt.json` (a hash), trusted
//! only while the interface and the table are there.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;

use topology::mgmt::PortForward;
use topology::names::{bridge_ifname, mgmt_host_ifname, mgmt_peer_ifname, netns_name};
use topology::net::Ipv4Cidr;
use topology::{NetworkMode, Topology};

use crate::net;
use crate::process::{self, ProcessError};

#[derive(Debug, thiserror::Error)]
pub enum MgmtError {
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error("cannot apply the nftables table {table}")]
    Nft { table: String, source: ProcessError },
    #[error("mgmt.subnet {subnet} overlaps {addr}/{prefix} of the host's interface {ifname}; choose another subnet")]
    Overlap {
        subnet: Ipv4Cidr,
        ifname: String,
        addr: Ipv4Addr,
        prefix: u8,
    },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The host side a lab's `mgmt` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uplink {
    /// The interface in the host's namespace holding the gateway address:
    /// the veth's host end (isolated labs) or the bridge (host mode).
    pub host_if: String,
    /// The veth's end in the lab's namespace (isolated labs).
    pub peer_if: Option<String>,
    pub bridge: String,
    pub gateway: Ipv4Cidr,
    pub subnet: Ipv4Cidr,
    pub nat: bool,
    /// Each forward with its VM's management address.
    pub forwards: Vec<(PortForward, Ipv4Addr)>,
}

impl Uplink {
    /// What `t` asks for; `None` without `mgmt` (a valid topology).
    pub fn desired(t: &Topology) -> Option<Uplink> {
        let m = t.mgmt.as_ref()?;
        let subnet: Ipv4Cidr = m.subnet.parse().ok()?;
        let gateway = topology::mgmt::gateway(&subnet)?;
        let addrs = topology::mgmt::addresses(t);
        let bridge = bridge_ifname(&t.name, topology::mgmt::NETWORK);
        let (host_if, peer_if) = match t.network_mode {
            NetworkMode::Isolated => (mgmt_host_ifname(&t.name), Some(mgmt_peer_ifname(&t.name))),
            NetworkMode::Host => (bridge.clone(), None),
        };
        let forwards = m
            .ports
            .iter()
            .filter_map(|p| {
                let f = topology::mgmt::parse_port(p).ok()?;
                let to = addrs.get(&f.node)?.addr;
                Some((f, to))
            })
            .collect();
        Some(Uplink {
            host_if,
            peer_if,
            bridge,
            gateway,
            subnet,
            nat: m.nat,
            forwards,
        })
    }

    /// A digest of everything applied, to tell an out-of-date host side
    /// (the rules' version too: a host side made by an older minivm, with
    /// rules since added, is applied again).
    pub fn hash(&self) -> String {
        format!(
            "{:016x}",
            topology::names::stable_hash(&[RULES_VERSION, &format!("{self:?}")])
        )
    }
}

/// Bumped when `nft_script` makes other rules for the same uplink.
const RULES_VERSION: &str = "2: guard";

/// The lab's nftables table (family `ip`; the impairments' table of the
/// same name is family `netdev`).
pub fn table(lab: &str) -> String {
    format!("minivm-{lab}")
}

/// The nft script that makes the lab's table exactly what `u` asks for
/// (created if missing, then replaced whole, in one transaction).
pub fn nft_script(lab: &str, u: &Uplink) -> String {
    let table = table(lab);
    let mut s = format!("add table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n");
    let dnat: Vec<String> = u
        .forwards
        .iter()
        .map(|(f, to)| {
            let daddr = if f.host_addr.is_unspecified() {
                "fib daddr type local".to_string()
            } else {
                format!("ip daddr {}", f.host_addr)
            };
            let proto = f.proto.as_str();
            format!(
                "{daddr} {proto} dport {} dnat to {to}:{}",
                f.host_port, f.port
            )
        })
        .collect();
    // Connections from elsewhere arrive through prerouting; the host's own
    // (127.0.0.1 included) through output.
    s.push_str(
        "  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n",
    );
    for (rule, (f, _)) in dnat.iter().zip(&u.forwards) {
        if !f.host_addr.is_loopback() {
            let _ = writeln!(s, "    {rule}");
        }
    }
    s.push_str("  }\n  chain output {\n    type nat hook output priority -100; policy accept;\n");
    for rule in &dnat {
        let _ = writeln!(s, "    {rule}");
    }
    s.push_str("  }\n  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n");
    // A forwarded connection reaches the VM from the gateway, so that the
    // VM's reply comes back this way whatever its own default route.
    let _ = writeln!(s, "    oifname \"{}\" ct status dnat masquerade", u.host_if);
    if u.nat {
        let _ = writeln!(
            s,
            "    ip saddr {} oifname != \"{}\" masquerade",
            Ipv4Cidr {
                addr: u.subnet.network(),
                prefix: u.subnet.prefix
            },
            u.host_if
        );
    }
    s.push_str("  }\n");
    guard(&mut s, u);
    s.push_str("}\n");
    s
}

/// What keeps the lab's guests off the host: nothing arriving from the
/// lab's host interface is addressed to or from 127.0.0.0/8 (its
/// `route_localnet`, which lets a forward from 127.0.0.1 leave through it,
/// would otherwise deliver a guest's frame to any loopback service), and
/// nothing reaches a host service: only replies to what the host started
/// and a ping of the gateway are let in. Port forwards are DNAT to a VM
/// (the forward path), untouched.
fn guard(s: &mut String, u: &Uplink) {
    let i = &u.host_if;
    s.push_str("  chain guard_prerouting {\n    type filter hook prerouting priority raw; policy accept;\n");
    let _ = writeln!(s, "    iifname \"{i}\" ip daddr 127.0.0.0/8 drop");
    let _ = writeln!(s, "    iifname \"{i}\" ip saddr 127.0.0.0/8 drop");
    s.push_str(
        "  }\n  chain guard_input {\n    type filter hook input priority filter; policy accept;\n",
    );
    let _ = writeln!(s, "    iifname \"{i}\" ct state established,related accept");
    let _ = writeln!(
        s,
        "    iifname \"{i}\" ip daddr {} icmp type echo-request accept",
        u.gateway.addr
    );
    let _ = writeln!(s, "    iifname \"{i}\" drop");
    s.push_str("  }\n");
}

fn record_path(lab_dir: &Path) -> std::path::PathBuf {
    lab_dir.join("mgmt.json")
}

fn nft_run(script: &str, table: &str) -> Result<(), MgmtError> {
    process::run_with_input(
        Command::new("nft").args(["-f", "-"]),
        Some(script.as_bytes()),
    )
    .map(|_| ())
    .map_err(|source| MgmtError::Nft {
        table: table.to_string(),
        source,
    })
}

fn table_exists(lab: &str) -> bool {
    process::run(Command::new("nft").args(["list", "table", "ip", &table(lab)])).is_ok()
}

/// Sets an IPv4 sysctl of the lab's own interface.
fn set_conf(ifname: &str, key: &str, value: &str) -> Result<(), MgmtError> {
    let path = Path::new("/proc/sys/net/ipv4/conf").join(ifname).join(key);
    std::fs::write(&path, value).map_err(|source| MgmtError::Io {
        action: "write",
        path,
        source,
    })
}

/// Makes the host side what `u` asks for: the veth (isolated labs), the
/// gateway address, the interface's two settings, the nftables table, the
/// record. The management bridge exists already (an earlier step).
pub fn apply(t: &Topology, u: &Uplink, lab_dir: &Path) -> Result<(), MgmtError> {
    let lab = &t.name;
    // Another interface of the host with an address on this subnet (another
    // lab's, a VPN's) would take its traffic.
    for (ifname, addr, prefix) in net::ipv4_addresses(None)? {
        if ifname == u.host_if {
            continue;
        }
        if u.subnet.contains(addr) {
            return Err(MgmtError::Overlap {
                subnet: u.subnet,
                ifname,
                addr,
                prefix,
            });
        }
    }
    if let Some(peer) = &u.peer_if {
        let ns = netns_name(lab);
        net::ensure_veth_into(&u.host_if, &net::owner_alias(lab, "mgmt"), peer, &ns)?;
        net::ensure_port(
            Some(&ns),
            peer,
            &net::owner_alias(lab, "mgmt/peer"),
            &u.bridge,
        )?;
    }
    net::set_only_ipv4(None, &u.host_if, u.gateway.addr, u.gateway.prefix)?;
    set_conf(&u.host_if, "forwarding", "1")?;
    set_conf(&u.host_if, "route_localnet", "1")?;
    nft_run(&nft_script(lab, u), &table(lab))?;
    if u.nat
        && std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "0")
    {
        tracing::warn!(
            lab = %lab,
            "mgmt.nat: the host does not forward IPv4 (net.ipv4.ip_forward=0): VMs reach the host, but replies from beyond it are dropped unless the outside interface forwards"
        );
    }
    let path = record_path(lab_dir);
    crate::fsutil::write_atomic(&path, u.hash().as_bytes()).map_err(|source| MgmtError::Io {
        action: "write",
        path,
        source,
    })
}

/// The hash of what was applied, if its interface and table are there.
pub fn observe(t: &Topology, lab_dir: &Path) -> Option<String> {
    let hash = std::fs::read_to_string(record_path(lab_dir)).ok()?;
    let host_if = match t.network_mode {
        NetworkMode::Isolated => mgmt_host_ifname(&t.name),
        NetworkMode::Host => bridge_ifname(&t.name, topology::mgmt::NETWORK),
    };
    let alias_prefix = format!("minivm:{}:", t.name);
    let present = net::links(None).ok()?.iter().any(|l| {
        l.name == host_if
            && l.alias
                .as_deref()
                .is_some_and(|a| a.starts_with(&alias_prefix))
    });
    (present && table_exists(&t.name)).then(|| hash.trim().to_string())
}

/// Removes the lab's table (if any) and its record; the interfaces go
/// with the lab's others (by alias) or with its namespace.
pub fn remove(lab: &str, lab_dir: &Path) -> Result<(), MgmtError> {
    let table = table(lab);
    let script = format!("add table ip {table}\ndelete table ip {table}\n");
    match process::run_with_input(
        Command::new("nft").args(["-f", "-"]),
        Some(script.as_bytes()),
    ) {
        // Without nft installed there is no table to remove.
        Ok(_) | Err(ProcessError::Spawn { .. }) => {}
        Err(source) => return Err(MgmtError::Nft { table, source }),
    }
    let _ = std::fs::remove_file(record_path(lab_dir));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab(extra: &str) -> Topology {
        topology::parse(
            &format!("version: 1\nname: m\ndefaults: {{image: tiny}}\n{extra}nodes:\n  - {{name: r1}}\n  - {{name: r2, mgmt_address: 172.20.20.50}}\n"),
            topology::Format::Yaml,
        )
        .unwrap()
    }

    #[test]
    fn an_isolated_lab_gets_a_veth_and_its_table_nat_and_forwards() {
        let t = lab("mgmt: {subnet: 172.20.20.0/24, nat: true, ports: [\"127.0.0.1:2201:r1:22\", \"0.0.0.0:8053:r2:53/udp\"]}\n");
        let u = Uplink::desired(&t).unwrap();
        assert_eq!(u.host_if, mgmt_host_ifname("m"));
        assert_eq!(u.peer_if, Some(mgmt_peer_ifname("m")));
        assert_eq!(u.gateway.to_string(), "172.20.20.1/24");
        let s = nft_script("m", &u);
        let host = &u.host_if;
        assert!(
            s.starts_with("add table ip minivm-m\ndelete table ip minivm-m\ntable ip minivm-m {\n"),
            "{s}"
        );
        // The loopback forward only from the host itself; 0.0.0.0 both ways.
        assert_eq!(
            s.matches("ip daddr 127.0.0.1 tcp dport 2201 dnat to 172.20.20.2:22")
                .count(),
            1,
            "{s}"
        );
        assert_eq!(
            s.matches("fib daddr type local udp dport 8053 dnat to 172.20.20.50:53")
                .count(),
            2,
            "{s}"
        );
        assert!(
            s.contains(&format!("oifname \"{host}\" ct status dnat masquerade")),
            "{s}"
        );
        assert!(
            s.contains(&format!(
                "ip saddr 172.20.20.0/24 oifname != \"{host}\" masquerade"
            )),
            "{s}"
        );
        // Guests are kept off the host's loopback and services.
        for rule in [
            format!("iifname \"{host}\" ip daddr 127.0.0.0/8 drop"),
            format!("iifname \"{host}\" ip saddr 127.0.0.0/8 drop"),
            format!("iifname \"{host}\" ct state established,related accept"),
            format!("iifname \"{host}\" ip daddr 172.20.20.1 icmp type echo-request accept"),
            format!("iifname \"{host}\" drop"),
        ] {
            assert_eq!(s.matches(&rule).count(), 1, "{rule}: {s}");
        }
        assert!(
            s.find("ct state established").unwrap()
                < s.find(&format!("iifname \"{host}\" drop")).unwrap(),
            "replies are let in before the drop: {s}"
        );
    }

    #[test]
    fn without_nat_nothing_is_masqueraded_but_forwards_and_the_hash_follows_changes() {
        let t = lab("mgmt: {subnet: 172.20.20.0/24}\n");
        let u = Uplink::desired(&t).unwrap();
        assert!(!nft_script("m", &u).contains("ip saddr 172.20.20.0/24"));
        let with_nat =
            Uplink::desired(&lab("mgmt: {subnet: 172.20.20.0/24, nat: true}\n")).unwrap();
        assert_ne!(u.hash(), with_nat.hash());
        assert_eq!(u.hash(), Uplink::desired(&t).unwrap().hash());
        assert!(Uplink::desired(&lab("")).is_none());
        // A host-mode lab: the bridge holds the address, no veth.
        let h =
            Uplink::desired(&lab("network_mode: host\nmgmt: {subnet: 172.20.20.0/24}\n")).unwrap();
        assert_eq!((h.host_if.clone(), h.peer_if), (h.bridge, None));
    }
}
