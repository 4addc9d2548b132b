//! File helpers shared by everything that writes user data.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Writes `bytes` to `path` atomically: a temporary file in the same
/// directory, fsync, rename over the target, fsync of the directory. A reader
/// sees the old content or the new, never a torn mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o666)
}

/// [`write_atomic`] of a file only its owner may read (0600 from the moment
/// it exists: a secret is never world-readable, not even for a moment).
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_mode(path, bytes, 0o600)
}

fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = parent_dir(path)?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_string_lossy();
    // Unique per process and per call: two threads writing the same file
    // never share a temporary file.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let result = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// The directory `path` is in: `.` for a bare file name (whose
/// `Path::parent` is the empty path, which cannot be opened).
pub fn parent_dir(path: &Path) -> io::Result<&Path> {
    match path.parent() {
        Some(p) if p.as_os_str().is_empty() => Ok(Path::new(".")),
        Some(p) => Ok(p),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has no parent",
        )),
    }
}

/// Fsyncs the directory `path` is in, so that a rename into it lasts.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    File::open(parent_dir(path)?)?.sync_all()
}

/// Why a file named by a lab file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfinedError {
    #[error("{0}: leaves the lab's directory (through a link or an absolute path)")]
    Outside(String),
    #[error("{0}: not a regular file")]
    NotAFile(String),
    #[error("{0}: larger than {1} bytes")]
    TooLarge(String, usize),
    #[error("{0}: {1}")]
    Io(String, #[source] io::Error),
}

/// Reads the regular file `rel` of the directory `dir` as text, at most
/// `limit` bytes, for a lab file that names it (node `files[].source`,
/// containerlab `binds` and `startup-config`). What a hostile lab file
/// could point at is refused: a path that leaves `dir` once its links are
/// resolved (`..`, an absolute path, a symlink to `/etc/shadow`), and
/// anything that is not a regular file (a FIFO would block, a device
/// would never end).
pub fn read_confined(dir: &Path, rel: &Path, limit: usize) -> Result<String, ConfinedError> {
    let shown = rel.display().to_string();
    let err = |e: io::Error| ConfinedError::Io(shown.clone(), e);
    let base = fs::canonicalize(parent_or_dot(dir)).map_err(err)?;
    let real = fs::canonicalize(dir.join(rel)).map_err(err)?;
    if !real.starts_with(&base) {
        return Err(ConfinedError::Outside(shown));
    }
    read_plain(&real, limit).map_err(|e| match e {
        ConfinedError::NotAFile(_) => ConfinedError::NotAFile(shown.clone()),
        ConfinedError::TooLarge(_, n) => ConfinedError::TooLarge(shown.clone(), n),
        ConfinedError::Io(_, e) => ConfinedError::Io(shown.clone(), e),
        other => other,
    })
}

/// Reads `path` as text, at most `limit` bytes, the way root reads a file
/// in a directory that someone else (a QEMU's user) may write: the last
/// name is not followed if it is a link, nothing waits for a writer (a
/// FIFO), and only a regular file is read.
pub fn read_plain(path: &Path, limit: usize) -> Result<String, ConfinedError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let shown = path.display().to_string();
    let err = |e: io::Error| ConfinedError::Io(shown.clone(), e);
    // Opened without following a link swapped in, and without waiting for
    // a writer: the type is checked on what was opened.
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(err)?;
    if !f.metadata().map_err(err)?.is_file() {
        return Err(ConfinedError::NotAFile(shown));
    }
    let mut bytes = Vec::new();
    f.take(limit as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(err)?;
    if bytes.len() > limit {
        return Err(ConfinedError::TooLarge(shown, limit));
    }
    String::from_utf8(bytes)
        .map_err(|_| err(io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text")))
}

/// The largest file root reads as text from a VM's directory.
pub const MAX_VM_FILE: usize = 16 << 20;

/// Reads a file of a VM's directory (a directory the VM's QEMU may write)
/// as text: never through a link, never from a FIFO or device, at most
/// [`MAX_VM_FILE`] bytes. Any refusal is an error, like a missing file.
pub fn read_text(path: &Path) -> io::Result<String> {
    read_plain(path, MAX_VM_FILE).map_err(|e| match e {
        ConfinedError::Io(_, e) => e,
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    })
}

/// Creates `path` anew for root to write (a log handed to a process): what
/// was there is removed first (a link is removed, not followed), and the
/// file is created exclusively, so nothing planted in between is opened.
pub fn create_fresh(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// `dir`, or `.` when it is the empty path (the parent of a bare name).
fn parent_or_dot(dir: &Path) -> &Path {
    if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }
}

/// Opens (creating) the lock file `path` and takes an exclusive flock on
/// it, waiting when `wait`; `Ok(None)` when it is held and `wait` is false.
/// The lock is released when the file is closed (also on kill -9).
pub fn lock_file(path: &Path, wait: bool) -> io::Result<Option<File>> {
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    // SAFETY: flock(2) on an fd we own.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), op) } == 0 {
        return Ok(Some(f));
    }
    let e = io::Error::last_os_error();
    if !wait && e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Ok(None);
    }
    Err(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }

    #[test]
    fn a_bare_file_name_is_in_the_current_directory() {
        assert_eq!(parent_dir(Path::new("out.yaml")).unwrap(), Path::new("."));
        assert_eq!(parent_dir(Path::new("d/out.yaml")).unwrap(), Path::new("d"));
        assert_eq!(parent_dir(Path::new("/out.yaml")).unwrap(), Path::new("/"));
        assert!(parent_dir(Path::new("/")).is_err());
    }

    #[test]
    fn a_confined_read_refuses_links_out_special_files_and_big_ones() {
        let top = tempfile::tempdir().unwrap();
        let lab = top.path().join("lab");
        fs::create_dir_all(lab.join("r1")).unwrap();
        fs::write(lab.join("r1/frr.conf"), "hostname r1\n").unwrap();
        fs::write(top.path().join("secret"), "TOPSECRET").unwrap();
        std::os::unix::fs::symlink(top.path().join("secret"), lab.join("out")).unwrap();
        std::os::unix::fs::symlink("r1/frr.conf", lab.join("inside")).unwrap();
        fs::write(lab.join("big"), vec![b'x'; 100]).unwrap();
        let fifo = lab.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid C string; mkfifo touches only the file system.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let read = |rel: &str| read_confined(&lab, Path::new(rel), 64);
        assert_eq!(read("r1/frr.conf").unwrap(), "hostname r1\n");
        // A link that stays inside is followed.
        assert_eq!(read("inside").unwrap(), "hostname r1\n");
        assert!(matches!(read("out"), Err(ConfinedError::Outside(_))));
        assert!(matches!(read("../secret"), Err(ConfinedError::Outside(_))));
        assert!(matches!(
            read("/etc/hostname"),
            Err(ConfinedError::Outside(_))
        ));
        assert!(matches!(read("fifo"), Err(ConfinedError::NotAFile(_))));
        assert!(matches!(read("r1"), Err(ConfinedError::NotAFile(_))));
        assert!(matches!(read("big"), Err(ConfinedError::TooLarge(_, 64))));
        assert!(matches!(read("nope"), Err(ConfinedError::Io(..))));
    }

    #[test]
    fn missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(write_atomic(&dir.path().join("nope/a.json"), b"x").is_err());
    }
}
