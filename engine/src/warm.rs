//! Warm images: one guest of a given shape booted up to the point just
//! before it takes on an identity, saved as a migration stream to a file.
//! Every later VM of that shape is restored from it (`-incoming file:`) and
//! then handed its identity through the guest agent (`lab/warm.rs`).
//!
//! This module is the pure part and the store: the shape a warm image is of
//! (everything the saved memory depends on), its key, the reason a VM cannot
//! use one, the identity a clone is handed, and the cache under
//! `<state>/warm/` (or `MINIVM_WARM_DIR`) with its size cap.
//!
//! Invariants: a warm image is made under a temporary name and renamed into
//! place with its record written last, so a half-made one is never used; it
//! is keyed by its whole shape, so a rebuilt image, another QEMU or another
//! hardware shape never finds it; it is removed with its image.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use topology::net::Mac;

/// The default cap on the warm images' total size, in MiB
/// (`MINIVM_WARM_CAP_MIB` overrides it).
pub const DEFAULT_CAP_MIB: u64 = 2048;

/// Everything a warm image's saved memory depends on. Two VMs with equal
/// shapes can be restored from the same warm image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shape {
    pub image: String,
    /// The base image's content (its record's SHA-256): a rebuilt image is
    /// another shape.
    pub image_sha256: String,
    /// The version of the guest scripts in the image.
    pub guest: u32,
    /// `qemu-system-x86_64 --version`'s first line.
    pub qemu: String,
    pub accel: String,
    /// TCG's translation cache (part of the command line).
    pub tb_mib: u32,
    pub cpus: u32,
    pub memory_mib: u32,
    pub nics: usize,
}

/// What a warm image depends on besides the VM's hardware: the base
/// image's content and guest scripts, QEMU and its accelerator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub image_sha256: String,
    pub guest: u32,
    pub qemu: String,
    pub accel: String,
    pub tb_mib: u32,
}

impl Shape {
    /// The shape of a VM of hardware `hw` on `host`. Every field of the
    /// hardware record is named here: a new one does not compile until it
    /// says whether a warm image's memory depends on it, so a warm image
    /// made for other hardware is never used.
    pub fn new(hw: &crate::vmdir::VmHardware, host: Host) -> Shape {
        let crate::vmdir::VmHardware {
            image,
            cpus,
            memory_mib,
            nics,
        } = hw;
        let Host {
            image_sha256,
            guest,
            qemu,
            accel,
            tb_mib,
        } = host;
        Shape {
            image: image.clone(),
            image_sha256,
            guest,
            qemu,
            accel,
            tb_mib,
            cpus: *cpus,
            memory_mib: *memory_mib,
            // Their MACs and networks are each clone's own, handed over with
            // its identity; how many there are is the machine's.
            nics: nics.len(),
        }
    }

    /// The name of its warm image: 16 hex digits of the shape's hash.
    pub fn key(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_string(self).expect("serializes");
        let d = Sha256::digest(json.as_bytes());
        d.iter().take(8).fold(String::new(), |mut s, b| {
            write!(s, "{b:02x}").expect("writing to a String");
            s
        })
    }

    /// As users read it: `tiny, 1 CPU, 96 MiB, 2 NICs`.
    pub fn describe(&self) -> String {
        let plural = |n: usize, what: &str| {
            if n == 1 {
                format!("1 {what}")
            } else {
                format!("{n} {what}s")
            }
        };
        format!(
            "{}, {}, {} MiB, {}",
            self.image,
            plural(self.cpus as usize, "CPU"),
            self.memory_mib,
            plural(self.nics, "NIC")
        )
    }

    /// Why a warm image of `old` cannot serve `self` when both are of the
    /// same image name and hardware (what a user changed), if anything.
    pub fn mismatch(&self, old: &Shape) -> Option<String> {
        let Shape {
            image: _,
            image_sha256,
            guest,
            qemu,
            accel,
            tb_mib,
            cpus: _,
            memory_mib: _,
            nics: _,
        } = old;
        if *image_sha256 != self.image_sha256 {
            Some(format!(
                "image {} was rebuilt or replaced since its warm image was made",
                self.image
            ))
        } else if *guest != self.guest {
            Some(format!("image {}'s guest scripts changed", self.image))
        } else if *qemu != self.qemu {
            Some(format!("QEMU changed ({qemu} → {})", self.qemu))
        } else if *accel != self.accel {
            Some(format!(
                "the accelerator changed ({accel} → {})",
                self.accel
            ))
        } else if *tb_mib != self.tb_mib {
            Some(format!(
                "TCG's translation cache changed ({tb_mib} → {} MiB)",
                self.tb_mib
            ))
        } else {
            None
        }
    }

    /// Same image name and hardware: a warm image of `other` was this
    /// VM's, before something else changed.
    fn same_hardware(&self, other: &Shape) -> bool {
        self.image == other.image
            && self.cpus == other.cpus
            && self.memory_mib == other.memory_mib
            && self.nics == other.nics
    }
}

/// What the store keeps beside a warm image's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmRecord {
    pub shape: Shape,
    /// The saved state's size.
    pub bytes: u64,
    /// Seconds since the epoch.
    pub made_at: u64,
    /// How long the boot up to the warm point took.
    pub boot_secs: f64,
}

/// The address NIC `i` has in a warm image (and so in every clone until
/// its identity replaces it): locally administered, never a lab's.
pub fn placeholder_mac(i: usize) -> Mac {
    Mac([0x0a, 0x6d, 0x76, 0x77, (i >> 8) as u8, i as u8])
}

/// The configuration a clone is handed on its agent: the host's random
/// bytes, each NIC's placeholder address replaced by its own, then the
/// VM's `minivm.conf` as a cold boot reads it.
pub fn identity_conf(minivm_conf: &str, macs: &[Mac], entropy: &[u8]) -> String {
    use base64::Engine as _;
    let mut s = format!(
        "entropy {}\n",
        base64::engine::general_purpose::STANDARD.encode(entropy)
    );
    for (i, mac) in macs.iter().enumerate() {
        writeln!(s, "remac {} {mac}", placeholder_mac(i)).expect("writing to a String");
    }
    s.push_str(minivm_conf);
    s
}

/// Random bytes from the host's generator.
pub fn host_entropy(n: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut buf = vec![0; n];
    fs::File::open("/dev/urandom")?.read_exact(&mut buf)?;
    Ok(buf)
}

/// The warm images of one state directory.
#[derive(Debug, Clone)]
pub struct WarmStore {
    dir: PathBuf,
}

/// A warm image found for a shape, or the reason there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(PathBuf),
    /// None yet; the reason says why (first use of the shape, or what
    /// changed since the last one, which is then removed).
    Missing(String),
}

impl WarmStore {
    /// `<state>/warm`, or `MINIVM_WARM_DIR` (a cache shared by the test
    /// run's state directories: keys include the image's content).
    pub fn open(state_dir: &Path) -> WarmStore {
        let dir = std::env::var_os("MINIVM_WARM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| state_dir.join("warm"));
        WarmStore { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    pub fn state(&self, key: &str) -> PathBuf {
        self.path(key).join("state")
    }

    pub fn record_path(&self, key: &str) -> PathBuf {
        self.path(key).join("warm.json")
    }

    /// The lock held while a warm image of `key` is made.
    pub fn lock_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!(".{key}.lock"))
    }

    /// Every whole warm image (with its record), by key.
    pub fn list(&self) -> Vec<(String, WarmRecord)> {
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut out: Vec<_> = rd
            .flatten()
            .filter_map(|e| {
                let key = e.file_name().to_str()?.to_string();
                if key.starts_with('.') {
                    return None;
                }
                let text = fs::read_to_string(self.record_path(&key)).ok()?;
                let rec: WarmRecord = serde_json::from_str(&text).ok()?;
                self.state(&key).is_file().then_some((key, rec))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The warm image of `shape`. When there is none, the reason names
    /// what changed since a warm image of the same VM hardware was made,
    /// and that stale one is removed.
    pub fn lookup(&self, shape: &Shape) -> Lookup {
        let key = shape.key();
        if self.record_path(&key).is_file() && self.state(&key).is_file() {
            // Recently used: kept longest under the cap.
            let _ = fs::File::options()
                .write(true)
                .open(self.record_path(&key))
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
            return Lookup::Found(self.state(&key));
        }
        let mut why = None;
        for (old_key, rec) in self.list() {
            if rec.shape.same_hardware(shape) {
                if let Some(reason) = shape.mismatch(&rec.shape) {
                    why.get_or_insert(reason);
                    self.remove(&old_key);
                }
            }
        }
        Lookup::Missing(why.unwrap_or_else(|| format!("no warm image of {} yet", shape.describe())))
    }

    /// Removes one warm image (its record first).
    pub fn remove(&self, key: &str) {
        let _ = fs::remove_file(self.record_path(key));
        let _ = fs::remove_dir_all(self.path(key));
    }

    /// Removes every warm image of image `image` with content `sha256`
    /// (the image is being removed). Returns how many.
    pub fn remove_image(&self, image: &str, sha256: &str) -> usize {
        let mut n = 0;
        for (key, rec) in self.list() {
            if rec.shape.image == image && rec.shape.image_sha256 == sha256 {
                self.remove(&key);
                n += 1;
            }
        }
        n
    }

    /// The cap on the total size, in bytes.
    pub fn cap_bytes() -> u64 {
        std::env::var("MINIVM_WARM_CAP_MIB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(DEFAULT_CAP_MIB)
            << 20
    }

    /// Removes the least recently used warm images until the rest fit
    /// under `cap` bytes; `keep` is never removed. Returns the keys removed.
    pub fn evict(&self, cap: u64, keep: &str) -> Vec<String> {
        let mut all: Vec<(std::time::SystemTime, String, u64)> = self
            .list()
            .into_iter()
            .map(|(key, rec)| {
                let used = fs::metadata(self.record_path(&key))
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (used, key, rec.bytes)
            })
            .collect();
        all.sort();
        let mut total: u64 = all.iter().map(|(_, _, b)| b).sum();
        let mut removed = Vec::new();
        for (_, key, bytes) in all {
            if total <= cap {
                break;
            }
            if key == keep {
                continue;
            }
            self.remove(&key);
            total = total.saturating_sub(bytes);
            removed.push(key);
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            image: "tiny".into(),
            image_sha256: "aa".into(),
            guest: 2,
            qemu: "QEMU emulator version 10.0.2".into(),
            accel: "tcg".into(),
            tb_mib: 32,
            cpus: 1,
            memory_mib: 96,
            nics: 2,
        }
    }

    #[test]
    fn a_shape_is_made_from_the_hardware_record() {
        let host = Host {
            image_sha256: "aa".into(),
            guest: 2,
            qemu: "QEMU emulator version 10.0.2".into(),
            accel: "tcg".into(),
            tb_mib: 32,
        };
        let hw = |mac: &str, memory_mib| crate::vmdir::VmHardware {
            image: "tiny".into(),
            cpus: 1,
            memory_mib,
            nics: vec![
                (mac.into(), "lan".into()),
                ("02:00:00:00:00:09".into(), "wan".into()),
            ],
        };
        let a = Shape::new(&hw("02:00:00:00:00:01", 96), host.clone());
        assert_eq!(a, shape());
        // Another VM of the same hardware (its own MACs) shares the image;
        // other memory does not.
        assert_eq!(
            Shape::new(&hw("02:00:00:00:00:02", 96), host.clone()).key(),
            a.key()
        );
        assert_ne!(
            Shape::new(&hw("02:00:00:00:00:01", 128), host).key(),
            a.key()
        );
    }

    fn put(store: &WarmStore, s: &Shape, bytes: u64) -> String {
        let key = s.key();
        fs::create_dir_all(store.path(&key)).unwrap();
        fs::write(store.state(&key), vec![0u8; bytes as usize]).unwrap();
        let rec = WarmRecord {
            shape: s.clone(),
            bytes,
            made_at: 0,
            boot_secs: 1.0,
        };
        fs::write(
            store.record_path(&key),
            serde_json::to_string(&rec).unwrap(),
        )
        .unwrap();
        key
    }

    fn store() -> (tempfile::TempDir, WarmStore) {
        let d = tempfile::tempdir().unwrap();
        let s = WarmStore {
            dir: d.path().join("warm"),
        };
        (d, s)
    }

    #[test]
    fn every_field_of_the_shape_changes_the_key() {
        let base = shape();
        let mut variants = vec![];
        let mut s = base.clone();
        s.image = "frr".into();
        variants.push(s);
        let mut s = base.clone();
        s.image_sha256 = "bb".into();
        variants.push(s);
        let mut s = base.clone();
        s.guest = 3;
        variants.push(s);
        let mut s = base.clone();
        s.qemu = "QEMU emulator version 10.1.0".into();
        variants.push(s);
        let mut s = base.clone();
        s.accel = "kvm".into();
        variants.push(s);
        let mut s = base.clone();
        s.tb_mib = 64;
        variants.push(s);
        let mut s = base.clone();
        s.cpus = 2;
        variants.push(s);
        let mut s = base.clone();
        s.memory_mib = 128;
        variants.push(s);
        let mut s = base.clone();
        s.nics = 3;
        variants.push(s);
        let mut keys: Vec<_> = variants.iter().map(Shape::key).collect();
        keys.push(base.key());
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), 10);
        assert_eq!(base.key(), shape().key());
        assert_eq!(base.key().len(), 16);
    }

    #[test]
    fn shapes_are_described_as_users_read_them() {
        assert_eq!(shape().describe(), "tiny, 1 CPU, 96 MiB, 2 NICs");
        let mut s = shape();
        s.cpus = 2;
        s.nics = 1;
        assert_eq!(s.describe(), "tiny, 2 CPUs, 96 MiB, 1 NIC");
    }

    #[test]
    fn a_rebuilt_image_is_missed_with_its_reason_and_the_stale_one_goes() {
        let (_d, st) = store();
        let old = shape();
        let old_key = put(&st, &old, 10);
        assert_eq!(st.lookup(&old), Lookup::Found(st.state(&old_key)));
        let mut new = shape();
        new.image_sha256 = "bb".into();
        match st.lookup(&new) {
            Lookup::Missing(why) => assert!(why.contains("rebuilt"), "{why}"),
            found => panic!("{found:?}"),
        }
        assert!(!st.path(&old_key).exists());
        assert!(st.list().is_empty());
    }

    #[test]
    fn other_hardware_is_a_first_use_and_keeps_the_other_warm_image() {
        let (_d, st) = store();
        let key = put(&st, &shape(), 10);
        let mut s = shape();
        s.memory_mib = 256;
        assert_eq!(
            st.lookup(&s),
            Lookup::Missing("no warm image of tiny, 1 CPU, 256 MiB, 2 NICs yet".into())
        );
        let mut q = shape();
        q.qemu = "QEMU emulator version 11".into();
        match st.lookup(&q) {
            Lookup::Missing(why) => assert!(why.starts_with("QEMU changed"), "{why}"),
            found => panic!("{found:?}"),
        }
        assert!(!st.path(&key).exists());
    }

    #[test]
    fn a_half_made_warm_image_is_not_found() {
        let (_d, st) = store();
        let key = put(&st, &shape(), 10);
        fs::remove_file(st.record_path(&key)).unwrap();
        assert!(matches!(st.lookup(&shape()), Lookup::Missing(_)));
    }

    #[test]
    fn eviction_keeps_the_newest_under_the_cap_and_never_the_one_in_use() {
        let (_d, st) = store();
        let mut keys = vec![];
        for n in 1..=3 {
            let mut s = shape();
            s.nics = n;
            let key = put(&st, &s, 100);
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000 * n as u64);
            fs::File::options()
                .write(true)
                .open(st.record_path(&key))
                .unwrap()
                .set_modified(t)
                .unwrap();
            keys.push(key);
        }
        // The oldest is in use: the next oldest goes instead.
        assert_eq!(st.evict(200, &keys[0]), vec![keys[1].clone()]);
        assert_eq!(st.list().len(), 2);
        assert_eq!(st.evict(1000, ""), Vec::<String>::new());
        assert_eq!(st.remove_image("tiny", "other"), 0);
        assert_eq!(st.remove_image("tiny", "aa"), 2);
        assert!(st.list().is_empty());
    }

    #[test]
    fn a_clone_is_handed_entropy_its_addresses_and_its_conf() {
        let macs: Vec<Mac> = vec![
            "52:54:00:aa:00:01".parse().unwrap(),
            "52:54:00:aa:00:02".parse().unwrap(),
        ];
        let c = identity_conf("hostname vm1\n", &macs, &[0xff; 3]);
        assert_eq!(
            c,
            "entropy ////\nremac 0a:6d:76:77:00:00 52:54:00:aa:00:01\n\
             remac 0a:6d:76:77:00:01 52:54:00:aa:00:02\nhostname vm1\n"
        );
        assert!(placeholder_mac(0).is_unicast());
        assert_ne!(host_entropy(32).unwrap(), host_entropy(32).unwrap());
    }
}
