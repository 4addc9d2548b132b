//! QEMU command lines, built as argument vectors from a typed spec (pure,
//! unit-tested), and the control sockets every VM gets in its run directory:
//! `qmp.sock` (QMP), `serial.sock` (the serial console), `qga.sock` (the
//! guest agent's virtio-serial port `org.qemu.guest_agent.0`).

use std::path::{Path, PathBuf};

use topology::net::Mac;

use crate::accel::Accel;

/// Where a NIC's frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NicBackend {
    /// A TAP already opened by the engine and passed to QEMU as this fd.
    TapFd(i32),
    /// A QEMU hub port with nothing else on the hub: the NIC exists and its
    /// link is up, but no frame leaves QEMU (image tests).
    Isolated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub mac: Mac,
    pub backend: NicBackend,
}

/// Everything a VM's command line depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    /// The lab, part of the process tag (`process=minivm:<lab>:<vm>`) that
    /// tells our QEMUs apart from any other process.
    pub lab: String,
    pub name: String,
    pub accel: Accel,
    pub cpus: u32,
    pub memory_mib: u32,
    /// The VM's writable qcow2 overlay.
    pub disk: PathBuf,
    /// The NoCloud seed (vfat, read-only).
    pub seed: Option<PathBuf>,
    /// minivm.conf for the fw_cfg fast path.
    pub fw_cfg_config: Option<PathBuf>,
    pub nics: Vec<Nic>,
    /// Holds the control sockets.
    pub run_dir: PathBuf,
    /// Wait for a client on the serial socket before running the guest, so
    /// that no byte of the boot log is lost.
    pub wait_for_serial: bool,
    /// Resume from this saved state (a migration stream in a file) instead
    /// of booting: the guest goes on where it was saved.
    pub incoming: Option<PathBuf>,
    /// Tells the guest (fw_cfg `opt/org.minivm/warm`) to stop short of its
    /// identity and wait: set when a warm image is made and on every clone
    /// restored from one, so both have the same devices.
    pub warm: bool,
}

/// The fw_cfg entry whose presence makes the built-in image's boot stop
/// short of identity (a warm image is being made).
pub const FW_CFG_WARM: &str = "opt/org.minivm/warm";

/// TCG's translation cache per VM, in MiB (QEMU's default is 1024). The
/// image bench measures RSS and boot time against it;
/// `MINIVM_TCG_TB_MIB` overrides it for such measurements.
/// 24: a 96 MiB warm clone holds guest RAM + 63 MB (32: + 66 MB), at
/// about 14% more time for a cold boot (README).
pub const TCG_TB_MIB: u32 = 24;

pub fn tcg_tb_mib() -> u32 {
    std::env::var("MINIVM_TCG_TB_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=4096).contains(n))
        .unwrap_or(TCG_TB_MIB)
}

/// The tag in a VM's QEMU command line that says whose it is.
pub fn process_tag(lab: &str, vm: &str) -> String {
    format!("minivm:{lab}:{vm}")
}

pub fn qmp_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("qmp.sock")
}

pub fn serial_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("serial.sock")
}

pub fn qga_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("qga.sock")
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

/// The argument vector (without the program name). Paths are passed as
/// separate arguments or inside QEMU's own key=value syntax; commas in paths
/// are doubled as QEMU requires.
pub fn argv(spec: &VmSpec) -> Vec<String> {
    let q = |p: &Path| path(p).replace(',', ",,");
    let mut a: Vec<String> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(|s| s.to_string()));
    push(&[
        "-name",
        &format!(
            "guest={},process={}",
            spec.name,
            process_tag(&spec.lab, &spec.name)
        ),
    ]);
    match spec.accel {
        // TCG's translation cache is 1 GiB by default, and a guest's RSS
        // grows with it as it runs; a small lab guest needs far less.
        Accel::Tcg => push(&[
            "-machine",
            "pc",
            "-accel",
            &format!("tcg,tb-size={}", tcg_tb_mib()),
        ]),
        Accel::Kvm => push(&["-machine", "pc", "-accel", "kvm"]),
    }
    if spec.accel == Accel::Kvm {
        push(&["-cpu", "host"]);
    }
    push(&[
        "-smp",
        &spec.cpus.to_string(),
        "-m",
        &spec.memory_mib.to_string(),
    ]);
    push(&[
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-no-reboot",
    ]);
    push(&[
        "-qmp",
        &format!("unix:{},server=on,wait=off", q(&qmp_socket(&spec.run_dir))),
    ]);
    let wait = if spec.wait_for_serial { "on" } else { "off" };
    push(&[
        "-chardev",
        &format!(
            "socket,id=serial0,path={},server=on,wait={wait}",
            q(&serial_socket(&spec.run_dir))
        ),
    ]);
    push(&["-serial", "chardev:serial0"]);
    // Entropy from the host: the guest's generator is ready at boot (TCG's
    // CPU has no RDRAND), and a warm clone's can be reseeded.
    push(&["-device", "virtio-rng-pci"]);
    push(&["-device", "virtio-serial-pci,id=vser0"]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=qga0,path={},server=on,wait=off",
            q(&qga_socket(&spec.run_dir))
        ),
    ]);
    push(&[
        "-device",
        "virtserialport,bus=vser0.0,chardev=qga0,name=org.qemu.guest_agent.0",
    ]);
    push(&[
        "-drive",
        &format!(
            "file={},if=virtio,format=qcow2,discard=unmap",
            q(&spec.disk)
        ),
    ]);
    if let Some(seed) = &spec.seed {
        push(&[
            "-drive",
            &format!("file={},if=virtio,format=raw,readonly=on", q(seed)),
        ]);
    }
    if let Some(conf) = &spec.fw_cfg_config {
        push(&[
            "-fw_cfg",
            &format!("name={},file={}", crate::seed::FW_CFG_NAME, q(conf)),
        ]);
    }
    if spec.warm {
        push(&["-fw_cfg", &format!("name={FW_CFG_WARM},string=1")]);
    }
    for (i, nic) in spec.nics.iter().enumerate() {
        let netdev = match nic.backend {
            NicBackend::TapFd(fd) => format!("tap,id=net{i},fd={fd}"),
            NicBackend::Isolated => format!("hubport,id=net{i},hubid={i}"),
        };
        push(&["-netdev", &netdev]);
        // romfile= : no iPXE option ROM. The VM boots from its disk, and
        // initialising a ROM per NIC costs seconds under TCG.
        push(&[
            "-device",
            &format!("virtio-net-pci,netdev=net{i},mac={},romfile=", nic.mac),
        ]);
    }
    if let Some(state) = &spec.incoming {
        push(&["-incoming", &format!("file:{}", path(state))]);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> VmSpec {
        VmSpec {
            lab: "lab".into(),
            name: "vm1".into(),
            accel: Accel::Tcg,
            cpus: 2,
            memory_mib: 128,
            disk: "/s/labs/a,b/vms/vm1/overlay.qcow2".into(),
            seed: Some("/s/seed.img".into()),
            fw_cfg_config: Some("/s/minivm.conf".into()),
            nics: vec![
                Nic {
                    mac: "52:54:00:00:00:01".parse().unwrap(),
                    backend: NicBackend::TapFd(7),
                },
                Nic {
                    mac: "52:54:00:00:00:02".parse().unwrap(),
                    backend: NicBackend::Isolated,
                },
            ],
            run_dir: "/run/x".into(),
            wait_for_serial: true,
            incoming: None,
            warm: false,
        }
    }

    fn after<'a>(a: &'a [String], flag: &str) -> Vec<&'a str> {
        a.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn argv_has_accel_disks_nics_and_sockets() {
        let a = argv(&spec());
        assert_eq!(after(&a, "-accel"), [format!("tcg,tb-size={TCG_TB_MIB}")]);
        assert_eq!(after(&a, "-name"), ["guest=vm1,process=minivm:lab:vm1"]);
        assert_eq!(after(&a, "-smp"), ["2"]);
        assert_eq!(after(&a, "-m"), ["128"]);
        let drives = after(&a, "-drive");
        assert_eq!(
            drives[0],
            "file=/s/labs/a,,b/vms/vm1/overlay.qcow2,if=virtio,format=qcow2,discard=unmap"
        );
        assert!(drives[1].ends_with("readonly=on"));
        assert_eq!(
            after(&a, "-netdev"),
            ["tap,id=net0,fd=7", "hubport,id=net1,hubid=1"]
        );
        let nics: Vec<_> = after(&a, "-device")
            .into_iter()
            .filter(|d| d.starts_with("virtio-net-pci"))
            .collect();
        assert_eq!(
            nics,
            [
                "virtio-net-pci,netdev=net0,mac=52:54:00:00:00:01,romfile=",
                "virtio-net-pci,netdev=net1,mac=52:54:00:00:00:02,romfile="
            ]
        );
        assert!(after(&a, "-chardev")[0].contains("path=/run/x/serial.sock,server=on,wait=on"));
        assert!(after(&a, "-fw_cfg")[0].starts_with("name=opt/org.minivm/config,file="));
        assert!(!a.contains(&"-cpu".to_string()));
    }

    #[test]
    fn a_saved_state_is_resumed_from_its_file() {
        let mut s = spec();
        assert!(!argv(&s).contains(&"-incoming".to_string()));
        s.incoming = Some("/s/vms/vm1/saved.state".into());
        assert_eq!(
            after(&argv(&s), "-incoming"),
            ["file:/s/vms/vm1/saved.state"]
        );
    }

    #[test]
    fn a_warm_image_and_its_clones_carry_the_warm_entry() {
        let mut s = spec();
        assert_eq!(after(&argv(&s), "-fw_cfg").len(), 1);
        s.warm = true;
        assert_eq!(
            after(&argv(&s), "-fw_cfg")[1],
            "name=opt/org.minivm/warm,string=1"
        );
    }

    #[test]
    fn kvm_uses_the_host_cpu() {
        let mut s = spec();
        s.accel = Accel::Kvm;
        let a = argv(&s);
        assert_eq!(after(&a, "-cpu"), ["host"]);
    }
}
