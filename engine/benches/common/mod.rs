//! Shared by the benches that run labs: a fresh state directory QEMU's
//! unprivileged user can traverse, the `tiny` image built into it, and an
//! engine on it running VMs under TCG, each QEMU as its own id.

use engine::accel::{Accel, Choice};
use engine::image::{self, ImageStore};
use engine::lab::Engine;
use engine::LabStore;

pub fn lab_engine() -> (tempfile::TempDir, Engine, LabStore) {
    let state = tempfile::tempdir().expect("tempdir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let images = ImageStore::open(state.path()).unwrap();
    image::build::build(&images, "tiny", image::build::Flavour::Tiny, &mut |_, _| {})
        .expect("image build");
    let engine = Engine::new(
        state.path(),
        Choice {
            accel: Accel::Tcg,
            reason: "bench".into(),
        },
        Some(engine::lab::Ids::host()),
    )
    .unwrap();
    let store = LabStore::open(state.path()).unwrap();
    (state, engine, store)
}
