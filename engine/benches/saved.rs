//! Warm-start and saved-state bench (issue 17): for labs of 1, 4 and 16
//! VMs under TCG on this machine, side by side in one run:
//! - cold `up` (`--cold`) → every VM ready, and warm `up` of the same lab
//!   made anew (every VM restored from the warm image of its shape; the
//!   first warm `up` also makes that image: one cold boot, timed apart);
//! - `stop --save` of the whole lab, then `start` → every VM resumed and ready;
//! - a lab snapshot taken (VMs paused for how long), and restored;
//! - the QEMU RSS per VM (median), cold and warm, and the saved state's
//!   size per VM.
//!
//! Then `check` of the 16-VM lab after its restore (all 240 ordered pairs),
//! and cold against warm for the `frr` image (1, 4 and 16 VMs).
//! Run: `cargo bench -p engine --bench saved` (root; builds the images).

use std::time::{Duration, Instant};

mod common;

fn lab_yaml(name: &str, image: &str, n: usize) -> String {
    let mut y = format!(
        "version: 1\nname: {name}\ndefaults: {{image: {image}, memory_mib: 96}}\nnetworks: [{{name: lan, subnet: 10.39.0.0/24}}]\nnodes:\n"
    );
    for i in 1..=n {
        y += &format!("  - {{name: vm{i}, nics: [{{network: lan}}]}}\n");
    }
    y
}

fn rss_mb(lab: &str) -> Vec<u64> {
    engine::lab::running_qemus(lab)
        .values()
        .filter_map(|pid| {
            let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let kb: u64 = s
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kb / 1024)
        })
        .collect()
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// `up` of `t` made anew (fresh overlays), cold or warm: (time, median
/// RSS per VM in MB). The lab stays up.
fn fresh_up(
    engine: &mut engine::lab::Engine,
    store: &engine::LabStore,
    t: &topology::Topology,
    cold: bool,
) -> (Duration, u64) {
    let quiet = |_: String| {};
    // Nothing to take down the first time.
    let _ = engine::ops::down(engine, &t.name, true, &quiet);
    let _ = store.put(t, None);
    engine.cold = cold;
    let s = Instant::now();
    engine::ops::up(engine, store, t, None, Duration::from_secs(900), &quiet).expect("up");
    let took = s.elapsed();
    engine.cold = false;
    std::thread::sleep(Duration::from_secs(2));
    (took, median(rss_mb(&t.name)))
}

fn main() {
    let (_state, mut engine, store) = common::lab_engine();
    engine::image::build::build(
        &engine.images,
        "frr",
        engine::image::build::Flavour::Frr,
        &mut |_, _| {},
    )
    .expect("frr image build");
    let quiet = |_: String| {};
    let timeout = Duration::from_secs(900);
    for n in [1usize, 4, 16] {
        let name = format!("saved-bench-{n}");
        let t = topology::parse_and_validate(&lab_yaml(&name, "tiny", n), topology::Format::Yaml)
            .unwrap();
        let vms: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();

        let (cold, rss) = fresh_up(&mut engine, &store, &t, true);
        if n == 1 {
            // The first warm start of the shape makes its warm image.
            let (first, _) = fresh_up(&mut engine, &store, &t, false);
            println!(
                "tiny: first warm up (makes the warm image: one cold boot + save) {:.2} s",
                first.as_secs_f64()
            );
        }
        let (warm, warm_rss) = fresh_up(&mut engine, &store, &t, false);

        let s = Instant::now();
        engine::ops::suspend(&engine, &t, &vms, &quiet).expect("suspend");
        let save = s.elapsed();
        let state_mb = median(
            vms.iter()
                .filter_map(|v| engine::lab::saved_state(&engine.vm_files(&name, v)))
                .map(|s| s.bytes / 1_000_000)
                .collect(),
        );
        let s = Instant::now();
        engine::ops::start(&engine, &t, &vms, timeout, &quiet).expect("resume");
        let resume = s.elapsed();

        let s = Instant::now();
        let snap =
            engine::ops::snapshot::save(&engine, &store, &name, "bench", &quiet).expect("snapshot");
        let snap_save = s.elapsed();
        let s = Instant::now();
        engine::ops::snapshot::restore(&engine, &store, &name, "bench", timeout, &quiet)
            .expect("restore");
        let snap_restore = s.elapsed();

        println!(
            "tiny {n:>2} VM(s): up cold {:.2} s | up warm {:.2} s ({:.1}x faster) | stop --save {:.1} s | start (resume) {:.2} s ({:.1}x faster than cold) | snapshot save {:.1} s (paused {} ms), restore {:.1} s | RSS/VM median cold {rss} MB, warm {warm_rss} MB (96 MiB guests) | saved state/VM median {state_mb} MB",
            cold.as_secs_f64(),
            warm.as_secs_f64(),
            cold.as_secs_f64() / warm.as_secs_f64(),
            save.as_secs_f64(),
            resume.as_secs_f64(),
            cold.as_secs_f64() / resume.as_secs_f64(),
            snap_save.as_secs_f64(),
            snap.paused_ms,
            snap_restore.as_secs_f64(),
        );
        if n == 16 {
            let s = Instant::now();
            let outcomes = engine::check::run(&engine, &t, 8);
            let passed = outcomes.iter().filter(|o| o.ok).count();
            println!(
                "tiny 16 VM(s) after restore: check {passed}/{} ordered pairs pass ({:.1} s)",
                outcomes.len(),
                s.elapsed().as_secs_f64()
            );
            let (_, _) = fresh_up(&mut engine, &store, &t, false);
            let outcomes = engine::check::run(&engine, &t, 8);
            let passed = outcomes.iter().filter(|o| o.ok).count();
            println!(
                "tiny 16 VM(s) warm: check {passed}/{} ordered pairs pass",
                outcomes.len()
            );
        }
        engine::ops::down(&engine, &name, true, &quiet).expect("down");
    }
    for n in [1usize, 4, 16] {
        let name = format!("frr-bench-{n}");
        let t = topology::parse_and_validate(&lab_yaml(&name, "frr", n), topology::Format::Yaml)
            .unwrap();
        let (cold, rss) = fresh_up(&mut engine, &store, &t, true);
        if n == 1 {
            let (first, _) = fresh_up(&mut engine, &store, &t, false);
            println!(
                "frr: first warm up (makes the warm image) {:.2} s",
                first.as_secs_f64()
            );
        }
        let (warm, warm_rss) = fresh_up(&mut engine, &store, &t, false);
        println!(
            "frr  {n:>2} VM(s): up cold {:.2} s | up warm {:.2} s ({:.1}x faster) | RSS/VM median cold {rss} MB, warm {warm_rss} MB",
            cold.as_secs_f64(),
            warm.as_secs_f64(),
            cold.as_secs_f64() / warm.as_secs_f64(),
        );
        engine::ops::down(&engine, &name, true, &quiet).expect("down");
    }
}
