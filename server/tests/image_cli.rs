//! `minivm image` and `minivm doctor` as a user runs them, on a fresh state
//! directory (removed at the end). Needs root, qemu and apt.

mod common;

use std::process::Command;

use common::{minivm, text};

#[test]
fn build_list_doctor_and_refusals() {
    let state = tempfile::tempdir().unwrap();

    // Before the image exists, doctor says so and exits 1.
    let out = minivm(state.path(), &["doctor"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("fix: minivm image build tiny"),
        "{}",
        text(&out.stdout)
    );

    let out = minivm(state.path(), &["image", "build"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let progress = text(&out.stderr);
    assert!(
        progress.contains("[1/7] download packages") && progress.contains("[7/7]"),
        "{progress}"
    );
    assert!(text(&out.stdout).contains("built image \"tiny\""));

    // Building again is refused; --if-missing makes it a no-op.
    let out = minivm(state.path(), &["image", "build"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    assert!(minivm(state.path(), &["image", "build", "--if-missing"])
        .status
        .success());

    let out = minivm(state.path(), &["image", "list", "--json"]);
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["image"]["name"], "tiny");
    assert_eq!(list[0]["image"]["format"], "qcow2");
    assert_eq!(list[0]["image"]["sha256"].as_str().unwrap().len(), 64);

    let out = minivm(state.path(), &["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    assert_eq!(report["can_run"], true);
    let accel = report["accelerator"].as_str().unwrap();
    let reason = report["accelerator_reason"].as_str().unwrap();
    assert!(["kvm", "tcg"].contains(&accel));
    if accel == "tcg" && std::path::Path::new("/dev/kvm").exists() {
        // /dev/kvm is there, so TCG must come from a real probe that failed.
        assert!(
            reason.contains("/dev/kvm") && reason.contains("probe guest"),
            "{reason}"
        );
    }
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    for want in [
        "qemu-system-x86_64",
        "qemu-img",
        "/dev/net/tun",
        "bridge and TAP",
        "accelerator",
        "free disk",
        "default image",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    // The throwaway namespace is gone.
    let netns = text(
        &Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(!netns.contains("minivm-doctor"), "{netns}");

    // Refusals name the problem.
    let out = minivm(state.path(), &["image", "import", "../x", "/etc/hostname"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("invalid image name \"../x\""),
        "{}",
        text(&out.stderr)
    );
    let out = minivm(state.path(), &["image", "rm", "nope"]);
    assert!(
        text(&out.stderr).contains("no image named \"nope\""),
        "{}",
        text(&out.stderr)
    );
}
