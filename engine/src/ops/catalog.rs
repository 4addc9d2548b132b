//! The catalogue of labs: renaming (and, with it, what moves with a lab's
//! directory), under the lab's lock.

use super::{lock, OpsError, Result};
use crate::lab::Engine;
use crate::store::{LabStore, StoreError};

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
    store.get(from)?;
    topology::names::check_name(to).map_err(|reason| StoreError::BadName {
        name: to.to_string(),
        reason,
    })?;
    let _lock = lock(engine, from, say)?;
    let running: Vec<String> = crate::lab::running_qemus(from).into_keys().collect();
    if !running.is_empty() {
        return Err(OpsError::Running {
            lab: from.to_string(),
            what: "rename",
            vms: running,
        });
    }
    engine.down(from, false)?;
    let rev = store.rename(from, to)?;
    say(format!(
        "lab {from:?} is now {to:?}, with its disks and snapshots"
    ));
    Ok(rev)
}
