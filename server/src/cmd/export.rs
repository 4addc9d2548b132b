//! `minivm export (LAB | -f FILE) --format clab [-o DIR]`: a lab in
//! containerlab's format (`topology::clab::export`): DIR/<lab>.clab.yml and
//! the files it names beside it (without -o: the .clab.yml on stdout, for a
//! lab that names no files). What the format cannot say is reported.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    /// The stored lab's name.
    lab: Option<String>,
    /// Or a topology file.
    #[arg(short = 'f', long = "file", conflicts_with = "lab")]
    file: Option<PathBuf>,
    /// The format: clab (containerlab's .clab.yml).
    #[arg(long, value_parser = ["clab"])]
    format: String,
    /// The directory to write into (made if missing).
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let t = match (&args.lab, &args.file) {
        (Some(l), None) => engine::LabStore::open(state_dir)?.get(l)?.0,
        (None, Some(f)) => super::validate::load(f)?,
        _ => bail!("name the lab, or give its file with -f"),
    };
    let out = topology::clab::export(&t);
    for line in &out.report {
        eprintln!("  report: {line}");
    }
    match args.output {
        None if out.files.is_empty() => print!("{}", out.clab),
        None => bail!(
            "lab {:?} names {} file(s): give a directory to write them into with -o",
            t.name,
            out.files.len()
        ),
        Some(dir) => {
            let write = |rel: &str, text: &str| -> anyhow::Result<()> {
                let p = dir.join(rel);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                engine::fsutil::write_atomic(&p, text.as_bytes())
                    .with_context(|| format!("cannot write {}", p.display()))
            };
            let main = format!("{}.clab.yml", t.name);
            write(&main, &out.clab)?;
            for (rel, text) in &out.files {
                write(rel, text)?;
            }
            println!(
                "exported lab {:?} to {} ({} file(s) beside it)",
                t.name,
                dir.join(&main).display(),
                out.files.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
