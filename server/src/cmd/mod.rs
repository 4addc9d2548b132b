pub mod capture;
pub mod check;
pub mod console;
pub mod doctor;
pub mod down;
pub mod exec;
pub mod export;
pub mod image;
pub mod import;
pub mod labtest;
pub mod link;
pub mod serve;
pub mod snapshot;
pub mod status;
pub mod templates;
pub mod up;
pub mod validate;
pub mod vm;

use std::path::Path;

/// The engine for the commands that run labs: the remembered accelerator
/// choice (probed on first use), each QEMU as its own id (`lab::ids`).
pub fn engine(state_dir: &Path) -> anyhow::Result<engine::lab::Engine> {
    let accel = engine::accel::choose(state_dir);
    let mut e = engine::lab::Engine::new(state_dir, accel, Some(engine::lab::Ids::host()))?;
    // Another QEMU build (or a wrapper) for the VMs.
    if let Some(q) = std::env::var_os("MINIVM_QEMU") {
        e.qemu = q.into();
    }
    Ok(e)
}

/// Progress of an operation on stderr, indented under its command.
pub fn say(line: String) {
    eprintln!("  {line}");
}

/// A stored lab by name, and a check that it has the VMs named.
pub fn stored_lab(
    state_dir: &Path,
    lab: &str,
    vms: &[String],
) -> anyhow::Result<topology::Topology> {
    let (t, _) = engine::LabStore::open(state_dir)?.get(lab)?;
    engine::ops::check_vms(&t, vms)?;
    Ok(t)
}
