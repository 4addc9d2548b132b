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

#[test]
fn a_body_over_the_limit_is_413_before_it_is_read() {
    let state = common::state_dir();
    let server = Server::start(state.path());
    let addr = &server.addr;
    let len = 50 * 1024 * 1024;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /api/import_lab HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {len}\r\nConnection: close\r\n\r\ntext="
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
