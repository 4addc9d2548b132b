//! Impairments in user space, for kernels without netem: the relay.
//!
//! A NIC whose impairment needs netem (delay, jitter, corruption,
//! duplication, reordering) on a kernel that has none is shaped by a
//! process of ours, `minivm relay LAB`, one per lab. The kernel still does
//! the plumbing, in the lab's namespace:
//!
//! ```text
//! VM ─fd─ TAP (bridge port; flood and learning off) ──tc ingress, mirred──▶ IN (a TAP; the relay reads it)
//!                                                                              │ loss, corrupt, duplicate,
//!                                                                              │ delay + jitter, reorder, rate
//! bridge ◀── OUT (a TAP, bridge port; the relay writes it) ◀───────────────────┘
//! bridge ──▶ OUT ──tc egress (clsact), mirred──▶ TAP ─fd─ VM
//! ```
//!
//! So what the VM sends is delayed once, one way, as netem would; what it
//! receives is not touched. The relay reads `<lab>/relay.json` (the links
//! it shapes, written atomically by the engine) and follows its changes
//! within 20 ms; it ends itself when no link is left. It carries the lab's
//! tag in its command line (`minivm relay LAB`), so `down` stops only it.

use std::collections::{BTreeMap, BinaryHeap};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use topology::Impair;

/// One link the relay shapes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RelayLink {
    /// The VM's TAP.
    pub tap: String,
    /// Where the TAP's ingress is redirected (the relay reads it).
    pub input: String,
    /// The bridge port the relay writes to.
    pub output: String,
    pub impair: Impair,
}

/// `<lab>/relay.json`: the lab's namespace and its shaped links, by TAP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RelayConfig {
    pub namespace: Option<String>,
    pub links: BTreeMap<String, RelayLink>,
}

pub fn config_path(lab_dir: &Path) -> PathBuf {
    lab_dir.join("relay.json")
}

pub fn pidfile(lab_dir: &Path) -> PathBuf {
    lab_dir.join("relay.pid")
}

pub fn read_config(lab_dir: &Path) -> RelayConfig {
    std::fs::read_to_string(config_path(lab_dir))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default()
}

/// The pid of the lab's running relay (its command line says so).
pub fn running(lab_dir: &Path, lab: &str) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(pidfile(lab_dir))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let is_ours = args
        .windows(2)
        .any(|w| w[0] == b"relay" && w[1] == lab.as_bytes());
    is_ours.then_some(pid)
}

/// A small, fast generator (xorshift64*): impairments need dice, not secrets.
struct Dice(u64);

impl Dice {
    fn new() -> Dice {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ u64::from(std::process::id()) << 32;
        Dice(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with `pct` percent.
    fn chance(&mut self, pct: f64) -> bool {
        pct > 0.0 && self.unit() * 100.0 < pct
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-12);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// What becomes of one frame the VM sent: the times (from now) at which a
/// copy leaves, none when it is lost. `busy_until` is when the link is free
/// again at the rate limit (updated). Pure, so it is unit-tested.
fn schedule(
    i: &Impair,
    len: usize,
    now: Instant,
    busy_until: &mut Instant,
    dice: &mut Dice,
    frame: &mut [u8],
) -> Vec<Instant> {
    if dice.chance(i.loss_pct) {
        return vec![];
    }
    if frame.len() > 14 && dice.chance(i.corrupt_pct) {
        let at = 14 + (dice.next() as usize % (frame.len() - 14));
        frame[at] ^= 1 << (dice.next() % 8);
    }
    let copies = if dice.chance(i.duplicate_pct) { 2 } else { 1 };
    let mut out = Vec::with_capacity(copies);
    for _ in 0..copies {
        let mut delay = f64::from(i.delay_ms);
        if i.jitter_ms > 0 {
            delay += dice.normal() * f64::from(i.jitter_ms);
        }
        if dice.chance(i.reorder_pct) {
            delay = 0.0;
        }
        let mut at = now + Duration::from_secs_f64(delay.max(0.0) / 1000.0);
        if i.rate_kbit > 0 {
            let start = at.max(*busy_until);
            let wire = Duration::from_secs_f64(len as f64 * 8.0 / (i.rate_kbit as f64 * 1000.0));
            at = start + wire;
            *busy_until = at;
        }
        out.push(at);
    }
    out
}

/// A frame waiting to leave.
struct Due {
    at: Instant,
    seq: u64,
    frame: Vec<u8>,
}

impl PartialEq for Due {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Due {}
impl PartialOrd for Due {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Due {
    // Earliest first in a max-heap.
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// At most this many frames wait in one link's queue (netem's default
/// limit is 1000; a long delay at a high rate needs more).
const QUEUE_LIMIT: usize = 100_000;

/// At most this many bytes wait in one link's queue: a guest sending 64
/// KiB frames (TSO) into a long delay fills this, not the host's memory.
const QUEUE_BYTES: usize = 64 << 20;

/// Whether a frame of `len` bytes may join a queue of `frames` frames
/// holding `bytes` bytes (else it is dropped, as a full netem queue does).
fn fits(frames: usize, bytes: usize, len: usize) -> bool {
    frames < QUEUE_LIMIT && bytes + len <= QUEUE_BYTES
}

/// One shaped link: a reader and a writer thread.
struct Worker {
    impair: Arc<Mutex<Impair>>,
    stop: Arc<AtomicBool>,
}

fn start_worker(link: &RelayLink, input: OwnedFd, output: OwnedFd) -> Worker {
    let impair = Arc::new(Mutex::new(link.impair));
    let stop = Arc::new(AtomicBool::new(false));
    let queue = Arc::new((Mutex::new(BinaryHeap::<Due>::new()), Condvar::new()));
    // The bytes in the queue (changed under its lock).
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    {
        let (impair, stop, queue, queued) =
            (impair.clone(), stop.clone(), queue.clone(), queued.clone());
        std::thread::spawn(move || {
            let mut dice = Dice::new();
            let mut busy = Instant::now();
            let mut seq = 0u64;
            let mut buf = vec![0u8; 65_536];
            let mut pfd = [nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&input),
                nix::poll::PollFlags::POLLIN,
            )];
            while !stop.load(Ordering::Relaxed) {
                match nix::poll::poll(&mut pfd, 200u16) {
                    Ok(n) if n > 0 => {}
                    _ => continue,
                }
                let n = match nix::unistd::read(&input, &mut buf) {
                    Ok(n) if n > 0 => n,
                    _ => continue,
                };
                let i = *impair.lock().expect("not poisoned");
                let mut frame = buf[..n].to_vec();
                let times = schedule(&i, n, Instant::now(), &mut busy, &mut dice, &mut frame);
                let (q, cv) = &*queue;
                let mut q = q.lock().expect("not poisoned");
                for at in times {
                    if fits(q.len(), queued.load(Ordering::Relaxed), frame.len()) {
                        queued.fetch_add(frame.len(), Ordering::Relaxed);
                        seq += 1;
                        q.push(Due {
                            at,
                            seq,
                            frame: frame.clone(),
                        });
                    }
                }
                cv.notify_one();
            }
        });
    }
    {
        let (stop, queue, queued) = (stop.clone(), queue.clone(), queued.clone());
        std::thread::spawn(move || {
            let (q, cv) = &*queue;
            let mut q = q.lock().expect("not poisoned");
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                match q.peek() {
                    Some(d) if d.at <= now => {
                        let d = q.pop().expect("peeked");
                        queued.fetch_sub(d.frame.len(), Ordering::Relaxed);
                        drop(q);
                        let _ = nix::unistd::write(&output, &d.frame);
                        q = q_lock(&queue);
                    }
                    Some(d) => {
                        let wait = d.at - now;
                        q = cv
                            .wait_timeout(q, wait.min(Duration::from_millis(200)))
                            .expect("not poisoned")
                            .0;
                    }
                    None => {
                        q = cv
                            .wait_timeout(q, Duration::from_millis(200))
                            .expect("not poisoned")
                            .0;
                    }
                }
            }
        });
    }
    Worker { impair, stop }
}

type Queue = Arc<(Mutex<BinaryHeap<Due>>, Condvar)>;

fn q_lock(queue: &Queue) -> std::sync::MutexGuard<'_, BinaryHeap<Due>> {
    queue.0.lock().expect("not poisoned")
}

/// The relay of lab `lab` (`minivm relay LAB`): shapes the links in
/// `<lab_dir>/relay.json` until none is left.
pub fn run(lab_dir: &Path, lab: &str) -> Result<(), crate::net::NetError> {
    let _ =
        crate::fsutil::write_atomic(&pidfile(lab_dir), std::process::id().to_string().as_bytes());
    tracing::info!(%lab, "relay started");
    let mut workers: BTreeMap<String, (RelayLink, Worker)> = BTreeMap::new();
    let mut idle_since: Option<Instant> = None;
    let mut seen: Option<std::time::SystemTime> = None;
    let mut last_read = Instant::now();
    loop {
        // The file is looked at every 20 ms and read when it changed (or
        // every 2 s, to open TAPs that were not there yet).
        let mtime = std::fs::metadata(config_path(lab_dir))
            .and_then(|m| m.modified())
            .ok();
        if mtime == seen && last_read.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
            if mtime.is_none() {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(3) {
                    tracing::info!(%lab, "relay: no link left, ending");
                    let _ = std::fs::remove_file(pidfile(lab_dir));
                    return Ok(());
                }
            }
            continue;
        }
        seen = mtime;
        last_read = Instant::now();
        let config = read_config(lab_dir);
        let ns = config.namespace.as_deref();
        // Gone or changed in its devices: stopped (and started again below).
        workers.retain(|tap, (link, w)| {
            let keep = config
                .links
                .get(tap)
                .is_some_and(|l| l.input == link.input && l.output == link.output);
            if !keep {
                w.stop.store(true, Ordering::Relaxed);
            }
            keep
        });
        for (tap, link) in &config.links {
            match workers.get_mut(tap) {
                Some((have, w)) => {
                    if have.impair != link.impair {
                        *w.impair.lock().expect("not poisoned") = link.impair;
                        have.impair = link.impair;
                        tracing::info!(%tap, impair = %link.impair.label(), "relay: impairment changed");
                    }
                }
                None => {
                    let input = crate::net::open_tap(ns, &link.input);
                    let output = crate::net::open_tap(ns, &link.output);
                    match (input, output) {
                        (Ok(i), Ok(o)) => {
                            tracing::info!(%tap, impair = %link.impair.label(), "relay: shaping");
                            workers.insert(tap.clone(), (link.clone(), start_worker(link, i, o)));
                        }
                        (Err(e), _) | (_, Err(e)) => {
                            tracing::warn!(%tap, error = %crate::report(&e), "relay: cannot open its TAPs yet")
                        }
                    }
                }
            }
        }
        // Nothing to shape for a few seconds: the relay ends.
        if config.links.is_empty() {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(3) {
                tracing::info!(%lab, "relay: no link left, ending");
                let _ = std::fs::remove_file(pidfile(lab_dir));
                return Ok(());
            }
        } else {
            idle_since = None;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_link_queue_is_bounded_in_frames_and_in_bytes() {
        assert!(super::fits(0, 0, 1514));
        assert!(!super::fits(super::QUEUE_LIMIT, 0, 60));
        assert!(super::fits(1000, super::QUEUE_BYTES - 65_536, 65_536));
        assert!(!super::fits(1000, super::QUEUE_BYTES - 65_535, 65_536));
    }

    use super::*;

    fn imp(f: impl FnOnce(&mut Impair)) -> Impair {
        let mut i = Impair::NONE;
        f(&mut i);
        i
    }

    #[test]
    fn a_delay_is_one_way_and_exact_without_jitter() {
        let now = Instant::now();
        let mut busy = now;
        let mut dice = Dice::new();
        let mut f = vec![0u8; 100];
        let t = schedule(
            &imp(|i| i.delay_ms = 200),
            100,
            now,
            &mut busy,
            &mut dice,
            &mut f,
        );
        assert_eq!(t, vec![now + Duration::from_millis(200)]);
    }

    #[test]
    fn loss_duplication_and_corruption_happen_at_their_rates() {
        let now = Instant::now();
        let mut busy = now;
        let mut dice = Dice::new();
        let (mut lost, mut twice, mut flipped) = (0, 0, 0);
        let i = imp(|i| {
            i.loss_pct = 10.0;
            i.duplicate_pct = 20.0;
            i.corrupt_pct = 30.0;
        });
        for _ in 0..20_000 {
            let mut f = vec![0u8; 64];
            let t = schedule(&i, 64, now, &mut busy, &mut dice, &mut f);
            match t.len() {
                0 => lost += 1,
                2 => twice += 1,
                _ => {}
            }
            if f.iter().any(|b| *b != 0) {
                flipped += 1;
            }
            assert!(
                f[..14].iter().all(|b| *b == 0),
                "the Ethernet header is kept"
            );
        }
        let pct = |n: i32| f64::from(n) / 200.0;
        assert!((8.0..12.0).contains(&pct(lost)), "loss {}", pct(lost));
        // Of the 90% that survive, 20% go twice; corruption is counted on all.
        assert!((16.0..20.0).contains(&pct(twice)), "dup {}", pct(twice));
        assert!(
            (25.0..35.0).contains(&pct(flipped)),
            "corrupt {}",
            pct(flipped)
        );
    }

    #[test]
    fn the_rate_serializes_frames_and_reorder_skips_the_delay() {
        let now = Instant::now();
        let mut busy = now;
        let mut dice = Dice::new();
        // 1000 bytes at 8000 kbit/s: 1 ms each, back to back.
        let i = imp(|i| i.rate_kbit = 8000);
        let mut f = vec![0u8; 1000];
        let a = schedule(&i, 1000, now, &mut busy, &mut dice, &mut f)[0];
        let b = schedule(&i, 1000, now, &mut busy, &mut dice, &mut f)[0];
        assert_eq!(a - now, Duration::from_millis(1));
        assert_eq!(b - now, Duration::from_millis(2));
        let i = imp(|i| {
            i.delay_ms = 100;
            i.reorder_pct = 100.0;
        });
        let mut busy = now;
        let t = schedule(&i, 64, now, &mut busy, &mut dice, &mut f);
        assert_eq!(t, vec![now], "sent at once, ahead of delayed ones");
    }
}
