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
    #[error("lab {lab:?} has no VM named {vm:?}")]
    NoVm { lab: String, vm: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
}

pub type Result<T, E = OpsError> = std::result::Result<T, E>;

/// What `up` did.
pub struct UpReport {
    pub steps: Vec<Step>,
    pub elapsed: Duration,
}

/// Refuses a lab that names an image the store does not have.
pub fn check_images(engine: &Engine, t: &Topology) -> Result<()> {
    for n in &t.nodes {
        let image = t.node_image(n).unwrap_or_default();
        if !engine.images.exists(image)? {
            return Err(OpsError::NoImage {
                node: n.name.clone(),
                image: image.to_string(),
            });
        }
    }
    Ok(())
}

fn check_vms(t: &Topology, vms: &[&str]) -> Result<()> {
    match vms.iter().find(|v| t.node(v).is_none()) {
        Some(vm) => Err(OpsError::NoVm {
            lab: t.name.clone(),
            vm: vm.to_string(),
        }),
        None => Ok(()),
    }
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
    let steps = engine.reconcile(t, None, &|p| say(step_line(p)))?;
    let vms: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
    say(format!("waiting for {} VM(s) to be ready", vms.len()));
    engine.wait_ready(&t.name, &vms, timeout, &|vm, after| {
        say(format!("{vm} is ready ({:.1} s)", after.as_secs_f64()))
    })?;
    Ok(UpReport {
        steps,
        elapsed: started.elapsed(),
    })
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
    check_images(engine, t)?;
    let _lock = engine.lock(&t.name, &|| {
        say(format!(
            "waiting for another command working on lab {:?}",
            t.name
        ))
    })?;
    engine.reconcile(t, Some(vms), &|p| say(step_line(p)))?;
    engine.wait_ready(&t.name, vms, timeout, &|vm, after| {
        say(format!("{vm} is ready ({:.1} s)", after.as_secs_f64()))
    })?;
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
