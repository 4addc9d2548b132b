//! Starting QEMU: in its own session (it outlives the engine and the
//! server), as an unprivileged user with no capabilities, with the TAP fds
//! the engine opened handed over as fds 3, 4, ... (`-netdev tap,fd=N`), and
//! with QEMU's seccomp sandbox on.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

use crate::qemu::{self, NicBackend, VmSpec};

/// The only environment QEMU gets: where to find its helpers.
const QEMU_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The first fd number QEMU sees the TAPs at.
pub const FIRST_TAP_FD: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("{n} TAP fds given for {m} TAP NICs")]
    TapCount { n: usize, m: usize },
    #[error("cannot open its log {path}")]
    Log {
        path: String,
        source: std::io::Error,
    },
    #[error("{binary} cannot start")]
    Spawn {
        binary: String,
        source: std::io::Error,
    },
}

/// Who QEMU runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
}

/// `nobody:nogroup`, present on every Debian system.
pub const NOBODY: RunAs = RunAs {
    uid: 65534,
    gid: 65534,
};

/// The `-sandbox` option: seccomp on, no privilege changes, no spawning.
pub const SANDBOX: &str = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny";

/// Launches `spec`. Its TAP NICs must be `NicBackend::TapFd(3)`,
/// `TapFd(4)`, ... in order, and `taps` the matching open TAP queues.
/// QEMU's stdout and stderr go to `<run_dir>/qemu.log`.
/// The QEMU binary used unless the engine is told otherwise.
pub const QEMU: &str = "qemu-system-x86_64";

pub fn launch(
    qemu_binary: &std::path::Path,
    spec: &VmSpec,
    taps: Vec<OwnedFd>,
    run_as: Option<RunAs>,
) -> Result<Child, VmError> {
    launch_with(qemu_binary, spec, taps, run_as, false)
}

/// [`launch`], and with `tied` the QEMU is killed when the thread that
/// started it ends (a warm image's guest: never left behind by a killed
/// `up`).
pub fn launch_with(
    qemu_binary: &std::path::Path,
    spec: &VmSpec,
    taps: Vec<OwnedFd>,
    run_as: Option<RunAs>,
    tied: bool,
) -> Result<Child, VmError> {
    let tap_nics = spec
        .nics
        .iter()
        .filter(|n| matches!(n.backend, NicBackend::TapFd(_)))
        .count();
    if tap_nics != taps.len() {
        return Err(VmError::TapCount {
            n: taps.len(),
            m: tap_nics,
        });
    }
    let log_path = crate::vmdir::VmDir::new(spec.run_dir.clone()).qemu_log();
    // The VM's directory is its QEMU user's: a name planted there is
    // removed, never followed.
    let log = crate::fsutil::create_fresh(&log_path).map_err(|source| VmError::Log {
        path: log_path.display().to_string(),
        source,
    })?;
    let log2 = log.try_clone().map_err(|source| VmError::Log {
        path: log_path.display().to_string(),
        source,
    })?;
    let mut cmd = Command::new(qemu_binary);
    cmd.args(qemu::argv(spec))
        .args(["-sandbox", SANDBOX])
        // Nothing of the server's environment (its token, a user's
        // secrets) reaches a process a guest may take over.
        .env_clear()
        .env("PATH", QEMU_PATH)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    if let Some(u) = run_as {
        // std drops supplementary groups when it changes uid as root.
        cmd.uid(u.uid).gid(u.gid);
    }
    let raw: Vec<i32> = taps.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe calls (setsid, dup, dup2, fcntl) on fds the
    // parent keeps open until spawn returns; prctl is async-signal-safe too.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // After the change of user (std changes it before these
            // closures), so the setting is kept through exec.
            if tied && libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // First move every fd above the target range, so that a source
            // that is also a target number is not overwritten.
            let mut high = Vec::with_capacity(raw.len());
            for fd in &raw {
                let h = libc::fcntl(*fd, libc::F_DUPFD, 1000);
                if h < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                high.push(h);
            }
            for (i, h) in high.iter().enumerate() {
                let target = FIRST_TAP_FD + i as i32;
                if libc::dup2(*h, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(*h);
                // dup2 clears FD_CLOEXEC on the target: QEMU inherits it.
            }
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| VmError::Spawn {
        binary: qemu_binary.display().to_string(),
        source,
    })?;
    drop(taps);
    Ok(child)
}
