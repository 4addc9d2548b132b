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
    #[error("mgmt.ports[{index}]: {spec:?} listens on {addr}, beyond this host's loopback: it would expose {node}'s port to every machine that reaches {addr}; expose it with `minivm up --expose` (or the editor's \"Expose port forwards\" switch), or forward from 127.0.0.1")]
    NotExposed {
        index: usize,
        spec: String,
        addr: Ipv4Addr,
        node: String,
    },
    #[error("mgmt.ports[{index}]: {spec:?}: port {port}/{proto} is already listening on this host ({listener}); forward from a free port")]
    PortInUse {
        index: usize,
        spec: String,
        port: u16,
        proto: &'static str,
        listener: std::net::IpAddr,
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
const RULES_VERSION: &str = "3: host loopback not forwarded";

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
    // The host's own connections are forwarded only when addressed to the
    // forward's own address: one on every address (0.0.0.0) leaves the
    // host's loopback alone, so a local service on that port stays the
    // host's for the host.
    s.push_str("  }\n  chain output {\n    type nat hook output priority -100; policy accept;\n");
    for (rule, (f, _)) in dnat.iter().zip(&u.forwards) {
        if f.host_addr.is_unspecified() {
            let _ = writeln!(s, "    ip daddr != 127.0.0.0/8 {rule}");
        } else {
            let _ = writeln!(s, "    {rule}");
        }
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

/// The host's opt-in that lets lab `lab_dir`'s forwards listen beyond
/// loopback (`up --expose`, the editor's switch): a root-owned record in
/// the lab's directory, never a lab file's say.
fn expose_path(lab_dir: &Path) -> std::path::PathBuf {
    lab_dir.join("expose")
}

/// Whether the host opted in to lab `lab_dir`'s forwards beyond loopback.
pub fn exposed(lab_dir: &Path) -> bool {
    expose_path(lab_dir).is_file()
}

/// Records (or withdraws) the host's opt-in for lab `lab_dir`.
pub fn set_exposed(lab_dir: &Path, on: bool) -> Result<(), MgmtError> {
    let path = expose_path(lab_dir);
    let io = |action, source| MgmtError::Io {
        action,
        path: path.clone(),
        source,
    };
    if on {
        std::fs::create_dir_all(lab_dir).map_err(|e| io("create", e))?;
        crate::fsutil::write_atomic(&path, b"port forwards may listen beyond loopback\n")
            .map_err(|e| io("write", e))
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", e)),
            _ => Ok(()),
        }
    }
}

/// Refuses what `t`'s forwards would take from the host: a forward beyond
/// loopback without the host's opt-in, and a host port where a host
/// service already listens (`listeners`, see [`host_listeners`]).
pub fn check_forwards(t: &Topology, expose: bool, listeners: &[Listener]) -> Result<(), MgmtError> {
    let Some(m) = &t.mgmt else { return Ok(()) };
    for (index, spec) in m.ports.iter().enumerate() {
        let Ok(f) = topology::mgmt::parse_port(spec) else {
            continue;
        };
        if !f.local_only() && !expose {
            return Err(MgmtError::NotExposed {
                index,
                spec: spec.clone(),
                addr: f.host_addr,
                node: f.node,
            });
        }
        if let Some(l) = listeners.iter().find(|l| l.takes(&f)) {
            return Err(MgmtError::PortInUse {
                index,
                spec: spec.clone(),
                port: f.host_port,
                proto: f.proto.as_str(),
                listener: l.addr,
            });
        }
    }
    Ok(())
}

/// A socket of the host that listens (TCP) or is bound (UDP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub addr: std::net::IpAddr,
    pub port: u16,
    pub proto: topology::mgmt::Proto,
}

impl Listener {
    /// Whether forward `f` would take connections meant for this socket:
    /// same protocol and port, and addresses that overlap (either is the
    /// unspecified address, or both are the same IPv4 address).
    fn takes(&self, f: &PortForward) -> bool {
        let addr = match self.addr {
            std::net::IpAddr::V4(a) => Some(a),
            std::net::IpAddr::V6(a) if a.is_unspecified() => Some(Ipv4Addr::UNSPECIFIED),
            std::net::IpAddr::V6(a) => a.to_ipv4_mapped(),
        };
        self.proto == f.proto
            && self.port == f.host_port
            && addr.is_some_and(|a| {
                a.is_unspecified() || f.host_addr.is_unspecified() || a == f.host_addr
            })
    }
}

/// The host's listening TCP and bound UDP sockets, from
/// `/proc/net/{tcp,tcp6,udp,udp6}` (this network namespace's).
pub fn host_listeners() -> Vec<Listener> {
    use topology::mgmt::Proto;
    let mut out = Vec::new();
    for (file, proto, state) in [
        ("tcp", Proto::Tcp, "0A"),
        ("tcp6", Proto::Tcp, "0A"),
        ("udp", Proto::Udp, "07"),
        ("udp6", Proto::Udp, "07"),
    ] {
        let Ok(text) = std::fs::read_to_string(Path::new("/proc/net").join(file)) else {
            continue;
        };
        out.extend(parse_proc_net(&text, proto, state));
    }
    out
}

/// The sockets in state `state` of one `/proc/net/{tcp,udp}[6]` table.
fn parse_proc_net(text: &str, proto: topology::mgmt::Proto, state: &str) -> Vec<Listener> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.get(3) != Some(&state) {
                return None;
            }
            let (addr, port) = f.get(1)?.split_once(':')?;
            let port = u16::from_str_radix(port, 16).ok()?;
            // The kernel prints each 32-bit word in host byte order.
            let words: Vec<u32> = (0..addr.len() / 8)
                .map(|i| u32::from_str_radix(&addr[i * 8..i * 8 + 8], 16).ok())
                .collect::<Option<_>>()?;
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_ne_bytes()).collect();
            let addr = match bytes.len() {
                4 => std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
                16 => std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
                _ => return None,
            };
            Some(Listener { addr, port, proto })
        })
        .collect()
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
    // Every way to a running lab comes here: no forward beyond loopback
    // without the host's opt-in, whoever asked for the lab.
    check_forwards(t, exposed(lab_dir), &[])?;
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
        // ... but the host's own connections to its loopback stay its own.
        assert_eq!(
            s.matches("ip daddr != 127.0.0.0/8 fib daddr type local udp dport 8053")
                .count(),
            1,
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
    fn forwards_beyond_loopback_need_the_opt_in_and_a_free_port() {
        use std::net::IpAddr;
        use topology::mgmt::Proto;
        let t = lab(
            "mgmt: {subnet: 172.20.20.0/24, ports: [\"2201:r1:22\", \"0.0.0.0:8053:r2:53/udp\"]}\n",
        );
        let e = check_forwards(&t, false, &[]).unwrap_err().to_string();
        assert!(
            e.starts_with("mgmt.ports[1]: \"0.0.0.0:8053:r2:53/udp\" listens on 0.0.0.0")
                && e.contains("--expose"),
            "{e}"
        );
        assert!(check_forwards(&t, true, &[]).is_ok());
        let listener = |addr: &str, port, proto| Listener {
            addr: addr.parse::<IpAddr>().unwrap(),
            port,
            proto,
        };
        // sshd on every address (IPv6 socket taking IPv4 too) holds 2201.
        let e = check_forwards(&t, true, &[listener("::", 2201, Proto::Tcp)])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("mgmt.ports[0]: \"2201:r1:22\": port 2201/tcp is already listening on this host (::)"),
            "{e}"
        );
        // Another address, protocol or port does not collide; a forward on
        // every address collides with any listener of its port.
        for other in [
            listener("192.0.2.1", 2201, Proto::Tcp),
            listener("127.0.0.1", 2201, Proto::Udp),
            listener("127.0.0.1", 2202, Proto::Tcp),
            listener("::1", 2201, Proto::Tcp),
        ] {
            assert!(
                check_forwards(&t, true, std::slice::from_ref(&other)).is_ok(),
                "{other:?}"
            );
        }
        assert!(check_forwards(&t, true, &[listener("192.0.2.1", 8053, Proto::Udp)]).is_err());
        assert!(
            check_forwards(&t, true, &[listener("::ffff:127.0.0.1", 2201, Proto::Tcp)]).is_err()
        );
    }

    #[test]
    fn proc_net_tables_are_read() {
        use topology::mgmt::Proto;
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n   1: 0100007F:0BB8 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 20 4 30 10 -1\n";
        assert_eq!(
            parse_proc_net(tcp, Proto::Tcp, "0A"),
            vec![Listener {
                addr: "127.0.0.1".parse().unwrap(),
                port: 3000,
                proto: Proto::Tcp
            }]
        );
        let tcp6 = "  sl  local_address                         remote_address                        st\n   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 0\n   1: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 0A 0\n";
        let got = parse_proc_net(tcp6, Proto::Tcp, "0A");
        assert_eq!(got[0].addr, "::".parse::<std::net::IpAddr>().unwrap());
        assert_eq!((got[1].addr, got[1].port), ("::1".parse().unwrap(), 53));
        // This host's own table reads without error.
        let _ = host_listeners();
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
