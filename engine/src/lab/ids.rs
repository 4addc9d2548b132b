//! A uid and gid of its own for every VM's QEMU (as libvirt's dynamic
//! ownership or systemd's `DynamicUser`): code that escapes one guest's
//! QEMU holds that VM's files and nothing of any other VM or lab.
//!
//! - The ids come from a range the engine owns (uid = gid), never one the
//!   user database names. The range's first id is kept for the guests that
//!   make warm images (their files are taken back by root once made).
//! - A VM's id is its directory's owner: claimed when the VM first starts,
//!   kept across restarts, renames and snapshots, freed when the directory
//!   goes. The directory is 0700: no other VM's id can look inside.
//! - Claims are host-wide, not per state directory: a registry
//!   (`/var/lib/minivm/ids/<id>`, root-only, under a lock) names the VM
//!   directory each id was handed to. An entry whose directory is gone, or
//!   no longer owned by that id, is free again. A directory whose id the
//!   registry gives to another live directory (a copied state directory)
//!   gets a new id.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::vm::RunAs;

/// Where the engine hands its ids out from, and where it records them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// The first id of the range (kept for warm-image guests).
    pub first: u32,
    /// How many ids the range has.
    pub count: u32,
    /// One file per claimed id, naming the VM directory it belongs to.
    pub registry: PathBuf,
}

/// Why no id could be had.
#[derive(Debug, thiserror::Error)]
pub enum IdError {
    #[error(
        "every id of the VM range {first}..{} is taken (one per VM of every lab on this host); delete VMs or labs",
        first + count
    )]
    Exhausted { first: u32, count: u32 },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a directory of its own (a link or another kind of file)", .0.display())]
    NotADirectory(PathBuf),
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> IdError + 'a {
    move |source| IdError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl Ids {
    /// The host's range: 1,900,000,000 and the 65,535 ids after it. Above
    /// the ranges systemd gives containers (up to 1,879,048,191), below its
    /// foreign range (2,147,352,576) and 2^31.
    pub const FIRST: u32 = 1_900_000_000;
    pub const COUNT: u32 = 65_536;

    /// The host's ids and registry.
    pub fn host() -> Ids {
        Ids {
            first: Self::FIRST,
            count: Self::COUNT,
            registry: PathBuf::from("/var/lib/minivm/ids"),
        }
    }

    /// Whether `id` is one the engine hands out (a process running as it
    /// is one of minivm's QEMUs).
    pub fn in_host_range(id: u32) -> bool {
        id >= Self::FIRST && id - Self::FIRST < Self::COUNT
    }

    fn contains(&self, id: u32) -> bool {
        id > self.first && id - self.first < self.count
    }

    /// The id warm-image guests run as.
    pub fn warm(&self) -> RunAs {
        RunAs {
            uid: self.first,
            gid: self.first,
        }
    }

    /// The id of the VM whose directory is `dir`: the directory's owner
    /// when the registry agrees, else a free id, claimed by recording it
    /// and handing it the directory (0700). `dir` must exist.
    pub fn claim(&self, dir: &Path) -> Result<RunAs, IdError> {
        let owner = own_dir(dir)?;
        fs::create_dir_all(&self.registry).map_err(io("create", &self.registry))?;
        fs::set_permissions(&self.registry, fs::Permissions::from_mode(0o700))
            .map_err(io("chmod", &self.registry))?;
        let lock = self.registry.join(".lock");
        let _held = crate::fsutil::lock_file(&lock, true)
            .map_err(io("lock", &lock))?
            .expect("a waiting lock is always taken");
        let dir = fs::canonicalize(dir).map_err(io("resolve", dir))?;
        if self.contains(owner) {
            match self.holder(owner) {
                Some(d) if d == dir => return Ok(as_run(owner)),
                // Its entry is stale (renamed, or a registry lost): this
                // directory's again.
                None => {
                    self.record(owner, &dir)?;
                    return Ok(as_run(owner));
                }
                // Another live directory holds it (a copy): a new id.
                Some(_) => {}
            }
        }
        let system = system_ids();
        let running = process_ids(self);
        let id = (self.first + 1..self.first.saturating_add(self.count))
            .find(|i| !system.contains(i) && !running.contains(i) && self.holder(*i).is_none())
            .ok_or(IdError::Exhausted {
                first: self.first,
                count: self.count,
            })?;
        self.record(id, &dir)?;
        give(&dir, as_run(id))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).map_err(io("chmod", &dir))?;
        Ok(as_run(id))
    }

    /// The live directory that holds `id`: the one its entry names, when
    /// that still exists and is owned by `id`.
    fn holder(&self, id: u32) -> Option<PathBuf> {
        let entry = self.registry.join(id.to_string());
        let named = crate::fsutil::read_plain(&entry, 4096).ok()?;
        let dir = PathBuf::from(named.trim_end_matches('\n'));
        let m = fs::symlink_metadata(&dir).ok()?;
        (m.is_dir() && m.uid() == id).then_some(dir)
    }

    fn record(&self, id: u32, dir: &Path) -> Result<(), IdError> {
        let entry = self.registry.join(id.to_string());
        let text = format!("{}\n", dir.display());
        crate::fsutil::write_private(&entry, text.as_bytes()).map_err(io("write", &entry))
    }
}

fn as_run(id: u32) -> RunAs {
    RunAs { uid: id, gid: id }
}

/// The owner of `dir`, which must be a directory itself (not a link).
fn own_dir(dir: &Path) -> Result<u32, IdError> {
    let m = fs::symlink_metadata(dir).map_err(io("stat", dir))?;
    if !m.is_dir() {
        return Err(IdError::NotADirectory(dir.to_path_buf()));
    }
    Ok(m.uid())
}

/// Hands `path` to `who`. A link is never followed (`lchown`): a name a
/// QEMU planted gives it nothing.
pub fn give(path: &Path, who: RunAs) -> Result<(), IdError> {
    std::os::unix::fs::lchown(path, Some(who.uid), Some(who.gid)).map_err(io("chown", path))
}

/// Takes `path` back for root (a file a QEMU wrote that others will read).
pub fn take_back(path: &Path) -> Result<(), IdError> {
    std::os::unix::fs::lchown(path, Some(0), Some(0)).map_err(io("chown", path))
}

/// Every id the user database names, as a user or a group.
fn system_ids() -> BTreeSet<u32> {
    let mut ids = BTreeSet::new();
    for db in ["/etc/passwd", "/etc/group"] {
        let text = fs::read_to_string(db).unwrap_or_default();
        ids.extend(
            text.lines()
                .filter_map(|l| l.split(':').nth(2))
                .filter_map(|f| f.parse::<u32>().ok()),
        );
    }
    ids
}

/// Every id of the range that a live process runs as (a QEMU whose
/// directory is elsewhere: a warm-image guest, another state directory's).
fn process_ids(ids: &Ids) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        if let Ok(m) = e.metadata() {
            if e.file_name().to_string_lossy().parse::<u32>().is_ok() && ids.contains(m.uid()) {
                out.insert(m.uid());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(registry: &Path, count: u32) -> Ids {
        Ids {
            // A range of its own per test process: tests run in parallel.
            first: 1_950_000_000 + (std::process::id() % 1000) * 64,
            count,
            registry: registry.to_path_buf(),
        }
    }

    #[test]
    fn each_directory_gets_its_own_id_and_keeps_it() {
        let t = tempfile::tempdir().unwrap();
        let ids = ids(&t.path().join("reg"), 8);
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        let ia = ids.claim(&a).unwrap();
        let ib = ids.claim(&b).unwrap();
        assert_ne!(ia, ib);
        assert_ne!(ia.uid, ids.first, "the warm id is never a VM's");
        assert_eq!(ids.claim(&a).unwrap(), ia, "kept across starts");
        let m = fs::metadata(&a).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o777),
            (ia.uid, ia.gid, 0o700)
        );

        // Renamed (a lab renamed): the directory keeps its id.
        let moved = t.path().join("moved");
        fs::rename(&a, &moved).unwrap();
        assert_eq!(ids.claim(&moved).unwrap(), ia);

        // A copy that carries the owner over gets an id of its own.
        let copy = t.path().join("copy");
        fs::create_dir(&copy).unwrap();
        give(&copy, ia).unwrap();
        let ic = ids.claim(&copy).unwrap();
        assert!(ic != ia && ic != ib);
        assert_eq!(ids.claim(&moved).unwrap(), ia);

        // Gone: its id is free again.
        fs::remove_dir(&moved).unwrap();
        let d = t.path().join("d");
        fs::create_dir(&d).unwrap();
        assert_eq!(ids.claim(&d).unwrap(), ia);
    }

    #[test]
    fn a_full_range_is_a_clear_error_and_a_link_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let ids = ids(&t.path().join("reg"), 3);
        for n in ["a", "b"] {
            fs::create_dir(t.path().join(n)).unwrap();
            ids.claim(&t.path().join(n)).unwrap();
        }
        let c = t.path().join("c");
        fs::create_dir(&c).unwrap();
        let e = ids.claim(&c).unwrap_err().to_string();
        assert!(e.contains("every id of the VM range"), "{e}");
        assert_eq!(fs::metadata(&c).unwrap().uid(), 0, "nothing changed");

        let link = t.path().join("link");
        std::os::unix::fs::symlink(&c, &link).unwrap();
        let e = ids.claim(&link).unwrap_err().to_string();
        assert!(e.contains("not a directory of its own"), "{e}");
    }

    #[test]
    fn the_host_range_avoids_the_user_database_and_nobody() {
        let sys = system_ids();
        assert!(sys.contains(&0));
        let host = Ids::host();
        assert!(!Ids::in_host_range(65534));
        assert!(Ids::in_host_range(host.first + 1));
        assert!(!sys.iter().any(|i| Ids::in_host_range(*i)));
    }
}
