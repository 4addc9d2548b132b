//! Every output flag takes a bare file name, written in the directory the
//! command runs in (not the test's): `import -o`, `new -o`, `export -o`
//! (containerlab and KubeVirt) and `image export -o`. The flags that need a running
//! lab are run the same way where one is up: `test --junit`
//! (templates_cli.rs) and `capture -w` (links_cli.rs). An atomic write once
//! fsynced the empty path as the parent directory of a bare name, and
//! failed after writing the file. Needs root (image export reads the store).

mod common;

use std::path::Path;

use common::{minivm_in, ok, text};

/// Runs `args` in `cwd`; asserts success and that `made` (relative to `cwd`)
/// is there and holds `needle`, with no temporary file beside it.
fn writes(state: &Path, cwd: &Path, args: &[&str], made: &str, needle: &str) {
    let out = minivm_in(state, cwd, args);
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let path = cwd.join(made);
    let file = if path.is_dir() {
        std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.is_file())
            .expect("a file in the directory")
    } else {
        path
    };
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{args:?}: {made}: {e}"));
    assert!(
        String::from_utf8_lossy(&bytes).contains(needle),
        "{args:?}: {} lacks {needle:?}",
        file.display()
    );
    let tmp: Vec<_> = std::fs::read_dir(cwd)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(tmp.is_empty(), "{args:?} left {tmp:?}");
}

#[test]
fn every_output_flag_takes_a_bare_file_name() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let clab = root.join("examples/clab/frr-triangle/frr-triangle.clab.yml");
    let router = root.join("examples/router.yaml");

    writes(
        s,
        w,
        &[
            "import",
            clab.to_str().unwrap(),
            "--name",
            "bare",
            "-o",
            "imported.yaml",
        ],
        "imported.yaml",
        "name: bare",
    );
    writes(
        s,
        w,
        &["new", "fromtpl", "--template", "lan", "-o", "new.yaml"],
        "new.yaml",
        "name: fromtpl",
    );
    writes(
        s,
        w,
        &[
            "export",
            "-f",
            router.to_str().unwrap(),
            "--format",
            "clab",
            "-o",
            "clabdir",
        ],
        "clabdir",
        "nodes",
    );
    writes(
        s,
        w,
        &[
            "export",
            "-f",
            router.to_str().unwrap(),
            "--format",
            "kubevirt",
            "-o",
            "k8s",
        ],
        "k8s",
        "apiVersion",
    );
    writes(
        s,
        w,
        &[
            "image",
            "export",
            "tiny",
            "--containerdisk",
            "-o",
            "tiny.tar",
        ],
        "tiny.tar",
        "oci-layout",
    );
    // The stored lab, from a file given by a bare name too.
    ok(minivm_in(s, w, &["up", "-f", "new.yaml", "--dry-run"]));
}
