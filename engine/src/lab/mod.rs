//! The lab on this host, one job per file:
//!
//! | file | job |
//! |---|---|
//! | `mod.rs` | the [`Engine`] of a state directory, [`LabError`], the lab lock |
//! | `files.rs` | [`VmDir`]: a VM's directory and the name of every file in it |
//! | `observe.rs` | what the host has of a lab (`observe`), one VM's state |
//! | `apply.rs` | the executor: one plan step applied to the host |
//! | `reconcile.rs` | the [`Host`] seam and the generic [`reconcile`] loop (plan, apply, observe again), with its fake-host tests |
//! | `stop.rs` | stopping one VM, `down` of a whole lab |
//! | `guest.rs` | the guest side: console readers, readiness, `exec`, console tails |
//! | `procs.rs` | the /proc scan that finds a lab's QEMUs by their process tag |
//! | `saved.rs` | saved VM state: pause, save to a file (`stop --save`, snapshots) |
//! | `warm.rs` | warm starts: making a warm image, a clone's identity |
//!
//! The executor and reconciler: observe what the host has of a lab, plan
//! (`plan::plan`), apply each step, observe again. Level-triggered: `up`
//! never asks why it runs, so a second `up` does nothing and a half-finished
//! one is finished by the next.
//!
//! Files of a VM live in `<state>/labs/<lab>/vms/<vm>/` ([`VmDir`] names
//! them). The directory belongs to the VM's own unprivileged id (`ids.rs`).

mod apply;
mod guest;
pub mod ids;
mod observe;
mod procs;
mod reconcile;
mod saved;
mod stop;
mod warm;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use topology::names::netns_name;
use topology::{NetworkMode, Topology};

use crate::accel::Choice;
use crate::image::ImageStore;
use crate::net;
use crate::plan::{Step, VmHardware};
use crate::vm;
pub use ids::Ids;

pub use crate::vmdir::{SavedState, VmDir};
pub(crate) use apply::discard_saved;
pub use guest::console_tail;
pub use observe::saved_state;
pub use procs::{all_qemus, qemu_alive, running_qemus, vm_states, vm_states_with};
pub use reconcile::{reconcile, Host};
pub use saved::{write_record, Paused};
pub use warm::WarmError;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// One VM failed; the rest of the lab is fine.
    #[error("{vm}")]
    Vm {
        vm: String,
        #[source]
        fault: VmFault,
    },
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
    #[error("{}", .0.iter().map(|e| crate::report(e)).collect::<Vec<_>>().join("; "))]
    Several(Vec<LabError>),
    #[error("{vm}: not running (state {state})")]
    NotRunning {
        vm: String,
        state: crate::lifecycle::VmState,
    },
    /// One network failed: its VMs are not started, the rest goes on.
    #[error("network {network}")]
    Network {
        network: String,
        #[source]
        source: Box<LabError>,
    },
    #[error(transparent)]
    Impair(Box<crate::impair::ImpairError>),
    #[error("the management network")]
    Mgmt(#[source] Box<crate::mgmt::MgmtError>),
    #[error("{vm}: guest agent")]
    Agent {
        vm: String,
        source: crate::qga::QgaError,
    },
}

/// How one VM failed (the cause of a [`LabError::Vm`]).
#[derive(Debug, thiserror::Error)]
pub enum VmFault {
    #[error("not in the topology")]
    NotInTopology,
    #[error("its base image {0:?} is missing from the image store (see `minivm image list`)")]
    ImageMissing(String),
    #[error(
        "QEMU runs unprivileged and cannot reach {}: {} has mode {mode:o} (others need x); use a state directory others can traverse",
        dir.display(),
        ancestor.display()
    )]
    Unreachable {
        dir: PathBuf,
        ancestor: PathBuf,
        mode: u32,
    },
    /// QEMU's own last words (its log), not a cause of ours.
    #[error("QEMU exited: {0}")]
    Exited(String),
    #[error("not started: its network {0} failed")]
    NetworkFailed(String),
    #[error("no command given")]
    NoCommand,
    #[error("cannot change the link as the guest sees it")]
    SetLink(#[source] std::io::Error),
    #[error(transparent)]
    Impair(crate::impair::ImpairError),
    #[error("cannot resume its saved state: {0}")]
    Resume(String),
    #[error("cannot save its state: {0}")]
    Save(String),
    #[error("warm start failed")]
    Warm(#[source] warm::WarmError),
    #[error("cannot write its seed")]
    Seed(#[source] crate::process::ProcessError),
    #[error(transparent)]
    Launch(#[from] vm::VmError),
    #[error(transparent)]
    Ids(#[from] ids::IdError),
    /// A step of this VM that failed with an error of the lab's kind.
    #[error(transparent)]
    Step(Box<LabError>),
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;

impl LabError {
    /// `fault` as an error of `vm`.
    pub fn vm(vm: &str, fault: VmFault) -> LabError {
        LabError::Vm {
            vm: vm.into(),
            fault,
        }
    }

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

/// `e` as an error of `vm` (unless it already is one).
fn of_vm(vm: &str, e: LabError) -> LabError {
    match e {
        LabError::Vm { vm: ref v, .. } if v == vm => e,
        e => LabError::vm(vm, VmFault::Step(Box::new(e))),
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
pub(crate) struct Started {
    pub(crate) hardware: VmHardware,
    pub(crate) seed_hash: String,
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
    /// The ids each VM's QEMU runs as (`None`: as this process's user).
    pub ids: Option<Ids>,
    /// How many VMs are worked on at once (default: the number of cores).
    pub parallel: usize,
    /// The QEMU binary VMs run with (default: qemu-system-x86_64 from PATH).
    pub qemu: PathBuf,
    /// The `minivm` program that runs a lab's relay (`minivm relay LAB`;
    /// default: this program).
    pub relay_program: PathBuf,
    /// Boot every VM cold: no warm image is made or used (`--cold`).
    pub cold: bool,
    /// For `up`: the host's opt-in to port forwards beyond loopback
    /// (`--expose`), recorded for the lab; `None` keeps what is recorded.
    pub expose: Option<bool>,
    /// For `up -f`: bring the file up even over edits made elsewhere
    /// since (`--force`).
    pub force: bool,
    /// The warm images (`crate::warm`).
    pub warm: crate::warm::WarmStore,
    /// VMs whose console this process reads (see `watch_console`).
    consoles: std::sync::Arc<
        std::sync::Mutex<
            std::collections::HashMap<PathBuf, std::sync::Arc<crate::console::Console>>,
        >,
    >,
}

impl Engine {
    pub fn new(state_dir: &Path, accel: Choice, ids: Option<Ids>) -> Result<Self> {
        Ok(Engine {
            state_dir: state_dir.to_path_buf(),
            images: ImageStore::open(state_dir)?,
            accel,
            ids,
            parallel: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            qemu: PathBuf::from(vm::QEMU),
            relay_program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("minivm")),
            cold: false,
            expose: None,
            force: false,
            warm: crate::warm::WarmStore::open(state_dir),
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

    /// Removes what taking the lock of a lab that is not there made: its
    /// lock file and directory, when nothing else is in it (a lab renamed
    /// or deleted while a command waited for its lock).
    pub fn forget_lab_dir(&self, lab: &str) {
        let dir = self.lab_dir(lab);
        let only_lock = fs::read_dir(&dir)
            .map(|rd| rd.flatten().all(|e| e.file_name() == ".lock"))
            .unwrap_or(false);
        if only_lock {
            let _ = fs::remove_file(dir.join(".lock"));
            let _ = fs::remove_dir(&dir);
        }
    }

    pub fn lab_dir(&self, lab: &str) -> PathBuf {
        self.state_dir.join("labs").join(lab)
    }

    pub fn vm_dir(&self, lab: &str, vm: &str) -> PathBuf {
        self.lab_dir(lab).join("vms").join(vm)
    }

    /// The directory of `vm` of `lab`, with its files named.
    pub fn vm_files(&self, lab: &str, vm: &str) -> VmDir {
        VmDir::new(self.vm_dir(lab, vm))
    }

    fn ns(t: &Topology) -> Option<String> {
        (t.network_mode == NetworkMode::Isolated).then(|| netns_name(&t.name))
    }
}
