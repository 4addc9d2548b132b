//! The lab operations, as one code path for the CLI and the web app: each
//! takes the lab's lock, says what it does through `say` (the CLI prints it,
//! the server publishes it as events), and changes nothing when its input
//! is refused.

use std::time::Instant;

use topology::Topology;

use crate::image::build::Flavour;
use crate::lab::{Engine, LabError, Progress};
use crate::store::StoreError;

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
    #[error("a lab named {lab:?} exists already; choose another name (nothing was changed)")]
    Exists { lab: String },
    /// A file that is not a topology (its parse problems, one per line).
    #[error("{reason}")]
    Import { reason: String },
    #[error(transparent)]
    Clab(#[from] topology::clab::ClabError),
}

pub type Result<T, E = OpsError> = std::result::Result<T, E>;

mod catalog;
mod lifecycle;
mod links;
pub mod snapshot;

pub use catalog::{create, delete, duplicate, empty, import, rename, save, set_expose, Imported};
pub(crate) use lifecycle::reconcile_and_wait;
pub use lifecycle::{
    down, restart_crashed, run_vm_action, setup_record, start, stop, suspend, up, SetupFailure,
    SetupRecord, UpReport, VmAction,
};
pub use links::{apply_links, set_link, LinkEdit, LinkReport};

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

pub(crate) fn step_line(p: Progress) -> String {
    format!("[{}/{}] {}", p.done, p.total, p.step.reason)
}
