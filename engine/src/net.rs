//! Host networking for labs: network namespaces, Linux bridges (rtnetlink)
//! and TAP devices (/dev/net/tun). Every object the engine creates carries
//! its owner in the interface alias (`minivm:<lab>:<object>`); the engine
//! adopts an existing object only with its own alias and deletes only those.
//!
//! The kernel sets an alias only on an existing link, so creation is two
//! steps; a crash between them leaves our derived name without an alias. Such
//! an interface (exactly the name we derive, no alias at all) is adopted:
//! nothing else makes `mvb`/`mvt` + hash names. One with another alias never is.
//!
//! Namespaces are per thread on Linux: each operation runs on a short-lived
//! thread that enters the namespace, so the caller's thread never moves.

use std::fs::File;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use futures::TryStreamExt;
use nix::sched::{setns, CloneFlags};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use rtnetlink::{Handle, LinkBridge, LinkUnspec};

use crate::process;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("network namespace {0:?} does not exist")]
    NoNamespace(String),
    #[error("cannot enter network namespace {name:?}")]
    Enter { name: String, source: nix::Error },
    #[error("netlink request failed")]
    Netlink(#[source] rtnetlink::Error),
    #[error("cannot open a netlink connection")]
    Connect(#[source] std::io::Error),
    #[error("the netlink thread for namespace {0:?} panicked")]
    Panicked(String),
    #[error("{ifname} exists but is not ours (alias {alias:?}); rename or remove it, MiniVM will not touch it")]
    NotOwned {
        ifname: String,
        alias: Option<String>,
    },
    #[error("no interface named {0}")]
    NoLink(String),
    #[error("TAP {ifname}: {op} failed")]
    Tun {
        ifname: String,
        op: &'static str,
        source: nix::Error,
    },
    #[error("cannot open /dev/net/tun")]
    TunDevice(#[source] std::io::Error),
    #[error(transparent)]
    Process(#[from] process::ProcessError),
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// The alias that marks an interface as `lab`'s.
pub fn owner_alias(lab: &str, object: &str) -> String {
    format!("minivm:{lab}:{object}")
}

/// An interface as netlink reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
    pub alias: Option<String>,
    pub kind: Option<String>,
    pub controller: Option<u32>,
    /// Administratively up (IFF_UP).
    pub up: bool,
}

fn netns_path(name: &str) -> std::path::PathBuf {
    Path::new("/run/netns").join(name)
}

pub fn namespace_exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Creates the named namespace (as `ip netns add` does, so `ip -n` works
/// too); one that exists already is success.
pub fn create_namespace(name: &str) -> Result<()> {
    if namespace_exists(name) {
        return Ok(());
    }
    process::run(std::process::Command::new("ip").args(["netns", "add", name]))?;
    Ok(())
}

/// Deletes the named namespace, and with it every interface inside.
pub fn delete_namespace(name: &str) -> Result<()> {
    if !namespace_exists(name) {
        return Ok(());
    }
    process::run(std::process::Command::new("ip").args(["netns", "del", name]))?;
    Ok(())
}

/// Runs `op` on a fresh thread inside namespace `ns` (`None`: the host's),
/// with a netlink handle opened there.
fn in_ns<T, F, Fut>(ns: Option<&str>, op: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T>>,
{
    let ns = ns.map(str::to_string);
    let name = ns.clone().unwrap_or_else(|| "host".into());
    std::thread::spawn(move || {
        enter(ns.as_deref())?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(NetError::Connect)?;
        rt.block_on(async move {
            let (conn, handle, _) = rtnetlink::new_connection().map_err(NetError::Connect)?;
            tokio::spawn(conn);
            op(handle).await
        })
    })
    .join()
    .unwrap_or_else(|_| Err(NetError::Panicked(name)))
}

/// Moves the calling thread into namespace `ns` (`None`: stays).
pub fn enter_namespace(ns: Option<&str>) -> Result<()> {
    enter(ns)
}

/// Moves the calling thread into namespace `ns`.
fn enter(ns: Option<&str>) -> Result<()> {
    if let Some(name) = ns {
        let f =
            File::open(netns_path(name)).map_err(|_| NetError::NoNamespace(name.to_string()))?;
        setns(f, CloneFlags::CLONE_NEWNET).map_err(|source| NetError::Enter {
            name: name.to_string(),
            source,
        })?;
    }
    Ok(())
}

fn to_link(m: &LinkMessage) -> Link {
    let mut l = Link {
        name: String::new(),
        index: m.header.index,
        alias: None,
        kind: None,
        controller: None,
        up: m
            .header
            .flags
            .contains(rtnetlink::packet_route::link::LinkFlags::Up),
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::IfAlias(n) => l.alias = Some(n.clone()),
            LinkAttribute::Controller(c) => l.controller = Some(*c),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        l.kind = Some(match k {
                            InfoKind::Bridge => "bridge".to_string(),
                            InfoKind::Tun => "tun".to_string(),
                            other => format!("{other:?}").to_lowercase(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    l
}

async fn get_links(handle: &Handle) -> Result<Vec<Link>> {
    let msgs: Vec<LinkMessage> = handle
        .link()
        .get()
        .execute()
        .try_collect()
        .await
        .map_err(NetError::Netlink)?;
    Ok(msgs.iter().map(to_link).collect())
}

/// Every interface in `ns`.
pub fn links(ns: Option<&str>) -> Result<Vec<Link>> {
    in_ns(ns, |h| async move { get_links(&h).await })
}

/// Makes sure bridge `ifname` exists in `ns`, up, owned by `alias`.
pub fn ensure_bridge(ns: Option<&str>, ifname: &str, alias: &str) -> Result<()> {
    let (ifname, alias) = (ifname.to_string(), alias.to_string());
    in_ns(ns, move |h| async move {
        let index = match get_links(&h).await?.into_iter().find(|l| l.name == ifname) {
            Some(l) => {
                if !adoptable(&l, &alias) || l.kind.as_deref() != Some("bridge") {
                    return Err(NetError::NotOwned {
                        ifname,
                        alias: l.alias,
                    });
                }
                l.index
            }
            None => {
                h.link()
                    .add(LinkBridge::new(&ifname).build())
                    .execute()
                    .await
                    .map_err(NetError::Netlink)?;
                get_links(&h)
                    .await?
                    .into_iter()
                    .find(|l| l.name == ifname)
                    .ok_or(NetError::NoLink(ifname))?
                    .index
            }
        };
        h.link()
            .set(LinkUnspec::new_with_index(index).alias(alias).up().build())
            .execute()
            .await
            .map_err(NetError::Netlink)
    })
}

/// Ours: our alias, or no alias at all (a create interrupted before its alias).
fn adoptable(l: &Link, alias: &str) -> bool {
    l.alias.as_deref().is_none_or(|a| a == alias)
}

const IFF_TAP: i16 = 0x0002;
const IFF_NO_PI: i16 = 0x1000;

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: i16,
    _pad: [u8; 22],
}

nix::ioctl_write_ptr_bad!(tunsetiff, 0x4004_54ca, IfReq);
nix::ioctl_write_int_bad!(tunsetpersist, 0x4004_54cb);

/// Opens (creating if needed) TAP `ifname` in the calling thread's
/// namespace and returns its queue fd.
fn tun_open(ifname: &str) -> Result<OwnedFd> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(NetError::TunDevice)?;
    let mut req = IfReq {
        name: [0; 16],
        flags: IFF_TAP | IFF_NO_PI,
        _pad: [0; 22],
    };
    let bytes = ifname.as_bytes();
    req.name[..bytes.len().min(15)].copy_from_slice(&bytes[..bytes.len().min(15)]);
    // SAFETY: the fd is an open /dev/net/tun; `req` is a properly sized,
    // NUL-terminated ifreq that lives across the call.
    unsafe { tunsetiff(f.as_raw_fd(), &req) }.map_err(|source| NetError::Tun {
        ifname: ifname.to_string(),
        op: "TUNSETIFF",
        source,
    })?;
    Ok(f.into())
}

/// Makes sure TAP `ifname` exists in `ns` (persistent, so it outlives the
/// fd that made it), owned by `alias`, enslaved to `bridge` and up.
pub fn ensure_tap(ns: Option<&str>, ifname: &str, alias: &str, bridge: &str) -> Result<()> {
    let (ifname, alias, bridge) = (ifname.to_string(), alias.to_string(), bridge.to_string());
    in_ns(ns, move |h| async move {
        let links = get_links(&h).await?;
        if let Some(l) = links.iter().find(|l| l.name == ifname) {
            if !adoptable(l, &alias) {
                return Err(NetError::NotOwned {
                    ifname,
                    alias: l.alias.clone(),
                });
            }
        } else {
            let fd = tun_open(&ifname)?;
            // SAFETY: fd is the TAP queue just opened; 1 turns persistence on.
            unsafe { tunsetpersist(fd.as_raw_fd(), 1) }.map_err(|source| NetError::Tun {
                ifname: ifname.clone(),
                op: "TUNSETPERSIST",
                source,
            })?;
        }
        let links = get_links(&h).await?;
        let tap = links
            .iter()
            .find(|l| l.name == ifname)
            .ok_or_else(|| NetError::NoLink(ifname.clone()))?;
        let br = links
            .iter()
            .find(|l| l.name == bridge)
            .ok_or_else(|| NetError::NoLink(bridge.clone()))?;
        h.link()
            .set(
                LinkUnspec::new_with_index(tap.index)
                    .alias(alias)
                    .controller(br.index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(NetError::Netlink)
    })
}

/// Opens a queue of the existing TAP `ifname` in `ns`, for QEMU
/// (`-netdev tap,fd=N`). The fd stays valid whatever thread it goes to.
pub fn open_tap(ns: Option<&str>, ifname: &str) -> Result<OwnedFd> {
    // A QEMU that was just killed may still be tearing down its threads,
    // holding the TAP (EBUSY) after its main thread is gone: wait for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open_tap_once(ns, ifname) {
            Err(NetError::Tun {
                source: nix::Error::EBUSY,
                ..
            }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            other => return other,
        }
    }
}

fn open_tap_once(ns: Option<&str>, ifname: &str) -> Result<OwnedFd> {
    let ifname = ifname.to_string();
    // (sysfs shows the namespace it was mounted in, so ask netlink.)
    in_ns(ns, move |h| async move {
        match get_links(&h).await?.into_iter().find(|l| l.name == ifname) {
            Some(l) if l.kind.as_deref() == Some("tun") => tun_open(&ifname),
            Some(l) => Err(NetError::NotOwned {
                ifname,
                alias: l.alias,
            }),
            None => Err(NetError::NoLink(ifname)),
        }
    })
}

/// Deletes interface `ifname` in `ns` if, and only if, `alias` owns it.
/// A missing interface is success.
pub fn delete_owned(ns: Option<&str>, ifname: &str, alias: &str) -> Result<()> {
    let (ifname, alias) = (ifname.to_string(), alias.to_string());
    in_ns(ns, move |h| async move {
        let Some(l) = get_links(&h).await?.into_iter().find(|l| l.name == ifname) else {
            return Ok(());
        };
        if l.alias.as_deref() != Some(alias.as_str()) {
            return Err(NetError::NotOwned {
                ifname,
                alias: l.alias,
            });
        }
        h.link()
            .del(l.index)
            .execute()
            .await
            .map_err(NetError::Netlink)
    })
}

/// Makes sure the veth pair `host` (in the host's namespace, owned by
/// `alias`) ↔ `peer` (in namespace `ns`) exists. A `host` end whose peer is
/// not in `ns` (a create cut short) is made again.
pub fn ensure_veth_into(host: &str, alias: &str, peer: &str, ns: &str) -> Result<()> {
    let peer_in_ns = links(Some(ns))?.iter().any(|l| l.name == peer);
    let (host, alias, peer, ns) = (
        host.to_string(),
        alias.to_string(),
        peer.to_string(),
        ns.to_string(),
    );
    in_ns(None, move |h| async move {
        let existing = get_links(&h).await?.into_iter().find(|l| l.name == host);
        if let Some(l) = &existing {
            if !adoptable(l, &alias) || l.kind.as_deref() != Some("veth") {
                return Err(NetError::NotOwned {
                    ifname: host,
                    alias: l.alias.clone(),
                });
            }
            if !peer_in_ns {
                h.link()
                    .del(l.index)
                    .execute()
                    .await
                    .map_err(NetError::Netlink)?;
            }
        }
        if existing.is_none() || !peer_in_ns {
            // A peer left in the host's namespace by a cut-short create.
            if let Some(stray) = get_links(&h).await?.into_iter().find(|l| l.name == peer) {
                if stray.kind.as_deref() == Some("veth") && stray.alias.is_none() {
                    h.link()
                        .del(stray.index)
                        .execute()
                        .await
                        .map_err(NetError::Netlink)?;
                }
            }
            h.link()
                .add(rtnetlink::LinkVeth::new(&host, &peer).build())
                .execute()
                .await
                .map_err(NetError::Netlink)?;
            let f = File::open(netns_path(&ns)).map_err(|_| NetError::NoNamespace(ns.clone()))?;
            h.link()
                .set(
                    LinkUnspec::new_with_name(&peer)
                        .setns_by_fd(f.as_raw_fd())
                        .build(),
                )
                .execute()
                .await
                .map_err(NetError::Netlink)?;
        }
        let index = get_links(&h)
            .await?
            .into_iter()
            .find(|l| l.name == host)
            .ok_or_else(|| NetError::NoLink(host.clone()))?
            .index;
        h.link()
            .set(LinkUnspec::new_with_index(index).alias(alias).up().build())
            .execute()
            .await
            .map_err(NetError::Netlink)
    })
}

/// Sets `ifname` in `ns` owned by `alias`, a port of `bridge`, and up.
pub fn ensure_port(ns: Option<&str>, ifname: &str, alias: &str, bridge: &str) -> Result<()> {
    let (ifname, alias, bridge) = (ifname.to_string(), alias.to_string(), bridge.to_string());
    in_ns(ns, move |h| async move {
        let links = get_links(&h).await?;
        let find = |n: &str| {
            links
                .iter()
                .find(|l| l.name == n)
                .ok_or_else(|| NetError::NoLink(n.to_string()))
        };
        let (port, br) = (find(&ifname)?, find(&bridge)?);
        if !adoptable(port, &alias) {
            return Err(NetError::NotOwned {
                ifname,
                alias: port.alias.clone(),
            });
        }
        h.link()
            .set(
                LinkUnspec::new_with_index(port.index)
                    .alias(alias)
                    .controller(br.index)
                    .up()
                    .build(),
            )
            .execute()
            .await
            .map_err(NetError::Netlink)
    })
}

/// Every IPv4 address in `ns`: (interface name, address, prefix).
pub fn ipv4_addresses(ns: Option<&str>) -> Result<Vec<(String, std::net::Ipv4Addr, u8)>> {
    use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
    in_ns(ns, |h| async move {
        let links = get_links(&h).await?;
        let msgs: Vec<AddressMessage> = h
            .address()
            .get()
            .execute()
            .try_collect()
            .await
            .map_err(NetError::Netlink)?;
        Ok(msgs
            .iter()
            .filter_map(|m| {
                let ip = m.attributes.iter().find_map(|a| match a {
                    AddressAttribute::Local(std::net::IpAddr::V4(ip))
                    | AddressAttribute::Address(std::net::IpAddr::V4(ip)) => Some(*ip),
                    _ => None,
                })?;
                let name = links
                    .iter()
                    .find(|l| l.index == m.header.index)
                    .map(|l| l.name.clone())?;
                Some((name, ip, m.header.prefix_len))
            })
            .collect())
    })
}

/// Makes `addr/prefix` the one IPv4 address of `ifname` in `ns` (others
/// removed: the interface is ours).
pub fn set_only_ipv4(
    ns: Option<&str>,
    ifname: &str,
    addr: std::net::Ipv4Addr,
    prefix: u8,
) -> Result<()> {
    use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
    let ifname = ifname.to_string();
    in_ns(ns, move |h| async move {
        let index = get_links(&h)
            .await?
            .into_iter()
            .find(|l| l.name == ifname)
            .ok_or_else(|| NetError::NoLink(ifname.clone()))?
            .index;
        let msgs: Vec<AddressMessage> = h
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .map_err(NetError::Netlink)?;
        let mut present = false;
        for m in msgs {
            let ip = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Local(std::net::IpAddr::V4(ip)) => Some(*ip),
                _ => None,
            });
            match ip {
                Some(ip) if ip == addr && m.header.prefix_len == prefix => present = true,
                Some(_) => h
                    .address()
                    .del(m)
                    .execute()
                    .await
                    .map_err(NetError::Netlink)?,
                None => {}
            }
        }
        if !present {
            h.address()
                .add(index, std::net::IpAddr::V4(addr), prefix)
                .execute()
                .await
                .map_err(NetError::Netlink)?;
        }
        Ok(())
    })
}
