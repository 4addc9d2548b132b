//! Observation: what the host has of a lab, and the state of one VM, read
//! from its files and its live QEMU (never from what we remember).

use std::fs;

use topology::Topology;

use super::guest::powered_off;
use super::procs::running_qemus;
use super::{Engine, Result, Started};
use crate::lifecycle::VmState;
use crate::link::LinkProps;
use crate::net;
use crate::plan::{ObservedLab, ObservedVm};

impl Engine {
    /// What the host has of lab `t.name`: only objects with its identity.
    pub fn observe(&self, t: &Topology) -> Result<ObservedLab> {
        let mut o = ObservedLab::default();
        let ns = Self::ns(t);
        o.namespace = ns.as_deref().is_some_and(net::namespace_exists);
        if ns.is_none() || o.namespace {
            let prefix = format!("minivm:{}:", t.name);
            let links = net::links(ns.as_deref())?;
            let name_of = |index: u32| {
                links
                    .iter()
                    .find(|l| l.index == index)
                    .map(|l| l.name.clone())
            };
            for l in &links {
                if !l.alias.as_deref().is_some_and(|a| a.starts_with(&prefix)) {
                    continue;
                }
                match l.kind.as_deref() {
                    Some("bridge") => {
                        o.bridges.insert(l.name.clone());
                    }
                    Some("tun") => {
                        o.taps.insert(l.name.clone());
                        o.links.insert(
                            l.name.clone(),
                            LinkProps {
                                up: l.up,
                                bridge: l.controller.and_then(name_of),
                            },
                        );
                    }
                    _ => {}
                }
            }
        }
        let procs = running_qemus(&t.name);
        let vms = self.lab_dir(&t.name).join("vms");
        if let Ok(rd) = fs::read_dir(&vms) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                o.vms.insert(
                    name.clone(),
                    self.observe_vm(&t.name, &name, procs.get(&name).copied()),
                );
            }
        }
        // A QEMU of this lab without a directory (its files were removed
        // under it): observed, so that the plan deletes it.
        for (name, _) in procs {
            o.vms.entry(name).or_insert(ObservedVm {
                state: Some(VmState::Starting),
                ..Default::default()
            });
        }
        Ok(o)
    }

    /// One VM; `pid` is its live QEMU, found by its process tag.
    pub(super) fn observe_vm(&self, lab: &str, name: &str, pid: Option<u32>) -> ObservedVm {
        let dir = self.vm_files(lab, name);
        let started: Option<Started> = fs::read_to_string(dir.hardware())
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
        let alive = pid.is_some();
        let state = if alive {
            Some(if dir.ready().exists() {
                VmState::Running
            } else {
                VmState::Starting
            })
        } else if dir.pidfile().exists() {
            // Gone without being stopped: a crash, unless the guest powered
            // itself off (the kernel's last words on the serial console).
            Some(if powered_off(&dir) {
                VmState::Stopped
            } else {
                VmState::Crashed
            })
        } else if started.is_some() {
            Some(VmState::Stopped)
        } else {
            None
        };
        ObservedVm {
            state,
            has_overlay: dir.overlay().exists(),
            hardware: started.as_ref().map(|s| s.hardware.clone()),
            seed_hash: started.map(|s| s.seed_hash).filter(|_| dir.seed().exists()),
        }
    }
}
