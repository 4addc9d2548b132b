//! A VM's directory, the name of every file in it (each name is written
//! here once) and the records kept there (`VmHardware`, `SavedState`). The
//! directory is `<state>/labs/<lab>/vms/<vm>/` and belongs to the VM's own
//! unprivileged id (`lab::ids`).
//!
//! Layering: this module uses nothing of the engine above it but the socket
//! names of `qemu`, so the console, the QEMU launch, images and the planner
//! can all name a VM's files without importing the executor.

use std::path::{Path, PathBuf};

/// `<state>/labs/<lab>/vms/<vm>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmDir(PathBuf);

impl VmDir {
    pub fn new(path: PathBuf) -> VmDir {
        VmDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The VM's only writable disk: a qcow2 overlay of its base image.
    pub fn overlay(&self) -> PathBuf {
        self.0.join("overlay.qcow2")
    }

    /// Where the overlay is made before it is renamed into place.
    pub fn overlay_tmp(&self) -> PathBuf {
        self.0.join(".overlay.qcow2.tmp")
    }

    /// The NoCloud `cidata` seed (vfat).
    pub fn seed(&self) -> PathBuf {
        self.0.join("seed.img")
    }

    pub fn seed_tmp(&self) -> PathBuf {
        self.0.join(".seed.img.tmp")
    }

    /// The guest's configuration as QEMU hands it over fw_cfg.
    pub fn fw_cfg_conf(&self) -> PathBuf {
        self.0.join("minivm.conf")
    }

    /// What the process was started with (hardware, seed hash).
    pub fn hardware(&self) -> PathBuf {
        self.0.join("hardware.json")
    }

    /// The QEMU's pid: a hint; the process tag decides.
    pub fn pidfile(&self) -> PathBuf {
        self.0.join("qemu.pid")
    }

    /// QEMU's own stderr.
    pub fn qemu_log(&self) -> PathBuf {
        self.0.join("qemu.log")
    }

    /// Everything the guest wrote on its serial console, as read.
    pub fn console_log(&self) -> PathBuf {
        self.0.join("console.log")
    }

    /// Present once the guest said `minivm: ready NAME`.
    pub fn ready(&self) -> PathBuf {
        self.0.join("ready")
    }

    /// Present while the engine stops the VM (from before its QEMU is told
    /// to quit until its pidfile is gone): a QEMU that exits then was
    /// stopped, not crashed, whatever its console said last.
    pub fn stopping(&self) -> PathBuf {
        self.0.join("stopping")
    }

    pub fn qmp_socket(&self) -> PathBuf {
        crate::qemu::qmp_socket(&self.0)
    }

    pub fn serial_socket(&self) -> PathBuf {
        crate::qemu::serial_socket(&self.0)
    }

    pub fn qga_socket(&self) -> PathBuf {
        crate::qemu::qga_socket(&self.0)
    }

    /// The impairments applied to its NICs' TAPs (`impair::Record`).
    pub fn impair(&self) -> PathBuf {
        self.0.join("impair.json")
    }

    /// What the node's `exec` commands did on this boot (`ops::SetupRecord`).
    pub fn setup(&self) -> PathBuf {
        self.0.join("setup.json")
    }

    /// Which NICs this boot's QEMU was told are down ([`Carrier`]).
    pub fn carrier(&self) -> PathBuf {
        self.0.join("carrier.json")
    }

    /// The guest's saved memory and device state (`stop --save`): a QEMU
    /// migration stream, resumed by the next start.
    pub fn saved_state(&self) -> PathBuf {
        self.0.join("saved.state")
    }

    /// Where QEMU writes the saved state before it is renamed into place.
    pub fn saved_state_tmp(&self) -> PathBuf {
        self.0.join(".saved.state.tmp")
    }

    /// What the saved state is of ([`SavedState`]); written after the state
    /// itself, so its presence says the state is whole.
    pub fn saved_meta(&self) -> PathBuf {
        self.0.join("saved.json")
    }

    /// Present while the overlay has never been booted: made with it,
    /// removed at the first launch. Only a VM whose disk is still the base
    /// image's content can be restored from a warm image (whose memory
    /// caches that content).
    pub fn pristine(&self) -> PathBuf {
        self.0.join("pristine")
    }

    /// Written (with the QEMU's pid) before a warm clone is launched,
    /// removed once it has its identity: a clone found running with it was
    /// cut short and is handed its identity by the next reconcile.
    pub fn identity_pending(&self) -> PathBuf {
        self.0.join("identity-pending")
    }

    /// Files of one boot, removed before the next.
    pub fn boot_files(&self) -> [PathBuf; 4] {
        [
            self.ready(),
            self.pidfile(),
            self.console_log(),
            self.carrier(),
        ]
    }
}

/// What a VM's saved state was taken of: a start resumes it only onto the
/// same hardware and seed (anything else discards it, with the reason).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedState {
    pub hardware: VmHardware,
    pub seed_hash: String,
    /// The guest had said it was ready (a resumed VM is ready at once).
    pub ready: bool,
    /// Seconds since the epoch.
    pub saved_at: u64,
    pub bytes: u64,
}

/// The links a QEMU was told are down (QMP `set_link`), with its pid: a
/// record of another process is not this one's.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Carrier {
    pub pid: u32,
    pub down: std::collections::BTreeSet<usize>,
}

/// The parts of a VM that need a new QEMU process when they change.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmHardware {
    pub image: String,
    pub cpus: u32,
    pub memory_mib: u32,
    /// (MAC, network) per NIC, in order.
    pub nics: Vec<(String, String)>,
}
