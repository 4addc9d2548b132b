//! `minivm image build`: the built-in base image, made offline from Debian
//! packages (`apt-get download`): a cloud kernel, busybox-static and
//! qemu-guest-agent with the shared libraries it needs.
//!
//! The result boots from its own disk through the BIOS like an installed OS:
//! an MBR with syslinux's boot code, a FAT boot partition (syslinux installed
//! with mtools, kernel, initramfs) and an ext4 root populated by
//! `mke2fs -d`. No loop device, no mount, no chroot.
//!
//! Guest behaviour lives in `engine/guest/`: the initramfs loads the virtio
//! drivers and switches to the root partition; busybox init runs a root shell
//! on ttyS0, applies the lab's configuration (fw_cfg or the NoCloud seed),
//! prints `minivm: ready HOSTNAME` on the serial console, then starts
//! qemu-guest-agent.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{io_err, ImageError, ImageRecord, ImageStore, Result};
use crate::process;

/// The kernel metapackage; the build resolves it to the versioned package.
pub const KERNEL_METAPACKAGE: &str = "linux-image-cloud-amd64";
/// Modules the guest loads, in groups so that readiness waits only for what
/// networking needs: `net` before the configuration is applied, `seed` only
/// when there is no fw_cfg entry (to read the cidata disk), `late` after the
/// guest has announced readiness. Dependencies come from each module's own
/// `depends=` field.
pub const GUEST_MODULE_GROUPS: &[(&str, &[&str])] = &[
    ("net", &["virtio_net", "qemu_fw_cfg", "virtio_rng"]),
    ("seed", &["vfat", "nls_cp437", "nls_ascii", "isofs"]),
    ("late", &["virtio_console", "button", "evdev"]),
];
/// Of those, the ones the initramfs needs to find the root disk.
const BOOT_MODULES: &[&str] = &["virtio_pci", "virtio_blk"];

const BOOT_PART_MIB: u64 = 32;
const ROOT_PART_MIB: u64 = 223;
const SECTOR: u64 = 512;

const GUEST_INIT: &str = include_str!("../../guest/init");
const GUEST_INITTAB: &str = include_str!("../../guest/inittab");
const GUEST_RCS: &str = include_str!("../../guest/rcS");
const GUEST_NETCONF: &str = include_str!("../../guest/netconf");
const GUEST_CONFIGURE: &str = include_str!("../../guest/configure");
const GUEST_IDENTITY: &str = include_str!("../../guest/identity");
const GUEST_CLOUDINIT: &str = include_str!("../../guest/cloudinit");
/// The version of the guest scripts above, recorded with each built image.
/// 2: the root file system read-only until configured, warm images
/// (`rcS` stops short of identity), `identity`, `reseed`, virtio-rng loaded
/// with the network drivers (the generator is seeded at boot).
/// 3: `cloudinit` reads a minivm.conf and setup commands from a NoCloud
/// user-data (a seed a KubeVirt cluster makes from exported manifests).
pub const GUEST_VERSION: u32 = 3;
/// The first guest version that starts warm.
pub const WARM_GUEST_VERSION: u32 = 2;
/// The first guest version that reads its configuration from cloud-init
/// user-data (a cluster's seed).
pub const CLOUD_GUEST_VERSION: u32 = 3;
const GUEST_FRR: &str = include_str!("../../guest/frr");
const GUEST_ACPI_POWER: &str = include_str!("../../guest/acpi/PWRF/00000080");

const SYSLINUX_CFG: &str = "DEFAULT minivm\nPROMPT 0\nTIMEOUT 0\nLABEL minivm\n  KERNEL /vmlinuz\n  INITRD /initrd.gz\n  APPEND console=ttyS0,115200 quiet loglevel=3 panic=-1 tsc=reliable\n";

/// Build steps, for progress output.
pub const STEPS: &[&str] = &[
    "download packages",
    "unpack packages",
    "assemble root filesystem",
    "make initramfs",
    "make boot partition",
    "make root partition",
    "write disk and convert to qcow2",
];

/// What a built-in image holds beyond the common base (kernel, busybox,
/// guest agent): `tiny` nothing more, `frr` the FRR routing suite and a few
/// small network tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Tiny,
    Frr,
}

impl Flavour {
    pub const ALL: [Flavour; 2] = [Flavour::Tiny, Flavour::Frr];

    pub fn name(self) -> &'static str {
        match self {
            Flavour::Tiny => "tiny",
            Flavour::Frr => "frr",
        }
    }

    pub fn parse(name: &str) -> Option<Flavour> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Debian packages beyond the common ones (their libraries follow).
    fn packages(self) -> &'static [&'static str] {
        match self {
            Flavour::Tiny => &[],
            Flavour::Frr => &["frr", "tcpdump", "iperf3", "libiperf0", "traceroute"],
        }
    }

    /// Files and directories copied from the unpacked packages to the same
    /// path in the image; their programs' libraries come with them.
    fn payload(self) -> &'static [&'static str] {
        match self {
            Flavour::Tiny => &[],
            Flavour::Frr => &[
                "usr/lib/frr",
                "usr/bin/vtysh",
                "etc/frr",
                "usr/bin/tcpdump",
                "usr/bin/iperf3",
                "usr/bin/traceroute.db",
            ],
        }
    }

    /// Symbolic links (link, target) that the packages' maintainer scripts
    /// would have made; they replace busybox's applet of the same name.
    fn links(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Flavour::Tiny => &[],
            Flavour::Frr => &[("usr/bin/traceroute", "traceroute.db")],
        }
    }

    /// Boot services (file name under /etc/minivm/services, script), run in
    /// name order after the lab's configuration and files, before readiness.
    fn services(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Flavour::Tiny => &[],
            Flavour::Frr => &[("50-frr", GUEST_FRR)],
        }
    }

    /// Files the image writes over the packages' (path, content, mode).
    fn overrides(self) -> &'static [(&'static str, &'static str, u32)] {
        match self {
            Flavour::Tiny => &[],
            // The console is a root shell already: vtysh lets root in without
            // PAM (the image has no PAM configuration).
            Flavour::Frr => &[(
                "etc/frr/vtysh.conf",
                "service integrated-vtysh-config\nusername root nopassword\n",
                0o640,
            )],
        }
    }

    /// Extra lines of /etc/passwd and /etc/group (the packages' users).
    fn accounts(self) -> (&'static str, &'static str) {
        match self {
            Flavour::Tiny => ("", ""),
            Flavour::Frr => (
                "frr:x:100:101:FRR:/nonexistent:/bin/false\n",
                "frr:x:101:\nfrrvty:x:102:frr\n",
            ),
        }
    }
}

/// Builds image `name` of `flavour` into the store. `progress(step_index,
/// step_name)` is called as each step starts. Refuses to overwrite an
/// existing image.
pub fn build(
    store: &ImageStore,
    name: &str,
    flavour: Flavour,
    progress: &mut dyn FnMut(usize, &str),
) -> Result<ImageRecord> {
    let dest = store.path(name)?;
    if store.exists(name)? || dest.exists() {
        return Err(ImageError::Exists(name.to_string()));
    }
    let work = store
        .dir()
        .join(format!(".build-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work).map_err(io_err("create", &work))?;
    let result = build_in(store, name, flavour, &work, progress);
    let _ = fs::remove_dir_all(&work);
    result
}

fn build_in(
    store: &ImageStore,
    name: &str,
    flavour: Flavour,
    work: &Path,
    progress: &mut dyn FnMut(usize, &str),
) -> Result<ImageRecord> {
    progress(0, STEPS[0]);
    let debs = download_packages(&store.cache_dir().join("debs"), flavour)?;

    progress(1, STEPS[1]);
    let unpacked = work.join("unpacked");
    for deb in debs.values() {
        process::run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&unpacked))?;
    }
    let kver = kernel_version(&unpacked)?;
    let mut modules = Vec::new();
    for (group, roots) in GUEST_MODULE_GROUPS {
        modules.push((
            *group,
            resolve_modules(&unpacked.join("lib/modules").join(&kver), roots)?,
        ));
    }
    let boot_modules = resolve_modules(&unpacked.join("lib/modules").join(&kver), BOOT_MODULES)?;
    write_probe(
        &unpacked,
        &kver,
        &crate::accel::probe_dir(store.state_dir()),
    )?;

    progress(2, STEPS[2]);
    let root = work.join("root");
    assemble_root(&unpacked, &root, &modules, name, flavour)?;

    progress(3, STEPS[3]);
    let initrd = work.join("initrd.gz");
    make_initramfs(&unpacked, &work.join("initramfs"), &boot_modules, &initrd)?;

    progress(4, STEPS[4]);
    let boot = work.join("boot.img");
    make_boot_partition(
        &unpacked.join(format!("boot/vmlinuz-{kver}")),
        &initrd,
        &boot,
    )?;

    progress(5, STEPS[5]);
    let rootimg = work.join("root.img");
    process::run(
        Command::new("mke2fs")
            .args([
                "-q",
                "-F",
                "-t",
                "ext4",
                "-b",
                "4096",
                "-L",
                "minivm-root",
                "-E",
                "root_owner=0:0",
                "-d",
            ])
            .arg(&root)
            .arg(&rootimg)
            .arg(format!("{ROOT_PART_MIB}M")),
    )?;

    progress(6, STEPS[6]);
    let raw = work.join("disk.raw");
    write_disk(&raw, &boot, &rootimg)?;
    let qcow = work.join("disk.qcow2");
    process::run(
        Command::new("qemu-img")
            .args(["convert", "-c", "-f", "raw", "-O", "qcow2"])
            .arg(&raw)
            .arg(&qcow),
    )?;
    store.finish(
        name,
        &qcow,
        match flavour.packages() {
            [] => {
                format!("built from {KERNEL_METAPACKAGE} {kver}, busybox-static, qemu-guest-agent")
            }
            extra => format!(
                "built from {KERNEL_METAPACKAGE} {kver}, busybox-static, qemu-guest-agent, {}",
                extra.join(", ")
            ),
        },
        GUEST_VERSION,
    )
}

/// Downloads (or finds in the cache) every package the image needs.
/// Returns package name → .deb path.
fn download_packages(cache: &Path, flavour: Flavour) -> Result<BTreeMap<String, PathBuf>> {
    fs::create_dir_all(cache).map_err(io_err("create", cache))?;
    let kernel = resolve_kernel_package()?;
    let mut wanted = vec![
        kernel,
        "busybox-static".to_string(),
        "qemu-guest-agent".to_string(),
    ];
    let mut libs = BTreeSet::new();
    for pkg in std::iter::once(&"qemu-guest-agent").chain(flavour.packages()) {
        libs.extend(library_packages(pkg)?);
    }
    wanted.extend(flavour.packages().iter().map(|p| p.to_string()));
    wanted.extend(
        libs.into_iter()
            .filter(|l| !wanted.contains(l))
            .collect::<Vec<_>>(),
    );
    // One apt-cache call for every package's candidate version (one per
    // package costs half a second each).
    let versions = candidate_versions(&wanted)?;
    let mut out = BTreeMap::new();
    let mut missing = Vec::new();
    for pkg in &wanted {
        match cached_deb(cache, pkg, &versions[pkg])? {
            Some(p) => {
                out.insert(pkg.clone(), p);
            }
            None => missing.push(pkg.clone()),
        }
    }
    if !missing.is_empty() {
        process::run(
            Command::new("apt-get")
                .arg("download")
                .args(&missing)
                .current_dir(cache),
        )
        .map_err(ImageError::AptDownload)?;
        for pkg in missing {
            let p = cached_deb(cache, &pkg, &versions[&pkg])?.ok_or_else(|| {
                ImageError::Build(format!("apt-get download did not produce a .deb for {pkg}"))
            })?;
            out.insert(pkg, p);
        }
    }
    Ok(out)
}

/// The candidate version of each package (`apt-cache policy`), refused
/// naming the first package that has none.
fn candidate_versions(pkgs: &[String]) -> Result<BTreeMap<String, String>> {
    let policy = process::stdout(Command::new("apt-cache").arg("policy").args(pkgs))?;
    let mut out = BTreeMap::new();
    let mut current: Option<&str> = None;
    for line in policy.lines() {
        if !line.starts_with(' ') {
            current = line.strip_suffix(':');
        } else if let (Some(pkg), Some(v)) = (current, line.trim().strip_prefix("Candidate: ")) {
            if v != "(none)" {
                out.insert(pkg.to_string(), v.to_string());
            }
        }
    }
    match pkgs.iter().find(|p| !out.contains_key(*p)) {
        Some(p) => Err(ImageError::Build(format!(
            "no installable version of {p} (run `apt-get update` once?)"
        ))),
        None => Ok(out),
    }
}

/// The .deb of `pkg` at `version` in the cache, if there.
fn cached_deb(cache: &Path, pkg: &str, version: &str) -> Result<Option<PathBuf>> {
    // apt-get download escapes ':' (epochs) as %3a in file names.
    let file = format!("{pkg}_{}_", version.replace(':', "%3a"));
    for entry in fs::read_dir(cache)
        .map_err(io_err("read", cache))?
        .flatten()
    {
        let n = entry.file_name().to_string_lossy().into_owned();
        if n.starts_with(&file) && n.ends_with(".deb") {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

fn resolve_kernel_package() -> Result<String> {
    let deps = process::stdout(Command::new("apt-cache").args(["depends", KERNEL_METAPACKAGE]))?;
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|d| d.starts_with("linux-image-"))
        .map(str::to_string)
        .ok_or_else(|| {
            ImageError::Build(format!(
                "{KERNEL_METAPACKAGE} depends on no linux-image package"
            ))
        })
}

/// The shared-library packages `pkg` needs, recursively (libc6 included).
fn library_packages(pkg: &str) -> Result<Vec<String>> {
    let out = process::stdout(Command::new("apt-cache").args([
        "depends",
        "--recurse",
        "--no-recommends",
        "--no-suggests",
        "--no-conflicts",
        "--no-breaks",
        "--no-replaces",
        "--no-enhances",
        "--no-pre-depends",
        pkg,
    ]))?;
    let mut libs: BTreeSet<String> = BTreeSet::new();
    for line in out
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('<'))
    {
        let name = line.trim();
        let is_lib = name.starts_with("lib") || name == "zlib1g";
        if is_lib
            && !name.contains("perl")
            && !name.starts_with("libgdbm")
            && !name.starts_with("libdb5")
        {
            libs.insert(name.to_string());
        }
    }
    Ok(libs.into_iter().collect())
}

fn kernel_version(unpacked: &Path) -> Result<String> {
    let dir = unpacked.join("lib/modules");
    let mut versions: Vec<String> = fs::read_dir(&dir)
        .map_err(io_err("read", &dir))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| ImageError::Build("the kernel package holds no modules".into()))
}

/// Modules (paths relative to the modules dir) for `roots` and everything
/// they depend on, dependencies first.
fn resolve_modules(moddir: &Path, roots: &[&str]) -> Result<Vec<PathBuf>> {
    let mut index: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut stack = vec![moddir.join("kernel")];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).map_err(io_err("read", &d))?.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Some(n) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".ko"))
            {
                index.insert(
                    n.replace('-', "_"),
                    p.strip_prefix(moddir).expect("under moddir").to_path_buf(),
                );
            }
        }
    }
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    fn visit(
        m: &str,
        moddir: &Path,
        index: &BTreeMap<String, PathBuf>,
        done: &mut BTreeSet<String>,
        order: &mut Vec<PathBuf>,
        depth: usize,
    ) -> Result<()> {
        let key = m.replace('-', "_");
        if done.contains(&key) {
            return Ok(());
        }
        if depth > 32 {
            return Err(ImageError::Build(format!("module dependency loop at {m}")));
        }
        let rel = index
            .get(&key)
            .ok_or_else(|| ImageError::Build(format!("the kernel has no module {m}")))?;
        for dep in module_depends(&moddir.join(rel))? {
            visit(&dep, moddir, index, done, order, depth + 1)?;
        }
        done.insert(key);
        order.push(rel.clone());
        Ok(())
    }
    for m in roots {
        visit(m, moddir, &index, &mut done, &mut order, 0)?;
    }
    Ok(order)
}

/// The `depends=` field of a module's .modinfo section.
fn module_depends(ko: &Path) -> Result<Vec<String>> {
    let bytes = fs::read(ko).map_err(io_err("read", ko))?;
    let needle = b"depends=";
    let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) else {
        return Ok(Vec::new());
    };
    let rest = &bytes[at + needle.len()..];
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    Ok(String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect())
}

fn write_file(path: &Path, content: &[u8], mode: u32) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    fs::write(path, content).map_err(io_err("write", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", path))
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(io_err("create", parent))?;
    }
    fs::copy(from, to).map_err(io_err("copy", from))?;
    Ok(())
}

/// Installs busybox with a link for every applet, under `root`.
fn install_busybox(unpacked: &Path, root: &Path) -> Result<()> {
    let bb = unpacked.join("bin/busybox");
    copy_file(&bb, &root.join("bin/busybox"))?;
    let list = process::stdout(Command::new(&bb).arg("--list-full"))?;
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let link = root.join(applet);
        if link.exists() || applet == "bin/busybox" {
            continue;
        }
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent).map_err(io_err("create", parent))?;
        }
        symlink(&target, &link).map_err(io_err("link", &link))?;
    }
    Ok(())
}

fn assemble_root(
    unpacked: &Path,
    root: &Path,
    modules: &[(&str, Vec<PathBuf>)],
    hostname: &str,
    flavour: Flavour,
) -> Result<()> {
    for d in [
        "proc",
        "sys",
        "dev",
        "run",
        "tmp",
        "var/tmp",
        "root",
        "mnt",
        "etc/minivm",
        "lib/modules",
        "var/log",
        "usr/sbin",
    ] {
        let p = root.join(d);
        fs::create_dir_all(&p).map_err(io_err("create", &p))?;
    }
    for tmp in ["tmp", "var/tmp"] {
        fs::set_permissions(root.join(tmp), fs::Permissions::from_mode(0o1777))
            .map_err(io_err("chmod", root))?;
    }
    symlink("../run", root.join("var/run")).map_err(io_err("link", root))?;
    install_busybox(unpacked, root)?;

    // qemu-ga, the flavour's files, and the closure of the shared libraries
    // their programs need.
    let mut programs = vec![unpacked.join("usr/sbin/qemu-ga")];
    copy_file(&programs[0], &root.join("usr/sbin/qemu-ga"))?;
    for item in flavour.payload() {
        copy_tree(&unpacked.join(item), &root.join(item), &mut programs)?;
    }
    for (link, target) in flavour.links() {
        let at = root.join(link);
        let _ = fs::remove_file(&at);
        symlink(target, &at).map_err(io_err("link", &at))?;
    }
    for (path, content, mode) in flavour.overrides() {
        write_file(&root.join(path), content.as_bytes(), *mode)?;
    }
    for (file, script) in flavour.services() {
        write_file(
            &root.join("etc/minivm/services").join(file),
            script.as_bytes(),
            0o755,
        )?;
    }
    for lib in library_closure(unpacked, &programs)? {
        let rel = lib.strip_prefix(unpacked).expect("inside unpacked");
        // Debian 12 is usrmerged: put every library under /lib/x86_64-linux-gnu.
        let file = rel.file_name().expect("a file");
        let dest = if file.to_string_lossy().starts_with("ld-linux") {
            root.join("lib64").join(file)
        } else {
            root.join("lib/x86_64-linux-gnu").join(file)
        };
        copy_file(&lib, &dest)?;
    }

    for (group, list) in modules {
        install_modules(unpacked, list, root, group)?;
    }

    write_file(&root.join("etc/inittab"), GUEST_INITTAB.as_bytes(), 0o644)?;
    write_file(&root.join("etc/minivm/rcS"), GUEST_RCS.as_bytes(), 0o755)?;
    write_file(
        &root.join("etc/minivm/netconf"),
        GUEST_NETCONF.as_bytes(),
        0o755,
    )?;
    write_file(
        &root.join("etc/minivm/configure"),
        GUEST_CONFIGURE.as_bytes(),
        0o755,
    )?;
    write_file(
        &root.join("etc/minivm/identity"),
        GUEST_IDENTITY.as_bytes(),
        0o755,
    )?;
    write_file(
        &root.join("etc/minivm/cloudinit"),
        GUEST_CLOUDINIT.as_bytes(),
        0o755,
    )?;
    write_file(
        &root.join("usr/lib/minivm/reseed"),
        &super::reseed::executable(),
        0o755,
    )?;
    write_file(
        &root.join("etc/acpi/PWRF/00000080"),
        GUEST_ACPI_POWER.as_bytes(),
        0o755,
    )?;
    write_file(
        &root.join("etc/hostname"),
        format!("{hostname}\n").as_bytes(),
        0o644,
    )?;
    let (users, groups) = flavour.accounts();
    write_file(
        &root.join("etc/passwd"),
        format!("root::0:0:root:/root:/bin/sh\n{users}").as_bytes(),
        0o644,
    )?;
    write_file(
        &root.join("etc/group"),
        format!("root:x:0:\n{groups}").as_bytes(),
        0o644,
    )?;
    write_file(
        &root.join("etc/nsswitch.conf"),
        b"passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
        0o644,
    )?;
    write_file(
        &root.join("etc/profile"),
        b"export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1='\\h:\\w# '\n",
        0o644,
    )?;
    write_file(
        &root.join("etc/fstab"),
        b"LABEL=minivm-root / ext4 rw,noatime 0 1\n",
        0o644,
    )?;
    Ok(())
}

fn kernel_moddir(unpacked: &Path) -> Result<PathBuf> {
    Ok(unpacked.join("lib/modules").join(kernel_version(unpacked)?))
}

/// Copies a file, or a directory's tree (symbolic links kept as links), and
/// adds every ELF file copied to `programs`.
fn copy_tree(from: &Path, to: &Path, programs: &mut Vec<PathBuf>) -> Result<()> {
    let meta = fs::symlink_metadata(from).map_err(io_err("read", from))?;
    if meta.is_dir() {
        fs::create_dir_all(to).map_err(io_err("create", to))?;
        for e in fs::read_dir(from).map_err(io_err("read", from))?.flatten() {
            copy_tree(&e.path(), &to.join(e.file_name()), programs)?;
        }
    } else if meta.file_type().is_symlink() {
        let target = fs::read_link(from).map_err(io_err("read", from))?;
        let _ = fs::remove_file(to);
        symlink(&target, to).map_err(io_err("link", to))?;
    } else {
        let _ = fs::remove_file(to);
        copy_file(from, to)?;
        let mut magic = [0u8; 4];
        let is_elf = fs::File::open(from)
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
            .is_ok()
            && magic == *b"\x7fELF";
        if is_elf {
            programs.push(from.to_path_buf());
        }
    }
    Ok(())
}

/// The shared libraries `binaries` load, found by their `NEEDED` entries in
/// the unpacked packages, recursively, plus the dynamic loader.
fn library_closure(unpacked: &Path, binaries: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut search = vec![
        unpacked.join("lib/x86_64-linux-gnu"),
        unpacked.join("usr/lib/x86_64-linux-gnu"),
        unpacked.join("lib64"),
        unpacked.join("usr/lib64"),
    ];
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue: VecDeque<PathBuf> = binaries.iter().cloned().collect();
    while let Some(file) = queue.pop_front() {
        let dynamic = process::stdout(Command::new("readelf").arg("-dW").arg(&file))?;
        // A program's own library directory (FRR's RUNPATH) is searched too;
        // the image puts every library where the loader looks by default.
        for line in dynamic
            .lines()
            .filter(|l| l.contains("(RUNPATH)") || l.contains("(RPATH)"))
        {
            let Some(paths) = line.split('[').nth(1).and_then(|s| s.split(']').next()) else {
                continue;
            };
            for dir in paths.split(':').filter(|d| d.starts_with('/')) {
                let dir = unpacked.join(dir.trim_start_matches('/'));
                if !search.contains(&dir) {
                    search.push(dir);
                }
            }
        }
        for line in dynamic.lines().filter(|l| l.contains("(NEEDED)")) {
            let Some(soname) = line.split('[').nth(1).and_then(|s| s.split(']').next()) else {
                continue;
            };
            if !seen.insert(soname.to_string()) {
                continue;
            }
            let path = search
                .iter()
                .map(|d| d.join(soname))
                .find(|p| p.exists())
                .ok_or_else(|| ImageError::Build(format!("no package provides {soname}")))?;
            queue.push_back(path.clone());
            out.push(path);
        }
    }
    let find = |soname: &str| search.iter().map(|d| d.join(soname)).find(|p| p.exists());
    let loader = find("ld-linux-x86-64.so.2")
        .ok_or_else(|| ImageError::Build("no dynamic loader (libc6)".into()))?;
    out.push(loader);
    // Paths are sonames, often symlinks: copying follows them, so the image
    // holds real files under the names the loader looks for.
    Ok(out)
}

fn make_initramfs(unpacked: &Path, dir: &Path, modules: &[PathBuf], out: &Path) -> Result<()> {
    copy_file(&unpacked.join("bin/busybox"), &dir.join("bin/busybox"))?;
    write_file(&dir.join("init"), GUEST_INIT.as_bytes(), 0o755)?;
    install_modules(unpacked, modules, dir, "boot")?;
    make_cpio(dir, out)
}

/// Copies `modules` flat into `<root>/lib/modules/` and lists them, in load
/// order, in `<root>/lib/modules/<group>.order` (the guest insmods them in
/// that order: no modprobe, no modules.dep).
fn install_modules(unpacked: &Path, modules: &[PathBuf], root: &Path, group: &str) -> Result<()> {
    let moddir = kernel_moddir(unpacked)?;
    let mut order = String::new();
    for m in modules {
        let name = m
            .file_stem()
            .expect("a module file")
            .to_string_lossy()
            .into_owned();
        copy_file(
            &moddir.join(m),
            &root.join("lib/modules").join(format!("{name}.ko")),
        )?;
        order.push_str(&name);
        order.push('\n');
    }
    write_file(
        &root.join(format!("lib/modules/{group}.order")),
        order.as_bytes(),
        0o644,
    )
}

/// A gzip'd newc cpio archive of `dir`, owned by root.
fn make_cpio(dir: &Path, out: &Path) -> Result<()> {
    // cpio wants the file list on stdin, relative to the archive root.
    let mut list = String::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for e in fs::read_dir(dir.join(&rel))
            .map_err(io_err("read", dir))?
            .flatten()
        {
            let r = rel.join(e.file_name());
            list.push_str(&r.to_string_lossy());
            list.push('\n');
            if e.path().is_dir() {
                stack.push(r);
            }
        }
    }
    let cpio = process::run_with_input(
        Command::new("cpio")
            .args(["--quiet", "-o", "-H", "newc", "-R", "0:0"])
            .current_dir(dir),
        Some(list.as_bytes()),
    )?;
    let tmp = out.with_extension("cpio");
    fs::write(&tmp, &cpio.stdout).map_err(io_err("write", &tmp))?;
    process::run(Command::new("gzip").args(["-9", "-n", "-f"]).arg(&tmp))?;
    fs::rename(tmp.with_extension("cpio.gz"), out).map_err(io_err("move", out))
}

/// The KVM probe: the image's kernel and an initramfs that prints the
/// marker and powers off (see `accel`).
fn write_probe(unpacked: &Path, kver: &str, dir: &Path) -> Result<()> {
    let staging = dir.with_extension("staging");
    let _ = fs::remove_dir_all(&staging);
    copy_file(&unpacked.join("bin/busybox"), &staging.join("bin/busybox"))?;
    let init = format!(
        "#!/bin/busybox sh\n/bin/busybox echo {}\n/bin/busybox poweroff -f\n",
        crate::accel::PROBE_MARKER
    );
    write_file(&staging.join("init"), init.as_bytes(), 0o755)?;
    fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    make_cpio(&staging, &dir.join("initrd.gz"))?;
    let _ = fs::remove_dir_all(&staging);
    copy_file(
        &unpacked.join(format!("boot/vmlinuz-{kver}")),
        &dir.join("vmlinuz"),
    )
}

fn make_boot_partition(kernel: &Path, initrd: &Path, out: &Path) -> Result<()> {
    let cfg = out.with_file_name("syslinux.cfg");
    fs::write(&cfg, SYSLINUX_CFG).map_err(io_err("write", &cfg))?;
    process::run(
        Command::new("mkfs.fat")
            .args(["-C", "-F", "16", "-n", "MINIVMBOOT"])
            .arg(out)
            .arg((BOOT_PART_MIB * 1024).to_string()),
    )?;
    let target = |name: &str| format!("::{name}");
    process::run(
        Command::new("mcopy")
            .arg("-i")
            .arg(out)
            .arg(kernel)
            .arg(target("vmlinuz")),
    )?;
    process::run(
        Command::new("mcopy")
            .arg("-i")
            .arg(out)
            .arg(initrd)
            .arg(target("initrd.gz")),
    )?;
    process::run(
        Command::new("mcopy")
            .arg("-i")
            .arg(out)
            .arg(&cfg)
            .arg(target("syslinux.cfg")),
    )?;
    // Debian's `syslinux` is the mtools installer: it works on a file.
    process::run(Command::new("syslinux").arg("--install").arg(out))?;
    Ok(())
}

/// The whole disk: MBR (syslinux boot code + partition table), the boot
/// partition at 1 MiB, the root partition after it.
fn write_disk(raw: &Path, boot: &Path, root: &Path) -> Result<()> {
    let boot_start = 2048u64; // sectors
    let boot_sectors = BOOT_PART_MIB * 1024 * 1024 / SECTOR;
    let root_start = boot_start + boot_sectors;
    let root_sectors = ROOT_PART_MIB * 1024 * 1024 / SECTOR;
    let total = (root_start + root_sectors) * SECTOR;
    {
        let f = fs::File::create(raw).map_err(io_err("create", raw))?;
        f.set_len(total).map_err(io_err("size", raw))?;
    }
    let table = format!(
        "label: dos\nstart={boot_start}, size={boot_sectors}, type=6, bootable\nstart={root_start}, size={root_sectors}, type=83\n"
    );
    process::run_with_input(
        Command::new("sfdisk")
            .args(["--quiet", "--no-reread", "--no-tell-kernel"])
            .arg(raw),
        Some(table.as_bytes()),
    )?;
    let mbr_bin = [
        "/usr/lib/syslinux/mbr/mbr.bin",
        "/usr/lib/SYSLINUX/mbr.bin",
        "/usr/share/syslinux/mbr.bin",
    ]
    .iter()
    .map(Path::new)
    .find(|p| p.exists())
    .ok_or_else(|| {
        ImageError::Build("syslinux's mbr.bin is missing (apt-get install syslinux-common)".into())
    })?;
    let code = fs::read(mbr_bin).map_err(io_err("read", mbr_bin))?;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(raw)
        .map_err(io_err("open", raw))?;
    f.write_all(&code[..code.len().min(440)])
        .map_err(io_err("write", raw))?;
    for (src, start) in [(boot, boot_start), (root, root_start)] {
        f.seek(SeekFrom::Start(start * SECTOR))
            .map_err(io_err("seek", raw))?;
        let mut input = fs::File::open(src).map_err(io_err("open", src))?;
        std::io::copy(&mut input, &mut f).map_err(io_err("write", raw))?;
    }
    f.sync_all().map_err(io_err("sync", raw))
}
