//! The /proc scan: a lab's QEMUs found by the process tag in their command
//! line (`-name ...,process=minivm:<lab>:<vm>`), so a QEMU whose starter was
//! killed before writing its pidfile is still found, and a recycled pid is
//! never mistaken for ours.

use std::collections::BTreeMap;
use std::fs;

use topology::Topology;

use super::Engine;
use crate::lifecycle::VmStatus;
use crate::qemu;

/// The live QEMU processes of `lab`, by VM name, found by the process tag
/// in their command line (`-name ...,process=minivm:<lab>:<vm>`): the
/// pidfile is a hint; this finds a QEMU whose starter was killed before
/// writing it.
pub fn running_qemus(lab: &str) -> BTreeMap<String, u32> {
    all_qemus().remove(lab).unwrap_or_default()
}

/// Every live QEMU started by minivm, by lab and VM: one pass over /proc.
pub fn all_qemus() -> BTreeMap<String, BTreeMap<String, u32>> {
    // "process=minivm:" (the tag with an empty lab and VM, less one colon).
    let tag = format!("process={}", qemu::process_tag("", ""));
    let needle = &tag[..tag.len() - 1];
    let mut out: BTreeMap<String, BTreeMap<String, u32>> = BTreeMap::new();
    let Ok(rd) = fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        // -name guest=<vm>,process=minivm:<lab>:<vm>
        let Some(tag) = cmdline
            .split('\0')
            .find_map(|a| a.split_once(needle).map(|(_, t)| t.to_string()))
        else {
            continue;
        };
        let Some((lab, vm)) = tag.split(',').next().unwrap_or_default().split_once(':') else {
            continue;
        };
        if !vm.is_empty() && qemu_alive(pid, lab, vm) {
            out.entry(lab.to_string())
                .or_default()
                .insert(vm.to_string(), pid);
        }
    }
    out
}

/// True once every thread of `pid` is gone: a killed multi-threaded QEMU
/// shows a zombie main thread (and no command line) before its other
/// threads, which hold its TAP fds, have exited.
pub(super) fn qemu_gone(pid: u32) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    if stat.is_empty() {
        return true;
    }
    let zombie = stat
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('Z'));
    zombie
        && fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.count() <= 1)
            .unwrap_or(true)
}

/// True when `pid` is a live QEMU started for `lab`/`vm` (its -name says so), so
/// a recycled pid is never mistaken for ours.
pub fn qemu_alive(pid: u32, lab: &str, vm: &str) -> bool {
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| rest.starts_with('Z'));
    let tag = format!("process={}\0", qemu::process_tag(lab, vm));
    !zombie && String::from_utf8_lossy(&cmdline).contains(&tag) && ours(pid)
}

/// Whether `pid` runs as a user minivm starts QEMU as (root, or an id of
/// the engine's VM range): another local user's process that carries a
/// lab's process tag in its arguments is not taken for that VM (it would
/// be reported running, signalled by `down`, asked over its sockets).
fn ours(pid: u32) -> bool {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse::<u32>().ok());
    matches!(uid, Some(u) if u == 0 || super::Ids::in_host_range(u))
}

/// Per VM: state and pid, for `status` and the web app.
pub fn vm_states(engine: &Engine, t: &Topology) -> BTreeMap<String, VmStatus> {
    vm_states_with(engine, t, &running_qemus(&t.name))
}

/// [`vm_states`] with the lab's live QEMUs already known (from [`all_qemus`]).
pub fn vm_states_with(
    engine: &Engine,
    t: &Topology,
    procs: &BTreeMap<String, u32>,
) -> BTreeMap<String, VmStatus> {
    t.nodes
        .iter()
        .map(|n| {
            let pid = procs.get(&n.name).copied();
            // A VM with no files yet is just defined.
            let state = engine
                .observe_vm(&t.name, &n.name, pid)
                .state
                .unwrap_or_default();
            (n.name.clone(), VmStatus { state, pid })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::{Child, Command};

    /// A process whose arguments carry lab `lab`'s tag for vm1, as `uid`.
    fn spoof(lab: &str, uid: u32) -> Child {
        let tag = format!("guest=vm1,process={}", qemu::process_tag(lab, "vm1"));
        Command::new("sh")
            .args(["-c", "sleep 30", "sh", "-name", &tag])
            .uid(uid)
            .gid(uid)
            .spawn()
            .unwrap()
    }

    #[test]
    fn another_users_process_with_a_labs_tag_is_not_its_vm() {
        let lab = format!("spoof{}", std::process::id());
        let mut theirs = spoof(&lab, 4242);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let seen = running_qemus(&lab);
        let _ = theirs.kill();
        let _ = theirs.wait();
        assert_eq!(
            seen,
            BTreeMap::new(),
            "a local user's process taken for vm1"
        );
        // The same process as a VM's id is taken (the check is the uid);
        // as `nobody`, it is not.
        let mut nobody = spoof(&lab, crate::vm::NOBODY.uid);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let seen = running_qemus(&lab);
        let _ = nobody.kill();
        let _ = nobody.wait();
        assert_eq!(seen, BTreeMap::new(), "nobody's process taken for vm1");
        let mut ours = spoof(&lab, crate::lab::Ids::FIRST + 9);
        std::thread::sleep(std::time::Duration::from_millis(200));
        let seen = running_qemus(&lab);
        let _ = ours.kill();
        let _ = ours.wait();
        assert_eq!(seen.get("vm1"), Some(&ours.id()));
    }
}
