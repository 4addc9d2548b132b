//! Impairments of what a VM sends through one NIC, made by the kernel on
//! the NIC's TAP. A frame the VM sends enters the host at the TAP's
//! ingress, before the bridge, so that is where it is shaped:
//!
//! - **loss and rate only**: an nftables chain hooked at the TAP's ingress
//!   (table `netdev minivm-<lab>` of the lab's namespace): `numgen random`
//!   drops the share of frames, `limit rate over` polices the rate (what
//!   Open vSwitch's ingress policing does for a VM's port). Needs nothing
//!   but nf_tables.
//! - **anything with delay, jitter, corruption, duplication or
//!   reordering**: the TAP's ingress is redirected (tc `ingress` qdisc, a
//!   match-all u32 filter, `mirred`) to an IFB device whose root qdisc is
//!   netem with every parameter, rate included, as containerlab does.
//! - **the same on a kernel without netem** (found out by a real probe):
//!   the TAP's ingress is redirected to the lab's relay, a process of ours
//!   that applies every parameter in user space and hands the frames to
//!   the bridge (`crate::relay`, which draws the plumbing).
//!
//! All host tools run by argument vector (`tc -n NS ...`, `ip netns exec
//! NS nft -f -` with a script made of numbers and our own names only).
//!
//! What is applied is recorded next to the VM's files (`VmDir::impair`),
//! and trusted only while the kernel object it describes exists, so a
//! namespace made again reads as "no impairment" and is shaped again.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use topology::Impair;

use crate::process::{self, ProcessError};

#[derive(Debug, thiserror::Error)]
pub enum ImpairError {
    #[error("cannot change the impairments of {tap}")]
    Apply {
        tap: String,
        #[source]
        source: ProcessError,
    },
    #[error("cannot write the relay's links {}", .0.display())]
    RelayConfig(std::path::PathBuf, #[source] std::io::Error),
    #[error("cannot start the relay ({})", .0.display())]
    RelayStart(std::path::PathBuf, #[source] std::io::Error),
    #[error("the relay runs as `minivm relay`, and this program ({}) is not minivm", .0.display())]
    NoRelayProgram(std::path::PathBuf),
}

/// How a NIC's impairment is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// Nothing to do.
    None,
    /// nftables at the TAP's ingress: loss and rate.
    Nft,
    /// tc ingress → IFB → netem: everything.
    Netem,
    /// tc ingress → the lab's relay (user space): everything, without netem.
    Relay,
}

/// The first field that needs netem, if any.
pub fn netem_field(i: &Impair) -> Option<&'static str> {
    let Impair {
        delay_ms,
        jitter_ms,
        loss_pct: _,
        rate_kbit: _,
        corrupt_pct,
        duplicate_pct,
        reorder_pct,
    } = *i;
    [
        ("delay_ms", delay_ms > 0),
        ("jitter_ms", jitter_ms > 0),
        ("corrupt_pct", corrupt_pct > 0.0),
        ("duplicate_pct", duplicate_pct > 0.0),
        ("reorder_pct", reorder_pct > 0.0),
    ]
    .into_iter()
    .find_map(|(f, set)| set.then_some(f))
}

/// How `i` is made on a kernel that has netem (`has_netem`) or not.
pub fn backend(i: &Impair, has_netem: bool) -> Backend {
    if i.is_none() {
        Backend::None
    } else if netem_field(i).is_none() {
        Backend::Nft
    } else if has_netem {
        Backend::Netem
    } else {
        Backend::Relay
    }
}

/// The nftables table of a lab's impairments.
pub fn table(lab: &str) -> String {
    format!("minivm-{lab}")
}

/// The nft script that makes `tap`'s chain what `i` asks (loss and rate),
/// or removes it (`None`). `exists`: the chain is there now.
pub fn nft_script(lab: &str, tap: &str, i: Option<&Impair>, exists: bool) -> String {
    let table = table(lab);
    let mut s = format!("add table netdev {table}\n");
    let Some(i) = i else {
        if exists {
            s.push_str(&format!("delete chain netdev {table} {tap}\n"));
        }
        return s;
    };
    s.push_str(&format!(
        "add chain netdev {table} {tap} {{ type filter hook ingress device {tap} priority 0; policy accept; }}\n\
         flush chain netdev {table} {tap}\n"
    ));
    if i.loss_pct >= 100.0 {
        s.push_str(&format!("add rule netdev {table} {tap} drop\n"));
    } else if i.loss_pct > 0.0 {
        // In millionths of the frames.
        let n = (i.loss_pct * 10_000.0).round().max(1.0) as u64;
        s.push_str(&format!(
            "add rule netdev {table} {tap} numgen random mod 1000000 < {n} drop\n"
        ));
    }
    if i.rate_kbit > 0 {
        let bytes = i.rate_kbit * 125;
        // 20 ms of traffic, at least ten full frames.
        let burst = (bytes / 50).max(15_140);
        s.push_str(&format!(
            "add rule netdev {table} {tap} limit rate over {bytes} bytes/second burst {burst} bytes drop\n"
        ));
    }
    s
}

/// The netem parameters of `i`, as `tc qdisc replace ... netem` takes them.
pub fn netem_args(i: &Impair) -> Vec<String> {
    let Impair {
        delay_ms,
        jitter_ms,
        loss_pct,
        rate_kbit,
        corrupt_pct,
        duplicate_pct,
        reorder_pct,
    } = *i;
    let mut a: Vec<String> = vec!["limit".into(), "100000".into()];
    if delay_ms > 0 {
        a.extend(["delay".into(), format!("{delay_ms}ms")]);
        if jitter_ms > 0 {
            a.extend([
                format!("{jitter_ms}ms"),
                "distribution".into(),
                "normal".into(),
            ]);
        }
    }
    if loss_pct > 0.0 {
        a.extend(["loss".into(), "random".into(), format!("{loss_pct}%")]);
    }
    if corrupt_pct > 0.0 {
        a.extend(["corrupt".into(), format!("{corrupt_pct}%")]);
    }
    if duplicate_pct > 0.0 {
        a.extend(["duplicate".into(), format!("{duplicate_pct}%")]);
    }
    if reorder_pct > 0.0 {
        a.extend(["reorder".into(), format!("{reorder_pct}%")]);
    }
    if rate_kbit > 0 {
        a.extend(["rate".into(), format!("{rate_kbit}kbit")]);
    }
    a
}

/// Whether this kernel has netem: found out for real, by making a netem
/// qdisc on a throwaway IFB in a namespace of our own; once per boot (the
/// answer is kept in /run, keyed by the boot id) and once per process.
pub fn kernel_has_netem() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
        let cache = std::path::Path::new("/run/minivm/netem-probe");
        if let Some(v) = std::fs::read_to_string(cache)
            .ok()
            .and_then(|s| s.strip_prefix(boot.trim()).map(|v| v.trim() == "yes"))
        {
            return v;
        }
        let ok = probe_netem();
        tracing::debug!(netem = ok, "kernel netem probe");
        if !boot.trim().is_empty() && std::fs::create_dir_all("/run/minivm").is_ok() {
            let _ = crate::fsutil::write_atomic(
                cache,
                format!("{} {}\n", boot.trim(), if ok { "yes" } else { "no" }).as_bytes(),
            );
        }
        ok
    })
}

fn probe_netem() -> bool {
    let ns = format!("minivm-probe-{}", std::process::id());
    let ok = process::run(Command::new("ip").args(["netns", "add", &ns])).is_ok()
        && process::run(
            Command::new("ip").args(["-n", &ns, "link", "add", "probe0", "type", "ifb"]),
        )
        .is_ok()
        && process::run(Command::new("tc").args([
            "-n", &ns, "qdisc", "add", "dev", "probe0", "root", "netem", "delay", "1ms",
        ]))
        .is_ok();
    let _ = process::run(Command::new("ip").args(["netns", "del", &ns]));
    ok
}

fn in_ns(ns: Option<&str>, program: &str) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, program]);
            c
        }
        None => Command::new(program),
    }
}

fn tc(ns: Option<&str>) -> Command {
    let mut c = Command::new("tc");
    if let Some(ns) = ns {
        c.args(["-n", ns]);
    }
    c
}

/// The TAP chains of a lab's nftables table (none: no table).
pub fn nft_chains(ns: Option<&str>, lab: &str) -> Vec<String> {
    let out =
        process::stdout(in_ns(ns, "nft").args(["-j", "list", "table", "netdev", &table(lab)]));
    let Ok(out) = out else {
        return vec![];
    };
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["chain"]["name"].as_str().map(str::to_string))
        .collect()
}

/// Whether `ifb` has a netem root qdisc.
pub fn has_netem(ns: Option<&str>, ifb: &str) -> bool {
    let Ok(out) = process::stdout(tc(ns).args(["-j", "qdisc", "show", "dev", ifb])) else {
        return false;
    };
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    v.as_array()
        .into_iter()
        .flatten()
        .any(|q| q["kind"] == "netem" && q["root"] == true)
}

/// One NIC's link, as the impairment code needs it.
pub struct NicLink<'a> {
    pub ns: Option<&'a str>,
    pub lab: &'a str,
    pub vm: &'a str,
    pub nic: usize,
    /// The VM's TAP and the bridge it is plugged into.
    pub tap: &'a str,
    pub bridge: &'a str,
    /// `<state>/labs/<lab>`, where the relay's links are.
    pub lab_dir: &'a std::path::Path,
    /// The `minivm` program, which runs the relay.
    pub relay_program: &'a std::path::Path,
}

impl NicLink<'_> {
    fn alias(&self, what: &str) -> String {
        format!("minivm:{}:{what}/{}/{}", self.lab, self.vm, self.nic)
    }
    fn ifb(&self) -> String {
        topology::names::ifb_ifname(self.lab, self.vm, self.nic)
    }
    fn relay_in(&self) -> String {
        topology::names::relay_in_ifname(self.lab, self.vm, self.nic)
    }
    fn relay_out(&self) -> String {
        topology::names::relay_out_ifname(self.lab, self.vm, self.nic)
    }
    fn err(&self) -> impl Fn(ProcessError) -> ImpairError + '_ {
        |source| ImpairError::Apply {
            tap: self.tap.to_string(),
            source,
        }
    }
}

fn ip(ns: Option<&str>, args: &[&str]) -> Result<(), ProcessError> {
    let mut c = Command::new("ip");
    if let Some(ns) = ns {
        c.args(["-n", ns]);
    }
    process::run(c.args(args)).map(drop)
}

/// Makes the link's impairment `want` (clearing what another backend made).
pub fn apply(l: &NicLink, want: &Impair) -> Result<(), ImpairError> {
    let (ns, lab, tap) = (l.ns, l.lab, l.tap);
    let err = l.err();
    let backend = backend(want, kernel_has_netem());
    // The nft chain: made for Nft, removed otherwise.
    let exists = nft_chains(ns, lab).iter().any(|c| c == tap);
    if backend == Backend::Nft || exists {
        let script = nft_script(lab, tap, (backend == Backend::Nft).then_some(want), exists);
        process::run_with_input(in_ns(ns, "nft").args(["-f", "-"]), Some(script.as_bytes()))
            .map_err(&err)?;
    }
    if backend != Backend::Relay {
        remove_relay(l)?;
    }
    if backend != Backend::Netem {
        remove_netem(ns, tap, &l.ifb());
    }
    let run = |args: &[&str]| process::run(tc(ns).args(args)).map(drop);
    // The TAP's ingress, redirected once: an ingress qdisc, one match-all filter.
    let redirect = |to: &str| -> Result<(), ProcessError> {
        let _ = run(&["qdisc", "add", "dev", tap, "handle", "ffff:", "ingress"]);
        run(&[
            "filter", "replace", "dev", tap, "parent", "ffff:", "pref", "1", "protocol", "all",
            "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", to,
        ])
    };
    match backend {
        Backend::None | Backend::Nft => {}
        Backend::Netem => {
            let ifb = l.ifb();
            if ip(ns, &["link", "show", "dev", &ifb]).is_err() {
                ip(ns, &["link", "add", &ifb, "type", "ifb"]).map_err(&err)?;
            }
            ip(ns, &["link", "set", "dev", &ifb, "alias", &l.alias("ifb")]).map_err(&err)?;
            ip(ns, &["link", "set", "dev", &ifb, "up"]).map_err(&err)?;
            let mut netem = vec!["qdisc", "replace", "dev", &ifb, "root", "netem"];
            let params = netem_args(want);
            netem.extend(params.iter().map(String::as_str));
            run(&netem).map_err(&err)?;
            redirect(&ifb).map_err(&err)?;
        }
        Backend::Relay => {
            let (input, output) = (l.relay_in(), l.relay_out());
            for (dev, what, bridge) in [
                (&input, "relay-in", None),
                (&output, "relay-out", Some(l.bridge)),
            ] {
                if ip(ns, &["link", "show", "dev", dev]).is_err() {
                    ip(ns, &["tuntap", "add", "mode", "tap", "name", dev]).map_err(&err)?;
                }
                ip(ns, &["link", "set", "dev", dev, "alias", &l.alias(what)]).map_err(&err)?;
                if let Some(b) = bridge {
                    ip(ns, &["link", "set", "dev", dev, "master", b]).map_err(&err)?;
                }
                ip(ns, &["link", "set", "dev", dev, "up"]).map_err(&err)?;
            }
            // The VM's TAP gets nothing from the bridge directly: frames for
            // the VM leave through OUT and are redirected to the TAP.
            ip(
                ns,
                &[
                    "link",
                    "set",
                    "dev",
                    tap,
                    "type",
                    "bridge_slave",
                    "flood",
                    "off",
                    "mcast_flood",
                    "off",
                    "bcast_flood",
                    "off",
                    "learning",
                    "off",
                ],
            )
            .map_err(&err)?;
            let _ = run(&["qdisc", "add", "dev", &output, "clsact"]);
            run(&[
                "filter", "replace", "dev", &output, "egress", "pref", "1", "protocol", "all",
                "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev",
                tap,
            ])
            .map_err(&err)?;
            redirect(&input).map_err(&err)?;
            let mut config = crate::relay::read_config(l.lab_dir);
            config.namespace = ns.map(str::to_string);
            config.links.insert(
                tap.to_string(),
                crate::relay::RelayLink {
                    tap: tap.to_string(),
                    input,
                    output,
                    impair: *want,
                },
            );
            write_relay_config(l.lab_dir, &config)?;
            ensure_relay(l)?;
        }
    }
    Ok(())
}

fn write_relay_config(
    lab_dir: &std::path::Path,
    c: &crate::relay::RelayConfig,
) -> Result<(), ImpairError> {
    let path = crate::relay::config_path(lab_dir);
    let json = serde_json::to_string_pretty(c).expect("serializes");
    crate::fsutil::write_atomic(&path, json.as_bytes())
        .map_err(|e| ImpairError::RelayConfig(path, e))
}

/// Starts the lab's relay unless it runs: `minivm relay LAB` in a session
/// of its own (it outlives this command), its output in `relay.log`.
fn ensure_relay(l: &NicLink) -> Result<(), ImpairError> {
    use std::os::unix::process::CommandExt;
    if crate::relay::running(l.lab_dir, l.lab).is_some() {
        return Ok(());
    }
    let program = l.relay_program;
    if !program
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("minivm"))
    {
        return Err(ImpairError::NoRelayProgram(program.to_path_buf()));
    }
    let state_dir = l
        .lab_dir
        .parent()
        .and_then(|p| p.parent())
        .unwrap_or(l.lab_dir);
    let log_path = l.lab_dir.join("relay.log");
    let start = |e| ImpairError::RelayStart(program.to_path_buf(), e);
    let log = std::fs::File::create(&log_path).map_err(start)?;
    let log2 = log.try_clone().map_err(start)?;
    let mut cmd = Command::new(program);
    cmd.arg("--state-dir")
        .arg(state_dir)
        .args(["relay", l.lab])
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let mut child = cmd.spawn().map_err(start)?;
    let pid = child.id();
    // Reaped here while this process lives; afterwards by init.
    std::thread::spawn(move || child.wait());
    // The relay writes its pidfile itself; written here too, so that the
    // next observation already sees it.
    let _ = crate::fsutil::write_atomic(
        &crate::relay::pidfile(l.lab_dir),
        pid.to_string().as_bytes(),
    );
    tracing::info!(lab = %l.lab, pid, "relay started");
    Ok(())
}

/// Takes a link off the relay: its entry, its IN and OUT TAPs, the TAP's
/// bridge flags back (the redirect goes with `remove_netem`).
fn remove_relay(l: &NicLink) -> Result<(), ImpairError> {
    let mut config = crate::relay::read_config(l.lab_dir);
    if config.links.remove(l.tap).is_some() {
        write_relay_config(l.lab_dir, &config)?;
    }
    let mut had = false;
    for dev in [l.relay_in(), l.relay_out()] {
        if ip(l.ns, &["link", "show", "dev", &dev]).is_ok() {
            had = true;
            let _ = ip(l.ns, &["link", "del", "dev", &dev]);
        }
    }
    if had {
        let _ = ip(
            l.ns,
            &[
                "link",
                "set",
                "dev",
                l.tap,
                "type",
                "bridge_slave",
                "flood",
                "on",
                "mcast_flood",
                "on",
                "bcast_flood",
                "on",
                "learning",
                "on",
            ],
        );
    }
    Ok(())
}

/// Whether the relay shapes `tap` now (its entry, and the relay running).
pub fn relay_shapes(lab_dir: &std::path::Path, lab: &str, tap: &str) -> bool {
    crate::relay::read_config(lab_dir).links.contains_key(tap)
        && crate::relay::running(lab_dir, lab).is_some()
}

/// Stops a lab's relay (by its verified pid) and forgets its links.
pub fn stop_relay(lab_dir: &std::path::Path, lab: &str) {
    if let Some(pid) = crate::relay::running(lab_dir, lab) {
        // SAFETY: a plain kill(2) of a pid whose command line was just
        // checked to be this lab's relay.
        unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    }
    let _ = std::fs::remove_file(crate::relay::config_path(lab_dir));
    let _ = std::fs::remove_file(crate::relay::pidfile(lab_dir));
}

/// Removes the redirect and the IFB of a TAP (nothing there: nothing done).
pub fn remove_netem(ns: Option<&str>, tap: &str, ifb: &str) {
    let _ = process::run(tc(ns).args(["qdisc", "del", "dev", tap, "handle", "ffff:", "ingress"]));
    let mut c = Command::new("ip");
    if let Some(ns) = ns {
        c.args(["-n", ns]);
    }
    let _ = process::run(c.args(["link", "del", "dev", ifb]));
}

/// Removes what shapes a link (before its TAP goes): its nft chain, its
/// IFB, its relay TAPs and entry.
pub fn remove(l: &NicLink) -> Result<(), ImpairError> {
    if nft_chains(l.ns, l.lab).iter().any(|c| c == l.tap) {
        let script = nft_script(l.lab, l.tap, None, true);
        process::run_with_input(
            in_ns(l.ns, "nft").args(["-f", "-"]),
            Some(script.as_bytes()),
        )
        .map_err(l.err())?;
    }
    remove_relay(l)?;
    remove_netem(l.ns, l.tap, &l.ifb());
    Ok(())
}

/// Removes a lab's nft table (there or not).
pub fn remove_table(ns: Option<&str>, lab: &str) -> Result<(), ImpairError> {
    let table = table(lab);
    let script = format!("add table netdev {table}\ndelete table netdev {table}\n");
    // Without nft installed there is no table to remove.
    match process::run_with_input(in_ns(ns, "nft").args(["-f", "-"]), Some(script.as_bytes())) {
        Ok(_) | Err(ProcessError::Spawn { .. }) => Ok(()),
        Err(source) => Err(ImpairError::Apply {
            tap: format!("table {table}"),
            source,
        }),
    }
}

/// What was applied to a VM's NICs (NIC index → impairment), as recorded.
pub type Record = BTreeMap<usize, Impair>;

#[cfg(test)]
mod tests {
    use super::*;

    fn imp(f: impl FnOnce(&mut Impair)) -> Impair {
        let mut i = Impair::NONE;
        f(&mut i);
        i
    }

    #[test]
    fn loss_and_rate_alone_need_no_netem_and_without_netem_the_relay_does_the_rest() {
        assert_eq!(backend(&Impair::NONE, true), Backend::None);
        assert_eq!(backend(&imp(|i| i.loss_pct = 0.5), false), Backend::Nft);
        assert_eq!(
            backend(
                &imp(|i| {
                    i.loss_pct = 1.0;
                    i.rate_kbit = 10_000
                }),
                true
            ),
            Backend::Nft
        );
        assert_eq!(backend(&imp(|i| i.delay_ms = 40), true), Backend::Netem);
        assert_eq!(backend(&imp(|i| i.delay_ms = 40), false), Backend::Relay);
        assert_eq!(
            netem_field(&imp(|i| i.duplicate_pct = 1.0)),
            Some("duplicate_pct")
        );
    }

    #[test]
    fn the_nft_script_drops_a_share_and_polices_the_rate() {
        let s = nft_script(
            "lab",
            "mvt1",
            Some(&imp(|i| {
                i.loss_pct = 0.5;
                i.rate_kbit = 10_000
            })),
            true,
        );
        assert_eq!(
            s,
            "add table netdev minivm-lab\n\
             add chain netdev minivm-lab mvt1 { type filter hook ingress device mvt1 priority 0; policy accept; }\n\
             flush chain netdev minivm-lab mvt1\n\
             add rule netdev minivm-lab mvt1 numgen random mod 1000000 < 5000 drop\n\
             add rule netdev minivm-lab mvt1 limit rate over 1250000 bytes/second burst 25000 bytes drop\n"
        );
        assert!(
            nft_script("lab", "mvt1", Some(&imp(|i| i.loss_pct = 100.0)), false)
                .ends_with("add rule netdev minivm-lab mvt1 drop\n")
        );
        assert_eq!(
            nft_script("lab", "mvt1", None, true),
            "add table netdev minivm-lab\ndelete chain netdev minivm-lab mvt1\n"
        );
    }

    #[test]
    fn netem_gets_every_parameter_at_once() {
        let a = netem_args(&Impair {
            delay_ms: 40,
            jitter_ms: 5,
            loss_pct: 0.5,
            rate_kbit: 10_000,
            corrupt_pct: 0.1,
            duplicate_pct: 1.0,
            reorder_pct: 2.0,
        });
        assert_eq!(
            a.join(" "),
            "limit 100000 delay 40ms 5ms distribution normal loss random 0.5% corrupt 0.1% duplicate 1% reorder 2% rate 10000kbit"
        );
    }
}
