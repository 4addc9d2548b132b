//! The base image for real: built from scratch from Debian packages, booted
//! as an overlay under TCG with a cidata seed giving two NICs addresses,
//! checked through the guest agent; and image import refusing bad input.
//! Needs root, qemu and apt (scripts/setup.sh installs them). Everything it
//! makes lives in a temporary state directory, removed at the end; the QEMU
//! it starts is killed by PID even when an assertion fails.

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use engine::accel::Accel;
use engine::image::{self, ImageError, ImageStore};
use engine::qemu::{self, Nic, NicBackend, VmSpec};

#[path = "common/isolated_vm.rs"]
mod isolated_vm;
use engine::qga::Qga;
use isolated_vm::IsolatedVm;

/// One image build shared by the tests of this binary.
fn built() -> &'static (tempfile::TempDir, ImageStore) {
    static BUILT: OnceLock<(tempfile::TempDir, ImageStore)> = OnceLock::new();
    static LOCK: Mutex<()> = Mutex::new(());
    let _g = LOCK.lock().unwrap();
    BUILT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let mut steps = Vec::new();
        let rec = image::build::build(&store, "tiny", image::build::Flavour::Tiny, &mut |i, _| {
            steps.push(i)
        })
        .expect("image build");
        assert_eq!(steps, (0..image::build::STEPS.len()).collect::<Vec<_>>());
        assert_eq!(rec.format, "qcow2");
        assert!(
            rec.file_size <= 25_000_000,
            "image is {} bytes; the budget is 25 MB",
            rec.file_size
        );
        (dir, store)
    })
}

#[test]
fn built_image_boots_an_overlay_and_configures_two_nics() {
    let (_dir, store) = built();
    let base = store.path("tiny").unwrap();
    let meta = std::fs::metadata(&base).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        meta.permissions().mode() & 0o222,
        0,
        "a base image is read-only"
    );
    let base_sum = image::sha256_file(&base).unwrap();

    let vm = tempfile::tempdir().unwrap();
    let overlay = vm.path().join("overlay.qcow2");
    store.create_overlay("tiny", &overlay).unwrap();
    let t = topology::parse_and_validate(
        "version: 1\nname: imgtest\ndefaults: {image: tiny}\nnetworks:\n  - {name: a, subnet: 10.10.0.0/24}\n  - {name: b, subnet: 10.20.0.0/24}\nnodes:\n  - name: vm1\n    nics: [{network: a, address: 10.10.0.11/24}, {network: b}]\n    routes: [{to: 10.30.0.0/24, via: 10.20.0.1}]\n",
        topology::Format::Yaml,
    )
    .unwrap();
    let files = engine::seed::render(&t, "vm1").unwrap();
    let seed = vm.path().join("seed.img");
    engine::seed::write_vfat(&files, &seed).unwrap();
    let nics = topology::resolve::nics(&t);
    let spec = VmSpec {
        lab: "imgtest".into(),
        name: "vm1".into(),
        accel: Accel::Tcg,
        cpus: 1,
        memory_mib: 128,
        disk: overlay.clone(),
        seed: Some(seed),
        fw_cfg_config: None, // the cidata path, as a cloud image would read it
        nics: nics["vm1"]
            .iter()
            .map(|n| Nic {
                mac: n.mac,
                backend: NicBackend::Isolated,
            })
            .collect(),
        run_dir: vm.path().to_path_buf(),
        wait_for_serial: true,
        incoming: None,
        warm: false,
    };
    let vm_proc = IsolatedVm::boot(&spec, "minivm: ready vm1");
    let log = &vm_proc.log;

    let mut qga =
        Qga::connect(&qemu::qga_socket(vm.path()), Duration::from_secs(60)).expect("guest agent");
    let ifaces = qga.interfaces().unwrap();
    let find = |name: &str| {
        ifaces
            .iter()
            .find(|i| i.0 == name)
            .unwrap_or_else(|| panic!("no {name} in {ifaces:?}"))
    };
    let eth0 = find("eth0");
    assert_eq!(eth0.1, nics["vm1"][0].mac.to_string());
    assert_eq!(eth0.2, vec!["10.10.0.11/24".to_string()]);
    let eth1 = find("eth1");
    assert_eq!(eth1.1, nics["vm1"][1].mac.to_string());
    assert_eq!(
        eth1.2,
        vec!["10.20.0.1/24".to_string()],
        "the first free host of 10.20.0.0/24"
    );
    let host = qga.execute("guest-get-host-name", None).unwrap();
    assert_eq!(host["host-name"], "vm1");

    let routes = qga
        .exec("/sbin/ip", &["-4", "route"], Duration::from_secs(30))
        .unwrap();
    assert_eq!(routes.exit_code, 0, "{routes:?}");
    assert!(
        routes
            .stdout
            .contains("10.30.0.0/24 via 10.20.0.1 dev eth1"),
        "{}",
        routes.stdout
    );
    let fwd = qga
        .exec(
            "/bin/cat",
            &["/proc/sys/net/ipv4/ip_forward"],
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(fwd.stdout.trim(), "0");
    assert!(!log.iter().any(|l| l.contains("RTNETLINK")), "{log:#?}");

    drop(vm_proc);
    // The base image was only read.
    assert_eq!(image::sha256_file(&base).unwrap(), base_sum);
    let info = image::qemu_img_info(&overlay).unwrap();
    assert_eq!(
        info["backing-filename"].as_str().map(PathBuf::from),
        Some(base)
    );
}

#[test]
fn import_refuses_bad_input_and_writes_nothing() {
    let (dir, store) = built();
    let before = std::fs::read_dir(store.dir()).unwrap().count();
    let scratch = tempfile::tempdir().unwrap();

    let random = scratch.path().join("random.bin");
    std::fs::write(
        &random,
        (0..65536u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let err = store.import("rnd", &random).unwrap_err();
    assert!(matches!(err, ImageError::Unreadable { .. }), "{err}");

    let backed = scratch.path().join("backed.qcow2");
    store.create_overlay("tiny", &backed).unwrap();
    let err = store.import("backed", &backed).unwrap_err();
    assert!(matches!(err, ImageError::HasBacking { .. }), "{err}");
    assert!(err.to_string().contains("has a backing file"));

    for bad in ["../x", "a/b", "..", ".hidden", "x\0y"] {
        let err = store.import(bad, &backed).unwrap_err();
        assert!(matches!(err, ImageError::BadName { .. }), "{bad:?}: {err}");
    }
    let err = store
        .import("missing", &scratch.path().join("nope.qcow2"))
        .unwrap_err();
    assert!(matches!(err, ImageError::MissingFile(_)), "{err}");
    let err = store.import("tiny", &backed).unwrap_err();
    assert!(matches!(err, ImageError::Exists(_)), "{err}");

    assert_eq!(
        std::fs::read_dir(store.dir()).unwrap().count(),
        before,
        "nothing written"
    );

    // A good import: a standalone qcow2 (converted from the base image).
    let standalone = scratch.path().join("standalone.qcow2");
    engine::process::run(
        Command::new("qemu-img")
            .args(["convert", "-O", "qcow2"])
            .arg(store.path("tiny").unwrap())
            .arg(&standalone),
    )
    .unwrap();
    let rec = store.import("copy", &standalone).unwrap();
    assert_eq!(rec.virtual_size, store.get("tiny").unwrap().virtual_size);
    assert_eq!(
        store
            .list()
            .unwrap()
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["copy", "tiny"]
    );

    // Removal is refused while an overlay uses the image.
    let vmdir = dir.path().join("labs/lab1/vms/vm1");
    std::fs::create_dir_all(&vmdir).unwrap();
    store
        .create_overlay("copy", &vmdir.join("overlay.qcow2"))
        .unwrap();
    let users = store.overlays_using("copy").unwrap();
    assert_eq!(users, ["lab1/vm1"]);
    assert!(matches!(
        store.remove("copy", users),
        Err(ImageError::InUse { .. })
    ));
    std::fs::remove_dir_all(dir.path().join("labs")).unwrap();
    store
        .remove("copy", store.overlays_using("copy").unwrap())
        .unwrap();
    assert!(!store.exists("copy").unwrap());
}
