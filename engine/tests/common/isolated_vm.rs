//! One QEMU started from a `VmSpec` (its NICs isolated, its serial console
//! waiting for us), read on the console until the guest prints a line, and
//! killed by its PID when dropped, even when an assertion fails. Included
//! by the engine's and the server's tests.

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use engine::qemu::{self, VmSpec};

pub struct IsolatedVm {
    child: Child,
    /// The console up to and including the awaited line.
    pub log: Vec<String>,
}

impl IsolatedVm {
    /// Starts `spec` (which must set `wait_for_serial`) and reads its
    /// console until a line contains `until` (at most 180 s).
    pub fn boot(spec: &VmSpec, until: &str) -> IsolatedVm {
        assert!(spec.wait_for_serial);
        let child = Command::new("qemu-system-x86_64")
            .args(qemu::argv(spec))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("qemu-system-x86_64 (scripts/setup.sh installs it)");
        let mut vm = IsolatedVm { child, log: vec![] };
        let sock = qemu::serial_socket(&spec.run_dir);
        let deadline = Instant::now() + Duration::from_secs(10);
        let serial = loop {
            match UnixStream::connect(&sock) {
                Ok(s) => break s,
                Err(e) if Instant::now() > deadline => {
                    panic!("cannot connect to {}: {e}", sock.display())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        serial
            .set_read_timeout(Some(Duration::from_secs(180)))
            .unwrap();
        for line in BufReader::new(serial).lines() {
            let line = line
                .unwrap_or_else(|e| panic!("console closed before {until:?}: {e}\n{:#?}", vm.log));
            let done = line.contains(until);
            vm.log.push(line);
            if done {
                break;
            }
        }
        assert!(
            vm.log.last().is_some_and(|l| l.contains(until)),
            "{:#?}",
            vm.log
        );
        vm
    }
}

impl Drop for IsolatedVm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
