//! Image bench: builds the base image from scratch, then boots overlays of
//! it under TCG five times per configuration path and prints the medians of
//! launch → "network configured" (the guest's `minivm: ready` line on the
//! serial console). Run: `cargo bench -p engine --bench image`.
//! Targets (issue 3): qcow2 ≤ 25 MB, launch → network configured ≤ 4 s.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engine::accel::Accel;
use engine::image::{self, ImageStore};
use engine::qemu::{self, Nic, NicBackend, VmSpec};

const RUNS: usize = 5;

fn main() {
    let state = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(state.path()).expect("store");
    // Download once outside the timing, so the build figure is the build.
    let t = Instant::now();
    image::build::build(&store, "warmup", &mut |_, _| {}).expect("build");
    let first = t.elapsed();
    let t = Instant::now();
    let rec = image::build::build(&store, "tiny", &mut |_, _| {}).expect("build");
    let build = t.elapsed();
    println!(
        "image build: {:.1} s with cached packages ({:.1} s including downloads)",
        build.as_secs_f64(),
        first.as_secs_f64()
    );
    println!(
        "image size: {:.1} MB qcow2 file ({} MiB virtual); target <= 25 MB",
        rec.file_size as f64 / 1e6,
        rec.virtual_size >> 20
    );

    let topo = topology::parse_and_validate(
        "version: 1\nname: bench\ndefaults: {image: tiny}\nnetworks: [{name: a, subnet: 10.10.0.0/24}, {name: b, subnet: 10.20.0.0/24}]\nnodes:\n  - {name: vm1, nics: [{network: a}, {network: b}]}\n",
        topology::Format::Yaml,
    )
    .unwrap();
    for (label, fw_cfg) in [("fw_cfg", true), ("cidata seed", false)] {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            times.push(boot_once(&store, &topo, fw_cfg));
        }
        times.sort();
        let secs: Vec<String> = times
            .iter()
            .map(|d| format!("{:.2}", d.as_secs_f64()))
            .collect();
        println!(
            "launch -> network configured ({label}, TCG): median {:.2} s over {RUNS} runs [{}]; target <= 4 s",
            times[RUNS / 2].as_secs_f64(),
            secs.join(", ")
        );
    }
}

fn boot_once(store: &ImageStore, topo: &topology::Topology, fw_cfg: bool) -> Duration {
    let vm = tempfile::tempdir().unwrap();
    let overlay = vm.path().join("overlay.qcow2");
    store.create_overlay("tiny", &overlay).unwrap();
    let files = engine::seed::render(topo, "vm1").unwrap();
    let seed = vm.path().join("seed.img");
    engine::seed::write_vfat(&files, &seed).unwrap();
    let conf = vm.path().join("minivm.conf");
    std::fs::write(&conf, &files.minivm_conf).unwrap();
    let spec = VmSpec {
        lab: "imgtest".into(),
        name: "vm1".into(),
        accel: Accel::Tcg,
        cpus: 1,
        memory_mib: 128,
        disk: overlay,
        seed: Some(seed),
        fw_cfg_config: fw_cfg.then_some(conf),
        nics: topology::resolve::nics(topo)["vm1"]
            .iter()
            .map(|n| Nic {
                mac: n.mac,
                backend: NicBackend::Isolated,
            })
            .collect(),
        run_dir: vm.path().to_path_buf(),
        wait_for_serial: true,
    };
    let started = Instant::now();
    let mut child = Command::new("qemu-system-x86_64")
        .args(qemu::argv(&spec))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sock = qemu::serial_socket(vm.path());
    let serial = loop {
        if let Ok(s) = UnixStream::connect(&sock) {
            break s;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    serial
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut ready = None;
    for line in BufReader::new(serial).lines() {
        let Ok(line) = line else { break };
        if line.contains("minivm: ready") {
            ready = Some(started.elapsed());
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    ready.expect("the guest never became ready")
}
