//! What a guest (or code running as its QEMU's user) can do to the host,
//! tried on one booted VM: a console flood into a paused guest leaves the
//! server answering, and names planted in the VM's directory (links to
//! root's files where root writes a log or a marker) redirect nothing.
//! Needs root.

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{minivm, ok, Down, Server};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// One QMP command on the VM's monitor socket (pause: "stop", go on: "cont").
fn qmp(vm_dir: &Path, command: &str) {
    let mut s = UnixStream::connect(engine::qemu::qmp_socket(vm_dir)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = String::new();
    let mut buf = [0u8; 4096];
    let mut wait_for = |s: &mut UnixStream, what: &str, got: &mut String| {
        while !got.contains(what) {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "QMP closed: {got}");
            got.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        got.clear();
    };
    wait_for(&mut s, "\"QMP\"", &mut got);
    s.write_all(b"{\"execute\":\"qmp_capabilities\"}\n")
        .unwrap();
    wait_for(&mut s, "\"return\"", &mut got);
    writeln!(s, "{{\"execute\":\"{command}\"}}").unwrap();
    wait_for(&mut s, "\"return\"", &mut got);
}

/// The slowest of `/healthz` and `list_labs` answers over `for_`.
fn slowest_answer(server: &Server, for_: Duration) -> Duration {
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    while started.elapsed() < for_ {
        let t = Instant::now();
        let (code, body) = common::http(
            &server.addr,
            &format!(
                "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                server.addr
            ),
        )
        .unwrap();
        assert_eq!((code, body.as_str()), (200, "ok"));
        assert_eq!(server.call("list_labs", &[]).0, 200);
        slowest = slowest.max(t.elapsed());
        std::thread::sleep(Duration::from_millis(50));
    }
    slowest
}

#[test]
fn a_hostile_guest_neither_freezes_the_server_nor_redirects_roots_writes() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let lab = format!("hostile-{}", std::process::id());
    let file = s.join("lab.yaml");
    std::fs::write(
        &file,
        format!("version: 1\nname: {lab}\ndefaults: {{image: tiny}}\nnodes: [{{name: vm1}}]\n"),
    )
    .unwrap();
    let _down = Down(s.to_path_buf(), lab.clone());
    ok(minivm(s, &["up", "-f", file.to_str().unwrap()]));
    let vm_dir = s.join("labs").join(&lab).join("vms").join("vm1");
    let server = Server::start(s);

    // A console flood into a guest that reads nothing (paused): four
    // viewers each send 64 KiB frames as fast as they can. The server
    // keeps answering everyone else within 1 s.
    qmp(&vm_dir, "stop");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let floods: Vec<_> = (0..4)
        .map(|_| {
            let url = format!("ws://{}/ws/console/{lab}/vm1", server.addr);
            let (origin, token) = (format!("http://{}", server.addr), server.token.clone());
            rt.spawn(async move {
                let mut req = url.into_client_request().unwrap();
                req.headers_mut().insert("origin", origin.parse().unwrap());
                req.headers_mut()
                    .insert("x-minivm-token", token.parse().unwrap());
                let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
                let frame = vec![b'y'; 64 * 1024];
                for _ in 0..400 {
                    if ws
                        .send(Message::Binary(frame.clone().into()))
                        .await
                        .is_err()
                    {
                        break;
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let slowest = slowest_answer(&server, Duration::from_secs(4));
    println!("slowest answer during the console flood: {slowest:?}");
    assert!(
        slowest < Duration::from_secs(1),
        "the server froze for {slowest:?} under a console flood"
    );
    for f in &floods {
        f.abort();
    }
    drop(rt);
    qmp(&vm_dir, "cont");
    drop(server);

    // Code running as the VM's QEMU user plants links where root writes
    // (its log, console log, ready and stopping markers) to root's files.
    let owner = std::fs::metadata(&vm_dir).unwrap();
    let victims = s.join("victims");
    std::fs::create_dir_all(&victims).unwrap();
    let names = ["qemu.log", "console.log", "ready", "stopping"];
    for name in names {
        std::fs::write(victims.join(name), b"root's own").unwrap();
        let _ = std::fs::remove_file(vm_dir.join(name));
        let planted = Command::new("ln")
            .arg("-sf")
            .arg(victims.join(name))
            .arg(vm_dir.join(name))
            .uid(owner.uid())
            .gid(owner.gid())
            .status()
            .unwrap();
        assert!(
            planted.success(),
            "the VM's user could not write its own directory"
        );
    }
    ok(minivm(s, &["restart", &lab, "vm1"]));
    let out = minivm(s, &["exec", &lab, "vm1", "--", "hostname"]);
    assert_eq!(
        common::text(&out.stdout),
        "vm1\n",
        "{}",
        common::text(&out.stderr)
    );
    for name in names {
        assert_eq!(
            std::fs::read(victims.join(name)).unwrap(),
            b"root's own",
            "root wrote through the planted {name}"
        );
    }
    ok(minivm(s, &["down", &lab, "--cleanup"]));
    assert_eq!(common::leftovers(s, &lab), Vec::<String>::new());
}
