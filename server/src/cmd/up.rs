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
    // Bad input changes nothing: every image must exist before anything is made.
    for n in &t.nodes {
        let image = t.node_image(n).unwrap_or_default();
        if !engine.images.exists(image)? {
            bail!("node {:?}: no image named {image:?} (see `minivm image list`); nothing was changed", n.name);
        }
    }
    let observed = engine.observe(&t)?;
    if args.dry_run {
        let steps = engine::plan::plan(&t, &observed);
        if args.json {
            println!("{}", serde_json::to_string_pretty(&steps)?);
        } else if steps.is_empty() {
            println!("lab {:?} is up to date: nothing to do", t.name);
        } else {
            for s in &steps {
                println!("{}  ({})", serde_json::to_value(&s.action)?["action"].as_str().unwrap_or(""), s.reason);
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let labs = engine::LabStore::open(state_dir)?;
    let current = labs.get(&t.name).ok().map(|(_, rev)| rev);
    labs.put(&t, current.as_deref()).context("cannot record the lab")?;

    let started = Instant::now();
    eprintln!("lab {:?}: accelerator {} ({})", t.name, engine.accel.accel.name(), engine.accel.reason);
    let steps = engine
        .reconcile(&t, &mut |s| eprintln!("  {}", s.reason))
        .with_context(|| format!("cannot bring lab {:?} up", t.name))?;
    eprintln!("waiting for {} VM(s) to be ready ...", t.nodes.len());
    engine
        .wait_ready(&t, Duration::from_secs(args.timeout))
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
