//! `minivm up -f FILE [--dry-run] [--json] [--timeout SECS]`: validate,
//! plan, apply, wait until every VM is ready. Exit 0 only when the lab is up.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    /// Topology file, YAML or JSON.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Print the plan and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// With --dry-run: the plan as JSON.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for every VM to be ready.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let t = super::validate::load(&args.file)?;
    let engine = super::engine(state_dir)?;
    // Bad input changes nothing: every image must exist, and the lab's name
    // must be free (or this file's), before anything is made.
    for n in &t.nodes {
        let image = t.node_image(n).unwrap_or_default();
        if !engine.images.exists(image)? {
            bail!("node {:?}: no image named {image:?} (see `minivm image list`); nothing was changed", n.name);
        }
    }
    let labs = engine::LabStore::open(state_dir)?;
    labs.check_from_file(&t, &args.file)
        .context("nothing was changed")?;
    if args.dry_run {
        let steps = engine::plan::plan(&t, &engine.observe(&t)?);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&steps)?);
        } else if steps.is_empty() {
            println!("lab {:?} is up to date: nothing to do", t.name);
        } else {
            for s in &steps {
                println!("{:<16} {}", s.action.kind(), s.reason);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let _lock = super::lock(&engine, &t.name)?;
    labs.put_from_file(&t, &args.file)
        .context("nothing was changed")?;

    let started = Instant::now();
    eprintln!(
        "lab {:?}: accelerator {} ({})",
        t.name,
        engine.accel.accel.name(),
        engine.accel.reason
    );
    let steps = engine
        .reconcile(&t, None, &super::print_progress)
        .with_context(|| format!("cannot bring lab {:?} up", t.name))?;
    let vms: Vec<&str> = t.nodes.iter().map(|n| n.name.as_str()).collect();
    super::wait_ready(&engine, &t.name, &vms, Duration::from_secs(args.timeout))
        .with_context(|| format!("lab {:?} is not up", t.name))?;
    println!(
        "lab {:?} is up: {} VMs ready, {} step(s) applied in {:.1} s",
        t.name,
        t.nodes.len(),
        steps.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
