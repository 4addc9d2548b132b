//! Shared by the engine's integration tests: a fresh state directory QEMU's
//! unprivileged user can traverse, with the built-in image built into it,
//! and an engine on it that runs VMs under TCG, each QEMU as its own id.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use engine::accel::{Accel, Choice};
use engine::image::{self, ImageStore};
use engine::lab::Engine;

mod shared_image;

/// An engine on `state` (TCG, each QEMU as its own id).
pub fn engine_on(state: &Path) -> Engine {
    Engine::new(
        state,
        Choice {
            accel: Accel::Tcg,
            reason: "test".into(),
        },
        Some(engine::lab::Ids::host()),
    )
    .unwrap()
}

/// The `tiny` image in `state`, as a build leaves it (built once per test
/// run, see `shared_image`).
pub fn tiny_image(state: &Path) {
    shared_image::built_image(state, "tiny", |dir| {
        let store = ImageStore::open(dir).unwrap();
        image::build::build(&store, "tiny", image::build::Flavour::Tiny, &mut |_, _| {}).unwrap();
    });
}

/// A state directory with the `tiny` image (built once per test run, see
/// `shared_image`), and an engine on it.
pub fn engine_with_image() -> (tempfile::TempDir, ImageStore, Engine) {
    let state = tempfile::tempdir().unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    tiny_image(state.path());
    let images = ImageStore::open(state.path()).unwrap();
    let engine = engine_on(state.path());
    (state, images, engine)
}
