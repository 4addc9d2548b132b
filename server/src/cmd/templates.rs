//! Lab templates on the command line:
//! - `minivm templates [--json]`: the built-in templates and the user's,
//!   with their parameters and defaults;
//! - `minivm templates save LAB NAME [--description TEXT]`: a stored lab as
//!   a template of the user's (`<state>/templates/NAME.yaml`, a file to
//!   share); `templates import FILE [--name NAME]`, `templates rm NAME`;
//! - `minivm new NAME --template T [--set KEY=VALUE]... [-o FILE]`: a lab
//!   from a template, stored in the state directory (as the web editor's
//!   New does), or written to FILE for `minivm up -f FILE`;
//! - `minivm graph (LAB | -f FILE) --format mermaid|dot|svg`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    cmd: Option<Cmd>,
    /// The list as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Save a stored lab as a template of your own.
    Save {
        lab: String,
        name: String,
        /// One line for the gallery.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Add a template from a file someone shared.
    Import {
        file: PathBuf,
        /// Its name (default: the file's name without .yaml).
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a template of your own.
    Rm { name: String },
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let store = engine::templates::TemplateStore::open(state_dir);
    match args.cmd {
        None => {
            let all = store.list();
            if args.json {
                println!("{}", serde_json::to_string_pretty(&all)?);
                return Ok(ExitCode::SUCCESS);
            }
            for t in &all {
                let params: Vec<String> = t
                    .params
                    .iter()
                    .map(|p| match (p.min, p.max) {
                        (Some(a), Some(b)) => format!("{}={} ({a}..{b})", p.name, p.default),
                        _ => format!("{}={}", p.name, p.default),
                    })
                    .collect();
                let whose = if t.builtin { "built in" } else { "yours" };
                println!("{:<16} {:<9} {}", t.name, whose, t.description);
                if !params.is_empty() {
                    println!("{:<16} {:<9} --set {}", "", "", params.join(" --set "));
                }
            }
        }
        Some(Cmd::Save {
            lab,
            name,
            description,
        }) => {
            let (t, _) = engine::LabStore::open(state_dir)?.get(&lab)?;
            let path = store
                .save(&name, &t, &description)
                .with_context(|| format!("cannot save lab {lab:?} as template {name:?}"))?;
            println!("saved lab {lab:?} as template {name:?}: {}", path.display());
        }
        Some(Cmd::Import { file, name }) => {
            let name = match name {
                Some(n) => n,
                None => file
                    .file_stem()
                    .map(|s| {
                        s.to_string_lossy()
                            .trim_end_matches(".template")
                            .to_string()
                    })
                    .context("give the template's name with --name")?,
            };
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let path = store
                .import(&name, &text)
                .with_context(|| format!("cannot import {}", file.display()))?;
            println!("imported template {name:?}: {}", path.display());
        }
        Some(Cmd::Rm { name }) => {
            store
                .remove(&name)
                .with_context(|| format!("cannot remove template {name:?}"))?;
            println!("removed template {name:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// The new lab's name.
    name: String,
    /// The template (`minivm templates` lists them).
    #[arg(long)]
    template: String,
    /// A parameter: KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Write the topology to this file instead of storing the lab.
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
}

pub fn run_new(args: NewArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let sets = topology::templates::parse_sets(&args.sets).map_err(|p| anyhow::anyhow!("{p}"))?;
    let t = engine::templates::TemplateStore::open(state_dir)
        .instantiate(&args.template, &args.name, &sets)
        .with_context(|| format!("nothing was made from template {:?}", args.template))?;
    let what = format!(
        "{} VM(s), {} network(s), {} test(s)",
        t.nodes.len(),
        t.networks.len(),
        t.tests.len()
    );
    match &args.output {
        Some(file) => {
            engine::fsutil::write_atomic(file, topology::to_yaml(&t).as_bytes())
                .with_context(|| format!("cannot write {}", file.display()))?;
            println!(
                "wrote lab {:?} from template {:?} to {} ({what}); start it with `minivm up -f {}`",
                t.name,
                args.template,
                file.display(),
                file.display()
            );
        }
        None => {
            let engine = super::engine(state_dir)?;
            let labs = engine::LabStore::open(state_dir)?;
            engine::ops::create(&engine, &labs, &t, &|_| {})
                .with_context(|| format!("cannot store lab {:?}", t.name))?;
            println!(
                "made lab {:?} from template {:?} ({what}); it is in the web editor, and `minivm export {} ...`/`minivm graph {}` work on it",
                t.name, args.template, t.name, t.name
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(clap::Args)]
pub struct GraphArgs {
    /// The stored lab's name.
    lab: Option<String>,
    /// Or a topology file.
    #[arg(short = 'f', long = "file", conflicts_with = "lab")]
    file: Option<PathBuf>,
    /// mermaid, dot (Graphviz) or svg.
    #[arg(long, value_parser = ["mermaid", "dot", "svg"], default_value = "mermaid")]
    format: String,
}

pub fn run_graph(args: GraphArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let t = match (&args.lab, &args.file) {
        (Some(l), None) => engine::LabStore::open(state_dir)?.get(l)?.0,
        (None, Some(f)) => super::validate::load(f)?,
        _ => bail!("name the lab, or give its file with -f"),
    };
    let text = match args.format.as_str() {
        "dot" => topology::graph::dot(&t),
        "svg" => topology::graph::svg(&t, 1.0),
        _ => topology::graph::mermaid(&t),
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
