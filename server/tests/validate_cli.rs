//! `minivm validate` as a user runs it: the real binary on real files.

mod common;
#[path = "../../topology/tests/common/mod.rs"]
mod fixtures;

use std::path::Path;
use std::process::Command;

use common::minivm_alone as minivm;

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn accepts_both_examples_with_a_one_line_summary() {
    for (file, summary) in [
        (
            "triangle.yaml",
            "ok: lab \"triangle\", 3 VMs, 1 bridges, 3 links (format v1)",
        ),
        (
            "router.yaml",
            "ok: lab \"router\", 3 VMs, 2 bridges, 4 links (format v1)",
        ),
    ] {
        let out = minivm(&["validate", &example(file)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        assert!(stdout.contains(summary), "{stdout}");
    }
}

#[test]
fn rejects_every_bad_fixture_naming_the_field() {
    let fixtures = fixtures::bad_fixtures();
    assert!(fixtures.len() >= 40);
    for f in fixtures {
        let out = minivm(&["validate", &f.file.to_string_lossy()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", f.file.display());
        assert!(out.stdout.is_empty(), "{}", f.file.display());
        let wanted = if f.path.is_empty() {
            ": ".to_string()
        } else {
            format!(": {}: ", f.path)
        };
        assert!(
            stderr.contains(&wanted) && stderr.contains(&f.reason),
            "{}: wanted {wanted:?} and {:?} in\n{stderr}",
            f.file.display(),
            f.reason
        );
    }
}

#[test]
fn reads_json_from_stdin_and_refuses_huge_and_missing_files() {
    use std::io::Write;
    let json = topology::to_json(
        &topology::parse(topology::examples::ROUTER, topology::Format::Yaml).unwrap(),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_minivm"))
        .args(["validate", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("lab \"router\""));

    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::write(
        &big,
        format!("version: 1\n# {}\n", "x".repeat(10 * 1024 * 1024)),
    )
    .unwrap();
    let out = minivm(&["validate", &big.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused without parsing"));

    let out = minivm(&[
        "validate",
        &dir.path().join("missing.yaml").to_string_lossy(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

/// A lab file from the internet whose node `source` or containerlab bind is
/// a symlink out of its directory (to a host secret), or a FIFO, is refused
/// naming the field, and nothing is stored or written.
#[test]
fn a_source_or_bind_that_links_out_or_is_not_a_file_is_refused() {
    let top = tempfile::tempdir().unwrap();
    let secret = top.path().join("secret");
    std::fs::write(&secret, "TOPSECRET\n").unwrap();
    let lab = top.path().join("lab");
    std::fs::create_dir_all(lab.join("cfg")).unwrap();
    std::os::unix::fs::symlink(&secret, lab.join("cfg/frr.conf")).unwrap();
    let fifo = lab.join("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string; mkfifo touches only the file system.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let state = common::state_dir();
    for (source, why) in [
        ("cfg/frr.conf", "leaves the lab's directory"),
        ("pipe", "not a regular file"),
    ] {
        let file = lab.join("lab.yaml");
        std::fs::write(
            &file,
            format!("version: 1\nname: evil\ndefaults: {{image: tiny}}\nnodes:\n  - name: r1\n    files: [{{path: /etc/frr/frr.conf, source: {source}}}]\n"),
        )
        .unwrap();
        let out = minivm(&["validate", &file.to_string_lossy()]);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(
            said.contains("nodes[0].files[0].source") && said.contains(why),
            "{source}: {said}"
        );
        assert!(!said.contains("TOPSECRET"), "{said}");
        let out = common::minivm(
            state.path(),
            &["up", "-f", &file.to_string_lossy(), "--dry-run"],
        );
        assert_eq!(out.status.code(), Some(1));
    }
    // The same through a containerlab bind and startup-config: skipped
    // with the reason in the report, the secret never read into the lab.
    let clab = lab.join("evil.clab.yml");
    std::fs::write(
        &clab,
        "name: evil\ntopology:\n  nodes:\n    r1:\n      kind: linux\n      image: alpine\n      binds: [\"cfg/frr.conf:/etc/motd\"]\n      startup-config: cfg/frr.conf\n",
    )
    .unwrap();
    let out_file = top.path().join("out.yaml");
    let out = common::minivm(
        state.path(),
        &[
            "import",
            &clab.to_string_lossy(),
            "-o",
            &out_file.to_string_lossy(),
        ],
    );
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    if out_file.exists() {
        let written = std::fs::read_to_string(&out_file).unwrap();
        assert!(!written.contains("TOPSECRET"), "{written}");
    }
    assert!(said.contains("leaves the lab's directory"), "{said}");
    assert!(!said.contains("TOPSECRET"), "{said}");
}
