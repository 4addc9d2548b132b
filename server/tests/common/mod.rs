//! Helpers for the CLI tests: run `minivm` against a state directory, make a
//! lab file from an example under a name of the test's own (so its
//! namespace and devices can never be a real lab's), tear it down even when
//! an assertion fails, and list what a lab left on the host.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn minivm(state: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_minivm"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
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
