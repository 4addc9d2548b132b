//! `minivm`: the MiniVM web server and CLI. One file per subcommand under
//! `cmd/`; each turns its flags into one call into the engine or the app.

// The editor's view types are deep (Leptos builds them from the markup).
#![recursion_limit = "256"]

mod cmd;
mod web;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use engine::ops::VmAction;

#[derive(Parser)]
#[command(
    name = "minivm",
    version,
    about = "Draw a network of small VMs and run it for real on this host"
)]
struct Cli {
    /// Where labs, images and VM state live.
    #[arg(long, global = true, env = "MINIVM_STATE_DIR", default_value = engine::store::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web app.
    Serve(cmd::serve::Args),
    /// Check a topology file and report every problem.
    Validate(cmd::validate::Args),
    /// Manage base images: build, list, import, rm.
    Image(cmd::image::Args),
    /// Check that this host can run labs, and say which accelerator is used.
    Doctor(cmd::doctor::Args),
    /// Make the host match a topology file and wait until every VM is ready.
    Up(cmd::up::Args),
    /// Stop a lab and remove its devices (and with --cleanup its files).
    Down(cmd::down::Args),
    /// Labs and their VMs: state, pid, accelerator, addresses, uptime.
    Status(cmd::status::Args),
    /// Start VMs of a lab (and what they need), wait until they are ready.
    Start(cmd::vm::Args),
    /// Power VMs of a lab down (ACPI, then quit).
    Stop(cmd::vm::Args),
    /// Stop, then start VMs of a lab.
    Restart(cmd::vm::Args),
    /// Run a program in a VM through its guest agent; exits with its code.
    Exec(cmd::exec::Args),
    /// Attach the terminal to a VM's serial console (Ctrl-] detaches).
    Console(cmd::console::Args),
    /// Ping every pair of VMs the topology says can talk; exit 1 if any fails.
    Check(cmd::check::Args),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MINIVM_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        // `minivm status | head`: end quietly on a closed pipe, as other
        // command-line tools do (the server keeps Rust's default, EPIPE).
        // SAFETY: setting a signal disposition before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match cli.command {
        Command::Serve(args) => cmd::serve::run(args, &cli.state_dir),
        Command::Validate(args) => cmd::validate::run(args),
        Command::Image(args) => cmd::image::run(args, &cli.state_dir),
        Command::Doctor(args) => cmd::doctor::run(args, &cli.state_dir),
        Command::Up(args) => cmd::up::run(args, &cli.state_dir),
        Command::Down(args) => cmd::down::run(args, &cli.state_dir),
        Command::Status(args) => cmd::status::run(args, &cli.state_dir),
        Command::Start(args) => cmd::vm::run(VmAction::Start, args, &cli.state_dir),
        Command::Stop(args) => cmd::vm::run(VmAction::Stop, args, &cli.state_dir),
        Command::Restart(args) => cmd::vm::run(VmAction::Restart, args, &cli.state_dir),
        Command::Exec(args) => cmd::exec::run(args, &cli.state_dir),
        Command::Console(args) => cmd::console::run(args, &cli.state_dir),
        Command::Check(args) => cmd::check::run(args, &cli.state_dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // The whole chain, outermost first.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
