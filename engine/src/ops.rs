//! The lab operations, as one code path for the CLI and the web app: each
//! takes the lab's lock, says what it does through `say` (the CLI prints it,
//! the server publishes it as events), and changes nothing when its input
//! is refused.

use std::path::Path;
use std::time::{Duration, Instant};

use topology::Topology;

use crate::lab::{Engine, LabError, Progress};
use crate::plan::Step;
use crate::store::{LabStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(
        "node {node:?}: no image named {image:?} (see `minivm image list`); nothing was changed"
    )]
    NoImage { node: String, image: String },
    #[error("lab {lab:?} has no VM named {vm:?} (it has: {})", has.join(", "))]
    NoVm {
        lab: String,
        vm: String,
        has: Vec<String>,
    },
    #[error(transparent)]
    UnknownAction(#[from] topology::lifecycle::UnknownAction),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
}

pub type Result<T, E = OpsError> = std::result::Result<T, E>;

/// What `up` did.
#[derive(Debug)]
pub struct UpReport {
    pub steps: Vec<Step>,
    pub elapsed: Duration,
}

/// Refuses a lab none of whose VMs has its image in the store: nothing
/// could run (an empty store, a typo in `defaults.image`), so nothing is
/// made. A lab where only some VMs lack theirs comes up without them, each
/// failing with its own error.
pub fn check_images(engine: &Engine, t: &Topology) -> Result<()> {
    let mut first_missing = None;
    for n in &t.nodes {
        let image = t.node_image(n).unwrap_or_default();
        if engine.images.exists(image)? {
            return Ok(());
        }
        first_missing.get_or_insert_with(|| OpsError::NoImage {
            node: n.name.clone(),
            image: image.to_string(),
        });
    }
    first_missing.map_or(Ok(()), Err)
}

/// Refuses a VM name the lab does not have, listing those it has: the one
/// check of VM names for the CLI, the web app and the operations here.
pub fn check_vms<S: AsRef<str>>(t: &Topology, vms: &[S]) -> Result<()> {
    match vms.iter().find(|v| t.node(v.as_ref()).is_none()) {
        Some(vm) => Err(OpsError::NoVm {
            lab: t.name.clone(),
            vm: vm.as_ref().to_string(),
            has: t.nodes.iter().map(|n| n.name.clone()).collect(),
        }),
        None => Ok(()),
    }
}

pub use topology::lifecycle::VmAction;

/// Carries `action` out on `vms` of the stored lab `t`: a stop powers them
/// down, a start makes what they need and waits until they are ready, a
/// restart does both.
pub fn run_vm_action(
    engine: &Engine,
    t: &Topology,
    action: VmAction,
    vms: &[&str],
    timeout: Duration,
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    check_vms(t, vms)?;
    if matches!(action, VmAction::Stop | VmAction::Restart) {
        stop(engine, t, vms, say)?;
    }
    if matches!(action, VmAction::Start | VmAction::Restart) {
        start(engine, t, vms, timeout, say)?;
    }
    Ok(())
}

fn step_line(p: Progress) -> String {
    format!("[{}/{}] {}", p.done, p.total, p.step.reason)
}

/// Brings lab `t` up and waits until every VM is ready. With `file`, the lab
/// is (re)stored as coming from that file, refused when its name belongs to
/// another file; without, `t` is the stored lab (the web editor's).
pub fn up(
    engine: &Engine,
    store: &LabStore,
    t: &Topology,
    file: Option<&Path>,
    timeout: Duration,
    say: &(dyn Fn(String) + Sync),
) -> Result<UpReport> {
    check_images(engine, t)?;
    if let Some(f) = file {
        store.check_from_file(t, f)?;
    }
    let _lock = engine.lock(&t.name, &|| {
        say(format!(
            "waiting for another command working on lab {:?}",
            t.name
        ))
    })?;
    if let Some(f) = file {
        store.put_from_file(t, f)?;
    }
    let started = Instant::now();
    let vms: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
    let steps = reconcile_and_wait(engine, t, None, &vms, timeout, say)?;
    Ok(UpReport {
        steps,
        elapsed: started.elapsed(),
    })
}

/// Reconciles (all of `t`, or `only`), then waits for `vms` to be ready.
/// A VM or network that fails does not stop the rest: the others are still
/// waited for, and then every failure is returned together.
fn reconcile_and_wait(
    engine: &Engine,
    t: &Topology,
    only: Option<&[&str]>,
    vms: &[&str],
    timeout: Duration,
    say: &(dyn Fn(String) + Sync),
) -> Result<Vec<Step>> {
    let (steps, mut errors) = match engine.reconcile(t, only, &|p| say(step_line(p))) {
        Ok(steps) => (steps, vec![]),
        Err(e) if e.is_partial() => (vec![], vec![e]),
        Err(e) => return Err(e.into()),
    };
    let failed = errors.first().map(LabError::failed_vms).unwrap_or_default();
    for e in &errors {
        say(format!("failed: {e}"));
    }
    let rest: Vec<&str> = vms
        .iter()
        .copied()
        .filter(|v| !failed.contains(*v))
        .collect();
    say(format!("waiting for {} VM(s) to be ready", rest.len()));
    if let Err(e) = engine.wait_ready(&t.name, &rest, timeout, &|vm, after| {
        say(format!("{vm} is ready ({:.1} s)", after.as_secs_f64()))
    }) {
        errors.push(e);
    }
    LabError::combine(errors)?;
    Ok(steps)
}

/// Starts some VMs of a stored lab (and what they need), waits until ready.
pub fn start(
    engine: &Engine,
    t: &Topology,
    vms: &[&str],
    timeout: Duration,
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    check_vms(t, vms)?;
    let _lock = engine.lock(&t.name, &|| {
        say(format!(
            "waiting for another command working on lab {:?}",
            t.name
        ))
    })?;
    reconcile_and_wait(engine, t, Some(vms), vms, timeout, say)?;
    Ok(())
}

/// Powers some VMs of a lab down (ACPI, then quit, then kill).
pub fn stop(
    engine: &Engine,
    t: &Topology,
    vms: &[&str],
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    check_vms(t, vms)?;
    let _lock = engine.lock(&t.name, &|| {
        say(format!(
            "waiting for another command working on lab {:?}",
            t.name
        ))
    })?;
    for vm in vms {
        say(format!("stopping {vm}"));
        engine.stop_vm(&t.name, vm, Duration::from_secs(10))?;
    }
    Ok(())
}

/// Stops a lab and removes its devices; with `cleanup`, its files too.
pub fn down(
    engine: &Engine,
    lab: &str,
    cleanup: bool,
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    let _lock = engine.lock(lab, &|| {
        say(format!(
            "waiting for another command working on lab {lab:?}"
        ))
    })?;
    say(format!(
        "stopping the VMs of {lab:?} and removing its devices"
    ));
    engine.down(lab, cleanup)?;
    Ok(())
}

/// Starts `vm` again if it is still crashed (the restart policy's step):
/// under the lab's lock, so a `down` or `stop` in between wins. Returns
/// whether it was started. Does not wait for readiness.
pub fn restart_crashed(engine: &Engine, t: &Topology, vm: &str) -> Result<bool> {
    check_vms(t, &[vm])?;
    let _lock = engine.lock(&t.name, &|| {})?;
    let crashed = crate::lab::vm_states(engine, t)
        .get(vm)
        .is_some_and(|s| s.state == crate::lifecycle::VmState::Crashed);
    if !crashed {
        return Ok(false);
    }
    engine.reconcile(t, Some(&[vm]), &|_| {})?;
    Ok(true)
}
