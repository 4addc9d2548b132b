//! The built-in `tiny` image for a test's state directory, built once per
//! test run. Included by the engine's and the server's test helpers.
//!
//! With `MINIVM_TEST_IMAGE_CACHE` set (scripts/test.sh sets it to a fresh
//! directory per run), the first test to need the image builds it there,
//! under a lock, and every test then gets hard links to the files a build
//! leaves (`images/tiny.qcow2`, its record, and the KVM probe's kernel and
//! initramfs in `cache/probe`). Base images are read-only, so sharing their
//! inode is safe. Without the variable, each test builds its own image.
//! Tests of the image build itself never use this.

use std::path::Path;

/// What an image build leaves in a state directory, relative to it.
const BUILT: &[&str] = &[
    "images/tiny.qcow2",
    "images/tiny.json",
    "cache/probe/vmlinuz",
    "cache/probe/initrd.gz",
];

/// Puts the `tiny` image into `state`; `build` builds it into the state
/// directory it is given.
pub fn tiny_image(state: &Path, build: impl FnOnce(&Path)) {
    let Some(cache) = std::env::var_os("MINIVM_TEST_IMAGE_CACHE") else {
        build(state);
        return;
    };
    let cache = Path::new(&cache);
    std::fs::create_dir_all(cache).unwrap();
    let _lock = engine::fsutil::lock_file(&cache.join(".lock"), true).unwrap();
    if !BUILT.iter().all(|f| cache.join(f).exists()) {
        build(cache);
    }
    for f in BUILT {
        let (from, to) = (cache.join(f), state.join(f));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
        }
    }
}
