//! Links bench (issue 13): on a real two-VM lab under TCG,
//! 1. the time from an edit (`ops::set_link`, as `minivm link` and a save
//!    in the editor run it) to the change being in force, for a loss
//!    impairment (nftables) and for the guest's carrier (QMP), medians;
//! 2. capture on h1's NIC during the fastest traffic two TCG guests make
//!    (a TCP stream h2 → h1: busybox httpd and wget): packets/s captured, drops,
//!    and the stream's throughput with and without the capture, side by
//!    side in one run (the ratio shows whether a capture disturbs the lab).
//!
//! Run: `cargo build -p server && cargo bench -p engine --bench links`
//! (root; builds the image; `MINIVM_BIN` names another minivm for the relay).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::capture::{Capture, Limits};
use engine::lab::Engine;
use engine::ops::LinkEdit;

mod common;

const RUNS: usize = 7;
const STREAMS: usize = 5;
/// KiB sent per stream.
const STREAM_KIB: u32 = 16_384;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let (_state, engine, store) = common::lab_engine();
    // Where the kernel has no netem, delay is the relay's: `minivm relay`.
    let mut engine = engine;
    engine.relay_program = std::env::var_os("MINIVM_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug/minivm").into());
    let lab = format!("links-bench-{}", std::process::id());
    let t = topology::parse_and_validate(
        &format!(
            "version: 1\nname: {lab}\ndefaults: {{image: tiny}}\nnetworks: [{{name: lan, subnet: 10.33.0.0/24}}]\nnodes:\n  - {{name: h1, nics: [{{network: lan, address: 10.33.0.11/24}}]}}\n  - {{name: h2, nics: [{{network: lan, address: 10.33.0.12/24}}]}}\n"
        ),
        topology::Format::Yaml,
    )
    .unwrap();
    store.put(&t, None).unwrap();
    struct Down<'a>(&'a Engine, String);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = self.0.down(&self.1, true);
        }
    }
    let _down = Down(&engine, lab.clone());
    engine::ops::up(&engine, &store, &t, None, Duration::from_secs(240), &|_| {}).unwrap();

    // 1. Edit → in force.
    let set = |edit: LinkEdit| {
        let t0 = Instant::now();
        engine::ops::set_link(&engine, &store, &lab, "h1", 0, &edit, &|_| {}).unwrap();
        t0.elapsed().as_secs_f64() * 1000.0
    };
    let (mut loss, mut clear, mut down, mut up) = (vec![], vec![], vec![], vec![]);
    let (mut delay, mut undelay) = (vec![], vec![]);
    for _ in 0..RUNS {
        delay.push(set(LinkEdit {
            delay_ms: Some(50),
            ..Default::default()
        }));
        undelay.push(set(LinkEdit {
            clear: true,
            ..Default::default()
        }));
        loss.push(set(LinkEdit {
            loss_pct: Some(100.0),
            ..Default::default()
        }));
        clear.push(set(LinkEdit {
            clear: true,
            ..Default::default()
        }));
        down.push(set(LinkEdit {
            up: Some(false),
            ..Default::default()
        }));
        up.push(set(LinkEdit {
            up: Some(true),
            ..Default::default()
        }));
    }
    println!("edit -> in force (median of {RUNS}, ms; stored revision + plan + apply):");
    println!(
        "  delay 50 ms on {:.1} ({})",
        median(delay),
        if engine::impair::kernel_has_netem() {
            "netem"
        } else {
            "the lab's relay"
        }
    );
    println!("  delay off      {:.1}", median(undelay));
    println!("  loss 100% on   {:.1}", median(loss));
    println!("  impairment off {:.1}", median(clear));
    println!("  carrier down   {:.1}", median(down));
    println!("  carrier up     {:.1}", median(up));

    // 2. Capture during a TCP stream h1 -> h2 (busybox wget of a file h2's
    // busybox httpd serves), with and without.
    let sh = |vm: &str, cmd: &str| {
        engine
            .exec(
                &lab,
                vm,
                &["/bin/sh".into(), "-c".into(), cmd.into()],
                Duration::from_secs(300),
            )
            .unwrap()
    };
    let served = sh(
        "h2",
        &format!("mkdir -p /tmp/www && dd if=/dev/zero of=/tmp/www/big bs=1024 count={STREAM_KIB} 2>/dev/null && httpd -p 8080 -h /tmp/www"),
    );
    assert_eq!(served.exit_code, 0, "{served:?}");
    let stream = || -> f64 {
        let t0 = Instant::now();
        let r = sh("h1", "wget -q -O - http://10.33.0.12:8080/big | wc -c");
        let secs = t0.elapsed().as_secs_f64();
        assert_eq!(r.exit_code, 0, "{r:?}");
        assert_eq!(
            r.stdout.trim(),
            (u64::from(STREAM_KIB) * 1024).to_string(),
            "the whole file arrived"
        );
        f64::from(STREAM_KIB) * 1024.0 * 8.0 / 1e6 / secs
    };
    let ns = engine::capture::namespace_of(&t);
    let tap = topology::names::tap_ifname(&lab, "h1", 0);
    let (mut plain, mut captured, mut rates, mut drops) = (vec![], vec![], vec![], vec![]);
    for _ in 0..STREAMS {
        plain.push(stream());
        let mut cap = Capture::open(ns.as_deref(), &tap, None).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let reader = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut first_last: Option<(Instant, Instant)> = None;
            let (_, counts) = cap
                .run(
                    Limits {
                        packets: u64::MAX,
                        seconds: 600,
                        bytes: u64::MAX,
                    },
                    &stop2,
                    &mut |_| {
                        let now = Instant::now();
                        first_last = Some((first_last.map_or(now, |f| f.0), now));
                        Ok(true)
                    },
                )
                .unwrap();
            let span = first_last.map_or(t0.elapsed(), |(a, b)| b - a);
            (counts, span)
        });
        captured.push(stream());
        stop.store(true, Ordering::Relaxed);
        let (counts, span) = reader.join().unwrap();
        rates.push(counts.captured as f64 / span.as_secs_f64().max(1e-3));
        drops.push(counts.dropped as f64);
    }
    let (p, c) = (median(plain.clone()), median(captured.clone()));
    println!("TCP stream h2 -> h1 ({STREAM_KIB} KiB over HTTP, TCG), median of {STREAMS}:");
    println!("  without capture {p:.1} Mbit/s {plain:.1?}");
    println!(
        "  with capture    {c:.1} Mbit/s {captured:.1?}  (ratio {:.2})",
        c / p
    );
    println!(
        "  capture on h1:eth0: median {:.0} packets/s, drops {drops:?}",
        median(rates)
    );
}
