//! A base image as a KubeVirt containerDisk: an OCI image (one
//! uncompressed layer holding `disk/<name>.qcow2`, owned by 107:107, the
//! user KubeVirt's QEMU runs as) in an OCI image layout packed as a tar
//! (`oci-archive`), built offline and deterministically (same image, same
//! digests). Standard tools load it: `skopeo copy oci-archive:FILE.tar
//! docker://REGISTRY/minivm/NAME:latest`.

use std::io::{self, Read};
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

/// Where KubeVirt looks for the disk inside a containerDisk.
pub const DISK_DIR: &str = "disk";
/// The uid and gid KubeVirt's QEMU runs as (the `qemu` user).
pub const QEMU_UID: u64 = 107;
/// The tag the archive's one image carries.
pub const REF_NAME: &str = "latest";

const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MEDIA_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `sha256:...` of the image manifest (the image's digest).
    pub manifest_digest: String,
    /// The path of the disk inside the image.
    pub disk_path: String,
    pub bytes: u64,
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn header(path: &str, size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).expect("a short relative path");
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(QEMU_UID);
    h.set_gid(QEMU_UID);
    h.set_mtime(0);
    h.set_entry_type(kind);
    h.set_cksum();
    h
}

fn plain(path: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_path(path).expect("a short relative path");
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h
}

/// The layer: `disk/` and `disk/<name>.qcow2` read from `disk`.
fn layer(name: &str, disk: &mut dyn Read, size: u64) -> io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.append(
        &header(&format!("{DISK_DIR}/"), 0, 0o555, tar::EntryType::Directory),
        io::empty(),
    )?;
    b.append(
        &header(
            &format!("{DISK_DIR}/{name}.qcow2"),
            size,
            0o440,
            tar::EntryType::Regular,
        ),
        disk,
    )?;
    b.into_inner()
}

/// Writes the image at `qcow2` (named `name`) as an OCI archive at `out`,
/// atomically.
pub fn write(name: &str, qcow2: &Path, out: &Path) -> io::Result<Written> {
    let mut f = std::fs::File::open(qcow2)?;
    let size = f.metadata()?.len();
    let layer = layer(name, &mut f, size)?;
    let layer_digest = digest(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }))
    .expect("serializes");
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": layer.len()}],
        "annotations": {"org.opencontainers.image.title": format!("minivm image {name}")},
    }))
    .expect("serializes");
    let manifest_digest = digest(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": REF_NAME},
        }],
    }))
    .expect("serializes");
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;

    let mut b = tar::Builder::new(Vec::new());
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let dir = |p: &str| {
        let mut h = plain(p, 0);
        h.set_mode(0o755);
        h.set_entry_type(tar::EntryType::Directory);
        h.set_cksum();
        h
    };
    b.append(&dir("blobs/"), io::empty())?;
    b.append(&dir("blobs/sha256/"), io::empty())?;
    for (path, bytes) in [
        (blob(&digest(&config)), &config[..]),
        (blob(&manifest_digest), &manifest[..]),
        (blob(&layer_digest), &layer[..]),
        ("index.json".to_string(), &index[..]),
        ("oci-layout".to_string(), &layout[..]),
    ] {
        b.append(&plain(&path, bytes.len() as u64), bytes)?;
    }
    let archive = b.into_inner()?;
    crate::fsutil::write_atomic(out, &archive)?;
    Ok(Written {
        manifest_digest,
        disk_path: format!("/{DISK_DIR}/{name}.qcow2"),
        bytes: archive.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archive_is_a_layout_whose_digests_match_and_is_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let disk = dir.path().join("d.qcow2");
        std::fs::write(&disk, b"QFI\xfb not really a qcow2, but bytes").unwrap();
        let a = dir.path().join("a.tar");
        let w = write("tiny", &disk, &a).unwrap();
        let b = dir.path().join("b.tar");
        assert_eq!(write("tiny", &disk, &b).unwrap(), w);
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());

        let mut files = std::collections::BTreeMap::new();
        let mut ar = tar::Archive::new(std::fs::File::open(&a).unwrap());
        for e in ar.entries().unwrap() {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            files.insert(path, bytes);
        }
        // Every blob is named by its digest.
        for (path, bytes) in &files {
            if let Some(d) = path.strip_prefix("blobs/sha256/").filter(|d| !d.is_empty()) {
                assert_eq!(digest(bytes), format!("sha256:{d}"));
            }
        }
        let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
        let m = index["manifests"][0]["digest"].as_str().unwrap();
        assert_eq!(m, w.manifest_digest);
        let manifest: serde_json::Value =
            serde_json::from_slice(&files[&format!("blobs/sha256/{}", &m[7..])]).unwrap();
        let l = manifest["layers"][0]["digest"].as_str().unwrap();
        let mut layer = tar::Archive::new(&files[&format!("blobs/sha256/{}", &l[7..])][..]);
        let entries: Vec<(String, u64, Vec<u8>)> = layer
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let p = e.path().unwrap().to_string_lossy().into_owned();
                let uid = e.header().uid().unwrap();
                let mut b = Vec::new();
                e.read_to_end(&mut b).unwrap();
                (p, uid, b)
            })
            .collect();
        assert_eq!(entries[1].0, "disk/tiny.qcow2");
        assert_eq!(entries[1].1, 107);
        assert_eq!(entries[1].2, std::fs::read(&disk).unwrap());
        assert_eq!(w.disk_path, "/disk/tiny.qcow2");
    }
}
