//! Lab snapshots: every VM's disk and memory, and the topology, taken
//! together and brought back together (`minivm snapshot save|list|restore|rm`,
//! the editor's Snapshots panel).
//!
//! A snapshot is `<state>/labs/<lab>/snapshots/<name>/`: `snapshot.json`
//! (when, the topology and its revision, each VM's saved-state record),
//! and per VM a copy of its overlay (`<vm>.qcow2`, backed by the same base
//! image, which is never written) and, for a VM that was running, its
//! memory and devices (`<vm>.state`, a QEMU migration stream). Saving
//! pauses every running VM first, so all are taken at one moment, then lets
//! them run on. Restoring stops the lab's VMs, puts the overlays back,
//! links each state in as the VM's saved state and starts the VMs that were
//! running, which resume (`lab/apply.rs`); those that were stopped stay so.
//!
//! This module is the snapshot's records and files; taking, restoring and
//! removing one (under the lab's lock) are operations: `ops::snapshot`.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use topology::Topology;

use crate::lab::{Engine, SavedState};

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot name {name:?}: {reason}")]
    BadName { name: String, reason: String },
    #[error("lab {lab:?} has a snapshot {name:?} already (remove it first)")]
    Exists { lab: String, name: String },
    #[error("lab {lab:?} has no snapshot {name:?} (it has: {})", if has.is_empty() { "none".to_string() } else { has.join(", ") })]
    Missing {
        lab: String,
        name: String,
        has: Vec<String>,
    },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("snapshot {0:?} is unreadable")]
    Unreadable(String, #[source] serde_json::Error),
}

pub(crate) fn io<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// One VM in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotVm {
    /// Its saved state: `None` for a VM that was not running.
    pub saved: Option<SavedState>,
    pub disk_bytes: u64,
}

/// A snapshot's record (`snapshot.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub name: String,
    /// Seconds since the epoch.
    pub created_at: u64,
    /// The stored lab's revision it was taken of.
    pub revision: String,
    pub topology: Topology,
    pub vms: BTreeMap<String, SnapshotVm>,
    /// Disk and memory, in bytes.
    pub bytes: u64,
    /// How long the VMs were paused, in milliseconds.
    pub paused_ms: u64,
}

pub(crate) fn dir_of(engine: &Engine, lab: &str) -> PathBuf {
    engine.lab_dir(lab).join("snapshots")
}

pub(crate) fn check_name(name: &str) -> Result<(), SnapshotError> {
    topology::names::check_name(name).map_err(|e| SnapshotError::BadName {
        name: name.to_string(),
        reason: e.to_string(),
    })
}

/// The largest snapshot record read (a topology and a line per VM).
const MAX_RECORD: usize = 4 << 20;

/// Why a snapshot record in directory `dir_name` cannot be trusted: its
/// name is not its directory's, or a VM key (which becomes a file name)
/// is not a VM of its topology.
fn check_record(snap: &Snapshot, dir_name: &str) -> Result<(), String> {
    if snap.name != dir_name || topology::names::check_name(&snap.name).is_err() {
        return Err(format!("it names itself {:?}", snap.name));
    }
    for vm in snap.vms.keys() {
        if topology::names::check_name(vm).is_err() || snap.topology.node(vm).is_none() {
            return Err(format!("{vm:?} is not a VM of its topology"));
        }
    }
    Ok(())
}

/// The lab's snapshots, oldest first.
pub fn list(engine: &Engine, lab: &str) -> Result<Vec<Snapshot>, SnapshotError> {
    let dir = dir_of(engine, lab);
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(&dir) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let record = e.path().join("snapshot.json");
        // A snapshot being written (or cut short) has no record yet. The
        // record is read as hostile input: its directory was a QEMU's to
        // write (see `check_record`).
        let text = match crate::fsutil::read_plain(&record, MAX_RECORD) {
            Ok(t) => t,
            Err(crate::fsutil::ConfinedError::Io(_, e))
                if e.kind() == std::io::ErrorKind::NotFound =>
            {
                continue
            }
            Err(why) => {
                tracing::warn!(lab, error = %why, "skipping a snapshot record that cannot be read");
                continue;
            }
        };
        let name = e.file_name().to_string_lossy().into_owned();
        let snap: Snapshot =
            serde_json::from_str(&text).map_err(|e| SnapshotError::Unreadable(name.clone(), e))?;
        if let Err(why) = check_record(&snap, &name) {
            tracing::warn!(lab, snapshot = %name, why, "skipping a snapshot whose record is not one minivm wrote");
            continue;
        }
        out.push(snap);
    }
    out.sort_by(|a: &Snapshot, b| (a.created_at, &a.name).cmp(&(b.created_at, &b.name)));
    Ok(out)
}

pub(crate) fn get(engine: &Engine, lab: &str, name: &str) -> Result<Snapshot, SnapshotError> {
    let all = list(engine, lab)?;
    let has = all.iter().map(|s| s.name.clone()).collect();
    all.into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| SnapshotError::Missing {
            lab: lab.into(),
            name: name.into(),
            has,
        })
}

/// Copies an overlay (a small qcow2 on top of its base image) and returns
/// its size.
pub(crate) fn copy_overlay(from: &Path, to: &Path) -> Result<u64, SnapshotError> {
    fs::copy(from, to).map_err(io("copy", from))
}
