//! `minivm down (-f FILE | LAB) [--cleanup]`: stop the VMs, remove TAPs,
//! bridges and the namespace; `--cleanup` also removes the lab's directory.
//! Works with the lab's name alone, even when its file is gone.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;

#[derive(clap::Args)]
pub struct Args {
    /// The lab's name.
    lab: Option<String>,
    /// Or its topology file.
    #[arg(short = 'f', long = "file", conflicts_with = "lab")]
    file: Option<PathBuf>,
    /// Also remove overlays, seeds and the lab's directory.
    #[arg(long)]
    cleanup: bool,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let lab = match (args.lab, args.file) {
        (Some(l), None) => l,
        (None, Some(f)) => super::validate::load(&f)?.name,
        _ => bail!("name the lab, or give its file with -f"),
    };
    topology::names::check_name(&lab)
        .map_err(|e| anyhow::anyhow!("invalid lab name {lab:?}: {e}"))?;
    let engine = super::engine(state_dir)?;
    engine::ops::down(&engine, &lab, args.cleanup, &super::say)?;
    println!(
        "lab {lab:?} is down{}",
        if args.cleanup { " and cleaned up" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}
