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

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use topology::Topology;

use crate::lab::{Engine, SavedState};
use crate::ops::{lock, OpsError};
use crate::store::LabStore;

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

fn io<'a>(
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

fn dir_of(engine: &Engine, lab: &str) -> PathBuf {
    engine.lab_dir(lab).join("snapshots")
}

fn check_name(name: &str) -> Result<(), SnapshotError> {
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

fn get(engine: &Engine, lab: &str, name: &str) -> Result<Snapshot, SnapshotError> {
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

/// Takes snapshot `name` of lab `lab` (stored): every running VM paused,
/// its state and overlay written, then all let run on; a stopped VM's
/// overlay copied. Refuses a name in use.
pub fn save(
    engine: &Engine,
    store: &LabStore,
    lab: &str,
    name: &str,
    say: &(dyn Fn(String) + Sync),
) -> Result<Snapshot, OpsError> {
    check_name(name)?;
    let _lock = lock(engine, lab, say)?;
    let (t, revision) = store.get(lab)?;
    if list(engine, lab)?.iter().any(|s| s.name == name) {
        return Err(SnapshotError::Exists {
            lab: lab.into(),
            name: name.into(),
        }
        .into());
    }
    let root = dir_of(engine, lab);
    let dir = root.join(name);
    let tmp = root.join(format!(".{name}.tmp"));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).map_err(io("create", &tmp))?;
    // Root's: each VM's QEMU writes only the state file made for it (see
    // `migrate_to_file`), found by its name (x, no r or w).
    for d in [&root, &tmp] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o711)).map_err(io("chmod", d))?;
    }
    // Whatever fails from here, the temporary directory goes with it: a
    // failed save leaves nothing behind.
    let outcome = (|| -> Result<Snapshot, OpsError> {
        let running = crate::lab::running_qemus(lab);
        // Every running VM paused first: the snapshot is one moment of the lab.
        let started = Instant::now();
        let mut paused = Vec::new();
        for node in t.nodes.iter().filter(|n| running.contains_key(&n.name)) {
            match engine.pause_vm(lab, &node.name) {
                Ok(p) => paused.push(p),
                Err(e) => {
                    paused.into_iter().for_each(crate::lab::Paused::resume);
                    let _ = fs::remove_dir_all(&tmp);
                    return Err(e.into());
                }
            }
        }
        say(format!("{} VM(s) paused", paused.len()));
        let result = (|| -> Result<BTreeMap<String, SnapshotVm>, OpsError> {
            let mut vms = BTreeMap::new();
            for p in &mut paused {
                let state = tmp.join(format!("{}.state", p.vm()));
                let saved = p.write_state(&state)?;
                // Root's again: the guest, running on, cannot change it.
                crate::lab::ids::take_back(&state)
                    .map_err(|e| crate::lab::LabError::vm(p.vm(), crate::lab::VmFault::Ids(e)))?;
                let disk =
                    copy_overlay(&p.dir().overlay(), &tmp.join(format!("{}.qcow2", p.vm())))?;
                say(format!(
                    "{}: memory {:.1} MB, disk {:.1} MB",
                    p.vm(),
                    saved.bytes as f64 / 1e6,
                    disk as f64 / 1e6
                ));
                vms.insert(
                    p.vm().to_string(),
                    SnapshotVm {
                        saved: Some(saved),
                        disk_bytes: disk,
                    },
                );
            }
            Ok(vms)
        })();
        let paused_ms = started.elapsed().as_millis() as u64;
        paused.into_iter().for_each(crate::lab::Paused::resume);
        let mut vms = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        // Stopped VMs: their disks (nothing moves them).
        for node in &t.nodes {
            let overlay = engine.vm_files(lab, &node.name).overlay();
            if vms.contains_key(&node.name) || !overlay.exists() {
                continue;
            }
            let disk = copy_overlay(&overlay, &tmp.join(format!("{}.qcow2", node.name)))?;
            vms.insert(
                node.name.clone(),
                SnapshotVm {
                    saved: None,
                    disk_bytes: disk,
                },
            );
        }
        let snap = Snapshot {
            name: name.to_string(),
            created_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            revision,
            bytes: vms
                .values()
                .map(|v| v.disk_bytes + v.saved.as_ref().map_or(0, |s| s.bytes))
                .sum(),
            topology: t,
            vms,
            paused_ms,
        };
        let record = tmp.join("snapshot.json");
        crate::fsutil::write_atomic(
            &record,
            serde_json::to_string_pretty(&snap)
                .expect("serializes")
                .as_bytes(),
        )
        .map_err(io("write", &record))?;
        fs::rename(&tmp, &dir).map_err(io("rename", &tmp))?;
        // No QEMU reaches into a snapshot (a restore links its states in).
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io("chmod", &dir))?;
        Ok(snap)
    })();
    if outcome.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    outcome
}

/// Copies an overlay (a small qcow2 on top of its base image) and returns
/// its size.
fn copy_overlay(from: &Path, to: &Path) -> Result<u64, SnapshotError> {
    fs::copy(from, to).map_err(io("copy", from))
}

/// Brings lab `lab` back to snapshot `name`: its topology, every VM's
/// disk, and the VMs that were running resumed from their memory; VMs the
/// snapshot does not have are removed. Waits until the resumed VMs are
/// ready.
pub fn restore(
    engine: &Engine,
    store: &LabStore,
    lab: &str,
    name: &str,
    timeout: Duration,
    say: &(dyn Fn(String) + Sync),
) -> Result<Snapshot, OpsError> {
    check_name(name)?;
    let _lock = lock(engine, lab, say)?;
    let mut snap = get(engine, lab, name)?;
    // Taken under another name (the lab was renamed since): the topology
    // is the lab's as it is named now.
    snap.topology.name = lab.to_string();
    let dir = dir_of(engine, lab).join(name);
    let (current, revision) = store.get(lab)?;
    // First every disk copied beside the VM's own (nothing is changed
    // yet): a copy that fails leaves the lab as it was, topology included.
    let mut copied = Vec::new();
    let copies = (|| -> Result<(), OpsError> {
        for vm in snap.vms.keys() {
            let files = engine.vm_files(lab, vm);
            fs::create_dir_all(files.path()).map_err(io("create", files.path()))?;
            let who = engine.claim_ids(vm, files.path())?;
            let tmp = files.overlay_tmp();
            copied.push(tmp.clone());
            copy_overlay(&dir.join(format!("{vm}.qcow2")), &tmp)?;
            engine.give_to(vm, &tmp, who)?;
        }
        if current != snap.topology {
            store.put(&snap.topology, Some(&revision))?;
            say(format!(
                "the lab's topology is the snapshot's again (revision {})",
                snap.revision
            ));
        }
        Ok(())
    })();
    if let Err(e) = copies {
        for tmp in &copied {
            let _ = fs::remove_file(tmp);
        }
        return Err(e);
    }
    // Every VM of the lab stopped, at once (what they had is replaced).
    let mut vms: Vec<String> = crate::lab::running_qemus(lab).into_keys().collect();
    vms.extend(current.nodes.iter().map(|n| n.name.clone()));
    vms.sort();
    vms.dedup();
    for vm in &vms {
        engine.stop_vm(lab, vm, Duration::ZERO)?;
        if !snap.vms.contains_key(vm) && snap.topology.node(vm).is_none() {
            let d = engine.vm_dir(lab, vm);
            if d.exists() {
                fs::remove_dir_all(&d).map_err(io("remove", &d))?;
            }
        }
    }
    let mut resume = Vec::new();
    for (vm, v) in &snap.vms {
        let files = engine.vm_files(lab, vm);
        let tmp = files.overlay_tmp();
        fs::rename(&tmp, files.overlay()).map_err(io("rename", &tmp))?;
        crate::lab::discard_saved(&files);
        if let Some(saved) = &v.saved {
            // A link, not a copy: the resume deletes the VM's own name for
            // it, the snapshot keeps its own.
            let state = dir.join(format!("{vm}.state"));
            fs::hard_link(&state, files.saved_state()).map_err(io("link", &state))?;
            crate::lab::write_record(&files.saved_meta(), saved)?;
            resume.push(vm.as_str());
        }
    }
    say(format!(
        "disks restored; resuming {} VM(s) from the snapshot's memory",
        resume.len()
    ));
    if !resume.is_empty() {
        crate::ops::reconcile_and_wait(
            engine,
            &snap.topology,
            Some(&resume),
            &resume,
            timeout,
            say,
        )?;
    }
    Ok(snap)
}

/// Removes snapshot `name` of lab `lab`.
pub fn remove(engine: &Engine, lab: &str, name: &str) -> Result<(), SnapshotError> {
    check_name(name)?;
    get(engine, lab, name)?;
    let dir = dir_of(engine, lab).join(name);
    fs::remove_dir_all(&dir).map_err(io("remove", &dir))
}

impl From<SnapshotError> for OpsError {
    fn from(e: SnapshotError) -> OpsError {
        OpsError::Snapshot(e)
    }
}
