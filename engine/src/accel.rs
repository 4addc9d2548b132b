//! Which accelerator QEMU gets: KVM when it really works, TCG otherwise.
//!
//! On some hosts /dev/kvm exists and opens, yet a guest dies with "KVM
//! internal error" or hangs. So KVM counts as working only when a real probe
//! guest (the image's kernel with a two-line initramfs that prints a marker
//! and powers off) boots to its marker under KVM within a time limit.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::fsutil::write_atomic;

pub const PROBE_MARKER: &str = "MINIVM-PROBE-OK";
/// Under working KVM the probe takes well under a second.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The decision and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub accel: Accel,
    pub reason: String,
}

/// Where the image build leaves the probe kernel and initramfs.
pub fn probe_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("cache/probe")
}

fn cache_file(state_dir: &Path) -> PathBuf {
    state_dir.join("cache/accel.json")
}

/// The accelerator to use: the last probe's answer when there is one, else
/// a fresh probe (whose answer is kept).
pub fn choose(state_dir: &Path) -> Choice {
    if let Ok(text) = std::fs::read_to_string(cache_file(state_dir)) {
        if let Ok(c) = serde_json::from_str::<Choice>(&text) {
            return c;
        }
    }
    probe_and_remember(state_dir)
}

/// Probes now and remembers the answer for [`choose`].
pub fn probe_and_remember(state_dir: &Path) -> Choice {
    let c = probe(state_dir);
    // Only a real probe result is worth remembering.
    if Path::new("/dev/kvm").exists() && probe_dir(state_dir).join("vmlinuz").exists() {
        if let Ok(json) = serde_json::to_string(&c) {
            let _ = std::fs::create_dir_all(state_dir.join("cache"));
            let _ = write_atomic(&cache_file(state_dir), json.as_bytes());
        }
    }
    c
}

/// Decides afresh, running the probe guest when KVM looks usable.
pub fn probe(state_dir: &Path) -> Choice {
    let tcg = |reason: String| Choice {
        accel: Accel::Tcg,
        reason,
    };
    if !Path::new("/dev/kvm").exists() {
        return tcg("/dev/kvm does not exist (no KVM in this kernel or machine)".into());
    }
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        return tcg(format!("/dev/kvm cannot be opened: {e}"));
    }
    let dir = probe_dir(state_dir);
    let (kernel, initrd) = (dir.join("vmlinuz"), dir.join("initrd.gz"));
    if !kernel.exists() || !initrd.exists() {
        return tcg(
            "KVM is not verified yet: the probe kernel comes with `minivm image build`".into(),
        );
    }
    match run_probe(&kernel, &initrd, "kvm", PROBE_TIMEOUT) {
        Ok(elapsed) => Choice {
            accel: Accel::Kvm,
            reason: format!(
                "a probe guest booted under KVM in {:.2} s",
                elapsed.as_secs_f64()
            ),
        },
        Err(why) => tcg(format!(
            "/dev/kvm opens, but {why}; using TCG (software emulation)"
        )),
    }
}

/// Boots the probe guest under `accel`; Ok(time to the marker) or why not.
pub fn run_probe(
    kernel: &Path,
    initrd: &Path,
    accel: &str,
    timeout: Duration,
) -> Result<Duration, String> {
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            accel,
            "-machine",
            "pc",
            "-m",
            "64",
            "-nodefaults",
            "-no-user-config",
        ])
        .args([
            "-display",
            "none",
            "-no-reboot",
            "-serial",
            "stdio",
            "-monitor",
            "none",
        ])
        .arg("-kernel")
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("qemu-system-x86_64 cannot start: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break None,
        }
    };
    let elapsed = started.elapsed();
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if out.contains(PROBE_MARKER) {
        return Ok(elapsed);
    }
    if let Some(line) = err
        .lines()
        .chain(out.lines())
        .find(|l| l.contains("KVM internal error"))
    {
        return Err(format!("a probe guest under KVM died: {}", line.trim()));
    }
    match status {
        None => Err(format!(
            "a probe guest under KVM did not boot within {} s",
            timeout.as_secs()
        )),
        Some(st) => {
            let detail: Vec<&str> = err
                .lines()
                .filter(|l| !l.contains("warning:") && !l.trim().is_empty())
                .collect();
            let detail = if detail.is_empty() {
                String::new()
            } else {
                format!(": {}", detail.join("; "))
            };
            Err(format!(
                "a probe guest under KVM stopped ({st}) before it finished booting{detail}"
            ))
        }
    }
}
