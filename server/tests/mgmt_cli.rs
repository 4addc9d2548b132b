//! The management network as a user runs it (examples/router.yaml with a
//! `mgmt:` block): every VM has eth0 on it and its own NICs from eth1; the
//! host reaches every VM's management address; with `nat: true` a VM
//! reaches a server in a namespace the test makes to stand in for the
//! outside world, which sees the connection come from the host
//! (masqueraded); a port forward on 127.0.0.1 reaches a server in a guest;
//! a guest crafting frames to the gateway reaches neither the host's
//! loopback nor a host service (issue 26's loopback hole);
//! `check` never counts the management network; `down --cleanup` leaves no
//! veth, nftables table, route or namespace, also after a QEMU is killed.
//! Traffic never leaves the machine. Needs root.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::{minivm, ok, text, Down};

/// A namespace standing in for the world beyond the host, joined to the
/// host by a veth: host end `host_addr`, world end `world_addr`. Removed
/// when dropped.
struct World {
    ns: String,
    host_if: String,
}

impl World {
    fn new(tag: u32, host_addr: &str, world_addr: &str) -> World {
        let w = World {
            ns: format!("mvtest-world-{tag}"),
            host_if: format!("mvtw{tag}"),
        };
        let peer = format!("mvtx{tag}");
        let run = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", text(&out.stderr));
        };
        run(&["netns", "add", &w.ns]);
        run(&[
            "link", "add", &w.host_if, "type", "veth", "peer", "name", &peer,
        ]);
        run(&["link", "set", &peer, "netns", &w.ns]);
        run(&["addr", "add", host_addr, "dev", &w.host_if]);
        run(&["link", "set", &w.host_if, "up"]);
        run(&["-n", &w.ns, "addr", "add", world_addr, "dev", &peer]);
        run(&["-n", &w.ns, "link", "set", &peer, "up"]);
        run(&["-n", &w.ns, "link", "set", "lo", "up"]);
        // Replies to the VMs arrive here and are routed on: this interface
        // (the test's own) forwards.
        std::fs::write(
            format!("/proc/sys/net/ipv4/conf/{}/forwarding", w.host_if),
            "1",
        )
        .unwrap();
        w
    }

    /// Serves one HTTP request on `addr:port` inside the world; returns the
    /// address the connection came from.
    fn serve_once(&self, addr: Ipv4Addr, port: u16) -> std::thread::JoinHandle<Ipv4Addr> {
        let ns = self.ns.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            engine::net::enter_namespace(Some(&ns)).unwrap();
            let l = TcpListener::bind((addr, port)).unwrap();
            tx.send(()).unwrap();
            let (mut s, peer) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 6\r\n\r\nworld\n")
                .unwrap();
            match peer.ip() {
                std::net::IpAddr::V4(ip) => ip,
                other => panic!("{other}"),
            }
        });
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        h
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GET of `/` at `to`, its whole answer (empty when nothing answers).
fn http_get(to: (&str, u16)) -> String {
    let mut body = String::new();
    if let Ok(mut c) = TcpStream::connect(to) {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
        let _ = c.read_to_string(&mut body);
    }
    body
}

fn host_pings(addr: &str) -> bool {
    Command::new("ping")
        .args(["-c", "1", "-W", "3", addr])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn mgmt_reaches_vms_nats_them_forwards_ports_and_is_cleaned_up() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let pid = std::process::id();
    let tag = pid % 200 + 20;
    let lab = format!("mgmt-cli-{pid}");
    let subnet = format!("172.31.{tag}.0/24");
    let mgmt_ip = |n: u8| format!("172.31.{tag}.{n}");
    let port = free_port();
    let everywhere = free_port();
    let file = common::lab_file(s, "router", &lab);
    let mut yaml = std::fs::read_to_string(&file).unwrap();
    yaml.push_str(&format!(
        "mgmt:\n  subnet: {subnet}\n  nat: true\n  ports: [\"127.0.0.1:{port}:h1:8080\", \"0.0.0.0:{everywhere}:h1:8080\"]\n"
    ));
    // h2 is placed by hand; r1 and h1 get the first free addresses.
    yaml = yaml.replace(
        "  - name: h2\n",
        &format!("  - name: h2\n    mgmt_address: {}\n", mgmt_ip(200)),
    );
    std::fs::write(&file, &yaml).unwrap();
    let _down = Down(s.to_path_buf(), lab.clone());
    // A forward on every address needs the host's opt-in.
    ok(minivm(s, &["up", "-f", file.to_str().unwrap(), "--expose"]));

    // eth0 on mgmt, the lab's own NICs from eth1; addresses as documented.
    let st: serde_json::Value =
        serde_json::from_str(&ok(minivm(s, &["status", &lab, "--json"]))).unwrap();
    let addrs = |vm: &str| -> Vec<String> {
        st[0]["vms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == vm)
            .unwrap()["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        addrs("r1"),
        vec![
            format!("eth0={}/24", mgmt_ip(2)),
            "eth1=10.10.0.1/24".into(),
            "eth2=10.20.0.1/24".into()
        ]
    );
    assert_eq!(addrs("h1")[0], format!("eth0={}/24", mgmt_ip(3)));
    assert_eq!(addrs("h2")[0], format!("eth0={}/24", mgmt_ip(200)));

    // The host reaches every VM on its management address.
    for n in [2, 3, 200] {
        assert!(
            host_pings(&mgmt_ip(n)),
            "the host cannot ping {}",
            mgmt_ip(n)
        );
    }

    // NAT: h1 fetches from a server in the stand-in world, which sees the
    // host's address there (the VM's own is masqueraded).
    let world = World::new(
        tag,
        &format!("198.18.{tag}.1/30"),
        &format!("198.18.{tag}.2/30"),
    );
    let server = world.serve_once(Ipv4Addr::new(198, 18, tag as u8, 2), 8000);
    let out = minivm(
        s,
        &[
            "exec",
            &lab,
            "h1",
            "--",
            // (busybox wget's -T crashes: no timeout option)
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://198.18.{tag}.2:8000/"),
        ],
    );
    assert_eq!(text(&out.stdout), "world\n", "{}", text(&out.stderr));
    assert_eq!(
        server.join().unwrap(),
        Ipv4Addr::new(198, 18, tag as u8, 1),
        "the world sees the host, not the VM"
    );

    // A port forward on 127.0.0.1 reaches a server in h1.
    ok(minivm(
        s,
        &[
            "exec",
            &lab,
            "h1",
            "--",
            "sh",
            "-c",
            "mkdir -p /tmp/www && echo hello-from-h1 > /tmp/www/index.html && httpd -p 8080 -h /tmp/www",
        ],
    ));
    let mut body = String::new();
    for _ in 0..20 {
        if let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
            body.clear();
            let _ = c.read_to_string(&mut body);
            if body.contains("hello-from-h1") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(body.contains("hello-from-h1"), "{body}");

    // The forward on every address answers on the host's other addresses
    // (here the gateway's), but never takes the host's own loopback: a
    // host service that listens there later is the host's for the host.
    assert!(
        http_get((mgmt_ip(1).as_str(), everywhere)).contains("hello-from-h1"),
        "the forward on 0.0.0.0"
    );
    let own = TcpListener::bind(("127.0.0.1", everywhere)).unwrap();
    own.set_nonblocking(true).unwrap();
    let mut c = TcpStream::connect(("127.0.0.1", everywhere)).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        own.accept().is_ok(),
        "the host's own connection to 127.0.0.1:{everywhere} was taken by the forward"
    );
    drop((c, own));

    // A guest crafting its own frames gets nothing of the host: a SYN to
    // the gateway's MAC addressed to 127.0.0.1, where a host listener
    // waits, and one to the gateway's own address, where a host service
    // listens on every address, go unanswered; the same crafted SYN to
    // h1's server is answered (the frames are right), and the declared
    // forward still works.
    let loopback_service = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let any_service = TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let attacker = Attacker::plug(tag, &lab, &format!("{}/24", mgmt_ip(201)));
    let own = attacker.own_mac();
    let h1_mac = attacker.neighbour_mac(&mgmt_ip(3));
    let gateway: Ipv4Addr = mgmt_ip(1).parse().unwrap();
    let gateway_mac = attacker.neighbour_mac(&mgmt_ip(1));
    let me: Ipv4Addr = mgmt_ip(201).parse().unwrap();
    let syn = |mac: [u8; 6], dst: Ipv4Addr, sport: u16, dport: u16| {
        let frame = syn_frame(own, mac, me, dst, sport, dport);
        send_and_listen(&attacker.ns, &attacker.ifname, frame, sport, dport)
    };
    let h1: Ipv4Addr = mgmt_ip(3).parse().unwrap();
    assert_eq!(
        syn(h1_mac, h1, 40001, 8080).map(|f| f & 0x12),
        Some(0x12),
        "the crafted SYN reaches h1's server"
    );
    let lo_port = loopback_service.local_addr().unwrap().port();
    assert_eq!(
        syn(gateway_mac, Ipv4Addr::LOCALHOST, 40002, lo_port),
        None,
        "a guest's SYN to 127.0.0.1:{lo_port} was answered"
    );
    let any_port = any_service.local_addr().unwrap().port();
    assert_eq!(
        syn(gateway_mac, gateway, 40003, any_port),
        None,
        "a guest's SYN to the gateway's {any_port} was answered"
    );
    // The listeners never saw a connection.
    for l in [&loopback_service, &any_service] {
        l.set_nonblocking(true).unwrap();
        assert!(l.accept().is_err(), "a guest connected to a host service");
    }
    drop(attacker);
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    body.clear();
    let _ = c.read_to_string(&mut body);
    assert!(
        body.contains("hello-from-h1"),
        "the forward after the attack: {body}"
    );

    // check: the same six pairs as without mgmt, none over it.
    let out = minivm(s, &["check", &lab]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert!(report.contains("6 pair(s): 6 passed"), "{report}");
    assert!(
        !report.contains("172.31.") && !report.contains("mgmt"),
        "{report}"
    );

    // Down after a QEMU is killed: nothing of the lab is left.
    let (_, h1_pid) = common::states(s, &lab)["h1"].clone();
    let _ = Command::new("kill")
        .args(["-9", &h1_pid.unwrap().to_string()])
        .status();
    ok(minivm(s, &["down", &lab, "--cleanup"]));
    assert_eq!(common::leftovers(s, &lab), Vec::<String>::new());
    let table = Command::new("nft")
        .args(["list", "table", "ip", &format!("minivm-{lab}")])
        .output()
        .unwrap();
    assert!(!table.status.success(), "the lab's nftables table is left");
    let routes = Command::new("ip")
        .args(["route", "show", &subnet])
        .output()
        .unwrap();
    assert_eq!(text(&routes.stdout), "", "a route to {subnet} is left");
    assert!(
        !Command::new("ip")
            .args(["link", "show", &topology::names::mgmt_host_ifname(&lab)])
            .output()
            .unwrap()
            .status
            .success(),
        "the management veth is left"
    );
}

#[test]
fn bad_mgmt_is_refused_naming_the_field_and_changes_nothing() {
    let state = common::state_dir();
    let s = state.path();
    let lab = format!("mgmt-bad-{}", std::process::id());
    let file = common::lab_file(s, "router", &lab);
    let mut yaml = std::fs::read_to_string(&file).unwrap();
    yaml.push_str("mgmt:\n  subnet: 10.10.0.0/16\n  ports: [\"127.0.0.1:2201:nope:22\"]\n");
    std::fs::write(&file, &yaml).unwrap();
    let out = minivm(s, &["up", "-f", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("mgmt.subnet") && err.contains("overlaps network"),
        "{err}"
    );
    assert!(
        err.contains("mgmt.ports[0]") && err.contains("no node named \"nope\""),
        "{err}"
    );
    assert_eq!(common::leftovers(s, &lab), Vec::<String>::new());
}

#[test]
fn forwards_that_would_expose_the_lab_or_take_a_host_port_are_refused() {
    let state = common::state_dir();
    let s = state.path();
    let lab = format!("mgmt-ports-{}", std::process::id());
    let file = common::lab_file(s, "router", &lab);
    let base = std::fs::read_to_string(&file).unwrap();
    let up = |ports: &str, extra: &[&str]| {
        std::fs::write(
            &file,
            format!("{base}mgmt:\n  subnet: 172.31.250.0/24\n  ports: [{ports}]\n"),
        )
        .unwrap();
        let mut args = vec!["up", "-f", file.to_str().unwrap()];
        args.extend_from_slice(extra);
        let out = minivm(s, &args);
        (out.status.code(), text(&out.stderr))
    };
    // The host's sshd: a privileged port, whatever the address.
    let (code, err) = up("\"0.0.0.0:22:h1:22\"", &["--expose"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("mgmt.ports[0]") && err.contains("host port 22 is below 1024"),
        "{err}"
    );
    // Every address (what containerlab's "2222:22" means) without the
    // opt-in; the message names what it would expose and the opt-in.
    let free = free_port();
    let (code, err) = up(&format!("\"0.0.0.0:{free}:h1:22\""), &["--dry-run"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("mgmt.ports[0]")
            && err.contains("listens on 0.0.0.0")
            && err.contains("--expose"),
        "{err}"
    );
    let (code, err) = up(
        &format!("\"0.0.0.0:{free}:h1:22\""),
        &["--dry-run", "--expose"],
    );
    assert_eq!(code, Some(0), "with the opt-in: {err}");
    // A port a host service listens on, on loopback or every address.
    for bind in ["127.0.0.1", "0.0.0.0"] {
        let taken = TcpListener::bind((bind, 0)).unwrap();
        let p = taken.local_addr().unwrap().port();
        let (code, err) = up(&format!("\"127.0.0.1:{p}:h1:22\""), &[]);
        assert_eq!(code, Some(1), "{err}");
        assert!(
            err.contains(&format!(
                "port {p}/tcp is already listening on this host ({bind})"
            )),
            "{err}"
        );
    }
    assert_eq!(common::leftovers(s, &lab), Vec::<String>::new());
}

/// A namespace plugged into a lab's management bridge (a veth from it into
/// the lab's namespace), standing in for a guest that crafts its own
/// frames. Removed when dropped (the lab's end goes with the namespace).
struct Attacker {
    ns: String,
    ifname: String,
}

impl Attacker {
    fn plug(tag: u32, lab: &str, addr: &str) -> Attacker {
        let a = Attacker {
            ns: format!("mvtest-atk-{tag}"),
            ifname: "atk0".into(),
        };
        let lab_ns = topology::names::netns_name(lab);
        let bridge = topology::names::bridge_ifname(lab, topology::mgmt::NETWORK);
        let outer = format!("mvta{tag}");
        let run = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", text(&out.stderr));
        };
        run(&["netns", "add", &a.ns]);
        run(&[
            "-n", &a.ns, "link", "add", &a.ifname, "type", "veth", "peer", "name", &outer,
        ]);
        run(&["-n", &a.ns, "link", "set", &outer, "netns", &lab_ns]);
        run(&["-n", &lab_ns, "link", "set", &outer, "master", &bridge]);
        run(&["-n", &lab_ns, "link", "set", &outer, "up"]);
        run(&["-n", &a.ns, "addr", "add", addr, "dev", &a.ifname]);
        run(&["-n", &a.ns, "link", "set", &a.ifname, "up"]);
        a
    }

    /// The MAC the namespace learnt for `ip` (after a ping from it).
    fn neighbour_mac(&self, ip: &str) -> [u8; 6] {
        let _ = Command::new("ip")
            .args(["netns", "exec", &self.ns, "ping", "-c", "1", "-W", "3", ip])
            .output()
            .unwrap();
        let out = Command::new("ip")
            .args(["-n", &self.ns, "neigh", "show", ip])
            .output()
            .unwrap();
        let line = text(&out.stdout);
        let mac = line
            .split_whitespace()
            .skip_while(|w| *w != "lladdr")
            .nth(1)
            .unwrap_or_else(|| panic!("no neighbour entry for {ip}: {line}"));
        parse_mac(mac)
    }

    fn own_mac(&self) -> [u8; 6] {
        let out = Command::new("ip")
            .args(["-n", &self.ns, "-br", "link", "show", &self.ifname])
            .output()
            .unwrap();
        parse_mac(text(&out.stdout).split_whitespace().nth(2).unwrap())
    }
}

impl Drop for Attacker {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn parse_mac(s: &str) -> [u8; 6] {
    let v: Vec<u8> = s
        .trim()
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    v.try_into().unwrap()
}

/// The ones' complement sum of `data`, folded.
fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet frame holding a TCP SYN from `src:sport` to `dst:dport`.
fn syn_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
) -> Vec<u8> {
    let mut tcp = Vec::with_capacity(20);
    tcp.extend(sport.to_be_bytes());
    tcp.extend(dport.to_be_bytes());
    tcp.extend(0x1234_5678u32.to_be_bytes()); // sequence
    tcp.extend(0u32.to_be_bytes()); // ack
    tcp.extend([0x50, 0x02]); // 5 words, SYN
    tcp.extend(64240u16.to_be_bytes()); // window
    tcp.extend([0, 0, 0, 0]); // checksum, urgent
    let mut pseudo = Vec::new();
    pseudo.extend(src.octets());
    pseudo.extend(dst.octets());
    pseudo.extend([0, 6, 0, 20]);
    let sum = checksum(&[pseudo, tcp.clone()].concat(), 0);
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 40, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0];
    ip.extend(src.octets());
    ip.extend(dst.octets());
    let sum = checksum(&ip, 0);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    let mut frame = Vec::new();
    frame.extend(dst_mac);
    frame.extend(src_mac);
    frame.extend([0x08, 0x00]);
    frame.extend(ip);
    frame.extend(tcp);
    frame
}

/// Sends `frame` (a SYN from port `sport` to `dport`) out of `ifname` in the
/// namespace `ns` through a packet socket, and returns the TCP flags of any
/// answer to it seen within 3 s (a SYN-ACK, or a reset: either way
/// something behind the address answered).
fn send_and_listen(ns: &str, ifname: &str, frame: Vec<u8>, sport: u16, dport: u16) -> Option<u8> {
    let ns = ns.to_string();
    let ifname = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: plain libc calls on a socket this thread owns, with buffers
    // and addresses that outlive each call.
    std::thread::spawn(move || unsafe {
        // This thread only: it enters the namespace and opens the socket there.
        let f = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET), 0);
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, proto);
        assert!(
            fd >= 0,
            "packet socket: {}",
            std::io::Error::last_os_error()
        );
        let index = libc::if_nametoindex(ifname.as_ptr());
        assert!(index > 0);
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto as u16;
        sll.sll_ifindex = index as i32;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[0..6]);
        let sa = &sll as *const libc::sockaddr_ll as *const libc::sockaddr;
        let len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        assert_eq!(libc::bind(fd, sa, len), 0);
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        );
        let sent = libc::sendto(fd, frame.as_ptr().cast(), frame.len(), 0, sa, len);
        assert_eq!(
            sent,
            frame.len() as isize,
            "{}",
            std::io::Error::last_os_error()
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 2048];
        let mut answer = None;
        while std::time::Instant::now() < deadline && answer.is_none() {
            let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
            if n < 54 {
                continue;
            }
            let b = &buf[..n as usize];
            let ihl = usize::from(b[14] & 0x0f) * 4;
            let t = 14 + ihl;
            if b[12..14] == [0x08, 0x00]
                && b[23] == 6
                && b.len() >= t + 14
                && u16::from_be_bytes([b[t], b[t + 1]]) == dport
                && u16::from_be_bytes([b[t + 2], b[t + 3]]) == sport
            {
                answer = Some(b[t + 13]);
            }
        }
        libc::close(fd);
        answer
    })
    .join()
    .unwrap()
}
