//! `minivm snapshot save|list|restore|rm LAB [NAME]`: lab snapshots, every
//! VM's disk and memory with the topology, taken and brought back together
//! (`engine::snapshot`).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use engine::snapshot;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Take a snapshot: the running VMs paused for the moment of the save.
    Save { lab: String, name: String },
    /// A lab's snapshots: name, time, size, VMs.
    List {
        lab: String,
        #[arg(long)]
        json: bool,
    },
    /// Bring the lab back to a snapshot: topology, disks, and the VMs that
    /// were running resumed from their memory.
    Restore {
        lab: String,
        name: String,
        /// Seconds to wait for the resumed VMs to be ready.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Remove a snapshot.
    Rm { lab: String, name: String },
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let engine = super::engine(state_dir)?;
    let store = engine::LabStore::open(state_dir)?;
    match args.command {
        Cmd::Save { lab, name } => {
            let t = Instant::now();
            let s = engine::ops::snapshot::save(&engine, &store, &lab, &name, &super::say)
                .with_context(|| format!("cannot take snapshot {name:?} of lab {lab:?}"))?;
            println!(
                "snapshot {name:?} of lab {lab:?}: {} VM(s), {:.1} MB, taken in {:.1} s (VMs paused {} ms)",
                s.vms.len(),
                s.bytes as f64 / 1e6,
                t.elapsed().as_secs_f64(),
                s.paused_ms
            );
        }
        Cmd::List { lab, json } => {
            let all = snapshot::list(&engine, &lab)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!("{:<20} {:<20} {:>9}  VMS", "NAME", "TAKEN (UTC)", "SIZE");
                for s in all {
                    let running = s.vms.values().filter(|v| v.saved.is_some()).count();
                    println!(
                        "{:<20} {:<20} {:>8.1}M  {} ({} running)",
                        s.name,
                        topology::time::utc(s.created_at),
                        s.bytes as f64 / 1048576.0,
                        s.vms.len(),
                        running
                    );
                }
            }
        }
        Cmd::Restore { lab, name, timeout } => {
            let t = Instant::now();
            let s = engine::ops::snapshot::restore(
                &engine,
                &store,
                &lab,
                &name,
                Duration::from_secs(timeout),
                &super::say,
            )
            .with_context(|| format!("cannot restore snapshot {name:?} of lab {lab:?}"))?;
            println!(
                "lab {lab:?} is back at snapshot {:?} ({} VM(s)) in {:.1} s",
                s.name,
                s.vms.len(),
                t.elapsed().as_secs_f64()
            );
        }
        Cmd::Rm { lab, name } => {
            engine::ops::snapshot::remove(&engine, &lab, &name, &super::say)?;
            println!("removed snapshot {name:?} of lab {lab:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
