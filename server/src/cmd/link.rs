//! `minivm link LAB VM:ethN [--up|--down] [--delay 40ms] [--jitter 5ms]
//! [--loss 0.5%] [--rate 10mbit] [--corrupt P%] [--duplicate P%]
//! [--reorder P%] [--clear] [--json]`: changes one NIC's link in the stored
//! lab (a new revision) and applies it live, without restarting the VM.
//! Several parameters in one command; none shows the link as it is.

use std::path::Path;
use std::process::ExitCode;

use engine::ops::LinkEdit;

#[derive(clap::Args)]
pub struct Args {
    /// The lab's name.
    lab: String,
    /// The NIC: `VM:ethN`.
    target: String,
    /// The guest sees its link up again.
    #[arg(long, conflicts_with = "down")]
    up: bool,
    /// The guest sees its link down (carrier lost), both directions cut.
    #[arg(long)]
    down: bool,
    /// Added one-way delay of what the VM sends: 40ms, 1.5s.
    #[arg(long, value_parser = millis)]
    delay: Option<u32>,
    /// Variation of the delay: 5ms.
    #[arg(long, value_parser = millis)]
    jitter: Option<u32>,
    /// Share of frames dropped: 0.5%.
    #[arg(long, value_parser = percent)]
    loss: Option<f64>,
    /// Rate limit: 512kbit, 10mbit, 1gbit (0: unlimited).
    #[arg(long, value_parser = kbit)]
    rate: Option<u64>,
    /// Share of frames with a flipped bit.
    #[arg(long, value_parser = percent)]
    corrupt: Option<f64>,
    /// Share of frames sent twice.
    #[arg(long, value_parser = percent)]
    duplicate: Option<f64>,
    /// Share of frames sent ahead of delayed ones (needs --delay).
    #[arg(long, value_parser = percent)]
    reorder: Option<f64>,
    /// Remove every impairment first (then apply the ones given).
    #[arg(long)]
    clear: bool,
    /// Print what was done as JSON.
    #[arg(long)]
    json: bool,
}

/// `h1:eth0` → ("h1", 0).
pub fn nic_target(s: &str) -> Result<(String, usize), String> {
    let (vm, nic) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?}: expected VM:ethN, e.g. h1:eth0"))?;
    let n = nic
        .strip_prefix("eth")
        .and_then(|n| n.parse::<usize>().ok())
        .ok_or_else(|| format!("{s:?}: the NIC is ethN, e.g. eth0"))?;
    topology::names::check_name(vm).map_err(|e| format!("{s:?}: VM name {vm:?} {e}"))?;
    Ok((vm.to_string(), n))
}

/// `40ms`, `1.5s`, `40` (milliseconds) → milliseconds.
fn millis(s: &str) -> Result<u32, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 40ms or 1.5s"))?;
    let ms = (v * scale).round();
    if !(0.0..=f64::from(u32::MAX)).contains(&ms) {
        return Err(format!("{s:?} is out of range"));
    }
    Ok(ms as u32)
}

/// `0.5%` or `0.5` → 0.5.
fn percent(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .strip_suffix('%')
        .unwrap_or(s)
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage such as 0.5%"))?;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("{s:?} is not between 0% and 100%"));
    }
    Ok(v)
}

/// `10mbit`, `512kbit`, `1gbit`, `64000` (kbit/s) → kbit/s.
fn kbit(s: &str) -> Result<u64, String> {
    let lower = s.to_ascii_lowercase();
    let (num, scale) = [
        ("gbit", 1_000_000.0),
        ("mbit", 1000.0),
        ("kbit", 1.0),
        ("bit", 0.001),
    ]
    .into_iter()
    .find_map(|(unit, scale)| lower.strip_suffix(unit).map(|n| (n.to_string(), scale)))
    .unwrap_or((lower.clone(), 1.0));
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a rate such as 10mbit or 512kbit"))?;
    if v < 0.0 {
        return Err(format!("{s:?} is negative"));
    }
    Ok((v * scale).round() as u64)
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let (vm, nic) = nic_target(&args.target).map_err(anyhow::Error::msg)?;
    let engine = super::engine(state_dir)?;
    let store = engine::LabStore::open(state_dir)?;
    let edit = LinkEdit {
        up: match (args.up, args.down) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        clear: args.clear,
        delay_ms: args.delay,
        jitter_ms: args.jitter,
        loss_pct: args.loss,
        rate_kbit: args.rate,
        corrupt_pct: args.corrupt,
        duplicate_pct: args.duplicate,
        reorder_pct: args.reorder,
    };
    let r = engine::ops::set_link(&engine, &store, &args.lab, &vm, nic, &edit, &super::say)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
    } else {
        let impair = if r.impair.is_none() {
            "no impairment".to_string()
        } else {
            r.impair.label()
        };
        println!(
            "lab {:?}: {vm} eth{nic} {}, {impair} (revision {}, {} step(s) applied live in {} ms)",
            r.lab,
            if r.up { "up" } else { "down" },
            r.revision,
            r.steps.len(),
            r.elapsed_ms
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_read_as_tc_writes_them() {
        assert_eq!(millis("40ms"), Ok(40));
        assert_eq!(millis("1.5s"), Ok(1500));
        assert_eq!(millis("200"), Ok(200));
        assert!(millis("soon").is_err());
        assert_eq!(percent("0.5%"), Ok(0.5));
        assert_eq!(percent("100"), Ok(100.0));
        assert!(percent("101%").is_err());
        assert_eq!(kbit("10mbit"), Ok(10_000));
        assert_eq!(kbit("512kbit"), Ok(512));
        assert_eq!(kbit("1Gbit"), Ok(1_000_000));
        assert!(kbit("fast").is_err());
    }

    #[test]
    fn a_nic_is_vm_colon_eth_n() {
        assert_eq!(nic_target("h1:eth0"), Ok(("h1".into(), 0)));
        assert_eq!(nic_target("r1:eth12"), Ok(("r1".into(), 12)));
        assert!(nic_target("h1").is_err());
        assert!(nic_target("h1:en0").is_err());
        assert!(nic_target("../x:eth0").is_err());
    }
}
