//! Host checks for `minivm doctor`: each with what it found and a fix hint.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::accel::{self, Accel};
use crate::image::{ImageStore, DEFAULT_IMAGE};
use crate::process;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
    pub hint: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
    pub accelerator: Accel,
    pub accelerator_reason: String,
    pub can_run: bool,
}

/// Free space below which the state directory is a warning.
const MIN_FREE_BYTES: u64 = 2 << 30;

pub fn run(state_dir: &Path) -> Report {
    let mut checks = Vec::new();
    let mut check = |name, result: Result<String, (Status, String, String)>| match result {
        Ok(detail) => checks.push(Check {
            name,
            status: Status::Ok,
            detail,
            hint: None,
        }),
        Err((status, detail, hint)) => checks.push(Check {
            name,
            status,
            detail,
            hint: Some(hint),
        }),
    };
    let apt = |pkg: &str| format!("apt-get install {pkg} (scripts/setup.sh does)");

    for (name, bin, pkg) in [
        (
            "qemu-system-x86_64",
            "qemu-system-x86_64",
            "qemu-system-x86",
        ),
        ("qemu-img", "qemu-img", "qemu-utils"),
    ] {
        check(
            name,
            process::stdout(Command::new(bin).arg("--version"))
                .map(|v| v.lines().next().unwrap_or("").to_string())
                .map_err(|e| (Status::Fail, crate::report(&e), apt(pkg))),
        );
    }
    check(
        "/dev/net/tun",
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/net/tun")
            .map(|_| "opens read-write".to_string())
            .map_err(|e| {
                (
                    Status::Fail,
                    format!("cannot open: {e}"),
                    "modprobe tun, and run as root".into(),
                )
            }),
    );
    check(
        "bridge and TAP",
        netns_bridge_tap().map_err(|e| {
            (
                Status::Fail,
                e,
                "run as root with iproute2 installed; the kernel needs bridge and tun".into(),
            )
        }),
    );

    check(
        "link impairments",
        if crate::impair::kernel_has_netem() {
            Ok("netem: delay, jitter, loss, rate, corruption, duplication, reordering".into())
        } else {
            Err((
                Status::Warn,
                "no netem in this kernel: loss and rate by nftables; delay, jitter, corruption, duplication and reordering by minivm's relay in user space".into(),
                "a kernel with CONFIG_NET_SCH_NETEM (modprobe sch_netem) shapes in the kernel".into(),
            ))
        },
    );

    let choice = accel::probe_and_remember(state_dir);
    check(
        "accelerator",
        Ok(format!("{} ({})", choice.accel.name(), choice.reason)),
    );

    check("free disk", free_disk(state_dir));

    let image = ImageStore::open(state_dir)
        .map_err(|e| crate::report(&e))
        .and_then(|s| {
            s.exists(DEFAULT_IMAGE)
                .map_err(|e| crate::report(&e))
                .map(|ok| (ok, s))
        });
    check(
        "default image",
        match image {
            Ok((true, s)) => Ok(format!(
                "{DEFAULT_IMAGE:?} at {}",
                s.path(DEFAULT_IMAGE)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )),
            Ok((false, _)) => Err((
                Status::Fail,
                format!("no image {DEFAULT_IMAGE:?} in {}", state_dir.display()),
                format!("minivm image build {DEFAULT_IMAGE}"),
            )),
            Err(e) => Err((
                Status::Fail,
                e,
                format!("check that {} is writable", state_dir.display()),
            )),
        },
    );

    let can_run = checks.iter().all(|c| c.status != Status::Fail);
    Report {
        checks,
        accelerator: choice.accel,
        accelerator_reason: choice.reason,
        can_run,
    }
}

/// Creates a bridge and a TAP on it in a throwaway namespace, then deletes
/// the namespace (and with it both devices), whatever happened.
fn netns_bridge_tap() -> Result<String, String> {
    let ns = format!("minivm-doctor-{}", std::process::id());
    process::run(Command::new("ip").args(["netns", "add", &ns])).map_err(|e| crate::report(&e))?;
    let result = (|| {
        process::run(Command::new("ip").args([
            "-n",
            &ns,
            "link",
            "add",
            "mvdoctorbr",
            "type",
            "bridge",
        ]))?;
        process::run(Command::new("ip").args([
            "-n",
            &ns,
            "tuntap",
            "add",
            "mvdoctortap",
            "mode",
            "tap",
        ]))?;
        process::run(Command::new("ip").args([
            "-n",
            &ns,
            "link",
            "set",
            "mvdoctortap",
            "master",
            "mvdoctorbr",
        ]))?;
        process::run(Command::new("ip").args(["-n", &ns, "link", "set", "mvdoctorbr", "up"]))
    })();
    let deleted = process::run(Command::new("ip").args(["netns", "del", &ns]));
    result.map_err(|e| crate::report(&e))?;
    deleted.map_err(|e| crate::report(&e))?;
    Ok("created and removed in a throwaway network namespace".into())
}

fn free_disk(state_dir: &Path) -> Result<String, (Status, String, String)> {
    let _ = std::fs::create_dir_all(state_dir);
    let out = process::stdout(Command::new("df").args(["-Pk"]).arg(state_dir)).map_err(|e| {
        (
            Status::Warn,
            e.to_string(),
            "check the state directory".to_string(),
        )
    })?;
    let avail_kib: u64 = out
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse().ok())
        .ok_or((
            Status::Warn,
            format!("cannot read df output: {out}"),
            "check the state directory".to_string(),
        ))?;
    let bytes = avail_kib * 1024;
    let detail = format!(
        "{:.1} GiB free in {}",
        bytes as f64 / (1u64 << 30) as f64,
        state_dir.display()
    );
    if bytes < MIN_FREE_BYTES {
        Err((
            Status::Warn,
            detail,
            "free some space: each VM's overlay grows as the guest writes".into(),
        ))
    } else {
        Ok(detail)
    }
}
