//! `minivm image` and `minivm doctor` as a user runs them, on a fresh state
//! directory (removed at the end). Needs root, qemu and apt.

mod common;

use std::process::Command;

use common::{minivm, ok, text};

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

/// A crafted image that makes `qemu-img` read a host file (a VMDK whose
/// FLAT extent names one, a qcow2 with an external data file, a backing
/// file) is refused with the file it names, and leaves nothing in the
/// store; a self-contained VMDK is imported.
#[test]
fn an_image_naming_host_files_is_refused() {
    let state = common::state_dir();
    let s = state.path();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let secret = w.join("secret.bin");
    let mut bytes = vec![0u8; 1 << 20];
    bytes[..9].copy_from_slice(b"TOPSECRET");
    std::fs::write(&secret, &bytes).unwrap();
    let qemu_img = |args: &[&str]| {
        let out = Command::new("qemu-img").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "qemu-img {args:?}: {}",
            text(&out.stderr)
        );
    };
    let flat = w.join("flat.vmdk");
    std::fs::write(
        &flat,
        format!(
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 2048 FLAT \"{}\" 0\n\nddb.adapterType = \"ide\"\n",
            secret.display()
        ),
    )
    .unwrap();
    let shadow = w.join("shadow.vmdk");
    std::fs::write(
        &shadow,
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 8 FLAT \"/etc/shadow\" 0\n",
    )
    .unwrap();
    let data_file = w.join("data.qcow2");
    let opt = format!("data_file={},data_file_raw=on", secret.display());
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-o",
        &opt,
        data_file.to_str().unwrap(),
        "1M",
    ]);
    let backed = w.join("backed.qcow2");
    qemu_img(&[
        "create",
        "-f",
        "qcow2",
        "-F",
        "raw",
        "-b",
        secret.to_str().unwrap(),
        backed.to_str().unwrap(),
    ]);
    for (file, names) in [
        (&flat, secret.display().to_string()),
        (&shadow, "/etc/shadow".to_string()),
        (&data_file, secret.display().to_string()),
        (&backed, secret.display().to_string()),
    ] {
        let out = minivm(s, &["image", "import", "evil", file.to_str().unwrap()]);
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {said}", file.display());
        assert!(said.contains(&names), "{}: {said}", file.display());
        let list = ok(minivm(s, &["image", "list"]));
        assert!(!list.contains("evil"), "{list}");
        let images = s.join("images");
        if images.exists() {
            let left: Vec<_> = std::fs::read_dir(&images)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains("evil"))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }
    // The same kind of file, self-contained, is taken.
    let good = w.join("good.vmdk");
    qemu_img(&["create", "-f", "vmdk", good.to_str().unwrap(), "10M"]);
    ok(minivm(
        s,
        &["image", "import", "good", good.to_str().unwrap()],
    ));
    assert!(ok(minivm(s, &["image", "list"])).contains("good"));
}
