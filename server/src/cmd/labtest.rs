//! `minivm test LAB [--junit FILE] [--json]`: runs the lab's tests (the
//! topology's `tests:`), VMs in parallel; prints each result as it ends,
//! with the output of a failing one; exit 1 on any failure. `--junit` also
//! writes JUnit XML (atomically) for CI systems.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct Args {
    /// The lab's name.
    lab: String,
    /// Also write the results as JUnit XML to this file.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// The results as JSON on stdout (instead of lines).
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let engine = super::engine(state_dir)?;
    let t = super::stored_lab(state_dir, &args.lab, &[])?;
    if t.tests.is_empty() {
        anyhow::bail!(
            "lab {:?} has no tests: add them under `tests:` in its topology",
            t.name
        );
    }
    let started = std::time::Instant::now();
    let json = args.json;
    let print = |o: &engine::labtest::Outcome| {
        if json {
            return;
        }
        let mark = if o.passed { "ok  " } else { "FAIL" };
        let tries = if o.attempts > 1 {
            format!(", {} attempts", o.attempts)
        } else {
            String::new()
        };
        println!("{mark}  {} ({:.1} s{tries})", o.name, o.seconds);
        if !o.passed {
            println!(
                "      in {}: expected {}; exit code {}",
                o.vm, o.expected, o.exit_code
            );
            for line in o.output.lines().take(20) {
                println!("      | {line}");
            }
        }
    };
    let outcomes = engine::labtest::run(&engine, &t, &print);
    let failed = outcomes.iter().filter(|o| !o.passed).count();
    if let Some(path) = &args.junit {
        let xml = engine::labtest::junit_xml(&t.name, &outcomes);
        engine::fsutil::write_atomic(path, xml.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        println!(
            "{} test(s): {} passed, {failed} failed ({:.1} s)",
            outcomes.len(),
            outcomes.len() - failed,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
