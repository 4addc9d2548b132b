//! A built-in image (`tiny`, `frr`) for a test's state directory, built
//! once per test run. Included by the engine's and the server's test helpers.
//!
//! With `MINIVM_TEST_IMAGE_CACHE` set (scripts/test.sh sets it to a fresh
//! directory per run), the first test to need the image builds it there,
//! under a lock, and every test then gets hard links to the files a build
//! leaves (`images/NAME.qcow2`, its record, and the KVM probe's kernel and
//! initramfs in `cache/probe`). Base images are read-only, so sharing their
//! inode is safe. Without the variable, each test builds its own image.
//! Tests of the image build itself never use this.

use std::path::Path;

/// What a build of image `name` leaves in a state directory, relative to it.
fn built(name: &str) -> [String; 4] {
    [
        format!("images/{name}.qcow2"),
        format!("images/{name}.json"),
        "cache/probe/vmlinuz".into(),
        "cache/probe/initrd.gz".into(),
    ]
}

/// Puts image `name` into `state`; `build` builds it into the state
/// directory it is given.
pub fn built_image(state: &Path, name: &str, build: impl FnOnce(&Path)) {
    let Some(cache) = std::env::var_os("MINIVM_TEST_IMAGE_CACHE") else {
        build(state);
        return;
    };
    let cache = Path::new(&cache);
    std::fs::create_dir_all(cache).unwrap();
    let _lock = engine::fsutil::lock_file(&cache.join(".lock"), true).unwrap();
    let files = built(name);
    if !files.iter().all(|f| cache.join(f).exists()) {
        build(cache);
    }
    for f in &files {
        let (from, to) = (cache.join(f), state.join(f));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)
                .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
        }
    }
}
