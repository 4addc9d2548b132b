//! The lab operations, as one code path for the CLI and the web app: each
//! takes the lab's lock, says what it does through `say` (the CLI prints it,
//! the server publishes it as events), and changes nothing when its input
//! is refused.

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use topology::Topology;

use crate::image::build::Flavour;
use crate::lab::{Engine, LabError, Progress};
use crate::plan::Step;
use crate::store::{LabStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error(
        "node {node:?}: no image named {image:?} (see `minivm image list`); nothing was changed"
    )]
    NoImage { node: String, image: String },
    #[error("lab {lab:?} has no VM named {vm:?} (it has: {})", has.join(", "))]
    NoVm {
        lab: String,
        vm: String,
        has: Vec<String>,
    },
    #[error(transparent)]
    UnknownAction(#[from] topology::lifecycle::UnknownAction),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    #[error(transparent)]
    Mgmt(#[from] crate::mgmt::MgmtError),
    #[error("cannot build image {image:?} on first use")]
    Build {
        image: String,
        source: crate::image::ImageError,
    },
    #[error("{vm} has no eth{nic} of its own to change (it has {count} NIC(s){})", if *count > 0 && *nic == 0 { ", eth0 being the management network's" } else { "" })]
    NoNic {
        vm: String,
        nic: usize,
        count: usize,
    },
    #[error("lab {lab:?} would be invalid; nothing was changed:\n{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid {
        lab: String,
        problems: Vec<topology::Problem>,
    },
    #[error("{}", .0.iter().map(|f| f.to_string()).collect::<Vec<_>>().join("; "))]
    Setup(Vec<SetupFailure>),
    #[error(transparent)]
    Snapshot(crate::snapshot::SnapshotError),
    #[error("cannot {what} lab {lab:?} while VMs run ({}); stop the lab first", vms.join(", "))]
    Running {
        lab: String,
        what: &'static str,
        vms: Vec<String>,
    },
    #[error("{vm}: restart failed")]
    Restart { vm: String, source: Box<OpsError> },
}

pub type Result<T, E = OpsError> = std::result::Result<T, E>;

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

/// Refuses a lab none of whose VMs has its image in the store: nothing
/// could run (an empty store, a typo in `defaults.image`), so nothing is
/// made. A lab where only some VMs lack theirs comes up without them, each
/// failing with its own error.
/// A built-in image (`tiny`, `frr`) counts as there: it is built on first
/// use (see [`ensure_images`]).
pub fn check_images(engine: &Engine, t: &Topology) -> Result<()> {
    let mut first_missing = None;
    for n in &t.nodes {
        let image = t.node_image(n).unwrap_or_default();
        if engine.images.exists(image)? || Flavour::parse(image).is_some() {
            return Ok(());
        }
        first_missing.get_or_insert_with(|| OpsError::NoImage {
            node: n.name.clone(),
            image: image.to_string(),
        });
    }
    first_missing.map_or(Ok(()), Err)
}

/// What `up` (and `up --dry-run`) refuses before it changes anything, for
/// what the host has: the images ([`check_images`]), and port forwards
/// that would expose the lab without the host's opt-in or take a port a
/// host service listens on.
pub fn check_host(engine: &Engine, t: &Topology) -> Result<()> {
    check_images(engine, t)?;
    let expose = engine
        .expose
        .unwrap_or_else(|| crate::mgmt::exposed(&engine.lab_dir(&t.name)));
    crate::mgmt::check_forwards(t, expose, &crate::mgmt::host_listeners())?;
    Ok(())
}

/// Builds the built-in images (`tiny`, `frr`) that VMs `vms` of `t` use and
/// the store lacks (and no overlay uses: one removed under its VMs is not
/// replaced by another), saying each build step: the first `up` of a lab with an
/// `frr` router builds that image, once. Builds take the image store's
/// build lock, so two commands needing the same image build it once.
pub fn ensure_images(
    engine: &Engine,
    t: &Topology,
    vms: &[&str],
    say: &(dyn Fn(String) + Sync),
) -> Result<()> {
    let wanted: std::collections::BTreeSet<&str> = t
        .nodes
        .iter()
        .filter(|n| vms.contains(&n.name.as_str()))
        .filter_map(|n| t.node_image(n))
        .collect();
    for image in wanted {
        let Some(flavour) = Flavour::parse(image) else {
            continue;
        };
        if engine.images.exists(image)? {
            continue;
        }
        // An image removed under overlays that still use it is not made
        // again: a new build is another disk under them. Their VMs say
        // the image is missing.
        if !engine.images.overlays_using(image)?.is_empty() {
            continue;
        }
        let lock_path = engine.images.dir().join(".build.lock");
        let _lock = crate::fsutil::lock_file(&lock_path, true).map_err(|e| {
            crate::image::ImageError::Io {
                action: "lock",
                path: lock_path.clone(),
                source: e,
            }
        })?;
        if engine.images.exists(image)? {
            continue;
        }
        say(format!(
            "building image {image:?} (first use; about a minute)"
        ));
        let n = crate::image::build::STEPS.len();
        let started = Instant::now();
        crate::image::build::build(&engine.images, image, flavour, &mut |i, step| {
            say(format!("image {image}: [{}/{n}] {step}", i + 1))
        })
        .map_err(|source| OpsError::Build {
            image: image.to_string(),
            source,
        })?;
        say(format!(
            "image {image:?} built in {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(())
}

/// Refuses a VM name the lab does not have, listing those it has: the one
/// check of VM names for the CLI, the web app and the operations here.
pub fn check_vms<S: AsRef<str>>(t: &Topology, vms: &[S]) -> Result<()> {
    match vms.iter().find(|v| t.node(v.as_ref()).is_none()) {
        Some(vm) => Err(OpsError::NoVm {
            lab: t.name.clone(),
            vm: vm.as_ref().to_string(),
            has: t.nodes.iter().map(|n| n.name.clone()).collect(),
        }),
        None => Ok(()),
    }
}

/// A change to one NIC's link: each field set replaces the stored one;
/// `clear` first resets every impairment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkEdit {
    #[serde(default)]
    pub up: Option<bool>,
    #[serde(default)]
    pub clear: bool,
    #[serde(default)]
    pub delay_ms: Option<u32>,
    #[serde(default)]
    pub jitter_ms: Option<u32>,
    #[serde(default)]
    pub loss_pct: Option<f64>,
    #[serde(default)]
    pub rate_kbit: Option<u64>,
    #[serde(default)]
    pub corrupt_pct: Option<f64>,
    #[serde(default)]
    pub duplicate_pct: Option<f64>,
    #[serde(default)]
    pub reorder_pct: Option<f64>,
}

impl LinkEdit {
    /// `nic` with this edit made.
    pub fn apply_to(&self, nic: &mut topology::Nic) {
        let LinkEdit {
            up,
            clear,
            delay_ms,
            jitter_ms,
            loss_pct,
            rate_kbit,
            corrupt_pct,
            duplicate_pct,
            reorder_pct,
        } = self;
        if let Some(up) = up {
            nic.up = *up;
        }
        if *clear {
            nic.impair = topology::Impair::NONE;
        }
        let i = &mut nic.impair;
        i.delay_ms = delay_ms.unwrap_or(i.delay_ms);
        i.jitter_ms = jitter_ms.unwrap_or(i.jitter_ms);
        i.loss_pct = loss_pct.unwrap_or(i.loss_pct);
        i.rate_kbit = rate_kbit.unwrap_or(i.rate_kbit);
        i.corrupt_pct = corrupt_pct.unwrap_or(i.corrupt_pct);
        i.duplicate_pct = duplicate_pct.unwrap_or(i.duplicate_pct);
        i.reorder_pct = reorder_pct.unwrap_or(i.reorder_pct);
    }
}

/// What `set_link` did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinkReport {
    pub lab: String,
    pub vm: String,
    pub nic: usize,
    pub revision: String,
    /// The link now, as stored.
    pub up: bool,
    pub impair: topology::Impair,
    /// The steps applied live (none when the VM is not running: its next
    /// start applies them).
    pub steps: Vec<Step>,
    pub elapsed_ms: u64,
}

/// Changes one NIC's link in the stored lab (a new revision, so open pages
/// see it) and applies it live when its VM runs, without restarting it.
/// Bad input changes nothing.
pub fn set_link(
    engine: &Engine,
    store: &LabStore,
    lab: &str,
    vm: &str,
    nic: usize,
    edit: &LinkEdit,
    say: &(dyn Fn(String) + Sync),
) -> Result<LinkReport> {
    let started = Instant::now();
    let _lock = lock(engine, lab, say)?;
    let (mut t, revision) = store.get(lab)?;
    check_vms(&t, &[vm])?;
    // `nic` is the guest's ethN: with a management network, eth0 is that
    // network's NIC (not the lab's to shape) and the node's own start at eth1.
    let own = topology::mgmt::own_nic_index(&t, nic);
    let first = topology::mgmt::guest_nic_index(&t, 0);
    let node = t.nodes.iter_mut().find(|n| n.name == vm).expect("checked");
    let count = node.nics.len() + first;
    let n = own
        .and_then(|k| node.nics.get_mut(k))
        .ok_or_else(|| OpsError::NoNic {
            vm: vm.into(),
            nic,
            count,
        })?;
    edit.apply_to(n);
    let (up, impair) = (n.up, n.impair);
    let problems = topology::validate(&t);
    if !problems.is_empty() {
        return Err(OpsError::Invalid {
            lab: lab.into(),
            problems,
        });
    }
    let revision = store.put(&t, Some(&revision))?;
    let steps = if crate::lab::running_qemus(lab).contains_key(vm) {
        engine.reconcile(&t, Some(&[vm]), &|p| say(step_line(p)))?
    } else {
        say(format!(
            "{vm} is not running; its next start applies the link"
        ));
        vec![]
    };
    Ok(LinkReport {
        lab: lab.into(),
        vm: vm.into(),
        nic,
        revision,
        up,
        impair,
        steps,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Applies the link changes of a saved lab to its running VMs, in place
/// (the editor's save): nothing is started, stopped or recreated here.
pub fn apply_links(
    engine: &Engine,
    t: &Topology,
    say: &(dyn Fn(String) + Sync),
) -> Result<Vec<Step>> {
    let _lock = lock(engine, &t.name, say)?;
    let running = crate::lab::running_qemus(&t.name);
    let observed = engine.observe(t)?;
    let steps: Vec<Step> = crate::plan::plan(t, &observed)
        .into_iter()
        .filter(|s| {
            matches!(&s.action, crate::plan::Action::UpdateLink { vm, ifname, .. }
                if running.contains_key(vm) && observed.taps.contains(ifname))
        })
        .collect();
    for s in &steps {
        say(s.reason.clone());
        engine.apply(t, s)?;
    }
    Ok(steps)
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

/// Takes the lab's lock, saying so when another command holds it.
pub(crate) fn lock(
    engine: &Engine,
    lab: &str,
    say: &(dyn Fn(String) + Sync),
) -> Result<crate::lab::LabLock, LabError> {
    engine.lock(lab, &|| {
        say(format!(
            "waiting for another command working on lab {lab:?}"
        ))
    })
}

fn step_line(p: Progress) -> String {
    format!("[{}/{}] {}", p.done, p.total, p.step.reason)
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
    check_vms(t, vms)?;
    let _lock = lock(engine, &t.name, say)?;
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
    check_vms(t, vms)?;
    let _lock = lock(engine, &t.name, say)?;
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
    check_vms(t, vms)?;
    let _lock = lock(engine, &t.name, say)?;
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

/// Renames lab `from` to `to`, keeping everything of it: disks, saved
/// states and snapshots move with its directory. Refused while any of its
/// VMs runs (their devices and processes carry its name), saying which;
/// its leftover devices (bridges, namespace, rules) are removed first.
pub fn rename(
    engine: &Engine,
    store: &LabStore,
    from: &str,
    to: &str,
    say: &(dyn Fn(String) + Sync),
) -> Result<String> {
    store.get(from)?;
    topology::names::check_name(to).map_err(|reason| StoreError::BadName {
        name: to.to_string(),
        reason,
    })?;
    let _lock = lock(engine, from, say)?;
    let running: Vec<String> = crate::lab::running_qemus(from).into_keys().collect();
    if !running.is_empty() {
        return Err(OpsError::Running {
            lab: from.to_string(),
            what: "rename",
            vms: running,
        });
    }
    engine.down(from, false)?;
    let rev = store.rename(from, to)?;
    say(format!(
        "lab {from:?} is now {to:?}, with its disks and snapshots"
    ));
    Ok(rev)
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
