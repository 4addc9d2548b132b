//! The web server's captures: several at once, on any lab's NICs and
//! networks, each on its own thread with its limits, its packets kept as
//! table rows and written to `<state>/captures/<id>.pcap`. A stopped
//! capture stays listed and downloadable until it is deleted, also across
//! a server restart (its record is written beside its file).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use topology::Topology;

use crate::capture::{
    self, Capture, CaptureError, CaptureInfo, Counts, Ended, Limits, PcapWriter, Row, Target,
};

struct Running {
    info: CaptureInfo,
    rows: Vec<Row>,
    stop: Arc<AtomicBool>,
    /// Deleted while it ran: its thread removes what it wrote.
    deleted: bool,
}

/// The server's captures.
pub struct Captures {
    dir: PathBuf,
    all: Mutex<BTreeMap<String, Arc<Mutex<Running>>>>,
}

/// The most captures that run at once (each holds a thread, a socket and
/// up to `WEB_LIMITS` of memory); one more is refused, saying so.
pub const MAX_RUNNING: usize = 16;

/// The limits of a capture started from the web page.
pub const WEB_LIMITS: Limits = Limits {
    packets: 20_000,
    seconds: 1800,
    bytes: 64 << 20,
};

impl Captures {
    /// The captures under `<state>/captures`, with those a previous server
    /// left (stopped, listed from their records).
    pub fn open(state_dir: &Path) -> Captures {
        let dir = state_dir.join("captures");
        let mut all = BTreeMap::new();
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "json") {
                    let info: Option<CaptureInfo> = std::fs::read_to_string(&p)
                        .ok()
                        .and_then(|s| serde_json::from_str(&s).ok());
                    if let Some(mut info) = info {
                        info.running = false;
                        all.insert(
                            info.id.clone(),
                            Arc::new(Mutex::new(Running {
                                info,
                                rows: vec![],
                                stop: Arc::new(AtomicBool::new(true)),
                                deleted: false,
                            })),
                        );
                    }
                }
            }
        }
        Captures {
            dir,
            all: Mutex::new(all),
        }
    }

    /// The pcap file of capture `id` (while it runs, what is written so far).
    pub fn pcap_path(&self, id: &str) -> Option<PathBuf> {
        if !valid_id(id) || !self.all.lock().expect("not poisoned").contains_key(id) {
            return None;
        }
        let done = self.dir.join(format!("{id}.pcap"));
        if done.exists() {
            return Some(done);
        }
        Some(self.dir.join(format!(".{id}.pcap.part")))
    }

    /// Starts a capture on `target` of lab `t` (running).
    pub fn start(
        &self,
        t: &Topology,
        target: &str,
        filter: &str,
        limits: Limits,
    ) -> Result<CaptureInfo, CaptureError> {
        let target = Target::parse(t, target)?;
        let ifname = target.ifname(&t.name);
        let ns = capture::namespace_of(t);
        self.check_room()?;
        // Opened here, so that a bad filter or a lab that is down is
        // answered at once.
        let mut cap = Capture::open(ns.as_deref(), &ifname, Some(filter))?;
        std::fs::create_dir_all(&self.dir).map_err(CaptureError::Write)?;
        let started = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        // The id is taken and the capture counted under one lock: two
        // started in the same millisecond get two ids, and the cap holds
        // however many arrive at once.
        let mut all = self.all.lock().expect("not poisoned");
        let running = running_count(&all);
        if running >= MAX_RUNNING {
            return Err(CaptureError::TooMany { running });
        }
        let id = free_id(&all, &self.dir, started);
        let element = match &target {
            Target::Nic { vm, nic } => format!("nic:{vm}:{nic}"),
            Target::Network { network } => format!("net:{network}"),
        };
        let info = CaptureInfo {
            id: id.clone(),
            lab: t.name.clone(),
            target,
            element,
            filter: filter.to_string(),
            limits,
            started: started.as_secs(),
            running: true,
            ended: None,
            counts: Counts::default(),
            error: None,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let entry = Arc::new(Mutex::new(Running {
            info: info.clone(),
            rows: vec![],
            stop: stop.clone(),
            deleted: false,
        }));
        all.insert(id.clone(), entry.clone());
        drop(all);
        let part = self.dir.join(format!(".{id}.pcap.part"));
        let done = self.dir.join(format!("{id}.pcap"));
        let record = self.dir.join(format!("{id}.json"));
        std::thread::spawn(move || {
            let result = (|| -> Result<(Ended, Counts), CaptureError> {
                // Captured traffic may hold secrets: root's alone.
                let file = {
                    use std::os::unix::fs::OpenOptionsExt;
                    std::fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .mode(0o600)
                        .open(&part)
                        .map_err(CaptureError::Write)?
                };
                let mut w =
                    PcapWriter::new(std::io::BufWriter::new(file)).map_err(CaptureError::Write)?;
                let mut last_flush = std::time::Instant::now();
                let r = cap.run(limits, &stop, &mut |f| {
                    w.write(f.time, f.data, f.len)
                        .map_err(CaptureError::Write)?;
                    if last_flush.elapsed().as_millis() > 200 {
                        w.flush().map_err(CaptureError::Write)?;
                        last_flush = std::time::Instant::now();
                    }
                    let s = capture::summarize(f.data);
                    let mut e = entry.lock().expect("not poisoned");
                    e.info.counts.captured = f.no;
                    e.info.counts.bytes += u64::from(f.len);
                    e.rows.push(Row {
                        no: f.no,
                        time: f.elapsed,
                        source: s.source,
                        destination: s.destination,
                        protocol: s.protocol,
                        length: f.len,
                        info: s.info,
                    });
                    Ok(true)
                });
                let file = w
                    .into_inner()
                    .into_inner()
                    .map_err(|e| CaptureError::Write(e.into_error()))?;
                file.sync_all().map_err(CaptureError::Write)?;
                std::fs::rename(&part, &done).map_err(CaptureError::Write)?;
                r
            })();
            let mut e = entry.lock().expect("not poisoned");
            e.info.running = false;
            match result {
                Ok((ended, counts)) => {
                    e.info.ended = Some(ended);
                    e.info.counts = counts;
                }
                Err(err) => {
                    tracing::warn!(error = %crate::report(&err), "capture failed");
                    e.info.ended = Some(Ended::Stopped);
                    e.info.error = Some(crate::report(&err));
                }
            }
            if e.deleted {
                let _ = std::fs::remove_file(&done);
                let _ = std::fs::remove_file(&part);
                return;
            }
            let json = serde_json::to_string(&e.info).expect("serializes");
            let _ = crate::fsutil::write_private(&record, json.as_bytes());
        });
        Ok(info)
    }

    /// Every capture of `lab` (all labs: `None`), oldest first.
    pub fn list(&self, lab: Option<&str>) -> Vec<CaptureInfo> {
        self.all
            .lock()
            .expect("not poisoned")
            .values()
            .map(|e| e.lock().expect("not poisoned").info.clone())
            .filter(|i| lab.is_none_or(|l| i.lab == l))
            .collect()
    }

    /// Capture `id` and its rows from number `from` on (1-based), at most
    /// `max` of them.
    pub fn rows(&self, id: &str, from: u64, max: usize) -> Option<(CaptureInfo, Vec<Row>)> {
        let all = self.all.lock().expect("not poisoned");
        let e = all.get(id)?.lock().expect("not poisoned");
        let skip = from.saturating_sub(1) as usize;
        Some((
            e.info.clone(),
            e.rows.iter().skip(skip).take(max).cloned().collect(),
        ))
    }

    /// Asks capture `id` to stop (it ends within 100 ms).
    pub fn stop(&self, id: &str) -> bool {
        let all = self.all.lock().expect("not poisoned");
        match all.get(id) {
            Some(e) => {
                e.lock()
                    .expect("not poisoned")
                    .stop
                    .store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Stops capture `id` and removes it with its files.
    pub fn delete(&self, id: &str) -> bool {
        if !self.stop(id) {
            return false;
        }
        if let Some(e) = self.all.lock().expect("not poisoned").remove(id) {
            e.lock().expect("not poisoned").deleted = true;
        }
        for name in [
            format!("{id}.pcap"),
            format!(".{id}.pcap.part"),
            format!("{id}.json"),
        ] {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        true
    }
}

/// Capture ids are made here (`c` and digits); anything else names no file.
impl Captures {
    /// Refuses a capture over [`MAX_RUNNING`] before its socket is opened
    /// (checked again when it is counted in).
    fn check_room(&self) -> Result<(), CaptureError> {
        let running = running_count(&self.all.lock().expect("not poisoned"));
        if running >= MAX_RUNNING {
            return Err(CaptureError::TooMany { running });
        }
        Ok(())
    }
}

fn running_count(all: &BTreeMap<String, Arc<Mutex<Running>>>) -> usize {
    all.values()
        .filter(|e| e.lock().expect("not poisoned").info.running)
        .count()
}

/// `c` and the start time in milliseconds, or the next number up that no
/// capture (listed, or a file left in `dir`) has.
fn free_id(
    all: &BTreeMap<String, Arc<Mutex<Running>>>,
    dir: &Path,
    started: std::time::Duration,
) -> String {
    let mut n = started.as_millis();
    loop {
        let id = format!("c{n}");
        if !all.contains_key(&id) && !dir.join(format!("{id}.json")).exists() {
            return id;
        }
        n += 1;
    }
}

fn valid_id(id: &str) -> bool {
    id.len() > 1 && id.starts_with('c') && id[1..].bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ids_made_here_name_a_file() {
        assert!(valid_id("c1700000000123"));
        assert!(!valid_id("c"));
        assert!(!valid_id("../x"));
        assert!(!valid_id("c12/../../etc"));
        let dir = tempfile::tempdir().unwrap();
        let c = Captures::open(dir.path());
        assert_eq!(c.pcap_path("c123"), None, "not a capture of this server");
        assert!(!c.stop("c123"));
    }
}
