//! `minivm doctor`: can this host run a lab? Each check with a fix hint;
//! exit 0 when a lab can run (TCG counts), 1 otherwise.

use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let report = engine::doctor::run(state_dir);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for c in &report.checks {
            let mark = match c.status {
                engine::doctor::Status::Ok => "ok  ",
                engine::doctor::Status::Warn => "warn",
                engine::doctor::Status::Fail => "FAIL",
            };
            println!("[{mark}] {:<22} {}", c.name, c.detail);
            if let Some(h) = &c.hint {
                println!("       {:<22} fix: {h}", "");
            }
        }
        println!(
            "accelerator: {} ({})",
            report.accelerator.name(),
            report.accelerator_reason
        );
        println!(
            "{}",
            if report.can_run {
                "a lab can run on this host"
            } else {
                "a lab cannot run on this host yet"
            }
        );
    }
    Ok(if report.can_run {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
