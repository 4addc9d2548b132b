//! A client for qemu-guest-agent over the VM's `qga.sock`.
//!
//! The agent's channel has no framing on connect: stale replies may be
//! waiting. `guest-sync` with a fresh id resynchronises: replies are read
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

pub struct Qga {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qga {
    /// Connects and synchronises, retrying until `timeout` (the agent may
    /// still be starting in the guest).
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self, QgaError> {
        let deadline = Instant::now() + timeout;
        let mut id: u64 = u64::from(std::process::id()) << 20;
        loop {
            let attempt = (|| {
                let stream = UnixStream::connect(socket)?;
                stream.set_read_timeout(Some(Duration::from_millis(1500)))?;
                let mut q = Qga {
                    reader: BufReader::new(stream.try_clone()?),
                    writer: stream,
                };
                id += 1;
                q.sync(id)?;
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
        let started = self.execute(
            "guest-exec",
            Some(json!({"path": path, "arg": args, "capture-output": true})),
        )?;
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
