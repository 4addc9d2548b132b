//! `minivm import FILE.clab.yml [--name LAB] [-o OUT.yaml] [--image-map
//! PATTERN=IMAGE]...`: a containerlab topology made a MiniVM lab
//! (`topology::clab`), stored in the state directory or written to OUT,
//! with a report of everything not carried over on stderr. The files the
//! lab names are read relative to the .clab.yml, never outside its
//! directory. Bad input changes nothing.

use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use topology::clab::{self, Source};

#[derive(clap::Args)]
pub struct Args {
    /// The containerlab topology (`*.clab.yml`).
    file: PathBuf,
    /// The lab's name (default: the file's `name`, made valid).
    #[arg(long)]
    name: Option<String>,
    /// Write the lab here (YAML) instead of storing it.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// Bring nodes of other kinds in as VMs of IMAGE: PATTERN matches a
    /// kind or a container image, `*` any run of characters. Repeatable;
    /// the first match wins.
    #[arg(long = "image-map", value_name = "PATTERN=IMAGE", value_parser = clab::parse_image_map)]
    image_map: Vec<(String, String)>,
}

/// Reads what a lab names, relative to `dir` and never outside it: a file
/// (at most the topology's per-file limit), or a directory's files (its
/// tree, at most `clab::MAX_DIR_FILES` + 1 of them, so that more is said).
fn reader(dir: &Path) -> impl FnMut(&str) -> Result<Source, String> + '_ {
    move |rel| {
        let p = Path::new(rel);
        if p.is_absolute() || p.components().any(|c| c == Component::ParentDir) {
            return Err("outside the lab's directory".into());
        }
        let limit = topology::validate::MAX_FILE_CONTENT;
        let read_file = |rel: &Path| -> Result<String, String> {
            engine::fsutil::read_confined(dir, rel, limit).map_err(|e| e.to_string())
        };
        // A directory is walked without following links; each file in it
        // is read as one named on its own.
        let is_dir = std::fs::symlink_metadata(dir.join(p)).is_ok_and(|m| m.is_dir());
        if !is_dir {
            return read_file(p).map(Source::File);
        }
        let mut out = Vec::new();
        let mut stack = vec![PathBuf::new()];
        while let Some(sub) = stack.pop() {
            let mut entries: Vec<_> = std::fs::read_dir(dir.join(p).join(&sub))
                .map_err(|e| e.to_string())?
                .flatten()
                .collect();
            entries.sort_by_key(|e| e.file_name());
            for e in entries {
                let rel = sub.join(e.file_name());
                if e.file_type().map_err(|e| e.to_string())?.is_dir() {
                    stack.push(rel);
                } else if out.len() <= clab::MAX_DIR_FILES {
                    out.push((
                        rel.to_string_lossy().into_owned(),
                        read_file(&p.join(&rel))?,
                    ));
                }
            }
        }
        Ok(Source::Dir(out))
    }
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let text = super::validate::read_limited(&args.file)
        .with_context(|| format!("cannot read {name}"))?
        .ok_or_else(|| anyhow::anyhow!("{name}: too large; refused without parsing"))?;
    let dir = args.file.parent().unwrap_or(Path::new(".")).to_path_buf();
    // The same flow as the web's import: made by `ops::import`, stored by
    // `ops::create` (or written to OUT).
    let imported = engine::ops::import(&text, args.name, args.image_map, &mut reader(&dir))
        .with_context(|| format!("{name}: nothing was imported"))?;
    let t = imported.topology;
    for line in &imported.report {
        eprintln!("  report: {line}");
    }
    let summary = format!(
        "{} VM(s), {} network(s); {} report line(s)",
        t.nodes.len(),
        t.networks.len(),
        imported.report.len()
    );
    match args.output {
        Some(out) => {
            engine::fsutil::write_atomic(&out, topology::to_yaml(&t).as_bytes())
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "imported {name} as lab {:?} into {}: {summary}; bring it up with `minivm up -f {}`",
                t.name,
                out.display(),
                out.display()
            );
        }
        None => {
            let engine = super::engine(state_dir)?;
            let store = engine::LabStore::open(state_dir)?;
            engine::ops::create(&engine, &store, &t, &|_| {})
                .with_context(|| format!("{name}: nothing was imported"))?;
            println!(
                "imported {name} as lab {:?}: {summary}; start it from the web page or with `minivm start`",
                t.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
