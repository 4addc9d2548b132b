//! `minivm status [LAB] [--json]`: labs, and their VMs with state, pid,
//! accelerator, addresses and uptime; a crashed VM with its last console
//! lines.

use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    lab: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let engine = super::engine(state_dir)?;
    let labs = engine::LabStore::open(state_dir)?;
    let out: Vec<engine::status::LabStatus> = labs
        .list_with_topologies()?
        .into_iter()
        .filter(|(name, _)| args.lab.as_ref().is_none_or(|l| l == name))
        .map(|(_, t)| engine::status::lab_status(&engine, &t))
        .collect();
    if let Some(l) = &args.lab {
        if out.is_empty() {
            anyhow::bail!("no lab named {l:?}");
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    for lab in &out {
        println!("lab {}", lab.lab);
        for vm in &lab.vms {
            println!(
                "  {:<12} {:<9} pid {:<8} {}  {}  up {}s",
                vm.name,
                vm.state,
                vm.pid.map(|p| p.to_string()).unwrap_or("-".into()),
                vm.accelerator,
                vm.addresses.join(" "),
                vm.uptime_seconds.unwrap_or(0),
            );
            for nic in &vm.nics {
                let state = match (nic.up, nic.carrier) {
                    (true, None) => "up (when running)",
                    (false, None) => "down (when running)",
                    (true, Some(true)) => "up",
                    (false, Some(false)) => "down",
                    (false, Some(true)) => "down (not applied yet)",
                    (true, Some(false)) => "up (not applied yet)",
                };
                println!(
                    "      {} {:<10} {:<24} {}",
                    nic.name, nic.network, state, nic.impair_label
                );
            }
            if let Some(b) = vm.saved_bytes {
                println!(
                    "      saved ({:.1} MB): its next start resumes it",
                    b as f64 / 1e6
                );
            }
            if let Some(s) = &vm.setup {
                match &s.failed {
                    Some(f) => println!(
                        "      setup FAILED: {:?} exited {} ({} command(s) done before)",
                        f.command,
                        f.exit_code,
                        s.done.len()
                    ),
                    None => println!("      setup done: {} command(s)", s.done.len()),
                }
            }
            for line in &vm.last_console {
                println!("      | {line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
