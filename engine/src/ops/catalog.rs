//! The catalogue of labs: creating one (empty, from a file's text, from a
//! containerlab file, from a template), duplicating, renaming and deleting,
//! each under the lab's lock. The CLI and the web app call these and only
//! decode their input and show the outcome.

use topology::Topology;

use super::{lock, OpsError, Result};
use crate::lab::Engine;
use crate::store::{LabStore, StoreError};

/// A lab made from a file's text, not stored yet: what `import` makes of
/// it, and what it could not carry over (a containerlab file's report).
#[derive(Debug, Clone)]
pub struct Imported {
    pub topology: Topology,
    pub report: Vec<String>,
}

/// Makes a lab of `text`: a containerlab topology (`topology::clab`, the
/// files it names read through `read`, never by path), or MiniVM's own
/// YAML or JSON. `name` replaces the file's lab name. Every problem is
/// reported together; nothing is stored (see [`create`]).
pub fn import(
    text: &str,
    name: Option<String>,
    image_map: Vec<(String, String)>,
    read: &mut dyn FnMut(&str) -> std::result::Result<topology::clab::Source, String>,
) -> Result<Imported> {
    let (mut t, report) = if topology::clab::looks_like(text) {
        let opts = topology::clab::Options {
            name: name.clone(),
            image_map,
        };
        let imported = topology::clab::import(text, &opts, read)?;
        (imported.topology, imported.report)
    } else {
        let t =
            topology::parse(text, topology::Format::sniff(text)).map_err(|e| OpsError::Import {
                reason: e
                    .problems()
                    .iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("\n"),
            })?;
        (t, vec![])
    };
    if let Some(n) = name {
        t.name = n;
    }
    let problems = topology::validate(&t);
    if !problems.is_empty() {
        return Err(OpsError::Invalid {
            lab: t.name.clone(),
            problems,
        });
    }
    Ok(Imported {
        topology: t,
        report,
    })
}

/// An empty lab named `name`, its VMs defaulting to the built-in `tiny`.
pub fn empty(name: &str) -> Topology {
    Topology {
        version: 1,
        name: name.to_string(),
        defaults: Some(topology::Defaults {
            image: Some("tiny".into()),
            cpus: Some(1),
            memory_mib: Some(128),
            restart: None,
        }),
        networks: vec![],
        nodes: vec![],
        network_mode: Default::default(),
        mgmt: None,
        tests: vec![],
    }
}

/// Stores `t` as a new lab, under its lock: refused when a lab of that
/// name exists (nothing is changed), or when `t` is invalid. Returns its
/// revision.
pub fn create(
    engine: &Engine,
    store: &LabStore,
    t: &Topology,
    say: &(dyn Fn(String) + Sync),
) -> Result<String> {
    topology::names::check_name(&t.name).map_err(|reason| StoreError::BadName {
        name: t.name.clone(),
        reason,
    })?;
    let _lock = lock(engine, &t.name, say)?;
    if store.get(&t.name).is_ok() {
        return Err(OpsError::Exists {
            lab: t.name.clone(),
        });
    }
    let rev = store.put(t, None)?;
    say(format!(
        "lab {:?} created: {} VM(s), {} network(s)",
        t.name,
        t.nodes.len(),
        t.networks.len()
    ));
    Ok(rev)
}

/// A copy of lab `from`'s topology as a new lab `to` (its disks, states
/// and snapshots are not copied: the copy's VMs start afresh).
pub fn duplicate(
    engine: &Engine,
    store: &LabStore,
    from: &str,
    to: &str,
    say: &(dyn Fn(String) + Sync),
) -> Result<String> {
    let (mut t, _) = {
        let _lock = lock(engine, from, say)?;
        store.get(from)?
    };
    t.name = to.to_string();
    create(engine, store, &t, say)
}

/// Deletes lab `name` and everything of it: its devices, disks, saved
/// states and snapshots. Refused while any of its VMs runs, saying which.
pub fn delete(
    engine: &Engine,
    store: &LabStore,
    name: &str,
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    let _lock = lock_stored(engine, store, name, say)?;
    refuse_running(name, "delete")?;
    engine.down(name, true)?;
    say(format!("lab {name:?} deleted"));
    Ok(())
}

/// Renames lab `from` to `to`, keeping everything of it: disks, saved
/// states and snapshots move with its directory. Refused while any of its
/// VMs runs (their devices and processes carry its name), saying which;
/// its leftover devices (bridges, namespace, rules) are removed first.
pub fn rename(
    engine: &Engine,
    store: &LabStore,
    from: &str,
    to: &str,
    say: &(dyn Fn(String) + Sync),
) -> Result<String> {
    topology::names::check_name(to).map_err(|reason| StoreError::BadName {
        name: to.to_string(),
        reason,
    })?;
    let _lock = lock_stored(engine, store, from, say)?;
    refuse_running(from, "rename")?;
    engine.down(from, false)?;
    let rev = store.rename(from, to)?;
    say(format!(
        "lab {from:?} is now {to:?}, with its disks and snapshots"
    ));
    Ok(rev)
}

/// Saves an edit of lab `t` made from revision `revision` (the editor's
/// Save): refused when the lab changed since (another tab, the CLI), or
/// when `t` is invalid. The store compares and writes as one step, so this
/// takes no lab lock: an edit is never held up by a long `up` (a running
/// lab takes its changes at the next start, links live; see
/// [`super::apply_links`]). Returns the new revision.
pub fn save(store: &LabStore, t: &Topology, revision: &str) -> Result<String> {
    Ok(store.put(t, Some(revision))?)
}

/// Records the host's opt-in (`on`) for lab `lab`'s port forwards to
/// listen beyond loopback (the editor's switch; `up --expose`), under the
/// lab's lock; it applies at the lab's next start.
pub fn set_expose(
    engine: &Engine,
    store: &LabStore,
    lab: &str,
    on: bool,
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    let _lock = lock_stored(engine, store, lab, say)?;
    crate::mgmt::set_exposed(&engine.lab_dir(lab), on)?;
    say(format!(
        "lab {lab:?}: port forwards {} at its next start",
        if on {
            "may listen beyond loopback"
        } else {
            "listen on loopback only"
        }
    ));
    Ok(())
}

/// Refuses `what` while any VM of `lab` runs (its devices and processes
/// carry the lab's name), saying which.
fn refuse_running(lab: &str, what: &'static str) -> Result<()> {
    let running: Vec<String> = crate::lab::running_qemus(lab).into_keys().collect();
    if running.is_empty() {
        return Ok(());
    }
    Err(OpsError::Running {
        lab: lab.to_string(),
        what,
        vms: running,
    })
}

/// The lock of lab `lab`, which must be stored: looked up first (a lab
/// that is not there gets no lock directory) and again under the lock (a
/// lab renamed or deleted while this waited is said, and the directory the
/// wait made goes again).
fn lock_stored(
    engine: &Engine,
    store: &LabStore,
    lab: &str,
    say: &(dyn Fn(String) + Sync),
) -> Result<crate::lab::LabLock> {
    store.get(lab)?;
    let held = lock(engine, lab, say)?;
    if let Err(e) = store.get(lab) {
        drop(held);
        engine.forget_lab_dir(lab);
        return Err(e.into());
    }
    Ok(held)
}
