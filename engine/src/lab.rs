//! The executor and reconciler: observe what the host has of a lab, plan
//! (`plan::plan`), apply each step, observe again. Level-triggered: `up`
//! never asks why it runs, so a second `up` does nothing and a half-finished
//! one is finished by the next.
//!
//! Files of a VM live in `<state>/labs/<lab>/vms/<vm>/`: overlay.qcow2,
//! seed.img and minivm.conf, hardware.json (what the process was started
//! with), qemu.pid, qemu.log, console.log, `ready` (the guest said so), the
//! control sockets. The directory belongs to the unprivileged QEMU user.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use topology::names::{netns_name, tap_ifname};
use topology::{NetworkMode, Topology};

use crate::accel::Choice;
use crate::image::ImageStore;
use crate::lifecycle::VmState;
use crate::plan::{self, Action, ObservedLab, ObservedVm, Step, VmHardware};
use crate::qemu::{self, Nic, NicBackend, VmSpec};
use crate::vm::{self, RunAs};
use crate::{net, seed};

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{vm}: {what}")]
    Vm { vm: String, what: String },
    #[error(transparent)]
    Net(#[from] net::NetError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("VMs not ready after {0:?}: {1}")]
    NotReady(Duration, String),
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Several(Vec<LabError>),
    #[error("{vm}: not running (state {state})")]
    NotRunning { vm: String, state: String },
    #[error("network {network}: {what}")]
    Network { network: String, what: String },
    #[error("{vm}: guest agent: {source}")]
    Agent {
        vm: String,
        source: crate::qga::QgaError,
    },
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;

impl LabError {
    /// The VMs this error is about (each `Vm` error, also inside `Several`).
    pub fn failed_vms(&self) -> std::collections::BTreeSet<String> {
        match self {
            LabError::Vm { vm, .. } | LabError::NotRunning { vm, .. } => [vm.clone()].into(),
            LabError::Several(all) => all.iter().flat_map(|e| e.failed_vms()).collect(),
            _ => Default::default(),
        }
    }

    /// Only errors of single VMs or networks: the rest of the lab is fine.
    pub fn is_partial(&self) -> bool {
        match self {
            LabError::Vm { .. } | LabError::Network { .. } => true,
            LabError::Several(all) => all.iter().all(LabError::is_partial),
            _ => false,
        }
    }

    /// Several errors as one (none: `Ok`).
    pub fn combine(mut errors: Vec<LabError>) -> Result<()> {
        match errors.len() {
            0 => Ok(()),
            1 => Err(errors.remove(0)),
            _ => Err(LabError::Several(errors)),
        }
    }
}

/// `e` with its causes, as one line: `cannot create X: No space left on device`.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_s = c.to_string();
        if !s.contains(&c_s) {
            s = format!("{s}: {c_s}");
        }
        cause = c.source();
    }
    s
}

/// `e` as an error of `vm` (unless it already names it).
fn of_vm(vm: &str, e: LabError) -> LabError {
    match e {
        LabError::Vm { vm: ref v, .. } if v == vm => e,
        e => LabError::Vm {
            vm: vm.into(),
            what: with_causes(&e),
        },
    }
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> LabError + 'a {
    move |source| LabError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What a started VM was started with.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Started {
    hardware: VmHardware,
    seed_hash: String,
}

/// One step of a reconcile, for progress output: `done` of `total` have
/// started (steps of different VMs run in parallel).
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub step: &'a Step,
}

/// An exclusive hold on one lab: `up`, `down`, `start`, `stop` of the same
/// lab never interleave, across processes (flock; released on exit, even on
/// kill -9).
pub struct LabLock {
    _file: fs::File,
}

/// The engine for one state directory.
pub struct Engine {
    pub state_dir: PathBuf,
    pub images: ImageStore,
    pub accel: Choice,
    pub run_as: Option<RunAs>,
    /// How many VMs are worked on at once (default: the number of cores).
    pub parallel: usize,
    /// The QEMU binary VMs run with (default: qemu-system-x86_64 from PATH).
    pub qemu: PathBuf,
    /// VMs whose console this process reads (see `watch_console`).
    consoles: std::sync::Arc<
        std::sync::Mutex<
            std::collections::HashMap<PathBuf, std::sync::Arc<crate::console::Console>>,
        >,
    >,
}

impl Engine {
    pub fn new(state_dir: &Path, accel: Choice, run_as: Option<RunAs>) -> Result<Self> {
        Ok(Engine {
            state_dir: state_dir.to_path_buf(),
            images: ImageStore::open(state_dir)?,
            accel,
            run_as,
            parallel: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            qemu: PathBuf::from(vm::QEMU),
            consoles: Default::default(),
        })
    }

    /// Takes the lab's lock, waiting for another holder if there is one
    /// (`waiting` is called once, before the wait).
    pub fn lock(&self, lab: &str, waiting: &dyn Fn()) -> Result<LabLock> {
        use std::os::unix::fs::MetadataExt;
        let dir = self.lab_dir(lab);
        let path = dir.join(".lock");
        let mut told = false;
        loop {
            fs::create_dir_all(&dir).map_err(io("create", &dir))?;
            let file = match crate::fsutil::lock_file(&path, false).map_err(io("lock", &path))? {
                Some(f) => f,
                None => {
                    if !told {
                        waiting();
                        told = true;
                    }
                    crate::fsutil::lock_file(&path, true)
                        .map_err(io("lock", &path))?
                        .expect("a waiting lock is always taken")
                }
            };
            // `down --cleanup` may have removed the directory while we waited:
            // then the lock we hold is on a deleted file; take a fresh one.
            let held = file.metadata().map_err(io("stat", &path))?;
            if fs::metadata(&path).is_ok_and(|m| m.ino() == held.ino() && m.dev() == held.dev()) {
                return Ok(LabLock { _file: file });
            }
        }
    }

    /// Reads `dir`'s console unless this process already does. A QEMU
    /// started with `wait_for_serial` runs its guest only once a reader
    /// connects, so whoever waits for readiness must be one.
    fn watch(&self, dir: &Path, vm: &str) {
        self.console_of(dir, vm);
    }

    /// The shared console of the VM in `dir`, opened if this process does
    /// not read it yet. It is forgotten when it closes (the VM stopped).
    fn console_of(&self, dir: &Path, vm: &str) -> std::sync::Arc<crate::console::Console> {
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
        let state = self
            .observe_vm(lab, vm, None)
            .state
            .map(|s| s.to_string())
            .unwrap_or_else(|| "defined".into());
        Err(LabError::NotRunning {
            vm: vm.into(),
            state,
        })
    }

    /// A running VM's console, shared with every other viewer.
    pub fn console(&self, lab: &str, vm: &str) -> Result<std::sync::Arc<crate::console::Console>> {
        self.require_running(lab, vm)?;
        Ok(self.console_of(&self.vm_dir(lab, vm), vm))
    }

    /// Reads the console of a VM that has no reader yet (a QEMU waits for
    /// one before it runs its guest); no-op when this process reads it.
    pub fn watch_if_needed(&self, lab: &str, vm: &str) {
        self.watch(&self.vm_dir(lab, vm), vm);
    }

    pub fn lab_dir(&self, lab: &str) -> PathBuf {
        self.state_dir.join("labs").join(lab)
    }

    pub fn vm_dir(&self, lab: &str, vm: &str) -> PathBuf {
        self.lab_dir(lab).join("vms").join(vm)
    }

    fn ns(t: &Topology) -> Option<String> {
        (t.network_mode == NetworkMode::Isolated).then(|| netns_name(&t.name))
    }

    /// What the host has of lab `t.name`: only objects with its identity.
    pub fn observe(&self, t: &Topology) -> Result<ObservedLab> {
        let mut o = ObservedLab::default();
        let ns = Self::ns(t);
        o.namespace = ns.as_deref().is_some_and(net::namespace_exists);
        if ns.is_none() || o.namespace {
            let prefix = format!("minivm:{}:", t.name);
            for l in net::links(ns.as_deref())? {
                if !l.alias.as_deref().is_some_and(|a| a.starts_with(&prefix)) {
                    continue;
                }
                match l.kind.as_deref() {
                    Some("bridge") => o.bridges.insert(l.name),
                    Some("tun") => o.taps.insert(l.name),
                    _ => false,
                };
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
    fn observe_vm(&self, lab: &str, name: &str, pid: Option<u32>) -> ObservedVm {
        let dir = self.vm_dir(lab, name);
        let started: Option<Started> = fs::read_to_string(dir.join("hardware.json"))
            .ok()
            .and_then(|s| serde_json::from_str(&s).ok());
        let alive = pid.is_some();
        let state = if alive {
            Some(if dir.join("ready").exists() {
                VmState::Running
            } else {
                VmState::Starting
            })
        } else if dir.join("qemu.pid").exists() {
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
            has_overlay: dir.join("overlay.qcow2").exists(),
            hardware: started.as_ref().map(|s| s.hardware.clone()),
            seed_hash: started
                .map(|s| s.seed_hash)
                .filter(|_| dir.join("seed.img").exists()),
        }
    }

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
            } => net::ensure_tap(
                n,
                ifname,
                &net::owner_alias(lab, &format!("tap/{vm}/{nic}")),
                bridge,
            )?,
            Action::CreateOverlay { vm, image } => {
                let dir = self.vm_dir(lab, vm);
                fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                self.give(&dir)?;
                // Made under a temporary name and renamed: an `up` killed
                // half-way never leaves a torn overlay that looks finished.
                let overlay = dir.join("overlay.qcow2");
                let tmp = dir.join(".overlay.qcow2.tmp");
                let _ = fs::remove_file(&tmp);
                self.images.create_overlay(image, &tmp)?;
                self.give(&tmp)?;
                fs::rename(&tmp, &overlay).map_err(io("rename", &overlay))?;
            }
            Action::WriteSeed { vm } => {
                let dir = self.vm_dir(lab, vm);
                fs::create_dir_all(&dir).map_err(io("create", &dir))?;
                let files = seed::render(t, vm).ok_or_else(|| LabError::Vm {
                    vm: vm.clone(),
                    what: "not in the topology".into(),
                })?;
                let tmp = dir.join(".seed.img.tmp");
                seed::write_vfat(&files, &tmp).map_err(|e| LabError::Vm {
                    vm: vm.clone(),
                    what: e.to_string(),
                })?;
                let img = dir.join("seed.img");
                fs::rename(&tmp, &img).map_err(io("rename", &img))?;
                let conf = dir.join("minivm.conf");
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

    fn give(&self, p: &Path) -> Result<()> {
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

    fn start_vm(&self, t: &Topology, name: &str) -> Result<()> {
        let lab = &t.name;
        self.check_reachable(name, &self.vm_dir(lab, name))?;
        let ns = Self::ns(t);
        let dir = self.vm_dir(lab, name);
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
        for f in ["ready", "qemu.pid", "console.log"] {
            let _ = fs::remove_file(dir.join(f));
        }
        let spec = VmSpec {
            lab: lab.clone(),
            name: name.into(),
            accel: self.accel.accel,
            cpus: t.node_cpus(node),
            memory_mib: t.node_memory_mib(node),
            disk: dir.join("overlay.qcow2"),
            seed: Some(dir.join("seed.img")),
            fw_cfg_config: Some(dir.join("minivm.conf")),
            nics,
            run_dir: dir.clone(),
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
        crate::fsutil::write_atomic(&dir.join("hardware.json"), started.as_bytes())
            .map_err(io("write", &dir))?;
        let child = vm::launch(&self.qemu, &spec, taps, self.run_as).map_err(|e| LabError::Vm {
            vm: name.into(),
            what: e.to_string(),
        })?;
        let pid = child.id();
        // The process belongs to its own session; nobody waits for it here.
        std::mem::forget(child);
        crate::fsutil::write_atomic(&dir.join("qemu.pid"), pid.to_string().as_bytes())
            .map_err(io("write", &dir))?;
        self.consoles.lock().expect("not poisoned").remove(&dir);
        self.watch(&dir, name);
        Ok(())
    }

    /// Powers a VM down (ACPI), waits up to `grace`, then quits it, then kills it.
    pub fn stop_vm(&self, lab: &str, name: &str, grace: Duration) -> Result<()> {
        let dir = self.vm_dir(lab, name);
        let pid = pid_of(&dir)
            .filter(|p| qemu_alive(*p, lab, name))
            .or_else(|| running_qemus(lab).get(name).copied());
        let Some(pid) = pid else {
            let _ = fs::remove_file(dir.join("qemu.pid"));
            return Ok(());
        };
        // A guest that has not said it is ready has no acpid listening yet
        // (and nothing worth a clean shutdown): it is quit at once.
        let booted = dir.join("ready").exists();
        let deadline = Instant::now() + if booted { grace } else { Duration::ZERO };
        // The power button is pressed again every 2 s: a guest that has
        // just said it is ready may not listen to it yet (it starts acpid
        // right after), and a press it missed is lost.
        let mut pressed: Option<Instant> = None;
        while qemu_alive(pid, lab, name) && Instant::now() < deadline {
            if pressed.is_none_or(|t| t.elapsed() >= Duration::from_secs(2)) {
                if let Ok(mut q) = crate::qmp::Qmp::connect(&qemu::qmp_socket(&dir)) {
                    let _ = q.execute("system_powerdown");
                }
                pressed = Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if qemu_alive(pid, lab, name) {
            if let Ok(mut q) = crate::qmp::Qmp::connect(&qemu::qmp_socket(&dir)) {
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
        let _ = fs::remove_file(dir.join("qemu.pid"));
        let _ = fs::remove_file(dir.join("ready"));
        Ok(())
    }

    /// Makes the host match `t`; see [`reconcile`].
    pub fn reconcile(
        &self,
        t: &Topology,
        only: Option<&[&str]>,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<Vec<Step>> {
        reconcile(self, t, only, self.parallel, progress)
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
                let is_ready = self.vm_dir(lab, n).join("ready").exists();
                if is_ready {
                    ready(n, started.elapsed());
                }
                !is_ready
            });
            if pending.is_empty() {
                return LabError::combine(dead);
            }
            for n in &pending {
                self.watch(&self.vm_dir(lab, n), n);
            }
            // A QEMU that exited fails its VM; the others are still waited for.
            let procs = running_qemus(lab);
            pending.retain(|n| {
                if procs.contains_key(*n) || self.vm_dir(lab, n).join("ready").exists() {
                    return true;
                }
                let log =
                    fs::read_to_string(self.vm_dir(lab, n).join("qemu.log")).unwrap_or_default();
                dead.push(LabError::Vm {
                    vm: n.to_string(),
                    what: format!("QEMU exited: {}", log.trim()),
                });
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
        let dir = self.vm_dir(lab, vm);
        self.require_running(lab, vm)?;
        let agent = |source| LabError::Agent {
            vm: vm.into(),
            source,
        };
        let mut qga = crate::qga::Qga::connect(&qemu::qga_socket(&dir), Duration::from_secs(10))
            .map_err(agent)?;
        let (path, args) = argv.split_first().ok_or_else(|| LabError::Vm {
            vm: vm.into(),
            what: "no command given".into(),
        })?;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        qga.exec(path, &args, timeout).map_err(agent)
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
        // Isolated labs: the namespace takes its bridges and TAPs with it.
        net::delete_namespace(&netns_name(lab))?;
        // Host-mode labs: only interfaces carrying this lab's alias, TAPs first.
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

/// The last `n` non-empty lines a VM wrote on its serial console (from
/// its console.log), without control characters: what a crashed VM said
/// last.
pub fn console_tail(dir: &Path, n: usize) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    const WINDOW: u64 = 8192;
    let Ok(mut f) = fs::File::open(dir.join("console.log")) else {
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
fn powered_off(dir: &Path) -> bool {
    console_tail(dir, 5)
        .iter()
        .any(|l| l.contains("reboot: Power down"))
}

fn pid_of(dir: &Path) -> Option<u32> {
    fs::read_to_string(dir.join("qemu.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The host as the reconciler sees it: what a lab has, and one step
/// applied. [`Engine`] is the real one (QEMU, netlink, qemu-img); another
/// backend (a cluster, later) or a fake in tests implements the same, and
/// [`reconcile`] drives any of them.
pub trait Host: Sync {
    fn observe(&self, t: &Topology) -> Result<ObservedLab>;
    fn apply(&self, t: &Topology, step: &Step) -> Result<()>;
}

impl Host for Engine {
    fn observe(&self, t: &Topology) -> Result<ObservedLab> {
        Engine::observe(self, t)
    }
    fn apply(&self, t: &Topology, step: &Step) -> Result<()> {
        Engine::apply(self, t, step)
    }
}

/// Makes the host match `t`: plan, apply, observe again, until the plan
/// is empty (at most a few rounds). Lab-wide network objects are made
/// first, then each VM's steps run (VMs in parallel, at most
/// `parallel` at once), then lab-wide removals. With `only`, just
/// those VMs are worked on (plus the networks they need); nothing else
/// is touched. Returns the steps applied. A VM whose steps fail does not
/// stop the others; the errors are reported together at the end.
pub fn reconcile(
    host: &dyn Host,
    t: &Topology,
    only: Option<&[&str]>,
    parallel: usize,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Vec<Step>> {
    let mut done = Vec::new();
    for _ in 0..3 {
        let mut p = plan::phases(plan::plan(t, &host.observe(t)?));
        if let Some(only) = only {
            p.per_vm.retain(|(vm, _)| only.contains(&vm.as_str()));
            p.after.clear();
            // Only the networks those VMs plug into.
            let bridges: std::collections::BTreeSet<String> = only
                .iter()
                .filter_map(|vm| t.node(vm))
                .flat_map(|n| &n.nics)
                .map(|nic| topology::names::bridge_ifname(&t.name, &nic.network))
                .collect();
            p.before.retain(|s| match &s.action {
                Action::CreateNamespace { .. } => true,
                Action::CreateBridge { ifname, .. } => bridges.contains(ifname),
                _ => false,
            });
        }
        let total =
            p.before.len() + p.per_vm.iter().map(|(_, s)| s.len()).sum::<usize>() + p.after.len();
        if total == 0 {
            break;
        }
        let counter = std::sync::atomic::AtomicUsize::new(0);
        let run = |s: &Step| {
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            progress(Progress {
                done: n,
                total,
                step: s,
            });
            host.apply(t, s)
        };
        // Lab-wide objects first. A bridge that cannot be made (its name is
        // taken by something not ours, say) fails its network: the VMs
        // plugged into it are not started; the rest of the lab goes on.
        let mut errors = Vec::new();
        let mut failed_bridges = std::collections::BTreeMap::new();
        for s in &p.before {
            match (run(s), &s.action) {
                (Ok(()), _) => {}
                (Err(e), Action::CreateBridge { network, ifname }) => {
                    tracing::warn!(lab = %t.name, %network, error = %e, "network failed");
                    failed_bridges.insert(ifname.clone(), network.clone());
                    errors.push(LabError::Network {
                        network: network.clone(),
                        what: with_causes(&e),
                    });
                }
                (Err(e), _) => return Err(e),
            }
        }
        p.per_vm.retain(|(vm, steps)| {
            let blocked = steps.iter().find_map(|s| match &s.action {
                Action::CreateTap { bridge, .. } => failed_bridges.get(bridge),
                _ => None,
            });
            if let Some(network) = blocked {
                errors.push(LabError::Vm {
                    vm: vm.clone(),
                    what: format!("not started: its network {network} failed"),
                });
            }
            blocked.is_none()
        });
        let queue = std::sync::Mutex::new(p.per_vm.iter());
        let errors = std::sync::Mutex::new(errors);
        std::thread::scope(|scope| {
            for _ in 0..parallel.max(1).min(p.per_vm.len()) {
                scope.spawn(|| loop {
                    let Some((vm, steps)) = queue.lock().expect("not poisoned").next() else {
                        break;
                    };
                    for s in steps {
                        if let Err(e) = run(s) {
                            tracing::warn!(lab = %t.name, %vm, error = %e, "step failed");
                            errors.lock().expect("not poisoned").push(of_vm(vm, e));
                            break;
                        }
                    }
                });
            }
        });
        let mut errors = errors.into_inner().expect("not poisoned");
        for s in &p.after {
            if let Err(e) = run(s) {
                errors.push(e);
            }
        }
        LabError::combine(errors)?;
        done.extend(p.before);
        done.extend(p.per_vm.into_iter().flat_map(|(_, s)| s));
        done.extend(p.after);
    }
    Ok(done)
}

/// The live QEMU processes of `lab`, by VM name, found by the process tag
/// in their command line (`-name ...,process=minivm:<lab>:<vm>`): the
/// pidfile is a hint; this finds a QEMU whose starter was killed before
/// writing it.
pub fn running_qemus(lab: &str) -> BTreeMap<String, u32> {
    all_qemus().remove(lab).unwrap_or_default()
}

/// Every live QEMU started by minivm, by lab and VM: one pass over /proc.
pub fn all_qemus() -> BTreeMap<String, BTreeMap<String, u32>> {
    // "process=minivm:" (the tag with an empty lab and VM, less one colon).
    let tag = format!("process={}", qemu::process_tag("", ""));
    let needle = &tag[..tag.len() - 1];
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        // -name guest=<vm>,process=minivm:<lab>:<vm>
        let Some(tag) = cmdline
            .split('\0')
            .find_map(|a| a.split_once(needle).map(|(_, t)| t.to_string()))
        else {
            continue;
        };
        let Some((lab, vm)) = tag.split(',').next().unwrap_or_default().split_once(':') else {
            continue;
        };
        if !vm.is_empty() && qemu_alive(pid, lab, vm) {
            out.entry(lab.to_string())
                .or_default()
                .insert(vm.to_string(), pid);
        }
    }
    out
}

/// True once every thread of `pid` is gone: a killed multi-threaded QEMU
/// shows a zombie main thread (and no command line) before its other
/// threads, which hold its TAP fds, have exited.
fn qemu_gone(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    if stat.is_empty() {
        return true;
    }
    let zombie = stat
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('Z'));
    zombie
        && fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.count() <= 1)
            .unwrap_or(true)
}

/// True when `pid` is a live QEMU started for `lab`/`vm` (its -name says so), so
/// a recycled pid is never mistaken for ours.
pub fn qemu_alive(pid: u32, lab: &str, vm: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('Z'));
    let tag = format!("process={}\0", qemu::process_tag(lab, vm));
    !zombie && String::from_utf8_lossy(&cmdline).contains(&tag)
}

/// Per VM: state and pid, for `status`.
pub fn vm_states(
    engine: &Engine,
    t: &Topology,
) -> BTreeMap<String, (Option<VmState>, Option<u32>)> {
    vm_states_with(engine, t, &running_qemus(&t.name))
}

/// [`vm_states`] with the lab's live QEMUs already known (from [`all_qemus`]).
pub fn vm_states_with(
    engine: &Engine,
    t: &Topology,
    procs: &BTreeMap<String, u32>,
) -> BTreeMap<String, (Option<VmState>, Option<u32>)> {
    t.nodes
        .iter()
        .map(|n| {
            let pid = procs.get(&n.name).copied();
            (
                n.name.clone(),
                (engine.observe_vm(&t.name, &n.name, pid).state, pid),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;

    /// A host in memory: applying a step changes what is observed, as the
    /// real one does; VMs named in `fail` cannot start.
    #[derive(Default)]
    struct FakeHost {
        observed: Mutex<ObservedLab>,
        applied: Mutex<Vec<Step>>,
        fail: Vec<&'static str>,
        busy: AtomicUsize,
        most_busy: AtomicUsize,
    }

    impl Host for FakeHost {
        fn observe(&self, _: &Topology) -> Result<ObservedLab> {
            Ok(self.observed.lock().unwrap().clone())
        }

        fn apply(&self, t: &Topology, step: &Step) -> Result<()> {
            let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
            self.most_busy.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            self.busy.fetch_sub(1, Ordering::SeqCst);
            let mut o = self.observed.lock().unwrap();
            match &step.action {
                Action::CreateNamespace { .. } => o.namespace = true,
                Action::CreateBridge { ifname, .. } => drop(o.bridges.insert(ifname.clone())),
                Action::CreateTap { ifname, .. } => drop(o.taps.insert(ifname.clone())),
                Action::CreateOverlay { vm, .. } => {
                    o.vms.entry(vm.clone()).or_default().has_overlay = true
                }
                Action::WriteSeed { .. } | Action::StopVm { .. } => {}
                Action::StartVm { vm } if self.fail.contains(&vm.as_str()) => {
                    return Err(LabError::Vm {
                        vm: vm.clone(),
                        what: "cannot start".into(),
                    })
                }
                Action::StartVm { vm } => {
                    let v = o.vms.entry(vm.clone()).or_default();
                    v.state = Some(VmState::Running);
                    v.hardware = plan::desired_hardware(t, vm);
                    v.seed_hash = plan::desired_seed_hash(t, vm);
                }
                Action::DeleteVm { vm } => drop(o.vms.remove(vm)),
                Action::DeleteTap { ifname } => drop(o.taps.remove(ifname)),
                Action::DeleteBridge { ifname } => drop(o.bridges.remove(ifname)),
            }
            self.applied.lock().unwrap().push(step.clone());
            Ok(())
        }
    }

    fn lab(n: usize) -> Topology {
        let mut y = "version: 1\nname: t\ndefaults: {image: tiny}\nnetworks: [{name: lan, subnet: 10.1.0.0/24}]\nnodes:\n".to_string();
        for i in 1..=n {
            y += &format!("  - {{name: vm{i}, nics: [{{network: lan}}]}}\n");
        }
        topology::parse_and_validate(&y, topology::Format::Yaml).unwrap()
    }

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
        assert!(!powered_off(dir.path()));
        fs::write(
            dir.path().join("console.log"),
            "[   15.9] reboot: Power down\r\n",
        )
        .unwrap();
        assert!(powered_off(dir.path()));
        assert_eq!(
            console_tail(&dir.path().join("none"), 3),
            Vec::<String>::new()
        );
    }

    #[test]
    fn converges_then_does_nothing() {
        let host = FakeHost::default();
        let t = lab(3);
        let steps = reconcile(&host, &t, None, 2, &|_| {}).unwrap();
        assert_eq!(steps.len(), 2 + 3 * 4);
        assert_eq!(plan::plan(&t, &host.observed.lock().unwrap()), vec![]);
        assert_eq!(reconcile(&host, &t, None, 2, &|_| {}).unwrap(), vec![]);
    }

    #[test]
    fn vms_run_in_parallel_within_the_bound_and_progress_counts_every_step() {
        let host = FakeHost::default();
        let seen = Mutex::new(Vec::new());
        reconcile(&host, &lab(6), None, 3, &|p| {
            seen.lock().unwrap().push((p.done, p.total))
        })
        .unwrap();
        let most = host.most_busy.load(Ordering::SeqCst);
        assert!(
            (2..=3).contains(&most),
            "at most 3 VMs at once, and more than one: {most}"
        );
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, (1..=26).map(|i| (i, 26)).collect::<Vec<_>>());
    }

    #[test]
    fn a_failing_vm_does_not_stop_the_others() {
        let host = FakeHost {
            fail: vec!["vm2"],
            ..Default::default()
        };
        let err = reconcile(&host, &lab(3), None, 1, &|_| {})
            .unwrap_err()
            .to_string();
        assert_eq!(err, "vm2: cannot start");
        let o = host.observed.lock().unwrap();
        assert_eq!(o.vms["vm1"].state, Some(VmState::Running));
        assert_eq!(o.vms["vm3"].state, Some(VmState::Running));
    }

    #[test]
    fn only_touches_the_vms_named_and_their_networks() {
        let host = FakeHost::default();
        let t = lab(3);
        let steps = reconcile(&host, &t, Some(&["vm2"]), 2, &|_| {}).unwrap();
        assert!(
            steps
                .iter()
                .all(|s| s.action.vm().is_none_or(|v| v == "vm2")),
            "{steps:?}"
        );
        let o = host.observed.lock().unwrap();
        assert!(o.namespace && o.bridges.len() == 1);
        assert_eq!(o.vms.keys().collect::<Vec<_>>(), ["vm2"]);
    }
}
