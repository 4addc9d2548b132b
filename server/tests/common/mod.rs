//! Helpers for the CLI tests: run `minivm` against a state directory, make a
//! lab file from an example under a name of the test's own (so its
//! namespace and devices can never be a real lab's), tear it down even when
//! an assertion fails, and list what a lab left on the host.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../../../engine/tests/common/shared_image.rs"]
mod shared_image;

/// The `tiny` image in `state`, as `minivm image build` leaves it (built
/// once per test run, see `shared_image`).
pub fn tiny_image(state: &Path) {
    shared_image::built_image(state, "tiny", |dir| {
        ok(minivm(dir, &["image", "build"]));
    });
}

/// The `frr` image in `state`, as `minivm image build frr` leaves it (built
/// once per test run, see `shared_image`).
pub fn frr_image(state: &Path) {
    shared_image::built_image(state, "frr", |dir| {
        ok(minivm(dir, &["image", "build", "frr"]));
    });
}

/// `minivm ARGS` with no state directory (commands that need none).
pub fn minivm_alone(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minivm"))
        .args(args)
        .output()
        .expect("run minivm")
}

pub fn minivm(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minivm"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run minivm")
}

/// `minivm` run in the directory `cwd` (relative paths are its).
pub fn minivm_in(state: &Path, cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minivm"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("run minivm")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Asserts success, showing both streams otherwise; returns stdout.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\n{}\n{}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A fresh state directory QEMU's unprivileged user can traverse.
pub fn state_dir() -> tempfile::TempDir {
    let state = tempfile::tempdir().unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    state
}

/// `examples/<example>.yaml` renamed to `lab`, written into `dir`.
pub fn lab_file(dir: &Path, example: &str, lab: &str) -> PathBuf {
    let yaml = std::fs::read_to_string(format!(
        "{}/../examples/{example}.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let file = dir.join(format!("{lab}.yaml"));
    std::fs::write(
        &file,
        yaml.replace(&format!("name: {example}\n"), &format!("name: {lab}\n")),
    )
    .unwrap();
    file
}

/// `examples/<example>.yaml` renamed to `lab`, written into `dir` with the
/// example's directory of files (`examples/<example>/`, which its `source`
/// fields name) beside it.
pub fn lab_file_with_sources(dir: &Path, example: &str, lab: &str) -> PathBuf {
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(example),
        &dir.join(example),
    );
    lab_file(dir, example, lab)
}

/// Copies a directory's tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.path().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Runs `down LAB --cleanup` when dropped.
pub struct Down(pub PathBuf, pub String);
impl Drop for Down {
    fn drop(&mut self) {
        let _ = minivm(&self.0, &["down", &self.1, "--cleanup"]);
    }
}

/// Everything of `lab` still on the host: QEMU processes, its namespace,
/// host interfaces carrying its alias, its directory.
pub fn leftovers(state: &Path, lab: &str) -> Vec<String> {
    let mut left = Vec::new();
    for (vm, pid) in engine::lab::running_qemus(lab) {
        left.push(format!("QEMU of {vm} (pid {pid})"));
    }
    let ns = topology::names::netns_name(lab);
    if engine::net::namespace_exists(&ns) {
        left.push(format!("namespace {ns}"));
    }
    for l in engine::net::links(None).unwrap() {
        if l.alias
            .as_deref()
            .is_some_and(|a| a.starts_with(&format!("minivm:{lab}:")))
        {
            left.push(format!("host interface {}", l.name));
        }
    }
    let dir = state.join("labs").join(lab);
    if dir.exists() {
        left.push(format!("directory {}", dir.display()));
    }
    left
}

/// `minivm status LAB --json`: VM name → (state, pid).
pub fn states(
    state: &Path,
    lab: &str,
) -> std::collections::BTreeMap<String, (String, Option<u64>)> {
    let st: serde_json::Value =
        serde_json::from_str(&ok(minivm(state, &["status", lab, "--json"]))).unwrap();
    st[0]["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_string(),
                (v["state"].as_str().unwrap().to_string(), v["pid"].as_u64()),
            )
        })
        .collect()
}

/// A running `minivm serve` on a free loopback port, killed (SIGKILL, by
/// its pid) when dropped. The compiled site is not needed for the API and
/// websockets: a stand-in site root with an empty bundle is given.
pub struct Server {
    pub child: std::process::Child,
    pub addr: String,
    /// The token of the login URL it printed (every request needs it).
    pub token: String,
    _site: tempfile::TempDir,
}

impl Server {
    pub fn start(state: &Path) -> Server {
        use std::io::BufRead;
        let site = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(site.path().join("pkg")).unwrap();
        std::fs::write(site.path().join("pkg/minivm.js"), "").unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_minivm"))
            .arg("--state-dir")
            .arg(state)
            .args(["serve", "--bind", "127.0.0.1:0", "--site-root"])
            .arg(site.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start minivm serve");
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut next = || {
            lines
                .next()
                .expect("minivm serve said where it listens")
                .unwrap()
        };
        let addr = loop {
            if let Some(a) = next().strip_prefix("listening on http://") {
                break a.trim().to_string();
            }
        };
        // The login URL, as a person would open it.
        let token = loop {
            if let Some((_, t)) = next().split_once("/?token=") {
                break t.trim().to_string();
            }
        };
        // Keep draining its stdout so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr,
            token,
            _site: site,
        }
    }

    /// SIGKILL, and reaped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// POSTs a server function (`/api/<name>`) with form fields, as the
    /// page does (same Origin and Host); returns the status and the body.
    pub fn call(&self, name: &str, form: &[(&str, &str)]) -> (u16, String) {
        call_at(&self.addr, &self.token, name, form).unwrap()
    }
}

/// [`Server::call`] on the server at `addr` with `token`; an error when it
/// is gone.
pub fn call_at(
    addr: &str,
    token: &str,
    name: &str,
    form: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let body = form
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&");
    http(
        addr,
        &format!(
            "POST /api/{name} HTTP/1.1\r\nHost: {addr}\r\nOrigin: http://{addr}\r\nX-Minivm-Token: {token}\r\nContent-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
            len = body.len()
        ),
    )
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Sends one raw HTTP/1.1 request and reads the whole answer (the server
/// closes): status and body (chunked bodies are joined).
pub fn http(addr: &str, request: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no complete answer: {raw:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 || after.len() < n {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_string()
    };
    Ok((status, body))
}
