//! `minivm status [LAB] [--json]`: labs, and their VMs with state, pid,
//! accelerator, addresses and uptime; a crashed VM with its last console
//! lines.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    lab: Option<String>,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let engine = super::engine(state_dir)?;
    let labs = engine::LabStore::open(state_dir)?;
    let mut out = Vec::new();
    for (name, t) in labs.list_with_topologies()? {
        if args.lab.as_ref().is_some_and(|l| *l != name) {
            continue;
        }
        let nics = topology::resolve::nics(&t);
        let mut vms = Vec::new();
        for (vm, (state, pid)) in engine::lab::vm_states(&engine, &t) {
            let pidfile = engine.vm_files(&name, &vm).pidfile();
            let uptime = pid
                .and(std::fs::metadata(&pidfile).ok())
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.elapsed().ok())
                .map(|d| d.as_secs());
            let addresses: Vec<String> = nics[&vm]
                .iter()
                .filter_map(|n| n.address.map(|a| format!("{}={a}", n.ifname)))
                .collect();
            // A crashed VM: what its console said last.
            let last_console = if state == Some(engine::lifecycle::VmState::Crashed) {
                engine::lab::console_tail(&engine.vm_dir(&name, &vm), 3)
            } else {
                vec![]
            };
            vms.push(json!({
                "last_console": last_console,
                "name": vm,
                "state": state.map(|s| serde_json::to_value(s).unwrap()).unwrap_or(json!("defined")),
                "pid": pid,
                "accelerator": engine.accel.accel.name(),
                "addresses": addresses,
                "uptime_seconds": uptime,
            }));
        }
        out.push(json!({ "lab": name, "vms": vms }));
    }
    if let Some(l) = &args.lab {
        if out.is_empty() {
            anyhow::bail!("no lab named {l:?}");
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for lab in &out {
            println!("lab {}", lab["lab"].as_str().unwrap_or(""));
            for vm in lab["vms"].as_array().into_iter().flatten() {
                println!(
                    "  {:<12} {:<9} pid {:<8} {}  {}  up {}s",
                    vm["name"].as_str().unwrap_or(""),
                    vm["state"].as_str().unwrap_or(""),
                    vm["pid"]
                        .as_u64()
                        .map(|p| p.to_string())
                        .unwrap_or("-".into()),
                    vm["accelerator"].as_str().unwrap_or(""),
                    vm["addresses"]
                        .as_array()
                        .map(|a| a
                            .iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(" "))
                        .unwrap_or_default(),
                    vm["uptime_seconds"].as_u64().unwrap_or(0),
                );
                for line in vm["last_console"].as_array().into_iter().flatten() {
                    println!("      | {}", line.as_str().unwrap_or(""));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
