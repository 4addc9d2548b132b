//! The management network as a user runs it (examples/router.yaml with a
//! `mgmt:` block): every VM has eth0 on it and its own NICs from eth1; the
//! host reaches every VM's management address; with `nat: true` a VM
//! reaches a server in a namespace the test makes to stand in for the
//! outside world, which sees the connection come from the host
//! (masqueraded); a port forward on 127.0.0.1 reaches a server in a guest;
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
    let file = common::lab_file(s, "router", &lab);
    let mut yaml = std::fs::read_to_string(&file).unwrap();
    yaml.push_str(&format!(
        "mgmt:\n  subnet: {subnet}\n  nat: true\n  ports: [\"127.0.0.1:{port}:h1:8080\"]\n"
    ));
    // h2 is placed by hand; r1 and h1 get the first free addresses.
    yaml = yaml.replace(
        "  - name: h2\n",
        &format!("  - name: h2\n    mgmt_address: {}\n", mgmt_ip(200)),
    );
    std::fs::write(&file, &yaml).unwrap();
    let _down = Down(s.to_path_buf(), lab.clone());
    ok(minivm(s, &["up", "-f", file.to_str().unwrap()]));

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
