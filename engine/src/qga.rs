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
}

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
}

impl Qga {
    /// Connects and synchronises, retrying until `timeout` (the agent may
    /// still be starting in the guest).
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self, QgaError> {
        let deadline = Instant::now() + timeout;
        loop {
            let attempt = (|| {
                let stream = UnixStream::connect(socket)?;
                stream.set_read_timeout(Some(Duration::from_millis(1500)))?;
                let mut q = Qga {
                    reader: BufReader::new(stream.try_clone()?),
                    writer: stream,
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

    fn read(&mut self) -> Result<Value, QgaError> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line)?;
            if n == 0 {
                return Err(QgaError::Protocol("the connection closed".into()));
            }
            // The agent may emit a 0xff sentinel byte before a reply.
            let trimmed = line.trim_matches(|c: char| c.is_whitespace() || c == '\u{ff}');
            if !trimmed.is_empty() {
                return serde_json::from_str(trimmed)
                    .map_err(|e| QgaError::Protocol(format!("{e}: {trimmed}")));
            }
        }
    }

    /// Runs one agent command and returns its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QgaError> {
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
        let started = self.execute("guest-exec", Some(request))?;
        let pid = started["pid"]
            .as_i64()
            .ok_or_else(|| QgaError::Protocol(started.to_string()))?;
        let deadline = Instant::now() + timeout;
        loop {
            let st = self.execute("guest-exec-status", Some(json!({"pid": pid})))?;
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
    use super::next_sync_id;

    #[test]
    fn sync_ids_never_repeat_in_a_process() {
        let ids: Vec<u64> = (0..1000).map(|_| next_sync_id()).collect();
        let set: std::collections::BTreeSet<_> = ids.iter().collect();
        assert_eq!(set.len(), ids.len());
        assert!(ids.iter().all(|&i| i != 0 && i < (1 << 53)));
    }
}
