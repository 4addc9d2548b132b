//! A minimal QMP client: enough to ask a VM to power down or quit.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    pub fn connect(socket: &Path) -> std::io::Result<Self> {
        let s = UnixStream::connect(socket)?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut q = Qmp {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        };
        q.read()?; // greeting
        q.execute("qmp_capabilities")?;
        Ok(q)
    }

    fn read(&mut self) -> std::io::Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "QMP closed",
            ));
        }
        serde_json::from_str(&line)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
    }

    /// Runs a command; events that arrive first are skipped.
    pub fn execute(&mut self, command: &str) -> std::io::Result<Value> {
        self.send(json!({"execute": command}))
    }

    /// Runs a command with arguments; QEMU's refusal is an error with its
    /// own words.
    pub fn execute_with(&mut self, command: &str, arguments: Value) -> std::io::Result<Value> {
        let v = self.send(json!({"execute": command, "arguments": arguments}))?;
        match v.get("error") {
            Some(e) => Err(std::io::Error::other(format!(
                "QEMU refused {command}: {}",
                e["desc"].as_str().unwrap_or("no reason given")
            ))),
            None => Ok(v),
        }
    }

    fn send(&mut self, message: Value) -> std::io::Result<Value> {
        self.writer.write_all(format!("{message}\n").as_bytes())?;
        loop {
            let v = self.read()?;
            if v.get("event").is_none() {
                return Ok(v);
            }
        }
    }
}
