//! A client for qemu-guest-agent over the VM's `qga.sock`.
//!
//! The agent's channel has no framing on connect: stale replies may be
//! waiting. `guest-sync` with an id never used before resynchronises: replies are read
//! until the one carrying that id.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum QgaError {
    #[error("cannot talk to the guest agent")]
    Io(#[from] std::io::Error),
    #[error("the guest agent did not answer within {0:?}")]
    Timeout(Duration),
    #[error("the guest agent refused {command}: {message}")]
    Refused { command: String, message: String },
    #[error("the guest agent sent something unreadable: {0}")]
    Protocol(String),
    #[error("the guest agent sent a reply over {MAX_REPLY} bytes")]
    TooLong,
}

/// The longest reply line read from an agent: a `guest-exec-status` with
/// the agent's largest captured output (16 MiB of stdout and of stderr, in
/// base64) fits; a guest that sends more gets an error, not our memory.
pub const MAX_REPLY: usize = 48 << 20;

/// How long one command waits for its reply (a guest may hang its agent:
/// every wait ends).
pub const REPLY_WAIT: Duration = Duration::from_secs(30);

/// How long one synchronisation attempt may take, replies that are not
/// the awaited one included.
const SYNC_WAIT: Duration = Duration::from_secs(3);

/// What a program run in the guest did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// A `guest-sync` id never used before by this process nor, in practice, by
/// another: a reply to an abandoned sync may still be waiting in the
/// channel when the next client connects, and must not match its sync.
fn next_sync_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    // JSON numbers beyond 2^53 may lose precision in the agent: ids stay
    // below it. The seed mixes the clock and the pid.
    const MASK: u64 = (1 << 53) - 1;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let seed = ((nanos ^ (u64::from(std::process::id()) << 24)) & MASK) | 1;
    let _ = NEXT.compare_exchange(0, seed, Ordering::Relaxed, Ordering::Relaxed);
    NEXT.fetch_add(1, Ordering::Relaxed) & MASK
}

pub struct Qga {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    /// When the operation under way gives up.
    deadline: Instant,
}

impl Qga {
    /// Connects and synchronises, retrying until `timeout` (the agent may
    /// still be starting in the guest).
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self, QgaError> {
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = (|| {
                let stream = UnixStream::connect(socket)?;
                stream.set_write_timeout(Some(SYNC_WAIT))?;
                let mut q = Qga {
                    reader: BufReader::new(stream.try_clone()?),
                    writer: stream,
                    deadline: (Instant::now() + SYNC_WAIT).min(deadline),
                };
                q.sync(next_sync_id())?;
                Ok::<_, QgaError>(q)
            })();
            match attempt {
                Ok(q) => return Ok(q),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(250))
                }
                Err(_) => return Err(QgaError::Timeout(timeout)),
            }
        }
    }

    fn sync(&mut self, id: u64) -> Result<(), QgaError> {
        self.send(&json!({"execute": "guest-sync", "arguments": {"id": id}}))?;
        loop {
            let v = self.read()?;
            if v.get("return") == Some(&json!(id)) {
                return Ok(());
            }
        }
    }

    fn send(&mut self, v: &Value) -> Result<(), QgaError> {
        let mut line = v.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        Ok(())
    }

    /// Reads one reply: a line of at most [`MAX_REPLY`] bytes, before the
    /// operation's deadline (a guest that trickles bytes or never ends its
    /// line is cut off).
    fn read(&mut self) -> Result<Value, QgaError> {
        let mut line = Vec::new();
        loop {
            line.clear();
            self.read_line(&mut line)?;
            // The agent may emit a 0xff sentinel byte before a reply.
            let text = String::from_utf8_lossy(&line);
            let trimmed = text.trim_matches(|c: char| c.is_whitespace() || c == '\u{fffd}');
            if !trimmed.is_empty() {
                return serde_json::from_str(trimmed).map_err(|e| {
                    let shown: String = trimmed.chars().take(200).collect();
                    QgaError::Protocol(format!("{e}: {shown}"))
                });
            }
        }
    }

    fn read_line(&mut self, line: &mut Vec<u8>) -> Result<(), QgaError> {
        use std::io::ErrorKind;
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(QgaError::Timeout(REPLY_WAIT));
            }
            self.reader.get_ref().set_read_timeout(Some(left))?;
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    continue
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if buf.is_empty() {
                return Err(QgaError::Protocol("the connection closed".into()));
            }
            let (take, done) = match buf.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if line.len() + take > MAX_REPLY {
                return Err(QgaError::TooLong);
            }
            line.extend_from_slice(&buf[..take]);
            self.reader.consume(take);
            if done {
                return Ok(());
            }
        }
    }

    /// Runs one agent command and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QgaError> {
        self.deadline = Instant::now() + REPLY_WAIT;
        self.execute_by(command, arguments)
    }

    /// [`Qga::execute`] within the deadline already set.
    fn execute_by(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QgaError> {
        let mut msg = json!({"execute": command});
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        self.send(&msg)?;
        let v = self.read()?;
        if let Some(e) = v.get("error") {
            return Err(QgaError::Refused {
                command: command.into(),
                message: e["desc"].as_str().unwrap_or("unknown error").into(),
            });
        }
        v.get("return")
            .cloned()
            .ok_or_else(|| QgaError::Protocol(v.to_string()))
    }

    /// Runs a program in the guest (no shell: `path` and `args` are passed
    /// as they are) and waits for it to exit.
    pub fn exec(
        &mut self,
        path: &str,
        args: &[&str],
        timeout: Duration,
    ) -> Result<ExecResult, QgaError> {
        self.exec_with_input(path, args, &[], timeout)
    }

    /// [`Qga::exec`] with `input` on the program's standard input.
    pub fn exec_with_input(
        &mut self,
        path: &str,
        args: &[&str],
        input: &[u8],
        timeout: Duration,
    ) -> Result<ExecResult, QgaError> {
        let mut request = json!({"path": path, "arg": args, "capture-output": true});
        if !input.is_empty() {
            use base64::Engine as _;
            request["input-data"] = json!(base64::engine::general_purpose::STANDARD.encode(input));
        }
        let deadline = Instant::now() + timeout;
        self.deadline = deadline;
        let started = self.execute_by("guest-exec", Some(request))?;
        let pid = started["pid"]
            .as_i64()
            .ok_or_else(|| QgaError::Protocol(started.to_string()))?;
        loop {
            self.deadline = deadline;
            let st = self
                .execute_by("guest-exec-status", Some(json!({"pid": pid})))
                .map_err(|e| match e {
                    QgaError::Timeout(_) => QgaError::Timeout(timeout),
                    e => e,
                })?;
            if st["exited"] == json!(true) {
                use base64::Engine as _;
                let decode = |k: &str| {
                    st[k]
                        .as_str()
                        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                        .map(|v| String::from_utf8_lossy(&v).into_owned())
                        .unwrap_or_default()
                };
                return Ok(ExecResult {
                    exit_code: st["exitcode"].as_i64().unwrap_or(-1) as i32,
                    stdout: decode("out-data"),
                    stderr: decode("err-data"),
                });
            }
            if Instant::now() > deadline {
                return Err(QgaError::Timeout(timeout));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The guest's interfaces as (name, MAC, [IPv4/prefix]).
    pub fn interfaces(&mut self) -> Result<Vec<(String, String, Vec<String>)>, QgaError> {
        let v = self.execute("guest-network-get-interfaces", None)?;
        let list = v
            .as_array()
            .ok_or_else(|| QgaError::Protocol(v.to_string()))?;
        Ok(list
            .iter()
            .map(|i| {
                let addrs = i["ip-addresses"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|x| x["ip-address-type"] == "ipv4")
                            .map(|x| {
                                format!(
                                    "{}/{}",
                                    x["ip-address"].as_str().unwrap_or(""),
                                    x["prefix"]
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                (
                    i["name"].as_str().unwrap_or("").to_string(),
                    i["hardware-address"].as_str().unwrap_or("").to_string(),
                    addrs,
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A hostile agent on a socket of its own: it answers the first sync
    /// properly when `sync_first`, then does `evil` with the connection.
    fn agent(
        sync_first: bool,
        evil: impl FnOnce(&mut UnixStream) + Send + 'static,
    ) -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("qga.sock");
        let l = UnixListener::bind(&sock).unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            if sync_first {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                let v: Value = serde_json::from_str(&line).unwrap();
                let id = &v["arguments"]["id"];
                let _ = writeln!(c, "{}", json!({"return": id}));
            }
            evil(&mut c);
        });
        (d, sock)
    }

    #[test]
    fn an_endless_reply_is_cut_at_the_limit() {
        let (_d, sock) = agent(true, |c| {
            let chunk = vec![b'x'; 1 << 20];
            while c.write_all(&chunk).is_ok() {}
        });
        let mut q = Qga::connect(&sock, Duration::from_secs(5)).unwrap();
        let t = Instant::now();
        let e = q.execute("guest-info", None).unwrap_err();
        assert!(matches!(e, QgaError::TooLong), "{e}");
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    }

    #[test]
    fn a_trickling_agent_is_given_up_on_at_the_deadline() {
        let (_d, sock) = agent(true, |c| {
            while c.write_all(b"{").is_ok() {
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        let mut q = Qga::connect(&sock, Duration::from_secs(5)).unwrap();
        let t = Instant::now();
        let e = q
            .exec("/bin/true", &[], Duration::from_secs(2))
            .unwrap_err();
        assert!(matches!(e, QgaError::Timeout(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    }

    #[test]
    fn an_agent_that_never_syncs_is_given_up_on() {
        // Endless well-formed replies that are never the awaited one.
        let (_d, sock) = agent(false, |c| {
            while writeln!(c, "{{\"return\": 1}}").is_ok() {
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let t = Instant::now();
        let e = Qga::connect(&sock, Duration::from_secs(2)).err().unwrap();
        assert!(matches!(e, QgaError::Timeout(_)), "{e}");
        assert!(t.elapsed() < Duration::from_secs(6), "{:?}", t.elapsed());
    }

    #[test]
    fn sync_ids_never_repeat_in_a_process() {
        let ids: Vec<u64> = (0..1000).map(|_| next_sync_id()).collect();
        let set: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        assert!(ids.iter().all(|&i| i != 0 && i < (1 << 53)));
    }
}
