pub mod console;
pub mod doctor;
pub mod down;
pub mod exec;
pub mod image;
pub mod serve;
pub mod status;
pub mod up;
pub mod validate;
pub mod vm;

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// The engine for the commands that run labs: the remembered accelerator
/// choice (probed on first use), QEMU as `nobody`.
pub fn engine(state_dir: &Path) -> anyhow::Result<engine::lab::Engine> {
    let accel = engine::accel::choose(state_dir);
    Ok(engine::lab::Engine::new(
        state_dir,
        accel,
        Some(engine::vm::NOBODY),
    )?)
}

/// Holds the lab against other minivm commands, saying so if it must wait.
pub fn lock(engine: &engine::lab::Engine, lab: &str) -> anyhow::Result<engine::lab::LabLock> {
    topology::names::check_name(lab)
        .map_err(|e| anyhow::anyhow!("invalid lab name {lab:?}: {e}"))?;
    Ok(engine.lock(lab, &|| {
        eprintln!("waiting for another minivm command working on lab {lab:?} ...")
    })?)
}

/// A stored lab by name, and a check that it has the VMs named.
pub fn stored_lab(
    state_dir: &Path,
    lab: &str,
    vms: &[String],
) -> anyhow::Result<topology::Topology> {
    let (t, _) = engine::LabStore::open(state_dir)?.get(lab)?;
    for vm in vms {
        if t.node(vm).is_none() {
            let names: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
            anyhow::bail!(
                "lab {lab:?} has no VM named {vm:?} (it has: {})",
                names.join(", ")
            );
        }
    }
    Ok(t)
}

/// Progress of a reconcile on stderr: `[3/14] h1 has no overlay`.
pub fn print_progress(p: engine::lab::Progress) {
    eprintln!("  [{}/{}] {}", p.done, p.total, p.step.reason);
}

/// Waits for VMs to be ready, printing each as it gets there.
pub fn wait_ready(
    engine: &engine::lab::Engine,
    lab: &str,
    vms: &[&str],
    timeout: Duration,
) -> anyhow::Result<()> {
    eprintln!("waiting for {} VM(s) to be ready ...", vms.len());
    engine
        .wait_ready(lab, vms, timeout, &|vm, after| {
            eprintln!("  {vm} is ready ({:.1} s)", after.as_secs_f64())
        })
        .context("not every VM is ready")
}
