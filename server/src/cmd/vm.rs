//! `minivm start|stop|restart LAB VM...`: one VM (or a few) of a lab that
//! is stored in the state directory. `start` makes what the VM needs
//! (networks, TAPs, overlay, seed) and waits until it is ready; `stop`
//! powers it down (ACPI, then quit); nothing else of the lab is touched.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use engine::ops::VmAction;

#[derive(clap::Args)]
pub struct Args {
    /// The lab's name.
    lab: String,
    /// The VM(s).
    #[arg(required = true, num_args = 1..)]
    vms: Vec<String>,
    /// Seconds to wait for a started VM to be ready.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

pub fn run(action: VmAction, args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let engine = super::engine(state_dir)?;
    let t = super::stored_lab(state_dir, &args.lab, &args.vms)?;
    let vms: Vec<&str> = args.vms.iter().map(String::as_str).collect();
    engine::ops::run_vm_action(
        &engine,
        &t,
        action,
        &vms,
        Duration::from_secs(args.timeout),
        &super::say,
    )?;
    println!(
        "lab {:?}: {} {}",
        t.name,
        args.vms.join(", "),
        action.outcome()
    );
    Ok(ExitCode::SUCCESS)
}
