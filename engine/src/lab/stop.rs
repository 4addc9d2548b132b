//! Stopping: one VM (ACPI, then quit, then kill, then wait until its TAPs
//! are free), and `down` of a whole lab, which needs nothing but its name.

use std::fs;
use std::time::{Duration, Instant};

use topology::names::netns_name;

use super::procs::{qemu_alive, qemu_gone, running_qemus};
use super::{io, Engine, Result, VmDir};
use crate::net;

impl Engine {
    /// Powers a VM down (ACPI), waits up to `grace`, then quits it, then kills it.
    pub fn stop_vm(&self, lab: &str, name: &str, grace: Duration) -> Result<()> {
        let dir = self.vm_files(lab, name);
        let pid = pid_of(&dir)
            .filter(|p| qemu_alive(*p, lab, name))
            .or_else(|| running_qemus(lab).get(name).copied());
        let Some(pid) = pid else {
            let _ = fs::remove_file(dir.pidfile());
            let _ = fs::remove_file(dir.stopping());
            return Ok(());
        };
        // From here on an exit is this stop's doing (the watcher must not
        // see a crash, nor a restart policy act on one).
        let _ = crate::fsutil::write_atomic(&dir.stopping(), pid.to_string().as_bytes());
        // A guest that has not said it is ready has no acpid listening yet
        // (and nothing worth a clean shutdown): it is quit at once.
        let booted = dir.ready().exists();
        let deadline = Instant::now() + if booted { grace } else { Duration::ZERO };
        // The power button is pressed again every 2 s: a guest that has
        // just said it is ready may not listen to it yet (it starts acpid
        // right after), and a press it missed is lost.
        let mut pressed: Option<Instant> = None;
        while qemu_alive(pid, lab, name) && Instant::now() < deadline {
            if pressed.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                if let Ok(mut q) = crate::qmp::Qmp::connect(&dir.qmp_socket()) {
                    let _ = q.execute("system_powerdown");
                }
                pressed = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if qemu_alive(pid, lab, name) {
            if let Ok(mut q) = crate::qmp::Qmp::connect(&dir.qmp_socket()) {
                let _ = q.execute("quit");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        if qemu_alive(pid, lab, name) {
            // SAFETY: kill(2) on a pid whose cmdline we just checked is our QEMU.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        // Until every thread is gone: only then are its TAPs free again.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !qemu_gone(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = fs::remove_file(dir.pidfile());
        let _ = fs::remove_file(dir.ready());
        let _ = fs::remove_file(dir.stopping());
        Ok(())
    }

    /// Stops every VM and removes the lab's TAPs, bridges and namespace;
    /// with `cleanup`, also its directory (overlays, seeds, stored topology).
    /// Needs nothing but the lab's name: the topology file may be gone.
    pub fn down(&self, lab: &str, cleanup: bool) -> Result<()> {
        // Every VM with a directory or a live process, stopped in parallel.
        let mut vms: std::collections::BTreeSet<String> = running_qemus(lab).into_keys().collect();
        if let Ok(rd) = fs::read_dir(self.lab_dir(lab).join("vms")) {
            vms.extend(
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = vms
                .iter()
                .map(|vm| scope.spawn(move || self.stop_vm(lab, vm, Duration::from_secs(10))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("stop_vm does not panic"))
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>>>()?;
        // The lab's relay (if any) goes first: it holds TAPs of the namespace.
        crate::impair::stop_relay(&self.lab_dir(lab), lab);
        // Isolated labs: the namespace takes its bridges and TAPs with it.
        net::delete_namespace(&netns_name(lab))?;
        // Host-mode labs: the lab's nft table, then only interfaces carrying
        // this lab's alias, TAPs first.
        crate::impair::remove_table(None, lab).map_err(|e| super::LabError::Impair(Box::new(e)))?;
        // The management network's table (its veth goes with the rest).
        crate::mgmt::remove(lab, &self.lab_dir(lab))
            .map_err(|e| super::LabError::Mgmt(Box::new(e)))?;

        let prefix = format!("minivm:{lab}:");
        let mut owned: Vec<net::Link> = net::links(None)?
            .into_iter()
            .filter(|l| l.alias.as_deref().is_some_and(|a| a.starts_with(&prefix)))
            .collect();
        owned.sort_by_key(|l| l.kind.as_deref() == Some("bridge"));
        for l in owned {
            net::delete_owned(None, &l.name, l.alias.as_deref().unwrap_or_default())?;
        }
        let dir = self.lab_dir(lab);
        // A directory holding nothing but the lock (`down` of a lab that was
        // never stored) is debris too.
        let only_lock =
            fs::read_dir(&dir).is_ok_and(|rd| rd.flatten().all(|e| e.file_name() == ".lock"));
        if (cleanup || only_lock) && dir.exists() {
            fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
        }
        Ok(())
    }
}

fn pid_of(dir: &VmDir) -> Option<u32> {
    crate::fsutil::read_text(&dir.pidfile())
        .ok()?
        .trim()
        .parse()
        .ok()
}
