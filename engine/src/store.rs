//! The lab store: one directory per lab under `<state-dir>/labs/`, holding
//! `topology.json`. The revision of a lab is a hash of that file's bytes, so
//! a save that names a stale revision is refused instead of overwriting
//! someone else's edit.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use topology::{names::check_name, parse_and_validate, to_json, Format, LoadError, Topology};

// Lab records may hold secrets (files, passwords in configs): root's alone.
use crate::fsutil::write_private as write_atomic;

/// The default state directory.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/minivm";
const TOPOLOGY_FILE: &str = "topology.json";
/// Where a lab came from: the absolute path of the file `up` read it from.
/// Absent for labs made in the web editor or seeded from the examples.
const SOURCE_FILE: &str = "source";
/// The revision the file brought the lab to: another one stored since is
/// an edit made elsewhere.
const SOURCE_REVISION_FILE: &str = "source.revision";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid lab name {name:?}: {reason}")]
    BadName {
        name: String,
        reason: topology::names::NameError,
    },
    #[error("no lab named {0:?}")]
    NotFound(String),
    #[error("lab {name:?} was changed elsewhere (revision {current}, you had {expected}); reload it and make your edit again")]
    Conflict {
        name: String,
        expected: String,
        current: String,
    },
    #[error("lab name {name:?} is in use by {by}, with a different topology; give this lab another `name:`, or remove the other one with `minivm down {name} --cleanup`")]
    InUse { name: String, by: String },
    #[error("lab {name:?} was changed elsewhere (the web editor) since it came from {}: bringing the file up would undo those edits{}; run `up` with --force to do it anyway", file.display(), if removes.is_empty() { String::new() } else { format!(" and delete VM(s) {} with their disks", removes.join(", ")) })]
    EditedElsewhere {
        name: String,
        file: PathBuf,
        removes: Vec<String>,
    },
    #[error("lab {name:?} would be {bytes} bytes stored, over the {max} bytes a lab may have (the same limit as reading it back); make it smaller (fewer or shorter files)")]
    TooLarge {
        name: String,
        bytes: usize,
        max: usize,
    },
    #[error("lab {name:?} is invalid")]
    Invalid { name: String, source: LoadError },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What the lab list shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabEntry {
    pub name: String,
    pub revision: String,
    pub nodes: usize,
    pub networks: usize,
    pub links: usize,
}

/// The labs under one state directory.
#[derive(Debug, Clone)]
pub struct LabStore {
    labs_dir: PathBuf,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

pub use topology::revision_of;

/// `t` as stored, refused when [`get`](LabStore::get) could not read it
/// back (the parser's own size limit): a lab never vanishes from the list
/// after a save that was accepted.
fn stored_bytes(t: &Topology) -> Result<Vec<u8>> {
    let bytes = to_json(t).into_bytes();
    if bytes.len() > topology::MAX_FILE_BYTES {
        return Err(StoreError::TooLarge {
            name: t.name.clone(),
            bytes: bytes.len(),
            max: topology::MAX_FILE_BYTES,
        });
    }
    Ok(bytes)
}

/// Removes the temporary files of `file` that a writer killed mid-save
/// left (`.<file>.<pid>.<n>.tmp`). Called under the store's lock, when no
/// other save of this lab can be under way.
fn remove_stale_temps(dir: &Path, file: &str) {
    let prefix = format!(".{file}.");
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) && name.ends_with(".tmp") {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

impl LabStore {
    /// Opens (creating if needed) the store under `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Self> {
        let labs_dir = state_dir.join("labs");
        fs::create_dir_all(&labs_dir).map_err(io_err("create", &labs_dir))?;
        Ok(LabStore { labs_dir })
    }

    fn lab_dir(&self, name: &str) -> Result<PathBuf> {
        check_name(name).map_err(|reason| StoreError::BadName {
            name: name.to_string(),
            reason,
        })?;
        Ok(self.labs_dir.join(name))
    }

    /// Every readable lab, sorted by name. A lab whose file cannot be read is
    /// logged and left out, never deleted.
    pub fn list(&self) -> Result<Vec<LabEntry>> {
        let mut out = Vec::new();
        let rd = fs::read_dir(&self.labs_dir).map_err(io_err("read", &self.labs_dir))?;
        for entry in rd.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if check_name(&name).is_err() {
                continue;
            }
            match self.get(&name) {
                Ok((t, revision)) => out.push(LabEntry {
                    name,
                    revision,
                    nodes: t.nodes.len(),
                    networks: t.networks.len(),
                    links: t.link_count(),
                }),
                Err(StoreError::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(lab = %name, error = %crate::report(&e), "skipping unreadable lab")
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Every readable lab with its topology.
    pub fn list_with_topologies(&self) -> Result<Vec<(String, Topology)>> {
        let mut out = Vec::new();
        for entry in self.list()? {
            if let Ok((t, _)) = self.get(&entry.name) {
                out.push((entry.name, t));
            }
        }
        Ok(out)
    }

    /// A lab and its revision.
    pub fn get(&self, name: &str) -> Result<(Topology, String)> {
        let path = self.lab_dir(name)?.join(TOPOLOGY_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StoreError::NotFound(name.to_string()))
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        let text = String::from_utf8_lossy(&bytes);
        let t = parse_and_validate(&text, Format::Json).map_err(|source| StoreError::Invalid {
            name: name.to_string(),
            source,
        })?;
        Ok((t, revision_of(&bytes)))
    }

    /// Saves a lab (validated first; nothing is written when it is invalid).
    /// `expected` is the revision the caller edited: `None` creates a new lab
    /// and fails if one exists; `Some(rev)` fails unless the stored revision
    /// is still `rev`. Returns the new revision.
    pub fn put(&self, t: &Topology, expected: Option<&str>) -> Result<String> {
        let _lock = self.lock()?;
        self.put_locked(t, expected)
    }

    /// Holds the store's write lock (flock, across processes and threads):
    /// a save compares the revision and writes as one step, so of two saves
    /// from the same revision exactly one wins.
    fn lock(&self) -> Result<fs::File> {
        let path = self.labs_dir.join(".store.lock");
        crate::fsutil::lock_file(&path, true)
            .map_err(io_err("lock", &path))
            .map(|f| f.expect("a waiting lock is always taken"))
    }

    fn put_locked(&self, t: &Topology, expected: Option<&str>) -> Result<String> {
        let problems = topology::validate(t);
        if !problems.is_empty() {
            return Err(StoreError::Invalid {
                name: t.name.clone(),
                source: LoadError::Invalid(problems),
            });
        }
        let dir = self.lab_dir(&t.name)?;
        let current = match self.get(&t.name) {
            Ok((_, rev)) => Some(rev),
            Err(StoreError::NotFound(_)) => None,
            Err(StoreError::Invalid { .. }) => Some("invalid".to_string()),
            Err(e) => return Err(e),
        };
        if current.as_deref() != expected {
            return Err(StoreError::Conflict {
                name: t.name.clone(),
                expected: expected.unwrap_or("none: a new lab").to_string(),
                current: current.unwrap_or_else(|| "none: the lab does not exist".to_string()),
            });
        }
        let bytes = stored_bytes(t)?;
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        remove_stale_temps(&dir, TOPOLOGY_FILE);
        let path = dir.join(TOPOLOGY_FILE);
        write_atomic(&path, &bytes).map_err(io_err("write", &path))?;
        Ok(revision_of(&bytes))
    }

    /// Renames lab `from` to `to`: its whole directory moves (disks, saved
    /// states, snapshots and host-side settings stay with it), then its
    /// topology is saved under the new name. Refused when `to` is taken.
    /// The caller holds the lab's lock and has stopped its VMs.
    pub fn rename(&self, from: &str, to: &str) -> Result<String> {
        let _lock = self.lock()?;
        let (mut t, _) = self.get(from)?;
        let (old, new) = (self.lab_dir(from)?, self.lab_dir(to)?);
        if !vacant(&new) {
            return Err(StoreError::InUse {
                name: to.to_string(),
                by: "another lab".into(),
            });
        }
        t.name = to.to_string();
        let problems = topology::validate(&t);
        if !problems.is_empty() {
            return Err(StoreError::Invalid {
                name: to.to_string(),
                source: LoadError::Invalid(problems),
            });
        }
        let bytes = stored_bytes(&t)?;
        fs::rename(&old, &new).map_err(io_err("rename", &old))?;
        crate::fsutil::sync_parent(&new).map_err(io_err("sync", &new))?;
        // The file it came from names the old lab: it is the web's now.
        let _ = fs::remove_file(new.join(SOURCE_FILE));
        let path = new.join(TOPOLOGY_FILE);
        write_atomic(&path, &bytes).map_err(io_err("write", &path))?;
        Ok(revision_of(&bytes))
    }

    /// The file a lab was last brought up from, if any.
    pub fn source(&self, name: &str) -> Result<Option<PathBuf>> {
        let path = self.lab_dir(name)?.join(SOURCE_FILE);
        match fs::read_to_string(&path) {
            Ok(s) => Ok(Some(PathBuf::from(s))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    /// Whether `t`, read from `file`, may be brought up under its name: a
    /// lab of that name that came from another file, or from the web
    /// editor, is refused unless it holds the very same topology. Returns
    /// the stored revision, if any.
    /// A lab from that very file but edited elsewhere since (its stored
    /// revision is not the one the file brought) is refused unless `force`,
    /// naming the VMs the file would delete.
    pub fn check_from_file(
        &self,
        t: &Topology,
        file: &Path,
        force: bool,
    ) -> Result<Option<String>> {
        let file = fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        match self.get(&t.name) {
            Ok((stored, rev)) => {
                let by = self.source(&t.name)?;
                let brought =
                    fs::read_to_string(self.lab_dir(&t.name)?.join(SOURCE_REVISION_FILE)).ok();
                if by.as_deref() == Some(file.as_path())
                    && stored != *t
                    && !force
                    && brought.is_some_and(|b| b.trim() != rev)
                {
                    return Err(StoreError::EditedElsewhere {
                        name: t.name.clone(),
                        file,
                        removes: stored
                            .nodes
                            .iter()
                            .filter(|n| t.node(&n.name).is_none())
                            .map(|n| n.name.clone())
                            .collect(),
                    });
                }
                if by.as_deref() != Some(file.as_path()) && stored != *t {
                    let by = match by {
                        Some(p) => format!("the file {}", p.display()),
                        None => {
                            "a lab saved in minivm (the web editor or the examples)".to_string()
                        }
                    };
                    return Err(StoreError::InUse {
                        name: t.name.clone(),
                        by,
                    });
                }
                Ok(Some(rev))
            }
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves `t` as read from `file` (for `up -f`), after
    /// [`check_from_file`](Self::check_from_file); nothing is written when
    /// that refuses. Returns the new revision.
    pub fn put_from_file(&self, t: &Topology, file: &Path, force: bool) -> Result<String> {
        let _lock = self.lock()?;
        let current = self.check_from_file(t, file, force)?;
        let rev = self.put_locked(t, current.as_deref())?;
        let file = fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let dir = self.lab_dir(&t.name)?;
        let path = dir.join(SOURCE_FILE);
        write_atomic(&path, file.as_os_str().as_encoded_bytes()).map_err(io_err("write", &path))?;
        let path = dir.join(SOURCE_REVISION_FILE);
        write_atomic(&path, rev.as_bytes()).map_err(io_err("write", &path))?;
        Ok(rev)
    }

    /// When the store holds no lab at all, adds the given ones (the built-in
    /// examples, their `source` files read by `read`), so that a new user
    /// sees something to start from.
    pub fn seed_if_empty(
        &self,
        labs: &[&str],
        read: &mut dyn FnMut(&str) -> std::result::Result<String, String>,
    ) -> Result<usize> {
        if !self.list()?.is_empty() {
            return Ok(0);
        }
        let mut n = 0;
        for text in labs {
            let t = topology::parse_read_and_validate(text, Format::sniff(text), read).map_err(
                |source| StoreError::Invalid {
                    name: "example".into(),
                    source,
                },
            )?;
            self.put(&t, None)?;
            n += 1;
        }
        Ok(n)
    }
}

/// Whether a lab directory is free to take: missing, or holding nothing
/// but the lock file a command that waited for a vanished lab left (then
/// removed).
fn vacant(dir: &Path) -> bool {
    let Ok(rd) = fs::read_dir(dir) else {
        return !dir.exists();
    };
    if !rd.flatten().all(|e| e.file_name() == ".lock") {
        return false;
    }
    let _ = fs::remove_file(dir.join(".lock"));
    fs::remove_dir(dir).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &str = "version: 1\nname: demo\ndefaults: {image: tiny}\nnetworks: [{name: lan}]\nnodes: [{name: vm1, nics: [{network: lan}]}]\n";

    fn store() -> (tempfile::TempDir, LabStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = LabStore::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn seeds_once_and_lists() {
        let (_d, s) = store();
        assert_eq!(
            s.seed_if_empty(&[LAB], &mut |_| Err("none".into()))
                .unwrap(),
            1
        );
        assert_eq!(
            s.seed_if_empty(&[LAB], &mut |_| Err("none".into()))
                .unwrap(),
            0
        );
        let labs = s.list().unwrap();
        assert_eq!(labs.len(), 1);
        assert_eq!((labs[0].nodes, labs[0].networks, labs[0].links), (1, 1, 1));
    }

    #[test]
    fn stale_revision_is_refused_and_changes_nothing() {
        let (_d, s) = store();
        s.seed_if_empty(&[LAB], &mut |_| Err("none".into()))
            .unwrap();
        let (mut t, rev) = s.get("demo").unwrap();
        t.nodes[0].cpus = Some(2);
        let rev2 = s.put(&t, Some(&rev)).unwrap();
        assert_ne!(rev, rev2);
        t.nodes[0].cpus = Some(4);
        assert!(matches!(
            s.put(&t, Some(&rev)),
            Err(StoreError::Conflict { .. })
        ));
        assert_eq!(s.get("demo").unwrap().0.nodes[0].cpus, Some(2));
        assert!(matches!(s.put(&t, None), Err(StoreError::Conflict { .. })));
    }

    #[test]
    fn invalid_lab_is_not_written() {
        let (_d, s) = store();
        let mut t = topology::parse(LAB, Format::Yaml).unwrap();
        t.nodes[0].cpus = Some(0);
        assert!(matches!(s.put(&t, None), Err(StoreError::Invalid { .. })));
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn a_lab_name_in_use_by_another_file_is_refused() {
        let (dir, store) = store();
        let t = topology::parse_and_validate(topology::examples::ROUTER, Format::Yaml).unwrap();
        let (a, b) = (dir.path().join("a.yaml"), dir.path().join("b.yaml"));
        store.put_from_file(&t, &a, false).unwrap();
        // The same file again, edited: fine.
        let mut edited = t.clone();
        edited.nodes.pop();
        let rev = store.put_from_file(&edited, &a, false).unwrap();
        // Another file with the same content: fine (nothing to lose); it
        // becomes the lab's file.
        store.put_from_file(&edited, &b, false).unwrap();
        // Another file with other content: refused, nothing written.
        let err = store.put_from_file(&t, &a, false).unwrap_err().to_string();
        assert!(
            err.contains("in use by the file") && err.contains("b.yaml"),
            "{err}"
        );
        assert_eq!(store.get("router").unwrap().1, rev);
        // A lab saved without a file (web editor, examples) is protected too.
        let mut web = t.clone();
        web.name = "web".into();
        store.put(&web, None).unwrap();
        let mut other = edited.clone();
        other.name = "web".into();
        let err = store
            .put_from_file(&other, &a, false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("a lab saved in minivm"), "{err}");
        assert_eq!(store.source("web").unwrap(), None);
    }

    #[test]
    fn a_file_over_edits_made_elsewhere_needs_force_and_names_what_goes() {
        let (dir, store) = store();
        let t = topology::parse_and_validate(topology::examples::ROUTER, Format::Yaml).unwrap();
        let a = dir.path().join("a.yaml");
        let rev = store.put_from_file(&t, &a, false).unwrap();
        // The file edited and brought up again: its own change, fine.
        let mut from_file = t.clone();
        from_file.nodes[0].cpus = Some(2);
        let rev = {
            let _ = rev;
            store.put_from_file(&from_file, &a, false).unwrap()
        };
        // The web editor adds a VM; the file (without it) is refused, the
        // VM named, nothing written.
        let mut web = from_file.clone();
        let mut extra = web.nodes[0].clone();
        extra.name = "added-on-web".into();
        extra.nics.clear();
        extra.mgmt_address = None;
        web.nodes.push(extra);
        let web_rev = store.put(&web, Some(&rev)).unwrap();
        let err = store
            .put_from_file(&from_file, &a, false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("was changed elsewhere")
                && err.contains("delete VM(s) added-on-web with their disks")
                && err.contains("--force"),
            "{err}"
        );
        assert_eq!(store.get("router").unwrap().1, web_rev);
        // The same content as stored is no change: fine without force.
        assert!(store.check_from_file(&web, &a, false).is_ok());
        // With force it goes ahead.
        store.put_from_file(&from_file, &a, true).unwrap();
        assert_eq!(store.get("router").unwrap().0, from_file);
    }

    #[test]
    fn a_lab_too_large_to_read_back_is_refused_on_save() {
        let (_d, s) = store();
        let mut t = topology::parse(LAB, Format::Yaml).unwrap();
        let base = t.nodes[0].clone();
        for i in 0..6 {
            let mut n = base.clone();
            n.name = format!("big{i}");
            n.nics.clear();
            n.files = (0..4)
                .map(|k| topology::FileSpec {
                    path: format!("/etc/f{k}"),
                    content: Some("x".repeat(60_000)),
                    source: None,
                    mode: None,
                })
                .collect();
            t.nodes.push(n);
        }
        assert!(
            topology::validate(&t).is_empty(),
            "{:?}",
            topology::validate(&t)
        );
        let e = s.put(&t, None).unwrap_err().to_string();
        assert!(e.contains("over the 1048576 bytes a lab may have"), "{e}");
        assert!(s.list().unwrap().is_empty(), "nothing written");
    }

    #[test]
    fn traversal_names_are_refused() {
        let (_d, s) = store();
        for name in ["../etc", "a/b", "", "x\0"] {
            assert!(
                matches!(s.get(name), Err(StoreError::BadName { .. })),
                "{name:?}"
            );
        }
    }
}
