//! The guest side of a running VM: the console readers this process holds
//! (shared by every viewer), readiness, `exec` through the guest agent, and
//! the tail of a VM's console for people.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::procs::running_qemus;
use super::{Engine, LabError, Result, VmDir, VmFault};

impl Engine {
    /// Reads `dir`'s console unless this process already does. A QEMU
    /// started with `wait_for_serial` runs its guest only once a reader
    /// connects, so whoever waits for readiness must be one.
    pub(super) fn watch(&self, dir: &VmDir, vm: &str) {
        self.console_of(dir, vm);
    }

    /// The shared console of the VM in `dir`, opened if this process does
    /// not read it yet. It is forgotten when it closes (the VM stopped).
    fn console_of(&self, dir: &VmDir, vm: &str) -> std::sync::Arc<crate::console::Console> {
        let dir = dir.path();
        let mut map = self.consoles.lock().expect("not poisoned");
        if let Some(c) = map.get(dir) {
            return c.clone();
        }
        let consoles = self.consoles.clone();
        let key = dir.to_path_buf();
        let c = crate::console::open(dir, vm, move |me| {
            let mut map = consoles.lock().expect("not poisoned");
            if map.get(&key).is_some_and(|c| std::sync::Arc::ptr_eq(c, me)) {
                map.remove(&key);
            }
        });
        map.insert(dir.to_path_buf(), c.clone());
        c
    }

    /// Refuses a VM that has no live QEMU, naming its state.
    fn require_running(&self, lab: &str, vm: &str) -> Result<()> {
        if running_qemus(lab).contains_key(vm) {
            return Ok(());
        }
        let state = self.observe_vm(lab, vm, None).state.unwrap_or_default();
        Err(LabError::NotRunning {
            vm: vm.into(),
            state,
        })
    }

    /// A running VM's console, shared with every other viewer.
    pub fn console(&self, lab: &str, vm: &str) -> Result<std::sync::Arc<crate::console::Console>> {
        self.require_running(lab, vm)?;
        Ok(self.console_of(&self.vm_files(lab, vm), vm))
    }

    /// Reads the console of a VM that has no reader yet (a QEMU waits for
    /// one before it runs its guest); no-op when this process reads it.
    pub fn watch_if_needed(&self, lab: &str, vm: &str) {
        self.watch(&self.vm_files(lab, vm), vm);
    }

    /// Waits until each of `vms` has said it is ready; `ready` is called for
    /// each as it gets there, with the time waited. Fails at once when a
    /// VM's QEMU exits, with its log.
    pub fn wait_ready(
        &self,
        lab: &str,
        vms: &[&str],
        timeout: Duration,
        ready: &dyn Fn(&str, Duration),
    ) -> Result<()> {
        let started = Instant::now();
        let deadline = started + timeout;
        let mut pending: Vec<&str> = vms.to_vec();
        let mut dead = Vec::new();
        loop {
            pending.retain(|n| {
                let is_ready = self.vm_files(lab, n).ready().exists();
                if is_ready {
                    ready(n, started.elapsed());
                }
                !is_ready
            });
            if pending.is_empty() {
                return LabError::combine(dead);
            }
            for n in &pending {
                self.watch(&self.vm_files(lab, n), n);
            }
            // A QEMU that exited fails its VM; the others are still waited for.
            let procs = running_qemus(lab);
            pending.retain(|n| {
                if procs.contains_key(*n) || self.vm_files(lab, n).ready().exists() {
                    return true;
                }
                let log =
                    crate::fsutil::read_text(&self.vm_files(lab, n).qemu_log()).unwrap_or_default();
                dead.push(LabError::vm(n, VmFault::Exited(log.trim().into())));
                false
            });
            if pending.is_empty() {
                return LabError::combine(dead);
            }
            if Instant::now() > deadline {
                dead.push(LabError::NotReady(timeout, pending.join(", ")));
                return LabError::combine(dead);
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Runs `argv` in the guest through its agent; no shell is involved.
    pub fn exec(
        &self,
        lab: &str,
        vm: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<crate::qga::ExecResult> {
        let dir = self.vm_files(lab, vm);
        self.require_running(lab, vm)?;
        let agent = |source| LabError::Agent {
            vm: vm.into(),
            source,
        };
        let mut qga =
            crate::qga::Qga::connect(&dir.qga_socket(), Duration::from_secs(10)).map_err(agent)?;
        let (path, args) = argv
            .split_first()
            .ok_or_else(|| LabError::vm(vm, VmFault::NoCommand))?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        qga.exec(path, &args, timeout).map_err(agent)
    }
}

/// The last `n` non-empty lines a VM wrote on its serial console (from
/// its console.log), without control characters: what a crashed VM said
/// last.
pub fn console_tail(dir: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    const WINDOW: u64 = 8192;
    let Ok(mut f) = fs::File::open(VmDir::new(dir.to_path_buf()).console_log()) else {
        return vec![];
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(WINDOW)));
    let mut buf = Vec::new();
    let _ = f.take(WINDOW).read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text
        .lines()
        .map(|l| {
            // A line rewritten with \r shows what was written last.
            let l = l.rsplit('\r').find(|p| !p.trim().is_empty()).unwrap_or("");
            printable(l)
        })
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.trim().is_empty())
        .collect();
    let skip = lines.len().saturating_sub(n);
    lines.drain(..skip);
    lines
}

/// `line` without terminal escape sequences (`ESC [ ... final`, `ESC x`)
/// and other control characters: as a person reads it.
fn printable(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
        } else if !c.is_control() {
            out.push(c);
        }
    }
    out
}

/// The guest powered itself off: its kernel printed "reboot: Power down"
/// among its last console lines.
pub(super) fn powered_off(dir: &VmDir) -> bool {
    console_tail(dir.path(), 5)
        .iter()
        .any(|l| l.contains("reboot: Power down"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_tail_is_the_last_lines_as_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = "boot\r\n\r\nvm1:/# \u{1b}[6necho hi\r\nhi\r\nprogress 10%\rprogress 99%\r\n\u{1b}[1;32mgreen\u{1b}[0m\u{7}\n";
        fs::write(dir.path().join("console.log"), log).unwrap();
        assert_eq!(
            console_tail(dir.path(), 4),
            ["vm1:/# echo hi", "hi", "progress 99%", "green"]
        );
        assert_eq!(console_tail(dir.path(), 10).len(), 5);
        assert!(!powered_off(&VmDir::new(dir.path().to_path_buf())));
        fs::write(
            dir.path().join("console.log"),
            "[   15.9] reboot: Power down\r\n",
        )
        .unwrap();
        assert!(powered_off(&VmDir::new(dir.path().to_path_buf())));
        assert_eq!(
            console_tail(&dir.path().join("none"), 3),
            Vec::<String>::new()
        );
    }
}
