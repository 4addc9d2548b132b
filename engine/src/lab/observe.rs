//! Observation: what the host has of a lab, and the state of one VM, read
//! from its files and its live QEMU (never from what we remember).

use std::collections::BTreeMap;
use std::fs;

use topology::names::{ifb_ifname, tap_ifname};
use topology::{Impair, Topology};

use super::guest::powered_off;
use super::procs::running_qemus;
use super::{Engine, Result, Started};
use crate::impair;
use crate::lifecycle::VmState;
use crate::link::LinkProps;
use crate::net;
use crate::plan::{ObservedLab, ObservedVm};
use crate::vmdir::Carrier;

impl Engine {
    /// What the host has of lab `t.name`: only objects with its identity.
    pub fn observe(&self, t: &Topology) -> Result<ObservedLab> {
        let t = &*topology::mgmt::effective(t);
        let mut o = ObservedLab::default();
        let ns = Self::ns(t);
        o.namespace = ns.as_deref().is_some_and(net::namespace_exists);
        let procs = running_qemus(&t.name);
        if ns.is_none() || o.namespace {
            let by_tap = self.observed_nics(t, ns.as_deref(), &procs);
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
                        let (carrier, impair) =
                            by_tap.get(&l.name).copied().unwrap_or((true, Impair::NONE));
                        o.links.insert(
                            l.name.clone(),
                            LinkProps {
                                up: l.up,
                                bridge: l.controller.and_then(name_of),
                                carrier,
                                impair,
                            },
                        );
                    }
                    _ => {}
                }
            }
        }
        o.mgmt = crate::mgmt::observe(t, &self.lab_dir(&t.name));
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

    /// What the guest sees of each NIC's link and what is done to what it
    /// sends, by TAP name: from the records of what was applied, each
    /// trusted only while what it describes is there (the QEMU it was told
    /// to, the nft chain or the IFB with netem).
    fn observed_nics(
        &self,
        t: &Topology,
        ns: Option<&str>,
        procs: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, (bool, Impair)> {
        let mut chains: Option<Vec<String>> = None;
        let mut out = BTreeMap::new();
        for node in &t.nodes {
            let dir = self.vm_files(&t.name, &node.name);
            let carrier: Option<Carrier> = crate::fsutil::read_text(&dir.carrier())
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
                .filter(|c: &Carrier| procs.get(&node.name) == Some(&c.pid));
            let record: impair::Record = crate::fsutil::read_text(&dir.impair())
                .ok()
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default();
            for i in 0..node.nics.len() {
                let tap = tap_ifname(&t.name, &node.name, i);
                let up = !carrier.as_ref().is_some_and(|c| c.down.contains(&i));
                let have = record.get(&i).copied().unwrap_or(Impair::NONE);
                let present = match impair::backend(&have, impair::kernel_has_netem()) {
                    impair::Backend::None => true,
                    impair::Backend::Relay => {
                        impair::relay_shapes(&self.lab_dir(&t.name), &t.name, &tap)
                    }
                    impair::Backend::Nft => chains
                        .get_or_insert_with(|| impair::nft_chains(ns, &t.name))
                        .contains(&tap),
                    impair::Backend::Netem => {
                        impair::has_netem(ns, &ifb_ifname(&t.name, &node.name, i))
                    }
                };
                out.insert(tap, (up, if present { have } else { Impair::NONE }));
            }
        }
        out
    }

    /// One VM; `pid` is its live QEMU, found by its process tag.
    pub(super) fn observe_vm(&self, lab: &str, name: &str, pid: Option<u32>) -> ObservedVm {
        let dir = self.vm_files(lab, name);
        let started: Option<Started> = crate::fsutil::read_text(&dir.hardware())
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
            // Gone without being stopped: a crash, unless the engine was
            // stopping it or the guest powered itself off (the kernel's last
            // words on the serial console).
            Some(if dir.stopping().exists() || powered_off(&dir) {
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
            // Both halves of the seed must be there (a missing one is written
            // again before the next start).
            seed_hash: started
                .map(|s| s.seed_hash)
                .filter(|_| dir.seed().exists() && dir.fw_cfg_conf().exists()),
            saved: saved_state(&dir),
        }
    }
}

/// A VM's saved state, when whole: its record, and the state it describes.
pub fn saved_state(dir: &super::VmDir) -> Option<super::SavedState> {
    if !dir.saved_state().exists() {
        return None;
    }
    serde_json::from_str(&crate::fsutil::read_text(&dir.saved_meta()).ok()?).ok()
}
