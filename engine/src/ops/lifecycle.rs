//! Running a lab: `up`, starting, stopping, suspending and restarting VMs,
//! `down`, each under the lab's lock; the nodes' setup commands once a VM is
//! ready.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use topology::Topology;

use super::{check_host, check_vms, ensure_images, lock, step_line, OpsError, Result};
use crate::lab::{Engine, LabError};
use crate::plan::Step;
use crate::store::{LabStore, StoreError};

/// A node's `exec` command that failed (the VM keeps running).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("{vm}: setup command {command:?} exited {exit_code}{}", if stderr.trim().is_empty() { String::new() } else { format!(": {}", stderr.trim()) })]
pub struct SetupFailure {
    pub vm: String,
    pub command: String,
    pub exit_code: i32,
    pub stderr: String,
}

/// What a node's `exec` commands did on one boot (`<vm>/setup.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetupRecord {
    /// The QEMU they ran in: a record of another boot is not this one's.
    pub pid: u32,
    /// Commands that succeeded, in order.
    pub done: Vec<String>,
    pub failed: Option<SetupFailure>,
}

/// The setup record of `vm` for its running QEMU, if its commands ran.
pub fn setup_record(engine: &Engine, lab: &str, vm: &str) -> Option<SetupRecord> {
    let pid = *crate::lab::running_qemus(lab).get(vm)?;
    crate::fsutil::read_text(&engine.vm_files(lab, vm).setup())
        .ok()
        .and_then(|s| serde_json::from_str::<SetupRecord>(&s).ok())
        .filter(|r| r.pid == pid)
}

/// Runs each ready VM's `exec` commands once per boot, in order, through
/// the guest agent; a failing one stops that VM's list. A VM whose commands
/// already ran on this boot is not run again (its failure is reported
/// again). Each command's outcome goes to `say`.
fn run_setup(
    engine: &Engine,
    t: &Topology,
    vms: &[&str],
    say: &(dyn Fn(String) + Sync),
) -> Vec<SetupFailure> {
    let mut failures = Vec::new();
    let procs = crate::lab::running_qemus(&t.name);
    for vm in vms {
        let Some(node) = t.node(vm).filter(|n| !n.exec.is_empty()) else {
            continue;
        };
        let Some(&pid) = procs.get(*vm) else {
            continue;
        };
        if let Some(r) = setup_record(engine, &t.name, vm) {
            failures.extend(r.failed);
            continue;
        }
        let mut record = SetupRecord {
            pid,
            done: vec![],
            failed: None,
        };
        for line in &node.exec {
            let argv = topology::words::split_words(line).unwrap_or_default();
            let outcome = engine.exec(&t.name, vm, &argv, Duration::from_secs(120));
            let (code, stdout, stderr) = match outcome {
                Ok(r) => (r.exit_code, r.stdout, r.stderr),
                Err(e) => (-1, String::new(), crate::report(&e)),
            };
            let out = format!("{stdout}{stderr}");
            let out = out.trim();
            say(format!(
                "{vm}: exec {line:?}: exit {code}{}",
                if out.is_empty() {
                    String::new()
                } else {
                    format!("\n    {}", out.replace('\n', "\n    "))
                }
            ));
            if code != 0 {
                record.failed = Some(SetupFailure {
                    vm: vm.to_string(),
                    command: line.clone(),
                    exit_code: code,
                    stderr,
                });
                break;
            }
            record.done.push(line.clone());
        }
        failures.extend(record.failed.clone());
        let path = engine.vm_files(&t.name, vm).setup();
        let json = serde_json::to_string(&record).expect("serializes");
        if let Err(e) = crate::fsutil::write_atomic(&path, json.as_bytes()) {
            tracing::warn!(%vm, error = %e, "cannot record the setup");
        }
    }
    failures
}

/// What `up` did.
#[derive(Debug)]
pub struct UpReport {
    pub steps: Vec<Step>,
    pub elapsed: Duration,
}

pub use topology::lifecycle::VmAction;

/// Carries `action` out on `vms` of the stored lab `t`: a stop powers them
/// down, a start makes what they need and waits until they are ready, a
/// restart does both.
pub fn run_vm_action(
    engine: &Engine,
    t: &Topology,
    action: VmAction,
    vms: &[&str],
    timeout: Duration,
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    check_vms(t, vms)?;
    if action == VmAction::Suspend {
        suspend(engine, t, vms, say)?;
    }
    if matches!(action, VmAction::Stop | VmAction::Restart) {
        stop(engine, t, vms, say)?;
    }
    if matches!(action, VmAction::Start | VmAction::Restart) {
        start(engine, t, vms, timeout, say)?;
    }
    Ok(())
}

/// The lab `t` as stored now, read under its lock (the caller holds it),
/// with `vms` still in it: an operation acts on what the lab is, not on
/// what its caller read before the lock. A lab renamed or deleted in
/// between is refused as not found, and nothing is made under its old
/// name (the lock's directory, all that waiting made, goes again).
/// A topology that was never stored (an engine used without the store)
/// is taken as given.
fn current(engine: &Engine, t: &Topology, vms: &[&str]) -> Result<Topology> {
    let store = LabStore::open(&engine.state_dir)?;
    let stored = match store.get(&t.name) {
        Ok((stored, _)) => stored,
        Err(StoreError::NotFound(name)) if engine.lab_dir(&t.name).join("vms").exists() => {
            tracing::debug!(lab = %name, "a lab outside the store: taken as given");
            return Ok(t.clone());
        }
        Err(StoreError::NotFound(name)) => {
            engine.forget_lab_dir(&name);
            return Err(StoreError::NotFound(name).into());
        }
        Err(e) => return Err(e.into()),
    };
    check_vms(&stored, vms)?;
    Ok(stored)
}

/// The lab's lock, and the lab as stored under it ([`current`]), `vms`
/// checked before and after.
fn hold(
    engine: &Engine,
    t: &Topology,
    vms: &[&str],
    say: &(dyn Fn(String) + Sync),
) -> Result<(crate::lab::LabLock, Topology)> {
    check_vms(t, vms)?;
    let held = lock(engine, &t.name, say)?;
    let t = current(engine, t, vms)?;
    Ok((held, t))
}

/// Brings lab `t` up and waits until every VM is ready. With `file`, the lab
/// is (re)stored as coming from that file, refused when its name belongs to
/// another file; without, `t` is the stored lab (the web editor's).
pub fn up(
    engine: &Engine,
    store: &LabStore,
    t: &Topology,
    file: Option<&Path>,
    timeout: Duration,
    say: &(dyn Fn(String) + Sync),
) -> Result<UpReport> {
    check_host(engine, t)?;
    if let Some(f) = file {
        store.check_from_file(t, f, engine.force)?;
    }
    let _lock = lock(engine, &t.name, say)?;
    if let Some(f) = file {
        store.put_from_file(t, f, engine.force)?;
    }
    if let Some(on) = engine.expose {
        crate::mgmt::set_exposed(&engine.lab_dir(&t.name), on)?;
    }
    let started = Instant::now();
    let vms: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
    ensure_images(engine, t, &vms, say)?;
    let steps = reconcile_and_wait(engine, t, None, &vms, timeout, say)?;
    Ok(UpReport {
        steps,
        elapsed: started.elapsed(),
    })
}

/// Reconciles (all of `t`, or `only`), then waits for `vms` to be ready.
/// A VM or network that fails does not stop the rest: the others are still
/// waited for, and then every failure is returned together.
pub(crate) fn reconcile_and_wait(
    engine: &Engine,
    t: &Topology,
    only: Option<&[&str]>,
    vms: &[&str],
    timeout: Duration,
    say: &(dyn Fn(String) + Sync),
) -> Result<Vec<Step>> {
    let (steps, mut errors) = match engine.reconcile(t, only, &|p| say(step_line(p))) {
        Ok(steps) => (steps, vec![]),
        Err(e) if e.is_partial() => (vec![], vec![e]),
        Err(e) => return Err(e.into()),
    };
    let failed = errors.first().map(LabError::failed_vms).unwrap_or_default();
    for e in &errors {
        say(format!("failed: {}", crate::report(e)));
    }
    let rest: Vec<&str> = vms
        .iter()
        .copied()
        .filter(|v| !failed.contains(*v))
        .collect();
    say(format!("waiting for {} VM(s) to be ready", rest.len()));
    if let Err(e) = engine.wait_ready(&t.name, &rest, timeout, &|vm, after| {
        say(format!("{vm} is ready ({:.1} s)", after.as_secs_f64()))
    }) {
        errors.push(e);
    }
    // Ready, with every link up: each VM's own commands.
    let not_ready = errors
        .iter()
        .flat_map(LabError::failed_vms)
        .collect::<std::collections::BTreeSet<_>>();
    let ready: Vec<&str> = rest
        .iter()
        .copied()
        .filter(|v| !not_ready.contains(*v))
        .collect();
    let setup = run_setup(engine, t, &ready, say);
    LabError::combine(errors)?;
    if !setup.is_empty() {
        return Err(OpsError::Setup(setup));
    }
    Ok(steps)
}

/// Starts some VMs of a stored lab (and what they need), waits until ready.
pub fn start(
    engine: &Engine,
    t: &Topology,
    vms: &[&str],
    timeout: Duration,
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    let (_lock, t) = &hold(engine, t, vms, say)?;
    ensure_images(engine, t, vms, say)?;
    reconcile_and_wait(engine, t, Some(vms), vms, timeout, say)?;
    Ok(())
}

/// Powers some VMs of a lab down (ACPI, then quit, then kill).
pub fn stop(
    engine: &Engine,
    t: &Topology,
    vms: &[&str],
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    let (_lock, t) = &hold(engine, t, vms, say)?;
    for vm in vms {
        say(format!("stopping {vm}"));
        engine.stop_vm(&t.name, vm, Duration::from_secs(10))?;
    }
    Ok(())
}

/// Saves some running VMs' memory and stops them (`stop --save`, the
/// editor's Suspend), in parallel: the next start resumes each where it
/// was. A VM that is not running is refused, naming its state; one that
/// fails does not stop the others.
pub fn suspend(
    engine: &Engine,
    t: &Topology,
    vms: &[&str],
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    let (_lock, t) = &hold(engine, t, vms, say)?;
    let errors: Vec<LabError> = std::thread::scope(|scope| {
        let handles: Vec<_> = vms
            .iter()
            .map(|vm| {
                scope.spawn(move || {
                    say(format!("saving {vm}"));
                    let started = Instant::now();
                    let bytes = engine.save_vm(&t.name, vm)?;
                    say(format!(
                        "{vm} saved ({:.1} MB in {:.1} s) and stopped; its next start resumes it",
                        bytes as f64 / 1e6,
                        started.elapsed().as_secs_f64()
                    ));
                    Ok::<(), LabError>(())
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| h.join().expect("save_vm does not panic").err())
            .collect()
    });
    LabError::combine(errors)?;
    Ok(())
}

/// Stops a lab and removes its devices; with `cleanup`, its files too.
pub fn down(
    engine: &Engine,
    lab: &str,
    cleanup: bool,
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    let _lock = lock(engine, lab, say)?;
    say(format!(
        "stopping the VMs of {lab:?} and removing its devices"
    ));
    engine.down(lab, cleanup)?;
    Ok(())
}

/// Starts `vm` again if it is still crashed (the restart policy's step):
/// under the lab's lock, so a `down` or `stop` in between wins. Returns
/// whether it was started. Does not wait for readiness.
pub fn restart_crashed(engine: &Engine, t: &Topology, vm: &str) -> Result<bool> {
    check_vms(t, &[vm])?;
    let _lock = engine.lock(&t.name, &|| {})?;
    // Renamed or deleted since the crash was seen: nothing to restart.
    let t = &match current(engine, t, &[vm]) {
        Ok(t) => t,
        Err(OpsError::Store(StoreError::NotFound(_))) => return Ok(false),
        Err(e) => return Err(e),
    };
    let crashed = crate::lab::vm_states(engine, t)
        .get(vm)
        .is_some_and(|s| s.state == crate::lifecycle::VmState::Crashed);
    if !crashed {
        return Ok(false);
    }
    engine.reconcile(t, Some(&[vm]), &|_| {})?;
    // A new boot: once it is ready, its own commands run again.
    if t.node(vm).is_some_and(|n| !n.exec.is_empty()) {
        engine.wait_ready(&t.name, &[vm], Duration::from_secs(300), &|_, _| {})?;
        let failed = run_setup(engine, t, &[vm], &|_| {});
        if !failed.is_empty() {
            return Err(OpsError::Setup(failed));
        }
    }
    Ok(true)
}
