//! The image store: base images under `<state>/images/`, each a read-only
//! qcow2 (`NAME.qcow2`, mode 0444) with its record (`NAME.json`).
//!
//! Invariant: a base image is written once and never again. QEMU opens it
//! only as the backing file of a per-VM overlay; removing it is refused while
//! an overlay uses it.

pub mod build;
pub mod containerdisk;
pub mod reseed;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use topology::names::{check_image_name, NameError};

use crate::fsutil::write_atomic;
use crate::process::{self, ProcessError};

/// The image the README's run command builds and the examples use.
pub const DEFAULT_IMAGE: &str = "tiny";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image name {name:?}: {reason}")]
    BadName { name: String, reason: NameError },
    #[error("no image named {0:?}")]
    NotFound(String),
    #[error("an image named {0:?} already exists; remove it first")]
    Exists(String),
    #[error("{} does not exist", .0.display())]
    MissingFile(PathBuf),
    #[error("{path} is not a disk image QEMU can read: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("{path} is in format {format:?}; supported: {}", SUPPORTED_FORMATS.join(", "))]
    UnsupportedFormat { path: String, format: String },
    #[error("{path} has a backing file ({backing}); import a standalone image (qemu-img convert it first)")]
    HasBacking { path: String, backing: String },
    #[error("{path} makes QEMU read another file ({what} {other:?}): only a self-contained image is imported")]
    ReadsOtherFile {
        path: String,
        what: &'static str,
        other: String,
    },
    #[error("image {name:?} is in use by {}", users.join(", "))]
    InUse { name: String, users: Vec<String> },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Process(#[from] ProcessError),
    /// A fact that stops a build (no cause of ours behind it).
    #[error("image build failed: {0}")]
    Build(String),
    #[error("image build failed: apt-get download failed (run `apt-get update` once?)")]
    AptDownload(#[source] ProcessError),
    #[error("image record {} is unreadable", .path.display())]
    BadRecord {
        path: PathBuf,
        source: serde_json::Error,
    },
}

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ImageError + 'a {
    move |source| ImageError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// What the store records of an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    pub name: String,
    pub format: String,
    pub virtual_size: u64,
    pub file_size: u64,
    pub sha256: String,
    /// `built` or `imported from PATH`.
    pub source: String,
    /// The version of minivm's guest scripts a built image carries (0 for
    /// an imported image, or one built before versions were recorded):
    /// warm starts need [`build::WARM_GUEST_VERSION`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub guest: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Formats `image import` accepts (converted to qcow2 on import).
pub const SUPPORTED_FORMATS: &[&str] = &["qcow2", "raw", "vmdk", "vdi", "vhdx", "vpc"];

#[derive(Debug, Clone)]
pub struct ImageStore {
    dir: PathBuf,
    state_dir: PathBuf,
}

impl ImageStore {
    pub fn open(state_dir: &Path) -> Result<Self> {
        let dir = state_dir.join("images");
        fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        Ok(ImageStore {
            dir,
            state_dir: state_dir.to_path_buf(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Where downloaded packages are kept between builds.
    pub fn cache_dir(&self) -> PathBuf {
        self.state_dir.join("cache")
    }

    /// The qcow2 of an image (which may not exist yet). The name is checked
    /// first, so the path never leaves the store.
    pub fn path(&self, name: &str) -> Result<PathBuf> {
        check_image_name(name).map_err(|reason| ImageError::BadName {
            name: name.to_string(),
            reason,
        })?;
        Ok(self.dir.join(format!("{name}.qcow2")))
    }

    fn record_path(&self, name: &str) -> Result<PathBuf> {
        Ok(self.path(name)?.with_extension("json"))
    }

    pub fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.path(name)?.exists() && self.record_path(name)?.exists())
    }

    pub fn get(&self, name: &str) -> Result<ImageRecord> {
        let rp = self.record_path(name)?;
        let text = match fs::read_to_string(&rp) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ImageError::NotFound(name.to_string()))
            }
            Err(e) => return Err(io_err("read", &rp)(e)),
        };
        serde_json::from_str(&text).map_err(|source| ImageError::BadRecord { path: rp, source })
    }

    /// Every image, sorted by name.
    pub fn list(&self) -> Result<Vec<ImageRecord>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir)
            .map_err(io_err("read", &self.dir))?
            .flatten()
        {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(name) = file.strip_suffix(".json") {
                if let Ok(r) = self.get(name) {
                    out.push(r);
                }
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Imports `file` as image `name`: checked with `qemu-img info`,
    /// converted to a standalone qcow2, made read-only. Nothing is written
    /// unless every check passes.
    pub fn import(&self, name: &str, file: &Path) -> Result<ImageRecord> {
        let dest = self.path(name)?;
        if self.exists(name)? || dest.exists() {
            return Err(ImageError::Exists(name.to_string()));
        }
        if !file.is_file() {
            return Err(ImageError::MissingFile(file.to_path_buf()));
        }
        let shown = file.display().to_string();
        // The file is copied into a work directory of the store first and
        // only the copy is inspected and converted: a file changed after
        // its inspection (a local user's swap) is never what is converted.
        // The conversion runs unprivileged (as nobody): were the
        // inspection fooled, it still could not read a file of root's.
        self.sweep_imports();
        let pid = std::process::id();
        let work = self.dir.join(format!(".{name}.import.{pid}.d"));
        let src = work.join("source");
        let out = work.join("converted.qcow2");
        let tmp = self.dir.join(format!(".{name}.import.{pid}.tmp"));
        let result = (|| {
            let _ = fs::remove_dir_all(&work);
            fs::create_dir(&work).map_err(io_err("create", &work))?;
            fs::set_permissions(&work, fs::Permissions::from_mode(0o700))
                .map_err(io_err("chmod", &work))?;
            fs::copy(file, &src).map_err(io_err("copy", file))?;
            fs::set_permissions(&src, fs::Permissions::from_mode(0o644))
                .map_err(io_err("chmod", &src))?;
            let format = inspect_import(&src, &shown)?;
            let mut convert = Command::new("qemu-img");
            convert
                .args(["convert", "-O", "qcow2", "-f", &format])
                .arg(&src)
                .arg(&out);
            process::run(unprivileged(&mut convert, &work)?)?;
            // Root's own copy of what the converter wrote (its user could
            // still hold the file open), checked again like an import.
            copy_regular(&out, &tmp)?;
            inspect_import(&tmp, &shown)?;
            self.finish(name, &tmp, format!("imported from {shown}"), 0)
        })();
        let _ = fs::remove_dir_all(&work);
        let _ = fs::remove_file(&tmp);
        result
    }

    /// Removes what imports killed half-way left behind (a work directory
    /// or a temporary file whose process is gone).
    fn sweep_imports(&self) {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let Some((_, rest)) = file.rsplit_once(".import.") else {
                continue;
            };
            let pid = rest
                .strip_suffix(".d")
                .or_else(|| rest.strip_suffix(".tmp"))
                .and_then(|p| p.parse::<u32>().ok());
            let gone = pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists());
            if !file.starts_with('.') || !gone {
                continue;
            }
            let path = e.path();
            let removed = match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => fs::remove_dir_all(&path),
                _ => fs::remove_file(&path),
            };
            if let Err(error) = removed {
                tracing::warn!(path = %path.display(), %error, "cannot remove a killed import's leftovers");
            }
        }
    }

    /// Moves a finished qcow2 into place, read-only, with its record.
    pub(crate) fn finish(
        &self,
        name: &str,
        tmp: &Path,
        source: String,
        guest: u32,
    ) -> Result<ImageRecord> {
        let dest = self.path(name)?;
        let info = qemu_img_info(tmp)?;
        let record = ImageRecord {
            name: name.to_string(),
            format: "qcow2".into(),
            virtual_size: info["virtual-size"].as_u64().unwrap_or(0),
            file_size: fs::metadata(tmp).map_err(io_err("stat", tmp))?.len(),
            sha256: sha256_file(tmp)?,
            source,
            guest,
        };
        fs::set_permissions(tmp, fs::Permissions::from_mode(0o444))
            .map_err(io_err("chmod", tmp))?;
        fs::File::open(tmp)
            .and_then(|f| f.sync_all())
            .map_err(io_err("sync", tmp))?;
        fs::rename(tmp, &dest).map_err(io_err("move into place", &dest))?;
        let rp = self.record_path(name)?;
        let json = serde_json::to_string_pretty(&record).expect("a record serializes");
        write_atomic(&rp, json.as_bytes()).map_err(io_err("write", &rp))?;
        Ok(record)
    }

    /// Removes an image, refused while `users` (the overlays or labs that
    /// use it) is not empty.
    pub fn remove(&self, name: &str, users: Vec<String>) -> Result<()> {
        let path = self.path(name)?;
        if !self.exists(name)? {
            return Err(ImageError::NotFound(name.to_string()));
        }
        if !users.is_empty() {
            return Err(ImageError::InUse {
                name: name.to_string(),
                users,
            });
        }
        let sha256 = self.get(name).map(|r| r.sha256).unwrap_or_default();
        let rp = self.record_path(name)?;
        fs::remove_file(&rp).map_err(io_err("remove", &rp))?;
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        // Its warm images go with it.
        crate::warm::WarmStore::open(&self.state_dir).remove_image(name, &sha256);
        Ok(())
    }

    /// Creates a VM's overlay at `dest`: a new qcow2 whose backing file is
    /// image `name`, opened read-only by QEMU. The base is never written.
    pub fn create_overlay(&self, name: &str, dest: &Path) -> Result<()> {
        let base = self.path(name)?;
        if !self.exists(name)? {
            return Err(ImageError::NotFound(name.to_string()));
        }
        process::run(
            Command::new("qemu-img")
                .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
                .arg(&base)
                .arg(dest),
        )?;
        Ok(())
    }

    /// Overlays under `<state>/labs/*/vms/*/` whose backing file is this
    /// image, as `lab/vm`, and snapshots' copies of them, as `lab snapshot
    /// name/vm`.
    pub fn overlays_using(&self, name: &str) -> Result<Vec<String>> {
        let want = self.path(name)?;
        let mut users = Vec::new();
        let labs = self.state_dir.join("labs");
        let Ok(labs_rd) = fs::read_dir(&labs) else {
            return Ok(users);
        };
        let backed_by_us = |overlay: &Path| {
            qemu_img_info(overlay).is_ok_and(|info| {
                let backing = info["full-backing-filename"]
                    .as_str()
                    .or(info["backing-filename"].as_str());
                backing.map(Path::new) == Some(want.as_path())
            })
        };
        for lab in labs_rd.flatten() {
            let lab_name = lab.file_name().to_string_lossy().into_owned();
            if let Ok(vms) = fs::read_dir(lab.path().join("vms")) {
                for vm in vms.flatten() {
                    let overlay = crate::vmdir::VmDir::new(vm.path()).overlay();
                    if overlay.exists() && backed_by_us(&overlay) {
                        users.push(format!("{lab_name}/{}", vm.file_name().to_string_lossy()));
                    }
                }
            }
            // Snapshots' copies of overlays (`<lab>/snapshots/<name>/<vm>.qcow2`).
            if let Ok(snaps) = fs::read_dir(lab.path().join("snapshots")) {
                for snap in snaps.flatten() {
                    let Ok(files) = fs::read_dir(snap.path()) else {
                        continue;
                    };
                    for f in files.flatten() {
                        let p = f.path();
                        if p.extension().is_some_and(|e| e == "qcow2") && backed_by_us(&p) {
                            users.push(format!(
                                "{lab_name} snapshot {}/{}",
                                snap.file_name().to_string_lossy(),
                                p.file_stem().unwrap_or_default().to_string_lossy()
                            ));
                        }
                    }
                }
            }
        }
        users.sort();
        Ok(users)
    }
}

/// `qemu-img info --output=json` of a file. `-U` (no lock): reading the
/// header of an image in use must not fail or disturb the running VM.
/// Checks a file about to be imported (`shown` is the name the user gave):
/// a format minivm takes, self-contained, a raw one with a partition
/// table. Returns its format.
fn inspect_import(file: &Path, shown: &str) -> Result<String> {
    let info = qemu_img_info(file).map_err(|e| ImageError::Unreadable {
        path: shown.to_string(),
        reason: e.to_string(),
    })?;
    let format = info["format"].as_str().unwrap_or("").to_string();
    if let Some(backing) = info.get("backing-filename").and_then(|b| b.as_str()) {
        return Err(ImageError::HasBacking {
            path: shown.to_string(),
            backing: backing.to_string(),
        });
    }
    if let Some((what, other)) = outside_reference(&info, &file.to_string_lossy()) {
        return Err(ImageError::ReadsOtherFile {
            path: shown.to_string(),
            what,
            other,
        });
    }
    // qemu-img calls any unrecognised file "raw": insist on a partition
    // table or a known format, so that a random file is not a disk.
    if !SUPPORTED_FORMATS.contains(&format.as_str()) {
        return Err(ImageError::UnsupportedFormat {
            path: shown.to_string(),
            format,
        });
    }
    if format == "raw" && !has_mbr_or_gpt(file)? {
        return Err(ImageError::Unreadable {
            path: shown.to_string(),
            reason: "a raw file without a partition table (MBR or GPT) is not a bootable disk"
                .into(),
        });
    }
    Ok(format)
}

/// `cmd` made to run as `nobody` (no VM runs as it), with no environment,
/// in `work` (handed to that user): for tools that parse hostile files.
/// As another user than root, `cmd` runs as that user.
fn unprivileged<'a>(cmd: &'a mut Command, work: &Path) -> Result<&'a mut Command> {
    use std::os::unix::process::CommandExt;
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .current_dir(work);
    if crate::process::euid() == 0 {
        let u = crate::vm::NOBODY;
        std::os::unix::fs::chown(work, Some(u.uid), Some(u.gid)).map_err(io_err("chown", work))?;
        cmd.uid(u.uid).gid(u.gid);
    }
    Ok(cmd)
}

/// Copies the regular file `from` (not through a link) to a new `to`.
fn copy_regular(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut src = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(from)
        .map_err(io_err("open", from))?;
    if !src.metadata().map_err(io_err("stat", from))?.is_file() {
        return Err(ImageError::Unreadable {
            path: from.display().to_string(),
            reason: "the converter left something that is not a file".into(),
        });
    }
    let _ = fs::remove_file(to);
    let mut dst = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(to)
        .map_err(io_err("create", to))?;
    std::io::copy(&mut src, &mut dst).map_err(io_err("copy", from))?;
    Ok(())
}

/// The first file other than `file` that `qemu-img info`'s answer says
/// QEMU would open for it: a backing file, a qcow2 external data file, a
/// VMDK extent (a FLAT extent naming `/etc/shadow` would be copied into
/// the image), any child node's file.
fn outside_reference(info: &serde_json::Value, file: &str) -> Option<(&'static str, String)> {
    match info {
        serde_json::Value::Object(m) => {
            for (key, what) in [
                ("backing-filename", "backing file"),
                ("full-backing-filename", "backing file"),
                ("data-file", "data file"),
                ("filename", "extent or file"),
            ] {
                if let Some(v) = m.get(key) {
                    let other = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    if key != "filename" || other != file {
                        return Some((what, other));
                    }
                }
            }
            m.values().find_map(|v| outside_reference(v, file))
        }
        serde_json::Value::Array(a) => a.iter().find_map(|v| outside_reference(v, file)),
        _ => None,
    }
}

pub fn qemu_img_info(path: &Path) -> Result<serde_json::Value, ProcessError> {
    let out = process::stdout(
        Command::new("qemu-img")
            .args(["info", "-U", "--output=json"])
            .arg(path),
    )?;
    serde_json::from_str(&out).map_err(|e| ProcessError::Failed {
        program: "qemu-img".into(),
        status: "ok".into(),
        stderr: format!("unparsable JSON: {e}"),
    })
}

fn has_mbr_or_gpt(file: &Path) -> Result<bool> {
    let mut buf = [0u8; 1024];
    let mut f = fs::File::open(file).map_err(io_err("open", file))?;
    let n = f.read(&mut buf).map_err(io_err("read", file))?;
    Ok((n >= 512 && buf[510] == 0x55 && buf[511] == 0xaa)
        || (n >= 520 && &buf[512..520] == b"EFI PART"))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = fs::File::open(path).map_err(io_err("open", path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io_err("read", path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_converter_runs_as_nobody_with_no_environment() {
        use super::{unprivileged, Command};
        let d = tempfile::tempdir().unwrap();
        let work = d.path().join("w");
        std::fs::create_dir(&work).unwrap();
        let mut c = Command::new("sh");
        c.args(["-c", "id -u; echo \"token=${MINIVM_TOKEN:-none}\""])
            .env("MINIVM_TOKEN", "secret");
        let out = unprivileged(&mut c, &work).unwrap().output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        let uid = match crate::process::euid() {
            0 => crate::vm::NOBODY.uid,
            me => me,
        };
        assert_eq!(said, format!("{uid}\ntoken=none\n"));
    }

    #[test]
    fn an_import_killed_half_way_leaves_nothing_for_long() {
        let d = tempfile::tempdir().unwrap();
        let store = super::ImageStore::open(d.path()).unwrap();
        // 4194305 is above the kernel's largest pid: that process is gone.
        let work = store.dir.join(".x.import.4194305.d");
        std::fs::create_dir_all(work.join("sub")).unwrap();
        std::fs::write(store.dir.join(".x.import.4194305.tmp"), b"half").unwrap();
        // One of a live process (this one) is left alone.
        let live = store
            .dir
            .join(format!(".y.import.{}.tmp", std::process::id()));
        std::fs::write(&live, b"busy").unwrap();
        store.sweep_imports();
        let mut left: Vec<_> = std::fs::read_dir(&store.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [live.file_name().unwrap().to_string_lossy()]);
    }

    use super::outside_reference;
    use serde_json::json;

    #[test]
    fn a_flat_extent_a_data_file_or_a_backing_file_is_another_file() {
        let flat = json!({
            "children": [
                {"name": "extents.0", "info": {"filename": "/etc/shadow", "format": "file"}},
                {"name": "file", "info": {"filename": "/s/x.tmp", "format": "file"}}
            ],
            "filename": "/s/x.tmp",
            "format": "vmdk",
            "format-specific": {"type": "vmdk", "data": {
                "create-type": "monolithicFlat",
                "extents": [{"filename": "/etc/shadow", "format": "FLAT"}]
            }}
        });
        assert_eq!(
            outside_reference(&flat, "/s/x.tmp"),
            Some(("extent or file", "/etc/shadow".into()))
        );
        let data_file = json!({"filename": "/s/x.tmp", "format": "qcow2",
            "format-specific": {"type": "qcow2", "data": {"data-file": "/etc/shadow"}}});
        assert_eq!(
            outside_reference(&data_file, "/s/x.tmp"),
            Some(("data file", "/etc/shadow".into()))
        );
        let backing = json!({"filename": "/s/x.tmp", "full-backing-filename": "/dev/sda"});
        assert_eq!(
            outside_reference(&backing, "/s/x.tmp"),
            Some(("backing file", "/dev/sda".into()))
        );
    }

    #[test]
    fn a_self_contained_image_names_only_itself() {
        let sparse = json!({
            "children": [{"name": "file", "info": {"filename": "/s/x.tmp", "format": "file"}}],
            "filename": "/s/x.tmp",
            "format": "vmdk",
            "format-specific": {"type": "vmdk", "data": {
                "create-type": "monolithicSparse",
                "extents": [{"filename": "/s/x.tmp", "format": ""}]
            }}
        });
        assert_eq!(outside_reference(&sparse, "/s/x.tmp"), None);
    }
}
