//! `minivm up -f FILE [--dry-run] [--json] [--timeout SECS] [--cold] [--expose] [--force]`: validate,
//! plan, apply, wait until every VM is ready. Exit 0 only when the lab is up.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

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
    /// Boot every VM cold: no warm image is used or made (a VM's own saved
    /// state is still resumed).
    #[arg(long)]
    cold: bool,
    /// Let `mgmt.ports` forwards listen on addresses beyond 127.0.0.1
    /// (0.0.0.0 is every address of this host): this exposes those VM
    /// ports to every machine that reaches them. Recorded for the lab
    /// until an `up` without it.
    #[arg(long)]
    expose: bool,
    /// Bring the file up even when the lab was edited elsewhere (the web
    /// editor) since it came from this file: those edits are undone, and
    /// VMs added there are deleted with their disks.
    #[arg(long)]
    force: bool,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let t = super::validate::load(&args.file)?;
    let mut engine = super::engine(state_dir)?;
    engine.cold = args.cold;
    engine.expose = Some(args.expose);
    engine.force = args.force;
    let labs = engine::LabStore::open(state_dir)?;
    if args.dry_run {
        // The same refusals as a real `up`, then the plan; nothing changes.
        engine::ops::check_host(&engine, &t)?;
        labs.check_from_file(&t, &args.file, args.force)
            .context("nothing was changed")?;
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
    eprintln!(
        "lab {:?}: accelerator {} ({})",
        t.name,
        engine.accel.accel.name(),
        engine.accel.reason
    );
    let report = engine::ops::up(
        &engine,
        &labs,
        &t,
        Some(&args.file),
        Duration::from_secs(args.timeout),
        &super::say,
    )
    .with_context(|| format!("lab {:?} is not up", t.name))?;
    println!(
        "lab {:?} is up: {} VMs ready, {} step(s) applied in {:.1} s",
        t.name,
        t.nodes.len(),
        report.steps.len(),
        report.elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
