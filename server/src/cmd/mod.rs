pub mod doctor;
pub mod down;
pub mod image;
pub mod serve;
pub mod status;
pub mod up;
pub mod validate;

/// The engine for the commands that run labs: the remembered accelerator
/// choice (probed on first use), QEMU as `nobody`.
pub fn engine(state_dir: &std::path::Path) -> anyhow::Result<engine::lab::Engine> {
    let accel = engine::accel::choose(state_dir);
    Ok(engine::lab::Engine::new(state_dir, accel, Some(engine::vm::NOBODY))?)
}
