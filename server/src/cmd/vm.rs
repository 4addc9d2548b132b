//! `minivm start|stop|restart LAB VM...`: one VM (or a few) of a lab that
//! is stored in the state directory. `start` makes what the VM needs
//! (networks, TAPs, overlay, seed) and waits until it is ready (a VM with a
//! saved state is resumed); `stop` powers it down (ACPI, then quit), and
//! `stop --save` saves its memory first; nothing else of the lab is touched.

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
    /// Boot cold: no warm image is used or made (a saved state of the VM's
    /// own is still resumed).
    #[arg(long)]
    cold: bool,
}

#[derive(clap::Args)]
pub struct StopArgs {
    /// The lab's name.
    lab: String,
    /// The VM(s); with --save, every VM of the lab when none is named.
    #[arg(required_unless_present = "save")]
    vms: Vec<String>,
    /// Save each VM's memory and devices first: its next `start` (or `up`)
    /// resumes it where it was, processes and files in /tmp included.
    #[arg(long)]
    save: bool,
}

/// `minivm stop [--save] LAB [VM...]`.
pub fn run_stop(args: StopArgs, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let (action, vms) = if args.save {
        let vms = if args.vms.is_empty() {
            let (t, _) = engine::LabStore::open(state_dir)?.get(&args.lab)?;
            t.nodes.iter().map(|n| n.name.clone()).collect()
        } else {
            args.vms
        };
        (VmAction::Suspend, vms)
    } else {
        (VmAction::Stop, args.vms)
    };
    run(
        action,
        Args {
            lab: args.lab,
            vms,
            timeout: 300,
            cold: false,
        },
        state_dir,
    )
}

pub fn run(action: VmAction, args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let mut engine = super::engine(state_dir)?;
    engine.cold = args.cold;
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
