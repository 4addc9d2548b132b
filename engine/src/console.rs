//! A VM's serial console, shared. QEMU's serial socket takes one client;
//! the process that reads it (the web server, or a CLI command waiting for
//! readiness) keeps a bounded scrollback from boot on, appends everything
//! to `console.log`, writes the `ready` marker when the guest announces
//! itself, and fans the bytes out to any number of viewers, any of whom may
//! type.

use std::collections::VecDeque;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use crate::lab::VmDir;

/// Bytes of console output kept for viewers who attach late.
pub const SCROLLBACK_BYTES: usize = 64 * 1024;

pub struct Console {
    scrollback: Mutex<VecDeque<u8>>,
    tx: broadcast::Sender<Arc<[u8]>>,
    writer: Mutex<Option<UnixStream>>,
    /// `console.log`: what earlier readers saw.
    log_path: std::path::PathBuf,
    /// Nothing read from the socket yet: the scrollback is console.log's,
    /// and may have grown since (a CLI still holding the socket, writing
    /// the guest's last lines there).
    fresh: std::sync::atomic::AtomicBool,
}

impl Console {
    /// What was printed so far (at most [`SCROLLBACK_BYTES`]) and a
    /// receiver of what follows, with nothing lost or repeated between.
    pub fn attach(&self) -> (Vec<u8>, broadcast::Receiver<Arc<[u8]>>) {
        let mut sb = self.scrollback.lock().expect("not poisoned");
        if self.fresh.load(std::sync::atomic::Ordering::SeqCst) {
            // A guest that has said its last line before this reader got
            // the socket (a warm clone prints nothing after "ready") is
            // still shown from its log.
            *sb = log_tail(&self.log_path).into();
        }
        (sb.iter().copied().collect(), self.tx.subscribe())
    }

    /// Types into the console.
    pub fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        match self.writer.lock().expect("not poisoned").as_mut() {
            Some(w) => w.write_all(bytes),
            None => Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the console is not connected yet",
            )),
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut sb = self.scrollback.lock().expect("not poisoned");
        sb.extend(bytes);
        let excess = sb.len().saturating_sub(SCROLLBACK_BYTES);
        sb.drain(..excess);
        let _ = self.tx.send(Arc::from(bytes));
    }
}

/// Starts reading `dir`'s serial socket on a thread. The scrollback starts
/// with the tail of `console.log` (what an earlier reader saw). `done` runs
/// when the console closes (the VM stopped).
pub fn open(
    dir: &Path,
    vm: &str,
    done: impl FnOnce(&Arc<Console>) + Send + 'static,
) -> Arc<Console> {
    let log_path = VmDir::new(dir.to_path_buf()).console_log();
    let (tx, _) = broadcast::channel(1024);
    let console = Arc::new(Console {
        scrollback: Mutex::new(log_tail(&log_path).into()),
        tx,
        writer: Mutex::new(None),
        log_path,
        fresh: std::sync::atomic::AtomicBool::new(true),
    });
    let me = console.clone();
    let (dir, marker) = (dir.to_path_buf(), format!("minivm: ready {vm}"));
    std::thread::spawn(move || {
        read(&me, &dir, &marker);
        done(&me);
    });
    console
}

/// The last [`SCROLLBACK_BYTES`] of a console log.
fn log_tail(path: &Path) -> Vec<u8> {
    let mut all = fs::read(path).unwrap_or_default();
    let cut = all.len().saturating_sub(SCROLLBACK_BYTES);
    all.drain(..cut);
    all
}

fn read(console: &Console, dir: &Path, marker: &str) {
    let sock = crate::qemu::serial_socket(dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match UnixStream::connect(&sock) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => return,
        }
    };
    if let Ok(w) = stream.try_clone() {
        *console.writer.lock().expect("not poisoned") = Some(w);
    }
    let connected = Arc::new(std::sync::atomic::AtomicBool::new(true));
    recover_ready(dir, marker, connected.clone());
    let log_path = VmDir::new(dir.to_path_buf()).console_log();
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .ok();
    let mut line: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut first = true;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if first {
            // QEMU serves one reader at a time: when this connection comes
            // through, an earlier reader (a CLI waiting for readiness) has
            // just let go, and console.log holds all it saw. Start from that.
            first = false;
            let mut sb = console.scrollback.lock().expect("not poisoned");
            *sb = log_tail(&log_path).into();
            console
                .fresh
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
        let chunk = &buf[..n];
        if let Some(l) = log.as_mut() {
            let _ = l.write_all(chunk);
        }
        console.push(chunk);
        for &b in chunk {
            if b == b'\n' {
                if String::from_utf8_lossy(&line).contains(marker) {
                    let _ = fs::write(VmDir::new(dir.to_path_buf()).ready(), b"");
                }
                line.clear();
            } else if line.len() < 4096 {
                line.push(b);
            }
        }
    }
    *console.writer.lock().expect("not poisoned") = None;
    connected.store(false, std::sync::atomic::Ordering::SeqCst);
}

/// The guest says it is ready once, on the serial line. Said while nobody
/// read it (the reader was killed, and the guest spoke before the next one
/// connected), it is lost there; this recovers it. From `console.log` when
/// the line got that far (a reader killed between logging it and writing
/// the marker); else from the guest itself, once the reader has waited a
/// while: its agent is asked whether `/run/minivm-ready` exists (the guest
/// makes it just before it prints the line).
fn recover_ready(dir: &Path, marker: &str, connected: Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::Ordering;
    let files = VmDir::new(dir.to_path_buf());
    let ready = files.ready();
    let logged = fs::read(files.console_log()).is_ok_and(|log| {
        String::from_utf8_lossy(&log)
            .lines()
            .any(|l| l.contains(marker))
    });
    if logged {
        let _ = fs::write(&ready, b"");
        return;
    }
    let dir = dir.to_path_buf();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(5));
        let deadline = Instant::now() + Duration::from_secs(600);
        while connected.load(Ordering::SeqCst) && !ready.exists() && Instant::now() < deadline {
            let said =
                crate::qga::Qga::connect(&crate::qemu::qga_socket(&dir), Duration::from_secs(1))
                    .and_then(|mut q| {
                        let h = q.execute(
                            "guest-file-open",
                            Some(serde_json::json!({"path": "/run/minivm-ready", "mode": "r"})),
                        )?;
                        let _ =
                            q.execute("guest-file-close", Some(serde_json::json!({"handle": h})));
                        Ok(())
                    });
            if said.is_ok() && connected.load(Ordering::SeqCst) {
                tracing::info!(dir = %dir.display(), "readiness recovered from the guest agent");
                let _ = fs::write(&ready, b"");
                return;
            }
            std::thread::sleep(Duration::from_secs(3));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrollback_is_bounded_and_attach_sees_the_rest_live() {
        let (tx, _) = broadcast::channel(16);
        let c = Console {
            scrollback: Mutex::new(VecDeque::new()),
            tx,
            writer: Mutex::new(None),
            log_path: "/nonexistent/console.log".into(),
            fresh: std::sync::atomic::AtomicBool::new(false),
        };
        c.push(&vec![b'a'; SCROLLBACK_BYTES]);
        c.push(b"tail");
        let (sb, mut rx) = c.attach();
        assert_eq!(sb.len(), SCROLLBACK_BYTES);
        assert!(sb.ends_with(b"aatail"));
        c.push(b"live");
        assert_eq!(&*rx.try_recv().unwrap(), b"live");
        assert!(c.write(b"x").is_err(), "not connected yet");
    }

    #[test]
    fn a_viewer_before_the_first_byte_sees_the_log_as_it_is_now() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("console.log");
        let (tx, _) = broadcast::channel(16);
        let c = Console {
            scrollback: Mutex::new(VecDeque::new()),
            tx,
            writer: Mutex::new(None),
            log_path: log.clone(),
            fresh: std::sync::atomic::AtomicBool::new(true),
        };
        // Written by the CLI that held the socket, after this console opened.
        fs::write(&log, b"minivm: ready vm1\n").unwrap();
        assert_eq!(c.attach().0, b"minivm: ready vm1\n");
        c.fresh.store(false, std::sync::atomic::Ordering::SeqCst);
        fs::write(&log, b"other").unwrap();
        assert_eq!(c.attach().0, b"minivm: ready vm1\n");
    }
}
