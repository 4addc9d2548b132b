//! `minivm exec LAB VM -- CMD [ARGS...]`: runs a program in the guest
//! through its agent (no shell: the words are passed as they are), prints
//! its stdout and stderr, and exits with its exit code.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    lab: String,
    vm: String,
    /// Seconds the command may run.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// The program and its arguments (after `--`).
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let engine = super::engine(state_dir)?;
    let t = super::stored_lab(state_dir, &args.lab, std::slice::from_ref(&args.vm))?;
    let r = engine.exec(
        &t.name,
        &args.vm,
        &args.command,
        Duration::from_secs(args.timeout),
    )?;
    std::io::stdout().write_all(r.stdout.as_bytes())?;
    std::io::stderr().write_all(r.stderr.as_bytes())?;
    // A code outside 0..=255 (the agent reports -1 when it has none) is a failure.
    Ok(ExitCode::from(u8::try_from(r.exit_code).unwrap_or(255)))
}
