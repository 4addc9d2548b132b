//! Two VMs on a bridge ping each other: the real base image, real QEMU (TCG)
//! as nobody with no capabilities, real TAPs on a real bridge, all inside a
//! network namespace this test makes. Guards kill the VMs by PID and delete
//! the namespace and files even when an assertion fails. Needs root.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use engine::accel::Accel;
use engine::image::ImageStore;
use engine::net;
use engine::qemu::{self, Nic, NicBackend, VmSpec};
use engine::qga::Qga;
use engine::vm::{self, NOBODY};

struct Ns(String);
impl Drop for Ns {
    fn drop(&mut self) {
        let _ = net::delete_namespace(&self.0);
    }
}

struct Vm(Child);
impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chown_nobody(p: &Path) {
    std::os::unix::fs::chown(p, Some(NOBODY.uid), Some(NOBODY.gid)).unwrap();
}

fn wait_ready(run_dir: &Path, name: &str) {
    let sock = qemu::serial_socket(run_dir);
    let deadline = Instant::now() + Duration::from_secs(20);
    let s = loop {
        match UnixStream::connect(&sock) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!(
                "{name}: no serial socket: {e}; log: {}",
                std::fs::read_to_string(run_dir.join("qemu.log")).unwrap_or_default()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    s.set_read_timeout(Some(Duration::from_secs(180))).unwrap();
    for line in BufReader::new(s).lines() {
        if line
            .expect("serial closed before ready")
            .contains(&format!("minivm: ready {name}"))
        {
            return;
        }
    }
    panic!("{name} never became ready");
}

#[test]
fn two_vms_on_a_bridge_ping_each_other() {
    let state = tempfile::tempdir().unwrap();
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    common::tiny_image(state.path());
    let store = ImageStore::open(state.path()).unwrap();

    let t = topology::parse_and_validate(
        "version: 1\nname: pingtest\ndefaults: {image: tiny}\nnetworks: [{name: lan, subnet: 10.10.0.0/24}]\nnodes:\n  - {name: vm1, nics: [{network: lan}]}\n  - {name: vm2, nics: [{network: lan}]}\n",
        topology::Format::Yaml,
    )
    .unwrap();
    let ns = Ns(format!("minivm-test-vm-{}", std::process::id()));
    net::create_namespace(&ns.0).unwrap();
    let n = Some(ns.0.as_str());
    let br = topology::names::bridge_ifname(&t.name, "lan");
    net::ensure_bridge(n, &br, &net::owner_alias(&t.name, "bridge/lan")).unwrap();

    let nics = topology::resolve::nics(&t);
    let mut vms = Vec::new();
    for name in ["vm1", "vm2"] {
        let dir = state.path().join("labs/pingtest/vms").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        chown_nobody(&dir);
        let overlay = dir.join("overlay.qcow2");
        store.create_overlay("tiny", &overlay).unwrap();
        chown_nobody(&overlay);
        let conf = dir.join("minivm.conf");
        std::fs::write(&conf, engine::seed::render(&t, name).unwrap().minivm_conf).unwrap();
        let tap = topology::names::tap_ifname(&t.name, name, 0);
        net::ensure_tap(
            n,
            &tap,
            &net::owner_alias(&t.name, &format!("tap/{name}/0")),
            &br,
        )
        .unwrap();
        let fd = net::open_tap(n, &tap).unwrap();
        let spec = VmSpec {
            lab: t.name.clone(),
            name: name.into(),
            accel: Accel::Tcg,
            cpus: 1,
            memory_mib: 128,
            disk: overlay,
            seed: None,
            fw_cfg_config: Some(conf),
            nics: vec![Nic {
                mac: nics[name][0].mac,
                backend: NicBackend::TapFd(vm::FIRST_TAP_FD),
            }],
            run_dir: dir.clone(),
            wait_for_serial: true,
            incoming: None,
            warm: false,
        };
        vms.push((
            Vm(vm::launch(
                std::path::Path::new(vm::QEMU),
                &spec,
                vec![fd],
                Some(NOBODY),
            )
            .unwrap()),
            dir,
        ));
    }
    for (i, (_, dir)) in vms.iter().enumerate() {
        wait_ready(dir, ["vm1", "vm2"][i]);
    }

    // QEMU runs as nobody, with no capabilities, in a session of its own.
    for (vm, _) in &vms {
        let status = std::fs::read_to_string(format!("/proc/{}/status", vm.0.id())).unwrap();
        let field = |k: &str| {
            status
                .lines()
                .find(|l| l.starts_with(k))
                .unwrap()
                .split_whitespace()
                .nth(1)
                .unwrap()
                .to_string()
        };
        assert_eq!(field("Uid:"), "65534");
        assert_eq!(field("CapEff:"), "0000000000000000");
        assert_eq!(field("CapPrm:"), "0000000000000000");
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", vm.0.id())).unwrap();
        let after_comm = stat.rsplit_once(") ").unwrap().1;
        let sid: u32 = after_comm
            .split_whitespace()
            .nth(3)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(sid, vm.0.id(), "QEMU leads its own session");
    }

    let vm2_addr = nics["vm2"][0].address.unwrap().addr.to_string();
    let mut qga = Qga::connect(&qemu::qga_socket(&vms[0].1), Duration::from_secs(60)).unwrap();
    let ping = qga
        .exec(
            "/bin/ping",
            &["-c", "3", "-W", "5", &vm2_addr],
            Duration::from_secs(60),
        )
        .unwrap();
    assert_eq!(ping.exit_code, 0, "vm1 -> vm2 {vm2_addr}: {ping:?}");
    assert!(
        ping.stdout.contains("3 packets received"),
        "{}",
        ping.stdout
    );
    // And nothing answers outside the lab's bridge.
    let lost = qga
        .exec(
            "/bin/ping",
            &["-c", "1", "-W", "2", "10.10.0.99"],
            Duration::from_secs(30),
        )
        .unwrap();
    assert_ne!(lost.exit_code, 0);

    drop(vms);
    let name = ns.0.clone();
    drop(ns);
    assert!(!net::namespace_exists(&name));
}
