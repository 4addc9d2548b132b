//! The executor: one plan step applied to the host (namespace, bridge,
//! TAP, overlay, seed, QEMU start/stop/delete), by the real implementations
//! in `net`, `image`, `seed` and `vm`.

use std::fs;
use std::path::Path;
use std::time::Duration;

use topology::names::tap_ifname;
use topology::Topology;

use super::{io, Engine, LabError, Result, Started};
use crate::plan::{self, Action, Step};
use crate::qemu::{Nic, NicBackend, VmSpec};
use crate::{net, seed, vm};

impl Engine {
    /// Applies one step.
    pub fn apply(&self, t: &Topology, step: &Step) -> Result<()> {
        let ns = Self::ns(t);
        let n = ns.as_deref();
        let lab = &t.name;
        match &step.action {
            Action::CreateNamespace { name } => net::create_namespace(name)?,
            Action::CreateBridge { network, ifname } => net::ensure_bridge(
                n,
                ifname,
                &net::owner_alias(lab, &format!("bridge/{network}")),
            )?,
            Action::CreateTap {
                vm,
                nic,
                ifname,
                bridge,
            }
            | Action::UpdateLink {
                vm,
                nic,
                ifname,
                bridge,
            } => net::ensure_tap(
                n,
                ifname,
                &net::owner_alias(lab, &format!("tap/{vm}/{nic}")),
                bridge,
            )?,
            Action::CreateOverlay { vm, image } => {
                let dir = self.vm_files(lab, vm);
                fs::create_dir_all(dir.path()).map_err(io("create", dir.path()))?;
                self.give(dir.path())?;
                // Made under a temporary name and renamed: an `up` killed
                // half-way never leaves a torn overlay that looks finished.
                let overlay = dir.overlay();
                let tmp = dir.overlay_tmp();
                let _ = fs::remove_file(&tmp);
                self.images.create_overlay(image, &tmp)?;
                self.give(&tmp)?;
                fs::rename(&tmp, &overlay).map_err(io("rename", &overlay))?;
            }
            Action::WriteSeed { vm } => {
                let dir = self.vm_files(lab, vm);
                fs::create_dir_all(dir.path()).map_err(io("create", dir.path()))?;
                let files = seed::render(t, vm).ok_or_else(|| LabError::Vm {
                    vm: vm.clone(),
                    what: "not in the topology".into(),
                })?;
                let tmp = dir.seed_tmp();
                seed::write_vfat(&files, &tmp).map_err(|e| LabError::Vm {
                    vm: vm.clone(),
                    what: e.to_string(),
                })?;
                let img = dir.seed();
                fs::rename(&tmp, &img).map_err(io("rename", &img))?;
                let conf = dir.fw_cfg_conf();
                crate::fsutil::write_atomic(&conf, files.minivm_conf.as_bytes())
                    .map_err(io("write", &conf))?;
            }
            Action::StopVm { vm } => self.stop_vm(lab, vm, Duration::from_secs(10))?,
            Action::StartVm { vm } => self.start_vm(t, vm)?,
            Action::DeleteVm { vm } => {
                self.stop_vm(lab, vm, Duration::from_secs(10))?;
                let dir = self.vm_dir(lab, vm);
                if dir.exists() {
                    fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
                }
            }
            Action::DeleteTap { ifname } | Action::DeleteBridge { ifname } => {
                let alias = net::links(n)?
                    .into_iter()
                    .find(|l| &l.name == ifname)
                    .and_then(|l| l.alias);
                if let Some(a) = alias.filter(|a| a.starts_with(&format!("minivm:{lab}:"))) {
                    net::delete_owned(n, ifname, &a)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn give(&self, p: &Path) -> Result<()> {
        if let Some(u) = self.run_as {
            std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).map_err(io("chown", p))?;
        }
        Ok(())
    }

    /// QEMU runs as an unprivileged user: every directory above the VM's
    /// must let others through, or QEMU fails with an obscure error.
    fn check_reachable(&self, vm: &str, dir: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if self.run_as.is_none() {
            return Ok(());
        }
        for a in dir.ancestors().skip(1) {
            if let Ok(m) = fs::metadata(a) {
                if m.permissions().mode() & 0o001 == 0 {
                    return Err(LabError::Vm {
                        vm: vm.into(),
                        what: format!(
                            "QEMU runs unprivileged and cannot reach {}: {} has mode {:o} (others need x); use a state directory others can traverse",
                            dir.display(),
                            a.display(),
                            m.permissions().mode() & 0o7777
                        ),
                    });
                }
            }
            if a == self.state_dir {
                break;
            }
        }
        Ok(())
    }

    pub(super) fn start_vm(&self, t: &Topology, name: &str) -> Result<()> {
        let lab = &t.name;
        self.check_reachable(name, &self.vm_dir(lab, name))?;
        let ns = Self::ns(t);
        let dir = self.vm_files(lab, name);
        let node = t.node(name).ok_or_else(|| LabError::Vm {
            vm: name.into(),
            what: "not in the topology".into(),
        })?;
        // A base image removed from the store: said plainly, before QEMU
        // fails on its backing file.
        let image = t.node_image(node).unwrap_or_default();
        if !self.images.exists(image)? {
            return Err(LabError::Vm {
                vm: name.into(),
                what: format!(
                    "its base image {image:?} is missing from the image store (see `minivm image list`)"
                ),
            });
        }
        let hardware = plan::desired_hardware(t, name).expect("node exists");
        let seed_hash = plan::desired_seed_hash(t, name).expect("node exists");
        let mut taps = Vec::new();
        let mut nics = Vec::new();
        for (i, r) in topology::resolve::nics(t)[name].iter().enumerate() {
            taps.push(net::open_tap(ns.as_deref(), &tap_ifname(lab, name, i))?);
            nics.push(Nic {
                mac: r.mac,
                backend: NicBackend::TapFd(vm::FIRST_TAP_FD + i as i32),
            });
        }
        for f in dir.boot_files() {
            let _ = fs::remove_file(f);
        }
        let spec = VmSpec {
            lab: lab.clone(),
            name: name.into(),
            accel: self.accel.accel,
            cpus: t.node_cpus(node),
            memory_mib: t.node_memory_mib(node),
            disk: dir.overlay(),
            seed: Some(dir.seed()),
            fw_cfg_config: Some(dir.fw_cfg_conf()),
            nics,
            run_dir: dir.path().to_path_buf(),
            wait_for_serial: true,
        };
        // What the process is started with is recorded first: a QEMU found
        // running (by its tag) is then always matched with its hardware,
        // even when this process is killed before it writes the pidfile.
        let started = serde_json::to_string(&Started {
            hardware,
            seed_hash,
        })
        .expect("serializes");
        crate::fsutil::write_atomic(&dir.hardware(), started.as_bytes())
            .map_err(io("write", &dir.hardware()))?;
        let child = vm::launch(&self.qemu, &spec, taps, self.run_as).map_err(|e| LabError::Vm {
            vm: name.into(),
            what: e.to_string(),
        })?;
        let pid = child.id();
        // The process belongs to its own session; nobody waits for it here.
        std::mem::forget(child);
        crate::fsutil::write_atomic(&dir.pidfile(), pid.to_string().as_bytes())
            .map_err(io("write", &dir.pidfile()))?;
        self.consoles
            .lock()
            .expect("not poisoned")
            .remove(dir.path());
        self.watch(&dir, name);
        Ok(())
    }
}
