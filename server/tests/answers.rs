//! How `minivm serve` answers what it refuses: bad input is a 4xx that
//! names the reason and changes nothing, an oversized body is 413 before it
//! is read, and a site built with another binary is refused at start. No
//! VM is started here.

mod common;

use std::io::{Read, Write};
use std::process::Command;

use common::{text, Server};

fn labs(server: &Server) -> String {
    let (code, body) = server.call("list_labs", &[]);
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn bad_input_is_answered_4xx_and_changes_nothing() {
    let state = common::state_dir();
    let server = Server::start(state.path());
    let before = labs(&server);
    assert!(before.contains("\"router\""), "{before}");

    let yaml = "version: 1\nname: fine\nnodes: [{name: vm1, image: tiny}]\n";
    let (code, body) = server.call("import_lab", &[("text", yaml), ("name", "../evil")]);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("name"), "{body}");

    let (code, body) = server.call("import_lab", &[("text", "nodes: [")]);
    assert_eq!(code, 400, "{body}");

    // An unknown action is refused; it is never taken for another one.
    let (code, body) = server.call("lab_action", &[("lab", "router"), ("action", "destroy")]);
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains("unknown action")
            && body.contains("destroy")
            && body.contains("(start, stop, restart, suspend)"),
        "{body}"
    );

    let (code, body) = server.call("lab_action", &[("lab", "nope"), ("action", "start")]);
    assert_eq!(code, 404, "{body}");

    let (code, body) = server.call(
        "exec_vm",
        &[("lab", "router"), ("vm", "r1"), ("line", "  ")],
    );
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("type a command"), "{body}");

    let (code, body) = server.call(
        "exec_vm",
        &[("lab", "router"), ("vm", "r1"), ("line", "true")],
    );
    assert_eq!(code, 409, "a stopped VM runs nothing: {body}");

    let (code, body) = server.call("save_lab", &[("topology_json", "{"), ("revision", "x")]);
    assert_eq!(code, 400, "{body}");

    assert_eq!(labs(&server), before);
}

/// Any local user's process can reach a loopback port: without the token
/// it gets 401 (a token that is almost right too); the login URL that
/// `serve` printed sets the cookie and redirects to the page without the
/// token; the token is kept for root only.
#[test]
fn on_loopback_an_api_call_without_the_token_is_401() {
    use std::os::unix::fs::PermissionsExt;
    let state = common::state_dir();
    let server = Server::start(state.path());
    let (addr, token) = (&server.addr, &server.token);
    let raw = |path: &str, extra: &str| {
        common::http(
            addr,
            &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"),
        )
        .unwrap()
    };
    let post = |extra: &str| {
        common::http(
            addr,
            &format!("POST /api/list_labs HTTP/1.1\r\nHost: {addr}\r\n{extra}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        )
        .unwrap()
    };
    let (code, body) = post("");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("token is required"), "{body}");
    let mut almost = token.clone();
    almost.pop();
    almost.push('x');
    assert_eq!(post(&format!("X-Minivm-Token: {almost}\r\n")).0, 401);
    assert_eq!(post(&format!("Cookie: minivm_token={almost}\r\n")).0, 401);
    assert_eq!(raw("/", "").0, 401, "the page itself");
    assert_eq!(raw("/ws/events", "").0, 401, "the events");
    assert_eq!(raw(&format!("/?token={almost}"), "").0, 401);
    assert_eq!(raw("/healthz", ""), (200, "ok".to_string()));
    let (code, body) = post(&format!("X-Minivm-Token: {token}\r\n"));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"router\""), "{body}");

    // The login URL: a cookie for the app, and the same page without the
    // token in the address bar.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET /?lab=router&token={token} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = String::new();
    s.read_to_string(&mut head).unwrap();
    assert!(head.starts_with("HTTP/1.1 303"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains("location: /?lab=router\r\n"), "{head}");
    assert!(
        head.contains(&format!(
            "minivm_token={token}; Path=/; HttpOnly; SameSite=Strict"
        )),
        "{head}"
    );
    assert_eq!(
        post(&format!("Cookie: minivm_token={token}\r\n")).0,
        200,
        "the cookie"
    );

    // Where the CLI finds it: root's alone, from the moment it exists.
    let run = state.path().join("run");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&run), 0o700);
    assert_eq!(mode(&run.join("serve.json")), 0o600);
    let kept: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("serve.json")).unwrap()).unwrap();
    assert_eq!(kept["token"].as_str(), Some(token.as_str()));
}

#[test]
fn a_body_over_the_limit_is_413_before_it_is_read() {
    let state = common::state_dir();
    let server = Server::start(state.path());
    let (addr, token) = (&server.addr, &server.token);
    let len = 50 * 1024 * 1024;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /api/import_lab HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nX-Minivm-Token: {token}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {len}\r\nConnection: close\r\n\r\ntext="
    )
    .unwrap();
    // The server answers without reading the rest; a write may then fail.
    let _ = s.write_all(&vec![b'a'; 64 * 1024]);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains(&format!(
            "the request body is {len} bytes, over the limit of"
        )),
        "{answer}"
    );
}

#[test]
fn a_site_built_for_another_binary_is_refused_at_start() {
    let state = common::state_dir();
    let site = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(site.path().join("pkg")).unwrap();
    std::fs::write(site.path().join("pkg/minivm.js"), "").unwrap();
    // This test binary's minivm is a debug build; the stamp says release.
    std::fs::write(
        site.path().join("build.txt"),
        "profile release\nserver-size 1\nserver-mtime-ns 1\nserver-sha256 00\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_minivm"))
        .arg("--state-dir")
        .arg(state.path())
        .args(["serve", "--bind", "127.0.0.1:0", "--site-root"])
        .arg(site.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("is a release build and this minivm a debug build")
            && err.contains("`cargo xtask build`"),
        "{err}"
    );
    assert!(!text(&out.stdout).contains("listening on"));
}

/// Forty captures asked for at once (a script, or a hostile page of the
/// same origin): each gets its own id or a clear 429, never more than the
/// cap run, and none shares another's files. The lab's namespace and
/// bridge are made here, as `up` names them (no VM is needed to capture
/// on a network), and removed even when the test fails.
#[test]
fn forty_captures_at_once_get_unique_ids_or_a_clear_refusal() {
    let state = common::state_dir();
    let server = Server::start(state.path());
    let lab = format!("cap{}", std::process::id());
    let yaml = format!(
        "version: 1\nname: {lab}\nnetworks: [{{name: lan, subnet: 10.9.0.0/24}}]\nnodes: [{{name: a, image: tiny, nics: [{{network: lan}}]}}]\n"
    );
    let (code, body) = server.call("import_lab", &[("text", &yaml)]);
    assert_eq!(code, 200, "{body}");
    let ns = topology::names::netns_name(&lab);
    struct Ns(String);
    impl Drop for Ns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    assert!(Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .unwrap()
        .success());
    let _ns = Ns(ns.clone());
    let br = topology::names::bridge_ifname(&lab, "lan");
    for args in [
        vec!["-n", &ns, "link", "add", &br, "type", "bridge"],
        vec!["-n", &ns, "link", "set", &br, "up"],
    ] {
        assert!(Command::new("ip").args(&args).status().unwrap().success());
    }
    let answers: Vec<(u16, String)> = std::thread::scope(|sc| {
        let calls: Vec<_> = (0..40)
            .map(|_| {
                sc.spawn(|| {
                    server.call(
                        "start_capture",
                        &[("lab", &lab), ("target", "lan"), ("filter", "")],
                    )
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let mut ids = std::collections::BTreeSet::new();
    let mut refused = 0;
    for (code, body) in &answers {
        match code {
            200 => {
                let v: serde_json::Value = serde_json::from_str(body).unwrap();
                assert!(
                    ids.insert(v["id"].as_str().unwrap().to_string()),
                    "an id given twice: {body}"
                );
            }
            429 => {
                assert!(
                    body.contains("captures are running, the most this server runs at once"),
                    "{body}"
                );
                refused += 1;
            }
            _ => panic!("{code}: {body}"),
        }
    }
    assert_eq!(ids.len() + refused, 40);
    assert_eq!(ids.len(), 16, "the cap: {answers:?}");
    // Stopping one makes room for one more.
    let first = ids.iter().next().unwrap().clone();
    assert_eq!(server.call("stop_capture", &[("id", &first)]).0, 200);
    let mut again = (0, String::new());
    for _ in 0..50 {
        again = server.call(
            "start_capture",
            &[("lab", &lab), ("target", "lan"), ("filter", "")],
        );
        if again.0 == 200 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(again.0, 200, "{}", again.1);
    for id in &ids {
        server.call("delete_capture", &[("id", id)]);
    }
}
