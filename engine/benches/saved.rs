//! Saved-state bench (issue 17): for labs of 1, 4 and 16 `tiny` VMs under
//! TCG on this machine, side by side in one run:
//! - cold `up` → every VM ready;
//! - `stop --save` of the whole lab, then `start` → every VM resumed and ready;
//! - a lab snapshot taken (VMs paused for how long), and restored;
//! - the QEMU RSS per VM (median) and the saved state's size per VM.
//!
//! Then `check` of the 16-VM lab after its resume (all 240 ordered pairs).
//! Run: `cargo bench -p engine --bench saved` (root; builds the image).

use std::time::{Duration, Instant};

mod common;

fn lab_yaml(name: &str, n: usize) -> String {
    let mut y = format!(
        "version: 1\nname: {name}\ndefaults: {{image: tiny, memory_mib: 96}}\nnetworks: [{{name: lan, subnet: 10.39.0.0/24}}]\nnodes:\n"
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

fn main() {
    let (_state, engine, store) = common::lab_engine();
    let quiet = |_: String| {};
    let timeout = Duration::from_secs(900);
    for n in [1usize, 4, 16] {
        let name = format!("saved-bench-{n}");
        let t = topology::parse_and_validate(&lab_yaml(&name, n), topology::Format::Yaml).unwrap();
        let vms: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();

        store.put(&t, None).expect("store");
        let s = Instant::now();
        engine::ops::up(&engine, &store, &t, None, timeout, &quiet).expect("up");
        let cold = s.elapsed();
        std::thread::sleep(Duration::from_secs(2));
        let rss = median(rss_mb(&name));

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
            engine::snapshot::save(&engine, &store, &name, "bench", &quiet).expect("snapshot");
        let snap_save = s.elapsed();
        let s = Instant::now();
        engine::snapshot::restore(&engine, &store, &name, "bench", timeout, &quiet)
            .expect("restore");
        let snap_restore = s.elapsed();

        println!(
            "{n:>2} VM(s): cold up -> all ready {:.1} s | stop --save {:.1} s | start (resume) -> all ready {:.2} s ({:.1}x faster) | snapshot save {:.1} s (paused {} ms), restore {:.1} s | RSS/VM median {rss} MB (96 MiB guests) | saved state/VM median {state_mb} MB",
            cold.as_secs_f64(),
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
                "16 VM(s) after restore: check {passed}/{} ordered pairs pass ({:.1} s)",
                outcomes.len(),
                s.elapsed().as_secs_f64()
            );
        }
        engine::ops::down(&engine, &name, true, &quiet).expect("down");
    }
}
