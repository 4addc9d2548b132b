//! Saved VM state: a running VM's memory and devices written by QEMU as a
//! migration stream to a file (`stop --save`, lab snapshots), resumed by
//! the next start (`apply.rs`).

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::procs::running_qemus;
use super::{io, Engine, LabError, Result, SavedState, Started, VmDir, VmFault};
use crate::qmp::Qmp;

/// A running VM held paused, its state being saved.
pub struct Paused {
    vm: String,
    dir: VmDir,
    qmp: Qmp,
    started: Started,
    ready: bool,
    /// The ids its QEMU runs as: the files it writes are handed to them.
    who: Option<crate::vm::RunAs>,
}

impl Engine {
    /// Pauses a running VM (QMP `stop`): what it has in memory and on disk
    /// holds still until [`Paused::resume`] or a quit.
    pub fn pause_vm(&self, lab: &str, name: &str) -> Result<Paused> {
        let dir = self.vm_files(lab, name);
        let fault = |why: String| LabError::vm(name, VmFault::Save(why));
        if !running_qemus(lab).contains_key(name) {
            let state = self.observe_vm(lab, name, None).state.unwrap_or_default();
            return Err(LabError::NotRunning {
                vm: name.into(),
                state,
            });
        }
        let started: Started = crate::fsutil::read_text(&dir.hardware())
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .ok_or_else(|| fault("its hardware record is missing".into()))?;
        let ready = dir.ready().exists();
        let mut qmp = Qmp::connect(&dir.qmp_socket()).map_err(|e| fault(e.to_string()))?;
        qmp.execute_with("stop", serde_json::json!({}))
            .map_err(|e| fault(e.to_string()))?;
        let who = self.ids_of(dir.path());
        Ok(Paused {
            who,
            vm: name.to_string(),
            dir,
            qmp,
            started,
            ready,
        })
    }

    /// Saves a running VM's memory and device state to its directory and
    /// stops its QEMU: the next start resumes it where it was (`stop
    /// --save`). The record of what the state is of is written after the
    /// state, so a state without one is never taken for whole. Returns the
    /// state's size in bytes.
    pub fn save_vm(&self, lab: &str, name: &str) -> Result<u64> {
        let dir = self.vm_files(lab, name);
        let _ = fs::remove_file(dir.saved_meta());
        let mut p = self.pause_vm(lab, name)?;
        let tmp = dir.saved_state_tmp();
        let record = match p.write_state(&tmp) {
            Ok(r) => r,
            Err(e) => {
                p.resume();
                return Err(e);
            }
        };
        fs::rename(&tmp, dir.saved_state()).map_err(io("rename", &tmp))?;
        write_record(&dir.saved_meta(), &record)?;
        // Paused and saved: no clean shutdown to wait for. Told on the QMP
        // connection held (QMP takes one client at a time), then made sure of.
        // Its exit is a stop (`stopping`), never taken for a crash.
        let _ = crate::fsutil::write_atomic(&dir.stopping(), b"");
        p.quit();
        self.stop_vm(lab, name, Duration::ZERO)?;
        Ok(record.bytes)
    }
}

impl Paused {
    pub fn vm(&self) -> &str {
        &self.vm
    }

    /// The VM's directory (its overlay holds still while it is paused).
    pub fn dir(&self) -> &VmDir {
        &self.dir
    }

    /// Writes the paused VM's state to `path` (QEMU writes it, the disk
    /// flushed first) and returns the record of what it is of.
    pub fn write_state(&mut self, path: &Path) -> Result<SavedState> {
        let name = self.vm.clone();
        let fault = |why: String| LabError::vm(&name, VmFault::Save(why));
        migrate_to_file(&mut self.qmp, path, self.who).map_err(fault)?;
        Ok(SavedState {
            hardware: self.started.hardware.clone(),
            seed_hash: self.started.seed_hash.clone(),
            ready: self.ready,
            saved_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            bytes: fs::metadata(path).map(|m| m.len()).unwrap_or(0),
        })
    }

    /// Ends the paused VM's QEMU.
    pub fn quit(mut self) {
        let _ = self.qmp.execute("quit");
    }

    /// Lets the guest run on.
    pub fn resume(mut self) {
        if let Err(e) = self.qmp.execute("cont") {
            tracing::warn!(vm = %self.vm, error = %e, "cannot resume a paused VM");
        }
    }
}

/// Has a paused QEMU write its state to `path` (QMP `migrate` to a file)
/// and waits until it is whole; the file is removed on failure.
///
/// Root makes the file, fresh (a name planted there is removed, never
/// followed), and hands it to `who`, the QEMU's ids: QEMU needs no right
/// to the directory, which may be root's (a snapshot's).
pub(super) fn migrate_to_file(
    qmp: &mut Qmp,
    path: &Path,
    who: Option<crate::vm::RunAs>,
) -> std::result::Result<(), String> {
    let made = crate::fsutil::create_fresh(path)
        .map_err(|e| format!("cannot make {}: {e}", path.display()))?;
    if let Some(w) = who {
        std::os::unix::fs::fchown(&made, Some(w.uid), Some(w.gid))
            .map_err(|e| format!("cannot hand {} to the VM: {e}", path.display()))?;
    }
    drop(made);
    // A file takes the state as fast as QEMU writes it (the default cap is
    // for networks).
    let _ = qmp.execute_with(
        "migrate-set-parameters",
        serde_json::json!({"max-bandwidth": 8u64 << 30}),
    );
    qmp.execute_with(
        "migrate",
        serde_json::json!({"uri": format!("file:{}", path.display())}),
    )
    .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let m = qmp.execute("query-migrate").map_err(|e| e.to_string())?;
        match m["return"]["status"].as_str().unwrap_or_default() {
            "completed" => return Ok(()),
            "failed" | "cancelled" => {
                let _ = fs::remove_file(path);
                return Err(m["return"]["error-desc"]
                    .as_str()
                    .unwrap_or("no reason given")
                    .to_string());
            }
            _ if Instant::now() > deadline => {
                let _ = qmp.execute("migrate_cancel");
                let _ = fs::remove_file(path);
                return Err("not written within 300 s".into());
            }
            _ => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Writes a saved state's record, atomically.
pub fn write_record(path: &Path, record: &SavedState) -> Result<()> {
    crate::fsutil::write_atomic(
        path,
        serde_json::to_string(record)
            .expect("serializes")
            .as_bytes(),
    )
    .map_err(io("write", path))
}
