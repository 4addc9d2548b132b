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

use crate::vmdir::VmDir;

/// Bytes of console output kept for viewers who attach late.
pub const SCROLLBACK_BYTES: usize = 64 * 1024;

/// The size at which `console.log` is rotated (to `console.log.1`, which
/// replaces the one before): a guest that floods its console (`cat
/// /dev/urandom > /dev/ttyS0`) takes at most twice this of the disk.
pub const LOG_CAP: u64 = 8 << 20;

/// Input frames waiting for a guest that does not read (each at most what
/// one websocket message brings): a viewer who types more waits, alone.
pub const INPUT_QUEUE: usize = 64;

pub struct Console {
    scrollback: Mutex<VecDeque<u8>>,
    tx: broadcast::Sender<Arc<[u8]>>,
    /// Input for the guest, written to its serial socket by a thread of
    /// its own: a guest that does not read blocks nothing else.
    input: tokio::sync::mpsc::Sender<Vec<u8>>,
    /// The other end, taken by the reader once the socket is connected.
    input_rx: Mutex<Option<tokio::sync::mpsc::Receiver<Vec<u8>>>>,
    connected: std::sync::atomic::AtomicBool,
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

    /// Types into the console without waiting: refused when the console
    /// is not connected or its input queue is full (the guest does not
    /// read).
    pub fn write(&self, bytes: &[u8]) -> std::io::Result<()> {
        self.check_connected()?;
        self.input.try_send(bytes.to_vec()).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                "the console's input queue is full (the guest is not reading)",
            )
        })
    }

    /// Types into the console, waiting (this caller alone) while its input
    /// queue is full.
    pub async fn send(&self, bytes: Vec<u8>) -> std::io::Result<()> {
        self.check_connected()?;
        self.input
            .send(bytes)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }

    fn check_connected(&self) -> std::io::Result<()> {
        if self.connected.load(std::sync::atomic::Ordering::SeqCst) {
            Ok(())
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::NotConnected,
                "the console is not connected",
            ))
        }
    }

    fn new(log_path: std::path::PathBuf, fresh: bool) -> Console {
        let (tx, _) = broadcast::channel(1024);
        let (input, input_rx) = tokio::sync::mpsc::channel(INPUT_QUEUE);
        Console {
            scrollback: Mutex::new(log_tail(&log_path).into()),
            tx,
            input,
            input_rx: Mutex::new(Some(input_rx)),
            connected: std::sync::atomic::AtomicBool::new(false),
            log_path,
            fresh: std::sync::atomic::AtomicBool::new(fresh),
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
    let console = Arc::new(Console::new(log_path, true));
    let me = console.clone();
    let (dir, marker) = (dir.to_path_buf(), format!("minivm: ready {vm}"));
    std::thread::spawn(move || {
        read(&me, &dir, &marker);
        done(&me);
    });
    console
}

/// The last [`SCROLLBACK_BYTES`] of a console log (with the end of the
/// rotated one before it when the log is short), read without following
/// a link and without reading the whole file.
pub fn log_tail(path: &Path) -> Vec<u8> {
    let mut out = tail_of(&rotated(path), SCROLLBACK_BYTES);
    out.extend(tail_of(path, SCROLLBACK_BYTES));
    let cut = out.len().saturating_sub(SCROLLBACK_BYTES);
    out.drain(..cut);
    out
}

/// `console.log.1`: the log before the last rotation.
fn rotated(path: &Path) -> std::path::PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".1");
    p.into()
}

fn tail_of(path: &Path, n: usize) -> Vec<u8> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(mut f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    else {
        return vec![];
    };
    let len = match f.metadata() {
        Ok(m) if m.is_file() => m.len(),
        _ => return vec![],
    };
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(n as u64)));
    let mut buf = Vec::new();
    let _ = f.take(n as u64).read_to_end(&mut buf);
    buf
}

/// `console.log` as root appends to it: opened without following a link
/// (the directory is the VM's QEMU user's), only a regular file, rotated
/// at `cap` bytes.
pub struct ConsoleLog {
    path: std::path::PathBuf,
    file: Option<fs::File>,
    len: u64,
    cap: u64,
}

impl ConsoleLog {
    pub fn open(path: &Path) -> ConsoleLog {
        ConsoleLog::with_cap(path, LOG_CAP)
    }

    fn with_cap(path: &Path, cap: u64) -> ConsoleLog {
        let file = open_log(path);
        let len = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        ConsoleLog {
            path: path.to_path_buf(),
            file,
            len,
            cap,
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        if self.len + bytes.len() as u64 > self.cap && self.len > 0 {
            // rename replaces the older rotation; it follows no link.
            let _ = fs::rename(&self.path, rotated(&self.path));
            self.file = open_log(&self.path);
            self.len = 0;
        }
        if let Some(f) = self.file.as_mut() {
            if f.write_all(bytes).is_ok() {
                self.len += bytes.len() as u64;
            }
        }
    }
}

/// Opens the log to append; a name planted in its place (a link, a FIFO,
/// a second name of another file) is removed and the log made anew.
fn open_log(path: &Path) -> Option<fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let opened = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()
        .filter(|f| f.metadata().is_ok_and(|m| m.is_file() && m.nlink() == 1));
    match opened {
        Some(f) => Some(f),
        None => crate::fsutil::create_fresh(path).ok(),
    }
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
    let rx = console.input_rx.lock().expect("not poisoned").take();
    if let (Ok(mut w), Some(mut rx)) = (stream.try_clone(), rx) {
        console
            .connected
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Ends when the console does (the sender goes with it) or the
        // socket breaks.
        std::thread::spawn(move || {
            while let Some(bytes) = rx.blocking_recv() {
                if w.write_all(&bytes).is_err() {
                    break;
                }
            }
        });
    }
    let connected = Arc::new(std::sync::atomic::AtomicBool::new(true));
    recover_ready(dir, marker, connected.clone());
    let log_path = VmDir::new(dir.to_path_buf()).console_log();
    let mut log = ConsoleLog::open(&log_path);
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
        log.write(chunk);
        console.push(chunk);
        for &b in chunk {
            if b == b'\n' {
                if String::from_utf8_lossy(&line).contains(marker) {
                    let _ =
                        crate::fsutil::write_atomic(&VmDir::new(dir.to_path_buf()).ready(), b"");
                }
                line.clear();
            } else if line.len() < 4096 {
                line.push(b);
            }
        }
    }
    console
        .connected
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let _ = stream.shutdown(std::net::Shutdown::Both);
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
    let logged = String::from_utf8_lossy(&log_tail(&files.console_log()))
        .lines()
        .any(|l| l.contains(marker));
    if logged {
        let _ = crate::fsutil::write_atomic(&ready, b"");
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
                let _ = crate::fsutil::write_atomic(&ready, b"");
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
        let c = Console::new("/nonexistent/console.log".into(), false);
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
        let c = Console::new(log.clone(), true);
        // Written by the CLI that held the socket, after this console opened.
        fs::write(&log, b"minivm: ready vm1\n").unwrap();
        assert_eq!(c.attach().0, b"minivm: ready vm1\n");
        c.fresh.store(false, std::sync::atomic::Ordering::SeqCst);
        fs::write(&log, b"other").unwrap();
        assert_eq!(c.attach().0, b"minivm: ready vm1\n");
    }

    #[test]
    fn the_log_is_rotated_at_its_cap_and_its_tail_spans_the_rotation() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("console.log");
        let mut log = ConsoleLog::with_cap(&path, 1000);
        for i in 0..30u8 {
            log.write(&[b'a' + (i % 26); 100]);
        }
        let size = |p: &Path| fs::metadata(p).unwrap().len();
        assert!(size(&path) <= 1000, "{}", size(&path));
        assert!(size(&rotated(&path)) <= 1000);
        // The tail: the end of the rotated log, then the current one.
        let tail = log_tail(&path);
        assert_eq!(tail.len() as u64, size(&rotated(&path)) + size(&path));
        assert_eq!(size(&rotated(&path)), 1000);
        assert!(tail.ends_with(&[b'a' + (29 % 26); 100]));
    }

    #[test]
    fn a_link_or_a_fifo_planted_as_the_log_is_never_written_through() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let path = d.path().join("console.log");
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        assert!(log_tail(&path).is_empty(), "nothing read through the link");
        ConsoleLog::open(&path).write(b"guest output");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(log_tail(&path), b"guest output", "the log is made anew");
        fs::remove_file(&path).unwrap();
        let fifo = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) }, 0);
        // Neither blocks: no reader waits for a writer, no writer for a reader.
        assert!(log_tail(&path).is_empty());
        ConsoleLog::open(&path).write(b"more");
        assert_eq!(log_tail(&path), b"more");
    }
}
