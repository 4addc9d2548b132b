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
    /// Power VMs of a lab down (ACPI, then quit); --save saves their memory so the next start resumes them.
    Stop(cmd::vm::StopArgs),
    /// Stop, then start VMs of a lab.
    Restart(cmd::vm::Args),
    /// Run a program in a VM through its guest agent; exits with its code.
    Exec(cmd::exec::Args),
    /// Attach the terminal to a VM's serial console (Ctrl-] detaches).
    Console(cmd::console::Args),
    /// Ping every pair of VMs the topology says can talk; exit 1 if any fails.
    Check(cmd::check::Args),
    /// Run the lab's tests (its topology's `tests:`): pass/fail each, JUnit with --junit.
    Test(cmd::labtest::Args),
    /// Change a NIC's link live: up/down, delay, jitter, loss, rate, ...
    Link(cmd::link::Args),
    /// Capture packets on a VM NIC or a network: lines, or pcap with -w.
    Capture(cmd::capture::Args),
    /// Import a containerlab topology (*.clab.yml) as a lab, with a report of what is not carried over.
    Import(cmd::import::Args),
    /// Export a lab in containerlab's format (a .clab.yml and its files).
    Export(cmd::export::Args),
    /// Lab templates: list them; save a lab as one, import or remove yours.
    Templates(cmd::templates::Args),
    /// Make a lab from a template (`--set KEY=VALUE` for its parameters).
    New(cmd::templates::NewArgs),
    /// A lab as a Mermaid or Graphviz graph, or an SVG drawing.
    Graph(cmd::templates::GraphArgs),
    /// Lab snapshots: every VM's disk and memory, saved and restored together.
    Snapshot(cmd::snapshot::Args),
    /// (internal) A lab's relay: impairments in user space where the kernel
    /// has no netem. Started and stopped by the engine.
    #[command(hide = true)]
    Relay { lab: String },
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
        Command::Link(args) => cmd::link::run(args, &cli.state_dir),
        Command::Capture(args) => cmd::capture::run(args, &cli.state_dir),
        Command::Snapshot(args) => cmd::snapshot::run(args, &cli.state_dir),
        Command::Import(args) => cmd::import::run(args, &cli.state_dir),
        Command::Export(args) => cmd::export::run(args, &cli.state_dir),
        Command::Templates(args) => cmd::templates::run(args, &cli.state_dir),
        Command::New(args) => cmd::templates::run_new(args, &cli.state_dir),
        Command::Graph(args) => cmd::templates::run_graph(args, &cli.state_dir),
        Command::Relay { lab } => topology::names::check_name(&lab)
            .map_err(|e| anyhow::anyhow!("lab name {lab:?} {e}"))
            .and_then(|_| {
                let dir = cli.state_dir.join("labs").join(&lab);
                engine::relay::run(&dir, &lab).map_err(anyhow::Error::from)
            })
            .map(|_| ExitCode::SUCCESS),
        Command::Down(args) => cmd::down::run(args, &cli.state_dir),
        Command::Status(args) => cmd::status::run(args, &cli.state_dir),
        Command::Start(args) => cmd::vm::run(VmAction::Start, args, &cli.state_dir),
        Command::Stop(args) => cmd::vm::run_stop(args, &cli.state_dir),
        Command::Restart(args) => cmd::vm::run(VmAction::Restart, args, &cli.state_dir),
        Command::Exec(args) => cmd::exec::run(args, &cli.state_dir),
        Command::Console(args) => cmd::console::run(args, &cli.state_dir),
        Command::Check(args) => cmd::check::run(args, &cli.state_dir),
        Command::Test(args) => cmd::labtest::run(args, &cli.state_dir),
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
