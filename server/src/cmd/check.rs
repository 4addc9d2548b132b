//! `minivm check LAB [--json]`: the connectivity matrix. Every ordered pair
//! of VMs that share a network, and the pairs their routes imply, ping each
//! other through the guest agents (in parallel); exit 0 only when all pass.

use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    lab: String,
    /// The outcomes as JSON.
    #[arg(long)]
    json: bool,
    /// How many VMs ping at once.
    #[arg(long, default_value_t = 8)]
    parallel: usize,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let engine = super::engine(state_dir)?;
    let t = super::stored_lab(state_dir, &args.lab, &[])?;
    let started = std::time::Instant::now();
    let outcomes = engine::check::run(&engine, &t, args.parallel);
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&outcomes)?);
    } else {
        for o in &outcomes {
            let via = o
                .pair
                .network
                .as_deref()
                .map(|n| format!("on {n}"))
                .unwrap_or_else(|| "routed".into());
            match (o.ok, o.rtt_ms, &o.error) {
                (true, rtt, _) => println!(
                    "ok    {:>10} -> {:<10} {:<15} {:<12} {}",
                    o.pair.from,
                    o.pair.to,
                    o.pair.address,
                    via,
                    rtt.map(|r| format!("{r:.2} ms")).unwrap_or_default()
                ),
                (false, _, e) => println!(
                    "FAIL  {:>10} -> {:<10} {:<15} {:<12} {}",
                    o.pair.from,
                    o.pair.to,
                    o.pair.address,
                    via,
                    e.as_deref().unwrap_or("").lines().last().unwrap_or("")
                ),
            }
        }
        println!(
            "{} pair(s): {} passed, {failed} failed ({:.1} s)",
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
