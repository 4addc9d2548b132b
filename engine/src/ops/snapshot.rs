//! Lab snapshots as operations, under the lab's lock: taking one (every
//! running VM paused at one moment), bringing one back, removing one. The
//! records and their checks are `crate::snapshot`.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use super::{lock, OpsError};
use crate::lab::Engine;
use crate::snapshot::{
    check_name, copy_overlay, dir_of, get, io, list, Snapshot, SnapshotError, SnapshotVm,
};
use crate::store::LabStore;

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
pub fn remove(
    engine: &Engine,
    lab: &str,
    name: &str,
    say: &(dyn Fn(String) + Sync),
) -> Result<(), OpsError> {
    check_name(name)?;
    let _lock = lock(engine, lab, say)?;
    get(engine, lab, name)?;
    let dir = dir_of(engine, lab).join(name);
    fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
    Ok(())
}

impl From<SnapshotError> for OpsError {
    fn from(e: SnapshotError) -> OpsError {
        OpsError::Snapshot(e)
    }
}
