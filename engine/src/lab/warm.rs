//! Warm starts: making a warm image (one guest booted to the point just
//! before identity, its memory saved) and handing a clone restored from it
//! its identity. The shape, the store and the identity text are in
//! `crate::warm`; a clone's launch is `apply.rs`'s `start_vm`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use topology::net::Mac;

use super::{Engine, VmDir};
use crate::qemu::{Nic, NicBackend, VmSpec};
use crate::warm::{Lookup, Shape, WarmRecord};

/// How long a warm image's boot may take (the frr image under TCG on a
/// busy machine is the slowest).
const WARM_BOOT_LIMIT: Duration = Duration::from_secs(180);
/// The line the guest prints when it has stopped short of identity.
const WARM_MARKER: &str = "minivm: warm";

/// Why a VM does not start warm, or why a clone cannot take its identity.
/// Each says its own part; the cause is its source.
#[derive(Debug, thiserror::Error)]
pub enum WarmError {
    #[error("not in the topology")]
    NotInTopology,
    #[error("image {0} is imported; only images minivm builds start warm")]
    Imported(String),
    #[error(
        "image {0} was built before warm starts (`minivm image rm {0}` and build it again to get them)"
    )]
    TooOld(String),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// No warm image yet (`why`), and making one failed.
    #[error("{why}, and making one failed")]
    Make { why: String, source: Box<WarmError> },
    #[error(transparent)]
    Ids(#[from] super::ids::IdError),
    #[error("cannot write its seed")]
    Seed(#[source] crate::process::ProcessError),
    #[error(transparent)]
    Launch(#[from] crate::vm::VmError),
    /// The warm guest's boot, with QEMU's or the guest's last words.
    #[error("{0}")]
    Boot(String),
    #[error("the warm guest (QEMU's log: {log})")]
    Guest { log: String, source: Box<WarmError> },
    #[error("the guest agent")]
    Agent(#[source] crate::qga::QgaError),
    #[error("QMP {0}")]
    Qmp(&'static str, #[source] std::io::Error),
    #[error("cannot save its state: {0}")]
    Save(String),
    #[error("{} --version", .0.display())]
    Version(PathBuf, #[source] std::io::Error),
    #[error("{} --version gave no version", .0.display())]
    NoVersion(PathBuf),
    #[error("setting the clock")]
    Clock(#[source] crate::qga::QgaError),
    #[error("the host's random bytes")]
    Entropy(#[source] std::io::Error),
    #[error("/etc/minivm/identity")]
    Identity(#[source] crate::qga::QgaError),
    #[error("/etc/minivm/identity exited with {code}: {output}")]
    IdentityFailed { code: i32, output: String },
}

fn io(action: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> WarmError {
    let path = path.to_path_buf();
    move |source| WarmError::Io {
        action,
        path,
        source,
    }
}

impl Engine {
    /// The shape `node` of `t` would be restored as, or why it cannot
    /// start warm at all (an imported image, an image built before warm
    /// starts).
    pub(super) fn warm_shape(
        &self,
        t: &topology::Topology,
        name: &str,
    ) -> Result<Shape, WarmError> {
        let hw = crate::plan::desired_hardware(t, name).ok_or(WarmError::NotInTopology)?;
        let image = hw.image.as_str();
        let rec = self.images.get(image)?;
        if rec.guest < crate::image::build::WARM_GUEST_VERSION {
            return Err(if rec.guest == 0 && !rec.source.starts_with("built") {
                WarmError::Imported(image.to_string())
            } else {
                WarmError::TooOld(image.to_string())
            });
        }
        let host = crate::warm::Host {
            image_sha256: rec.sha256,
            guest: rec.guest,
            qemu: qemu_version(&self.qemu)?,
            accel: self.accel.accel.name().to_string(),
            tb_mib: crate::qemu::tcg_tb_mib(),
        };
        Ok(Shape::new(&hw, host))
    }

    /// The warm image of `shape`'s saved state, made now when there is
    /// none (one boot, under a lock so that VMs of one shape started
    /// together make it once). `Err` is the reason to boot cold.
    pub(super) fn warm_image(&self, shape: &Shape) -> Result<PathBuf, WarmError> {
        let key = shape.key();
        // The first look names what changed (and removes the stale image).
        let why = match self.warm.lookup(shape) {
            Lookup::Found(p) => return Ok(p),
            Lookup::Missing(why) => why,
        };
        fs::create_dir_all(self.warm.dir()).map_err(io("create", self.warm.dir()))?;
        let lock = self.warm.lock_path(&key);
        let _held = crate::fsutil::lock_file(&lock, true).map_err(io("lock", &lock))?;
        // Made by another VM (or process) while this one waited.
        if let Lookup::Found(p) = self.warm.lookup(shape) {
            return Ok(p);
        }
        tracing::info!(shape = %shape.describe(), reason = %why, "making a warm image (one cold boot)");
        let made = self.make_warm_image(shape, &key);
        made.map_err(|e| WarmError::Make {
            why,
            source: Box::new(e),
        })?;
        let removed = self.warm.evict(crate::warm::WarmStore::cap_bytes(), &key);
        if !removed.is_empty() {
            tracing::info!(?removed, "warm images over the size cap removed");
        }
        Ok(self.warm.state(&key))
    }

    /// Boots one guest of `shape` (isolated NICs with placeholder
    /// addresses, a throwaway overlay) up to its warm point and saves it.
    fn make_warm_image(&self, shape: &Shape, key: &str) -> Result<(), WarmError> {
        let started = Instant::now();
        // What a killed maker of this key left (the lock is ours now).
        if let Ok(rd) = fs::read_dir(self.warm.dir()) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!(".make-{key}-"))
                {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        let work = self
            .warm
            .dir()
            .join(format!(".make-{key}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work).map_err(io("create", &work))?;
        // Its guest runs as the range's warm id; what it made is root's
        // once it is gone (every clone's QEMU reads it).
        let who = self.ids.as_ref().map(super::Ids::warm);
        let give = |p: &std::path::Path| match who {
            Some(w) => super::ids::give(p, w),
            None => Ok(()),
        };
        let result = (|| {
            let dir = VmDir::new(work.clone());
            give(&work)?;
            self.images.create_overlay(&shape.image, &dir.overlay())?;
            give(&dir.overlay())?;
            // The devices a clone has: a seed disk and a fw_cfg entry (never
            // read by a warm guest).
            let placeholder = crate::seed::SeedFiles {
                meta_data: String::new(),
                user_data: String::new(),
                network_config: String::new(),
                minivm_conf: "hostname warm\n".into(),
            };
            crate::seed::write_vfat(&placeholder, &dir.seed()).map_err(WarmError::Seed)?;
            crate::fsutil::write_atomic(&dir.fw_cfg_conf(), placeholder.minivm_conf.as_bytes())
                .map_err(io("write", &dir.fw_cfg_conf()))?;
            let spec = VmSpec {
                lab: ".warm".into(),
                name: key.to_string(),
                accel: self.accel.accel,
                cpus: shape.cpus,
                memory_mib: shape.memory_mib,
                disk: dir.overlay(),
                seed: Some(dir.seed()),
                fw_cfg_config: Some(dir.fw_cfg_conf()),
                nics: (0..shape.nics)
                    .map(|i| Nic {
                        mac: crate::warm::placeholder_mac(i),
                        backend: NicBackend::Isolated,
                    })
                    .collect(),
                run_dir: work.clone(),
                wait_for_serial: true,
                incoming: None,
                warm: true,
            };
            let mut child = crate::vm::launch_with(&self.qemu, &spec, Vec::new(), who, true)?;
            let boot = (|| {
                wait_warm_marker(&dir, &mut child)?;
                // The agent answers: a clone can be handed its identity.
                crate::qga::Qga::connect(&dir.qga_socket(), Duration::from_secs(30))
                    .map_err(WarmError::Agent)?;
                let mut q = crate::qmp::Qmp::connect(&dir.qmp_socket())
                    .map_err(|e| WarmError::Qmp("connect", e))?;
                q.execute_with("stop", serde_json::json!({}))
                    .map_err(|e| WarmError::Qmp("stop", e))?;
                let state = work.join("state");
                super::saved::migrate_to_file(&mut q, &state, who).map_err(WarmError::Save)?;
                let _ = q.execute("quit");
                Ok::<_, WarmError>(state)
            })();
            // The guest never runs on from its warm point.
            let _ = child.kill();
            let _ = child.wait();
            let state = boot.map_err(|e| {
                let log = crate::fsutil::read_text(&dir.qemu_log()).unwrap_or_default();
                match log.trim() {
                    "" => e,
                    l => WarmError::Guest {
                        log: l.to_string(),
                        source: Box::new(e),
                    },
                }
            })?;
            let bytes = fs::metadata(&state).map(|m| m.len()).unwrap_or(0);
            // Root's, readable by the QEMU of every clone (its guest, which
            // wrote it, is gone).
            use std::os::unix::fs::PermissionsExt;
            for p in [&work, &state] {
                super::ids::take_back(p)?;
            }
            fs::set_permissions(&state, fs::Permissions::from_mode(0o644))
                .map_err(io("chmod", &state))?;
            fs::File::open(&state)
                .and_then(|f| f.sync_all())
                .map_err(io("sync", &state))?;
            // Nothing but the state is kept (no file of its guest's).
            for e in fs::read_dir(&work).map_err(io("read", &work))?.flatten() {
                if e.path() != state {
                    let _ = fs::remove_file(e.path());
                }
            }
            let dest = self.warm.path(key);
            let _ = fs::remove_dir_all(&dest);
            fs::rename(&work, &dest).map_err(io("rename", &work))?;
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o755))
                .map_err(io("chmod", &dest))?;
            let record = WarmRecord {
                shape: shape.clone(),
                bytes,
                made_at: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                boot_secs: started.elapsed().as_secs_f64(),
            };
            let path = self.warm.record_path(key);
            crate::fsutil::write_atomic(
                &path,
                serde_json::to_string(&record)
                    .expect("serializes")
                    .as_bytes(),
            )
            .map_err(io("write", &path))
        })();
        let _ = fs::remove_dir_all(&work);
        result
    }

    /// Hands a clone, restored and running, its identity: the clock, then
    /// `/etc/minivm/identity` with the host's random bytes, its addresses
    /// and its minivm.conf on stdin. Returns when the guest is configured
    /// and has said it is ready.
    pub(super) fn give_identity(
        &self,
        dir: &VmDir,
        macs: &[Mac],
        minivm_conf: &str,
    ) -> Result<(), WarmError> {
        let mut qga = crate::qga::Qga::connect(&dir.qga_socket(), Duration::from_secs(30))
            .map_err(WarmError::Agent)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        qga.execute("guest-set-time", Some(serde_json::json!({ "time": now })))
            .map_err(WarmError::Clock)?;
        let entropy = crate::warm::host_entropy(64).map_err(WarmError::Entropy)?;
        let conf = crate::warm::identity_conf(minivm_conf, macs, &entropy);
        let r = qga
            .exec_with_input(
                "/etc/minivm/identity",
                &[],
                conf.as_bytes(),
                Duration::from_secs(180),
            )
            .map_err(WarmError::Identity)?;
        if r.exit_code != 0 {
            return Err(WarmError::IdentityFailed {
                code: r.exit_code,
                output: format!("{}{}", r.stdout, r.stderr),
            });
        }
        Ok(())
    }
}

/// Reads the warm guest's serial console until it says it stopped short
/// of identity; its last lines if it dies or takes too long.
fn wait_warm_marker(dir: &VmDir, child: &mut std::process::Child) -> Result<(), WarmError> {
    boot_console(dir, child).map_err(WarmError::Boot)
}

/// [`wait_warm_marker`], its outcome in words (the guest's and QEMU's).
fn boot_console(dir: &VmDir, child: &mut std::process::Child) -> Result<(), String> {
    let deadline = Instant::now() + WARM_BOOT_LIMIT;
    let stream = loop {
        match UnixStream::connect(dir.serial_socket()) {
            Ok(s) => break s,
            Err(e) => {
                if let Ok(Some(st)) = child.try_wait() {
                    return Err(format!("QEMU exited ({st}) before its console opened"));
                }
                if Instant::now() > deadline {
                    return Err(format!("no console: {e}"));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut tail: std::collections::VecDeque<String> = Default::default();
    let mut line = Vec::new();
    loop {
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return Err(format!("the console closed: {}", last(&tail))),
            Ok(_) if line.ends_with(b"\n") => {
                let text = String::from_utf8_lossy(&line).trim().to_string();
                line.clear();
                if text.contains(WARM_MARKER) {
                    return Ok(());
                }
                tail.push_back(text);
                if tail.len() > 5 {
                    tail.pop_front();
                }
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e.to_string()),
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(format!("QEMU exited ({st}): {}", last(&tail)));
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the guest did not reach its warm point within {WARM_BOOT_LIMIT:?}: {}",
                last(&tail)
            ));
        }
    }
}

fn last(tail: &std::collections::VecDeque<String>) -> String {
    tail.iter().cloned().collect::<Vec<_>>().join(" | ")
}

/// `qemu-system-x86_64 --version`'s first line, asked once per binary.
fn qemu_version(qemu: &std::path::Path) -> Result<String, WarmError> {
    static SEEN: OnceLock<std::sync::Mutex<std::collections::HashMap<PathBuf, String>>> =
        OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    if let Some(v) = seen.lock().expect("not poisoned").get(qemu) {
        return Ok(v.clone());
    }
    let out = std::process::Command::new(qemu)
        .arg("--version")
        .output()
        .map_err(|e| WarmError::Version(qemu.to_path_buf(), e))?;
    let v = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    if !out.status.success() || v.is_empty() {
        return Err(WarmError::NoVersion(qemu.to_path_buf()));
    }
    seen.lock()
        .expect("not poisoned")
        .insert(qemu.to_path_buf(), v.clone());
    Ok(v)
}
