//! The executor: one plan step applied to the host (namespace, bridge,
//! TAP, overlay, seed, QEMU start/stop/delete), by the real implementations
//! in `net`, `image`, `seed` and `vm`.

use std::fs;
use std::path::Path;
use std::time::Duration;

use topology::names::tap_ifname;
use topology::Topology;

use super::{io, Engine, LabError, Result, Started, VmFault};
use crate::plan::{self, Action, Step};
use crate::qemu::{Nic, NicBackend, VmSpec};
use crate::vm::RunAs;
use crate::vmdir::Carrier;
use crate::{net, seed, vm};

impl Engine {
    /// Applies one step.
    pub fn apply(&self, t: &Topology, step: &Step) -> Result<()> {
        let t = &*topology::mgmt::effective(t);
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
            } => net::ensure_tap(
                n,
                ifname,
                &net::owner_alias(lab, &format!("tap/{vm}/{nic}")),
                bridge,
            )?,
            Action::UpdateLink {
                vm,
                nic,
                ifname,
                bridge,
            } => {
                net::ensure_tap(
                    n,
                    ifname,
                    &net::owner_alias(lab, &format!("tap/{vm}/{nic}")),
                    bridge,
                )?;
                self.update_link(t, vm, *nic, ifname)?;
            }
            Action::CreateOverlay { vm, image } => {
                let dir = self.vm_files(lab, vm);
                fs::create_dir_all(dir.path()).map_err(io("create", dir.path()))?;
                let who = self.claim_ids(vm, dir.path())?;
                // Made under a temporary name and renamed: an `up` killed
                // half-way never leaves a torn overlay that looks finished.
                let overlay = dir.overlay();
                let tmp = dir.overlay_tmp();
                let _ = fs::remove_file(&tmp);
                self.images.create_overlay(image, &tmp)?;
                self.give_to(vm, &tmp, who)?;
                fs::rename(&tmp, &overlay).map_err(io("rename", &overlay))?;
                crate::fsutil::write_atomic(&dir.pristine(), b"")
                    .map_err(io("write", &dir.pristine()))?;
            }
            Action::WriteSeed { vm } => {
                let dir = self.vm_files(lab, vm);
                fs::create_dir_all(dir.path()).map_err(io("create", dir.path()))?;
                let files =
                    seed::render(t, vm).ok_or_else(|| LabError::vm(vm, VmFault::NotInTopology))?;
                let tmp = dir.seed_tmp();
                seed::write_vfat(&files, &tmp).map_err(|e| LabError::vm(vm, VmFault::Seed(e)))?;
                let img = dir.seed();
                fs::rename(&tmp, &img).map_err(io("rename", &img))?;
                let conf = dir.fw_cfg_conf();
                crate::fsutil::write_atomic(&conf, files.minivm_conf.as_bytes())
                    .map_err(io("write", &conf))?;
            }
            Action::StopVm { vm } => self.stop_vm(lab, vm, Duration::from_secs(10))?,
            Action::StartVm { vm } => self.start_vm(t, vm)?,
            Action::DiscardSaved { vm } => discard_saved(&self.vm_files(lab, vm)),
            Action::DeleteVm { vm } => {
                self.stop_vm(lab, vm, Duration::from_secs(10))?;
                let dir = self.vm_dir(lab, vm);
                if dir.exists() {
                    fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
                }
            }
            Action::ConfigureMgmt { .. } => {
                let u = crate::mgmt::Uplink::desired(t).ok_or_else(|| {
                    LabError::Mgmt(Box::new(crate::mgmt::MgmtError::Io {
                        action: "configure (the lab has no mgmt)",
                        path: self.lab_dir(lab),
                        source: std::io::ErrorKind::NotFound.into(),
                    }))
                })?;
                crate::mgmt::apply(t, &u, &self.lab_dir(lab))
                    .map_err(|e| LabError::Mgmt(Box::new(e)))?;
            }
            Action::RemoveMgmt { ifname } => {
                crate::mgmt::remove(lab, &self.lab_dir(lab))
                    .map_err(|e| LabError::Mgmt(Box::new(e)))?;
                let alias = net::owner_alias(lab, "mgmt");
                if net::links(None)?
                    .iter()
                    .any(|l| &l.name == ifname && l.alias.as_deref() == Some(alias.as_str()))
                {
                    net::delete_owned(None, ifname, &alias)?;
                }
            }
            Action::DeleteTap { ifname } | Action::DeleteBridge { ifname } => {
                let alias = net::links(n)?
                    .into_iter()
                    .find(|l| &l.name == ifname)
                    .and_then(|l| l.alias);
                if let Some(a) = alias.filter(|a| a.starts_with(&format!("minivm:{lab}:"))) {
                    // A TAP's impairments go with it: its nft chain, its
                    // IFB, its relay TAPs.
                    let vm_nic = a
                        .strip_prefix(&format!("minivm:{lab}:tap/"))
                        .and_then(|rest| rest.rsplit_once('/'))
                        .and_then(|(vm, nic)| Some((vm.to_string(), nic.parse::<usize>().ok()?)));
                    if let Some((vm, nic)) = vm_nic {
                        let lab_dir = self.lab_dir(lab);
                        crate::impair::remove(&crate::impair::NicLink {
                            ns: n,
                            lab,
                            vm: &vm,
                            nic,
                            tap: ifname,
                            bridge: "",
                            lab_dir: &lab_dir,
                            relay_program: &self.relay_program,
                        })
                        .map_err(|e| LabError::Impair(Box::new(e)))?;
                    }
                    net::delete_owned(n, ifname, &a)?;
                }
            }
        }
        Ok(())
    }

    /// The guest's side of a link and the impairments of what it sends,
    /// made what the topology says, in place: the VM keeps running.
    fn update_link(&self, t: &Topology, vm: &str, nic: usize, tap: &str) -> Result<()> {
        let lab = &t.name;
        let want = crate::link::desired(t, vm, nic)
            .ok_or_else(|| LabError::vm(vm, VmFault::NotInTopology))?;
        let dir = self.vm_files(lab, vm);
        fs::create_dir_all(dir.path()).map_err(io("create", dir.path()))?;
        let ns = Self::ns(t);
        // Impairments: on the TAP, with or without a running QEMU.
        let mut record: crate::impair::Record = crate::fsutil::read_text(&dir.impair())
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .unwrap_or_default();
        let lab_dir = self.lab_dir(lab);
        crate::impair::apply(
            &crate::impair::NicLink {
                ns: ns.as_deref(),
                lab,
                vm,
                nic,
                tap,
                bridge: want.bridge.as_deref().unwrap_or_default(),
                lab_dir: &lab_dir,
                relay_program: &self.relay_program,
            },
            &want.impair,
        )
        .map_err(|e| LabError::vm(vm, VmFault::Impair(e)))?;
        if want.impair.is_none() {
            record.remove(&nic);
        } else {
            record.insert(nic, want.impair);
        }
        let json = serde_json::to_string(&record).expect("serializes");
        crate::fsutil::write_atomic(&dir.impair(), json.as_bytes())
            .map_err(io("write", &dir.impair()))?;
        // The carrier: told to the live QEMU (none: it starts with links up
        // and the next start's plan sets them).
        let Some(pid) = super::procs::running_qemus(lab).get(vm).copied() else {
            return Ok(());
        };
        let mut carrier: Carrier = crate::fsutil::read_text(&dir.carrier())
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok())
            .filter(|c: &Carrier| c.pid == pid)
            .unwrap_or(Carrier {
                pid,
                ..Default::default()
            });
        // Only a change is told: a QEMU starts with its links up.
        let told_up = !carrier.down.contains(&nic);
        if want.carrier == told_up {
            return Ok(());
        }
        connect_qmp(&dir.qmp_socket())
            .and_then(|mut q| {
                q.execute_with(
                    "set_link",
                    serde_json::json!({"name": format!("net{nic}"), "up": want.carrier}),
                )
            })
            .map_err(|e| LabError::vm(vm, VmFault::SetLink(e)))?;
        if want.carrier {
            carrier.down.remove(&nic);
        } else {
            carrier.down.insert(nic);
        }
        let json = serde_json::to_string(&carrier).expect("serializes");
        crate::fsutil::write_atomic(&dir.carrier(), json.as_bytes())
            .map_err(io("write", &dir.carrier()))?;
        Ok(())
    }

    /// The ids `vm`'s QEMU runs as: its directory's own (see [`super::ids`]),
    /// claimed at its first start. `None` when QEMU runs as this process's
    /// user.
    pub fn claim_ids(&self, vm: &str, dir: &Path) -> Result<Option<RunAs>> {
        match &self.ids {
            Some(ids) => ids
                .claim(dir)
                .map(Some)
                .map_err(|e| LabError::vm(vm, e.into())),
            None => Ok(None),
        }
    }

    /// The ids of a VM already claimed (its directory's owner), for files
    /// a running QEMU is to write.
    pub fn ids_of(&self, dir: &Path) -> Option<RunAs> {
        use std::os::unix::fs::MetadataExt;
        self.ids.as_ref()?;
        let m = fs::symlink_metadata(dir).ok()?;
        Some(RunAs {
            uid: m.uid(),
            gid: m.gid(),
        })
    }

    /// Hands `p` to `who` (nothing without one), owner-only; a link is
    /// never followed.
    pub fn give_to(&self, vm: &str, p: &Path, who: Option<RunAs>) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let Some(who) = who else {
            return Ok(());
        };
        super::ids::give(p, who).map_err(|e| LabError::vm(vm, e.into()))?;
        if fs::symlink_metadata(p).is_ok_and(|m| m.is_file()) {
            fs::set_permissions(p, fs::Permissions::from_mode(0o600)).map_err(io("chmod", p))?;
        }
        Ok(())
    }

    /// QEMU runs as an unprivileged user: every directory above the VM's
    /// must let others through, or QEMU fails with an obscure error.
    fn check_reachable(&self, vm: &str, dir: &Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if self.ids.is_none() {
            return Ok(());
        }
        for a in dir.ancestors().skip(1) {
            if let Ok(m) = fs::metadata(a) {
                if m.permissions().mode() & 0o001 == 0 {
                    return Err(LabError::vm(
                        vm,
                        VmFault::Unreachable {
                            dir: dir.to_path_buf(),
                            ancestor: a.to_path_buf(),
                            mode: m.permissions().mode() & 0o7777,
                        },
                    ));
                }
            }
            if a == self.state_dir {
                break;
            }
        }
        Ok(())
    }

    pub(super) fn start_vm(&self, t: &Topology, name: &str) -> Result<()> {
        self.start_vm_as(t, name, !self.cold)
    }

    /// Starts a VM: from its own saved state if it has one, else (when
    /// `warm_ok`) restored from the warm image of its shape, else cold.
    fn start_vm_as(&self, t: &Topology, name: &str, warm_ok: bool) -> Result<()> {
        let lab = &t.name;
        self.check_reachable(name, &self.vm_dir(lab, name))?;
        let ns = Self::ns(t);
        let dir = self.vm_files(lab, name);
        let node = t
            .node(name)
            .ok_or_else(|| LabError::vm(name, VmFault::NotInTopology))?;
        // A base image removed from the store: said plainly, before QEMU
        // fails on its backing file.
        let image = t.node_image(node).unwrap_or_default();
        if !self.images.exists(image)? {
            return Err(LabError::vm(name, VmFault::ImageMissing(image.into())));
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
        // A saved state of exactly this VM is resumed; one of anything else
        // (the plan discards those, with the reason) never is.
        let resume = super::observe::saved_state(&dir)
            .filter(|s| s.hardware == hardware && s.seed_hash == seed_hash);
        if resume.is_none() {
            discard_saved(&dir);
        }
        // No saved state of its own and a disk never booted: restored from
        // the warm image of its shape (made now, with one cold boot, when
        // there is none yet). A used disk is not what a warm image's memory
        // has cached: that VM boots cold.
        let pristine = dir.pristine().exists();
        let _ = fs::remove_file(dir.pristine());
        let warm = match (&resume, warm_ok) {
            (None, true) if !pristine => {
                tracing::info!(
                    vm = name,
                    reason = "its disk was used by an earlier boot (a warm start needs a new VM;                               `stop --save` makes restarts fast)",
                    "cold boot"
                );
                None
            }
            (None, true) => match self
                .warm_shape(t, name)
                .and_then(|shape| self.warm_image(&shape))
            {
                Ok(state) => Some(state),
                Err(why) => {
                    tracing::info!(vm = name, reason = %crate::report(&why), "cold boot");
                    None
                }
            },
            _ => None,
        };
        let macs: Vec<_> = nics.iter().map(|n| n.mac).collect();
        // Its own ids, and only the files it writes handed to them: its
        // disk and a saved state to resume (a snapshot's, linked in by
        // root). The rest stays root's, read-only to it.
        let who = self.claim_ids(name, dir.path())?;
        self.give_to(name, &dir.overlay(), who)?;
        if resume.is_some() {
            self.give_to(name, &dir.saved_state(), who)?;
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
            incoming: match &resume {
                Some(_) => Some(dir.saved_state()),
                None => warm.clone(),
            },
            warm: warm.is_some(),
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
        let _ = fs::remove_file(dir.stopping());
        // A clone's marker is there before its QEMU: a process killed
        // right after the launch leaves a clone the next reconcile knows
        // to hand its identity (the pid is added once known).
        if warm.is_some() {
            crate::fsutil::write_atomic(&dir.identity_pending(), b"")
                .map_err(io("write", &dir.identity_pending()))?;
        } else {
            let _ = fs::remove_file(dir.identity_pending());
        }
        let child =
            vm::launch(&self.qemu, &spec, taps, who).map_err(|e| LabError::vm(name, e.into()))?;
        let pid = child.id();
        if warm.is_some() {
            crate::fsutil::write_atomic(&dir.identity_pending(), pid.to_string().as_bytes())
                .map_err(io("write", &dir.identity_pending()))?;
        }
        // The process belongs to its own session; nobody waits for it here.
        std::mem::forget(child);
        crate::fsutil::write_atomic(&dir.pidfile(), pid.to_string().as_bytes())
            .map_err(io("write", &dir.pidfile()))?;
        self.consoles
            .lock()
            .expect("not poisoned")
            .remove(dir.path());
        self.watch(&dir, name);
        if let Some(saved) = resume {
            if let Err(e) = self.finish_resume(&dir, name, pid, &saved) {
                // The state would not load (a QEMU that cannot read what
                // another wrote): it is dropped and the VM boots afresh.
                tracing::warn!(vm = name, error = %crate::report(&e), "resume failed; booting afresh");
                self.stop_vm(lab, name, Duration::ZERO)?;
                discard_saved(&dir);
                return self.start_vm(t, name);
            }
        } else if let Some(state) = warm {
            match self.identify_clone(&dir, name, &macs) {
                Ok(()) => tracing::info!(vm = name, "warm start"),
                Err(e) => {
                    // The warm image is suspect: dropped (the next warm
                    // start makes another), and this VM boots cold.
                    tracing::warn!(vm = name, error = %crate::report(&e), "warm start failed; booting cold");
                    self.stop_vm(lab, name, Duration::ZERO)?;
                    if let Some(key) = state.parent().and_then(|p| p.file_name()) {
                        self.warm.remove(&key.to_string_lossy());
                    }
                    return self.start_vm_as(t, name, false);
                }
            }
        }
        Ok(())
    }

    /// A warm clone, launched: waits until it runs, hands it its identity,
    /// and drops its `identity-pending` marker.
    pub(super) fn identify_clone(
        &self,
        dir: &super::VmDir,
        name: &str,
        macs: &[topology::net::Mac],
    ) -> Result<()> {
        self.wait_running(dir, name)?;
        let conf =
            crate::fsutil::read_text(&dir.fw_cfg_conf()).map_err(io("read", &dir.fw_cfg_conf()))?;
        self.give_identity(dir, macs, &conf)
            .map_err(|why| LabError::vm(name, VmFault::Warm(why)))?;
        let _ = fs::remove_file(dir.identity_pending());
        Ok(())
    }

    /// Hands their identity to the clones among `vms` whose start was cut
    /// short (the marker names the QEMU that still runs); one that cannot
    /// take it is stopped, and the reconcile that follows boots it cold
    /// (its disk is used). An error only when such a clone cannot be
    /// stopped.
    pub(super) fn finish_pending_identities(&self, t: &Topology, vms: &[&str]) -> Result<()> {
        let t = &*topology::mgmt::effective(t);
        let running = super::procs::running_qemus(&t.name);
        let mut errors = Vec::new();
        for vm in vms {
            let dir = self.vm_files(&t.name, vm);
            let Ok(text) = crate::fsutil::read_text(&dir.identity_pending()) else {
                continue;
            };
            // Empty: its starter died between writing it and learning the
            // pid; the VM's QEMU found running is that clone.
            let pid: Option<u32> = text.trim().parse().ok();
            let live = running.get(*vm).copied();
            if live.is_none() || (pid.is_some() && live != pid) {
                let _ = fs::remove_file(dir.identity_pending());
                continue;
            }
            let macs: Vec<_> = topology::resolve::nics(t)
                .get(*vm)
                .map(|n| n.iter().map(|r| r.mac).collect())
                .unwrap_or_default();
            tracing::info!(
                vm,
                "a warm start was cut short: handing the clone its identity"
            );
            // A clone whose starter died before it read the console is
            // still waiting for a reader (QEMU runs nothing until one
            // comes, QMP included): read it first.
            self.watch(&dir, vm);
            if let Err(e) = self.identify_clone(&dir, vm, &macs) {
                // Its disk was used by the clone: the reconcile that
                // follows boots it cold.
                let log = crate::fsutil::read_text(&dir.qemu_log()).unwrap_or_default();
                tracing::warn!(
                    vm,
                    reason = %crate::report(&e),
                    qemu = %log.trim(),
                    "the clone cannot take its identity; stopping it to boot it cold"
                );
                if let Err(e) = self.stop_vm(&t.name, vm, std::time::Duration::ZERO) {
                    errors.push(e);
                }
                let _ = fs::remove_file(dir.identity_pending());
            }
        }
        LabError::combine(errors)
    }

    /// Waits until a QEMU started with `-incoming` has loaded its state
    /// and runs (a state saved paused is continued). A reply without a
    /// status, or a QMP connection that drops or times out while QEMU is
    /// busy loading (a loaded machine), is waited through with a new
    /// connection; only a QEMU that is gone, one in a final state or the
    /// deadline end the wait.
    fn wait_running(&self, dir: &super::VmDir, name: &str) -> Result<()> {
        let fault = |why: String| LabError::vm(name, VmFault::Resume(why));
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut q: Option<crate::qmp::Qmp> = None;
        let mut last = String::from("no answer yet");
        loop {
            if std::time::Instant::now() >= deadline {
                return Err(fault(format!(
                    "QEMU did not run within 120 s of loading the saved state (last: {last})"
                )));
            }
            let conn = match q.as_mut() {
                Some(c) => c,
                None => match connect_qmp(&dir.qmp_socket()) {
                    Ok(c) => q.insert(c),
                    Err(e) => return Err(fault(format!("QMP: {e}"))),
                },
            };
            let status = match conn.execute("query-status") {
                Ok(v) => v,
                Err(e) => {
                    tracing::debug!(vm = name, error = %e, "QMP query-status; connecting again");
                    last = e.to_string();
                    q = None;
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
            };
            let st = status["return"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match resume_step(&st) {
                ResumeStep::Done => return Ok(()),
                ResumeStep::Wait => {
                    if st.is_empty() {
                        tracing::debug!(vm = name, reply = %status, "QMP status not given yet");
                        last = status.to_string();
                    } else {
                        last = st.clone();
                    }
                    // A guest saved paused: go on once the load is done.
                    if st == "paused" {
                        if let Ok(m) = conn.execute("query-migrate") {
                            if m["return"]["status"] == "completed" {
                                if let Err(e) = conn.execute("cont") {
                                    last = e.to_string();
                                    q = None;
                                }
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                ResumeStep::Failed => {
                    return Err(fault(format!(
                        "QEMU is {st:?} after loading the saved state"
                    )))
                }
            }
        }
    }

    /// Waits until a resumed QEMU has loaded its saved state and runs, then
    /// drops the state (the guest has moved on from it) and carries over
    /// what belongs to the boot it continues: readiness, the setup record.
    fn finish_resume(
        &self,
        dir: &super::VmDir,
        name: &str,
        pid: u32,
        saved: &super::SavedState,
    ) -> Result<()> {
        self.wait_running(dir, name)?;
        discard_saved(dir);
        // The guest's clock stood still while it was saved: set it again
        // through its agent, off the path of the start.
        let qga = dir.qga_socket();
        std::thread::spawn(move || {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            let set = crate::qga::Qga::connect(&qga, Duration::from_secs(30)).and_then(|mut q| {
                q.execute("guest-set-time", Some(serde_json::json!({ "time": now })))
            });
            if let Err(e) = set {
                tracing::warn!(error = %crate::report(&e), "cannot set a resumed guest's clock");
            }
        });
        if saved.ready {
            crate::fsutil::write_atomic(&dir.ready(), b"").map_err(io("write", &dir.ready()))?;
        }
        // The exec commands ran on the boot this one continues.
        if let Ok(text) = crate::fsutil::read_text(&dir.setup()) {
            if let Ok(mut r) = serde_json::from_str::<serde_json::Value>(&text) {
                r["pid"] = serde_json::json!(pid);
                let _ = crate::fsutil::write_atomic(&dir.setup(), r.to_string().as_bytes());
            }
        }
        Ok(())
    }
}

/// Deletes a VM's saved state: its record first, so a state without one is
/// never taken for whole.
pub(crate) fn discard_saved(dir: &super::VmDir) {
    let _ = fs::remove_file(dir.saved_meta());
    let _ = fs::remove_file(dir.saved_state());
    let _ = fs::remove_file(dir.saved_state_tmp());
}

/// What a QMP run state means while a saved state loads.
#[derive(Debug, PartialEq)]
enum ResumeStep {
    Done,
    Wait,
    Failed,
}

fn resume_step(status: &str) -> ResumeStep {
    match status {
        "running" => ResumeStep::Done,
        // Loading, or just loaded; "" is a reply that named no status.
        "" | "inmigrate" | "prelaunch" | "finish-migrate" | "postmigrate" | "paused"
        | "restore-vm" => ResumeStep::Wait,
        _ => ResumeStep::Failed,
    }
}

/// QMP of a QEMU that may have just been started: its socket appears
/// within moments of the launch.
fn connect_qmp(socket: &Path) -> std::io::Result<crate::qmp::Qmp> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        match crate::qmp::Qmp::connect(socket) {
            Ok(q) => return Ok(q),
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "QMP not there yet");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{resume_step, ResumeStep};

    #[test]
    fn a_reply_without_a_status_is_waited_through_and_a_final_state_fails() {
        assert_eq!(resume_step("running"), ResumeStep::Done);
        for waiting in ["", "inmigrate", "postmigrate", "paused", "restore-vm"] {
            assert_eq!(resume_step(waiting), ResumeStep::Wait, "{waiting:?}");
        }
        for failed in ["shutdown", "internal-error", "guest-panicked", "io-error"] {
            assert_eq!(resume_step(failed), ResumeStep::Failed, "{failed:?}");
        }
    }
}
