//! Image bench: builds the base images from scratch, then boots overlays of
//! them under TCG five times per configuration path and prints the medians
//! of launch → "network configured" (the guest's `minivm: ready` line on the
//! serial console). Run: `cargo bench -p engine --bench image`.
//! Targets: `tiny` (issue 3) qcow2 ≤ 25 MB, launch → network configured
//! ≤ 4 s; `frr` (issue 14) qcow2 ≤ 60 MB, build ≤ 90 s with cached
//! packages, boot to ready ≤ 2× tiny's, measured alternately in one run
//! (an OSPF router's files given, so its daemons start before readiness).

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
    image::build::build(
        &store,
        "warmup",
        image::build::Flavour::Tiny,
        &mut |_, _| {},
    )
    .expect("build");
    let first = t.elapsed();
    let t = Instant::now();
    let rec = image::build::build(&store, "tiny", image::build::Flavour::Tiny, &mut |_, _| {})
        .expect("build");
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
            times.push(boot_once(&store, "tiny", &topo, fw_cfg));
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
    tb_cache(&store, &topo);
    frr(&store);
}

fn frr(store: &ImageStore) {
    let flavour = image::build::Flavour::Frr;
    let t = Instant::now();
    image::build::build(store, "frr-warmup", flavour, &mut |_, _| {}).expect("build");
    let first = t.elapsed();
    let t = Instant::now();
    let rec = image::build::build(store, "frr", flavour, &mut |_, _| {}).expect("build");
    let build = t.elapsed();
    println!(
        "frr image build: {:.1} s with cached packages ({:.1} s including its downloads); target <= 90 s",
        build.as_secs_f64(),
        first.as_secs_f64()
    );
    println!(
        "frr image size: {:.1} MB qcow2 file ({} MiB virtual); target <= 60 MB",
        rec.file_size as f64 / 1e6,
        rec.virtual_size >> 20
    );
    let conf = "router ospf\n ospf router-id 10.255.0.1\n network 10.10.0.0/24 area 0\n!\n";
    let text = format!(
        "version: 1\nname: bench\nnetworks: [{{name: a, subnet: 10.10.0.0/24}}, {{name: b, subnet: 10.20.0.0/24}}]\nnodes:\n  - name: vm1\n    image: frr\n    nics: [{{network: a}}, {{network: b}}]\n    files:\n      - {{path: /etc/frr/daemons, content: \"ospfd=yes\\n\"}}\n      - {{path: /etc/frr/frr.conf, content: {conf:?}}}\n"
    );
    let topo = topology::parse_and_validate(&text, topology::Format::Yaml).unwrap();
    // Side by side: tiny and frr alternately, so the machine's noise hits both.
    let (mut tiny, mut frr) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        tiny.push(boot_once(store, "tiny", &topo, true));
        frr.push(boot_once(store, "frr", &topo, true));
    }
    tiny.sort();
    frr.sort();
    let (t, f) = (tiny[RUNS / 2].as_secs_f64(), frr[RUNS / 2].as_secs_f64());
    println!(
        "launch -> ready (fw_cfg, TCG), alternately: tiny median {t:.2} s, frr median {f:.2} s (FRR started), ratio {:.2}; target <= 2",
        f / t
    );
}

fn boot_once(store: &ImageStore, image: &str, topo: &topology::Topology, fw_cfg: bool) -> Duration {
    boot_measured(store, image, topo, fw_cfg).0
}

/// Launch → ready, and the QEMU's RSS (KiB) once the guest has run a few
/// seconds after it.
fn boot_measured(
    store: &ImageStore,
    image: &str,
    topo: &topology::Topology,
    fw_cfg: bool,
) -> (Duration, u64) {
    let vm = tempfile::tempdir().unwrap();
    let overlay = vm.path().join("overlay.qcow2");
    store.create_overlay(image, &overlay).unwrap();
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
        incoming: None,
        warm: false,
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
    std::thread::sleep(Duration::from_secs(3));
    let rss = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    (ready.expect("the guest never became ready"), rss)
}

/// TCG's translation cache: QEMU's default against the size chosen, boot
/// time and RSS side by side (alternately, one run).
fn tb_cache(store: &ImageStore, topo: &topology::Topology) {
    let mut sizes = vec![1024u32, 64, 32, 16];
    if !sizes.contains(&qemu::TCG_TB_MIB) {
        sizes.push(qemu::TCG_TB_MIB);
    }
    let mut results: Vec<(Vec<Duration>, Vec<u64>)> = vec![(vec![], vec![]); sizes.len()];
    for _ in 0..RUNS {
        for (i, mib) in sizes.iter().enumerate() {
            // SAFETY: this bench is single-threaded here; the variable is
            // read by qemu::argv in this thread.
            unsafe { std::env::set_var("MINIVM_TCG_TB_MIB", mib.to_string()) };
            let (t, rss) = boot_measured(store, "tiny", topo, true);
            results[i].0.push(t);
            results[i].1.push(rss);
        }
    }
    // SAFETY: as above, one thread.
    unsafe { std::env::remove_var("MINIVM_TCG_TB_MIB") };
    for (mib, (mut t, mut rss)) in sizes.iter().zip(results) {
        t.sort();
        rss.sort();
        println!(
            "TCG tb-size {mib} MiB: launch -> ready median {:.2} s, QEMU RSS median {} MB (128 MiB guest; target <= 192 MB)",
            t[RUNS / 2].as_secs_f64(),
            rss[RUNS / 2] / 1024
        );
    }
}
