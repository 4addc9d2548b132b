//! The per-VM NoCloud seed: a small vfat disk labelled CIDATA holding
//! `meta-data`, `user-data` and `network-config` (v2), which cloud-init
//! images honour, plus `minivm.conf`, the same facts in the one-directive-a-
//! line form the built-in image reads (also passed through QEMU fw_cfg).

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use topology::resolve::ResolvedNic;
use topology::Topology;

use crate::process::{self, ProcessError};

/// The fw_cfg entry the built-in image reads first.
pub const FW_CFG_NAME: &str = "opt/org.minivm/config";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedFiles {
    pub meta_data: String,
    pub user_data: String,
    pub network_config: String,
    pub minivm_conf: String,
}

/// The seed of `node` in `t` (a valid topology). `None` for an unknown node.
pub fn render(t: &Topology, node: &str) -> Option<SeedFiles> {
    let t = &*topology::mgmt::effective(t);
    let n = t.node(node)?;
    let all = topology::resolve::nics(t);
    let nics: &[ResolvedNic] = all.get(node).map(Vec::as_slice).unwrap_or(&[]);

    let mut conf = format!("hostname {node}\n");
    for nic in nics {
        match nic.address {
            Some(a) => writeln!(conf, "nic {} {} {a}", nic.mac, nic.ifname),
            None => writeln!(conf, "nic {} {}", nic.mac, nic.ifname),
        }
        .expect("writing to a String");
    }
    for r in &n.routes {
        writeln!(conf, "route {} {}", r.to, r.via).expect("writing to a String");
    }
    writeln!(conf, "forward {}", u8::from(n.ip_forward)).expect("writing to a String");
    // Files, one a line: `file PATH MODE BASE64` (paths are validated:
    // absolute, plain characters, no spaces).
    for f in &n.files {
        let content = f.content.as_deref().unwrap_or_default();
        writeln!(
            conf,
            "file {} {:04o} {}",
            f.path,
            f.mode_bits(),
            b64(content)
        )
        .expect("writing to a String");
    }

    let mut net = String::from("version: 2\nethernets:\n");
    for nic in nics {
        write!(
            net,
            "  {}:\n    match:\n      macaddress: \"{}\"\n    set-name: {}\n",
            nic.ifname, nic.mac, nic.ifname
        )
        .expect("writing to a String");
        if let Some(a) = nic.address {
            writeln!(net, "    addresses: [\"{a}\"]").expect("writing to a String");
        }
        let routes: Vec<_> = n
            .routes
            .iter()
            .filter(|r| {
                let via = r.via.parse().ok();
                nic.address.zip(via).is_some_and(|(a, v)| a.contains(v))
            })
            .collect();
        if !routes.is_empty() {
            net.push_str("    routes:\n");
            for r in routes {
                write!(
                    net,
                    "      - to: \"{}\"\n        via: \"{}\"\n",
                    r.to, r.via
                )
                .expect("writing to a String");
            }
        }
    }

    // A new instance-id whenever the configuration changes makes cloud-init
    // apply it again.
    let id = topology::names::stable_hash(&[&conf]);
    let meta_data = format!(
        "instance-id: minivm-{}-{node}-{id:016x}\nlocal-hostname: {node}\n",
        t.name
    );
    let user_data = cloud_config(node, n, &[]);
    Some(SeedFiles {
        meta_data,
        user_data,
        network_config: net,
        minivm_conf: conf,
    })
}

/// The seed of `node` for a cloud-init consumer with no host beside it (a
/// KubeVirt cluster): as [`render`], but the user-data also carries the
/// image's `minivm.conf` (write_files `/etc/minivm/minivm.conf`) and the
/// node's `exec` commands (write_files `/etc/minivm/exec`, run by
/// `runcmd`), which the built-in images read when their seed has no
/// `minivm.conf` (`/etc/minivm/cloudinit`).
pub fn render_cloud(t: &Topology, node: &str) -> Option<SeedFiles> {
    let mut seed = render(t, node)?;
    let n = t.node(node)?;
    let mut extra = vec![WriteFile {
        path: CLOUD_CONF_PATH,
        mode: 0o644,
        content: seed.minivm_conf.clone(),
    }];
    if !n.exec.is_empty() {
        extra.push(WriteFile {
            path: CLOUD_EXEC_PATH,
            mode: 0o755,
            content: exec_script(&n.exec),
        });
    }
    seed.user_data = cloud_config(node, n, &extra);
    Some(seed)
}

/// Where a cloud-config's write_files put the image's configuration and
/// the node's setup script (keys the built-in images look for).
pub const CLOUD_CONF_PATH: &str = "/etc/minivm/minivm.conf";
pub const CLOUD_EXEC_PATH: &str = "/etc/minivm/exec";

struct WriteFile {
    path: &'static str,
    mode: u32,
    content: String,
}

fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text.as_bytes())
}

/// The `#cloud-config` user-data: hostname, forwarding at boot, the node's
/// files and `extra` files (base64), and a `runcmd` for the setup script.
fn cloud_config(node: &str, n: &topology::Node, extra: &[WriteFile]) -> String {
    let mut user_data = format!("#cloud-config\nhostname: {node}\n");
    if n.ip_forward {
        user_data.push_str("bootcmd:\n  - [sysctl, -w, net.ipv4.ip_forward=1]\n");
    }
    let files = n
        .files
        .iter()
        .map(|f| {
            (
                f.path.as_str(),
                f.mode_bits(),
                b64(f.content.as_deref().unwrap_or_default()),
            )
        })
        .chain(extra.iter().map(|f| (f.path, f.mode, b64(&f.content))));
    let mut any = false;
    for (path, mode, content) in files {
        if !any {
            user_data.push_str("write_files:\n");
            any = true;
        }
        write!(
            user_data,
            "  - path: {path}\n    permissions: \"{mode:04o}\"\n    encoding: b64\n    content: {content}\n"
        )
        .expect("writing to a String");
    }
    if extra.iter().any(|f| f.path == CLOUD_EXEC_PATH) {
        writeln!(user_data, "runcmd:\n  - [{CLOUD_EXEC_PATH}]").expect("writing to a String");
    }
    user_data
}

/// The node's `exec` lines as a shell script that runs each one's words as
/// an argument vector (each word single-quoted), in order, stopping at the
/// first that fails: what `up` does through the agent.
pub fn exec_script(lines: &[String]) -> String {
    let mut s = String::from("#!/bin/sh\n");
    for line in lines {
        let words = topology::words::split_words(line).unwrap_or_default();
        let quoted: Vec<String> = words
            .iter()
            .map(|w| format!("'{}'", w.replace('\'', "'\\''")))
            .collect();
        writeln!(s, "{} || exit $?", quoted.join(" ")).expect("writing to a String");
    }
    s
}

/// Writes the seed as a vfat disk image labelled CIDATA (mtools: no mount,
/// no root needed).
pub fn write_vfat(files: &SeedFiles, path: &Path) -> Result<(), ProcessError> {
    let _ = std::fs::remove_file(path);
    process::run(
        Command::new("mkfs.fat")
            .args(["-C", "-n", "CIDATA"])
            .arg(path)
            .arg("1024"),
    )?;
    let dir = tempdir_near(path);
    let entries = [
        ("meta-data", &files.meta_data),
        ("user-data", &files.user_data),
        ("network-config", &files.network_config),
        ("minivm.conf", &files.minivm_conf),
    ];
    let result = (|| {
        std::fs::create_dir_all(&dir).map_err(|source| ProcessError::Spawn {
            program: "mkdir".into(),
            source,
        })?;
        for (name, content) in entries {
            let f = dir.join(name);
            std::fs::write(&f, content).map_err(|source| ProcessError::Spawn {
                program: "write".into(),
                source,
            })?;
            process::run(
                Command::new("mcopy")
                    .arg("-o")
                    .arg("-i")
                    .arg(path)
                    .arg(&f)
                    .arg(format!("::{name}")),
            )?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn tempdir_near(path: &Path) -> std::path::PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.d", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_seed_has_addresses_routes_and_forwarding() {
        let t = topology::parse(topology::examples::ROUTER, topology::Format::Yaml).unwrap();
        let r1 = render(&t, "r1").unwrap();
        assert!(r1.minivm_conf.starts_with("hostname r1\n"));
        assert!(r1.minivm_conf.contains(" eth0 10.10.0.1/24\n"));
        assert!(r1.minivm_conf.contains(" eth1 10.20.0.1/24\n"));
        assert!(r1.minivm_conf.ends_with("forward 1\n"));
        assert!(r1.user_data.contains("net.ipv4.ip_forward=1"));
        let h1 = render(&t, "h1").unwrap();
        assert!(h1.minivm_conf.contains("route 10.20.0.0/24 10.10.0.1\n"));
        assert!(h1
            .network_config
            .contains("    routes:\n      - to: \"10.20.0.0/24\"\n        via: \"10.10.0.1\"\n"));
        assert!(h1.network_config.contains("set-name: eth0"));
        assert!(h1.meta_data.contains("local-hostname: h1"));
        assert!(render(&t, "nope").is_none());
    }

    #[test]
    fn files_travel_base64_with_their_mode_in_both_seeds() {
        let mut t = topology::parse(topology::examples::ROUTER, topology::Format::Yaml).unwrap();
        t.nodes[0].files.push(topology::FileSpec {
            path: "/etc/frr/daemons".into(),
            content: Some("zebra=yes\nospfd=yes\n".into()),
            source: None,
            mode: Some("0640".into()),
        });
        let r1 = render(&t, "r1").unwrap();
        assert!(
            r1.minivm_conf
                .ends_with("file /etc/frr/daemons 0640 emVicmE9eWVzCm9zcGZkPXllcwo=\n"),
            "{}",
            r1.minivm_conf
        );
        assert!(r1.user_data.contains(
            "write_files:\n  - path: /etc/frr/daemons\n    permissions: \"0640\"\n    encoding: b64\n    content: emVicmE9eWVzCm9zcGZkPXllcwo=\n"
        ));
    }

    #[test]
    fn instance_id_changes_with_the_configuration() {
        let mut t = topology::parse(topology::examples::ROUTER, topology::Format::Yaml).unwrap();
        let a = render(&t, "h1").unwrap().meta_data;
        t.nodes[1].nics[0].address = Some("10.10.0.99/24".into());
        assert_ne!(a, render(&t, "h1").unwrap().meta_data);
    }

    #[test]
    fn the_guest_reads_the_conf_and_setup_back_from_cloud_user_data() {
        // engine/guest/cloudinit, run by the host's sh, awk and base64 (the
        // guest runs it with busybox's; the KubeVirt test boots that).
        let mut t = topology::parse(topology::examples::ROUTER, topology::Format::Yaml).unwrap();
        t.nodes[0].files.push(topology::FileSpec {
            path: "/etc/frr/daemons".into(),
            content: Some("zebra=yes\n".into()),
            source: None,
            mode: None,
        });
        t.nodes[0].exec = vec!["sh -c \"echo hi > /tmp/x\"".into()];
        let name = t.nodes[0].name.clone();
        let seed = render_cloud(&t, &name).unwrap();
        assert_eq!(seed.minivm_conf, render(&t, &name).unwrap().minivm_conf);
        let dir = tempfile::tempdir().unwrap();
        let run = |user_data: &str| {
            let ud = dir.path().join("user-data");
            std::fs::write(&ud, user_data).unwrap();
            let status = Command::new("sh")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/guest/cloudinit"))
                .arg(&ud)
                .arg(dir.path().join("conf"))
                .arg(dir.path().join("exec"))
                .status()
                .unwrap();
            let read = |f: &str| std::fs::read_to_string(dir.path().join(f)).ok();
            (status.success(), read("conf"), read("exec"))
        };
        let (ok, conf, exec) = run(&seed.user_data);
        assert!(ok);
        assert_eq!(conf.as_deref(), Some(seed.minivm_conf.as_str()));
        assert_eq!(exec, Some(exec_script(&t.nodes[0].exec)));
        // The local seed's user-data carries neither: nothing is written.
        let (ok, conf, exec) = run(&render(&t, &name).unwrap().user_data);
        assert!(!ok);
        assert_eq!((conf, exec), (None, None));
    }
}
