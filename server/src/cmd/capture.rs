//! `minivm capture LAB TARGET [-f BPF] [-c COUNT] [--seconds S]
//! [-w FILE | -w -]`: packets on a VM NIC (`h1:eth0`, both directions) or a
//! whole network (`lan`). Without `-w`, a line per packet (time, source,
//! destination, protocol, length, summary), as tcpdump prints; `-w -`
//! streams pcap to stdout (`| wireshark -k -i -`); `-w FILE` writes a pcap
//! file (in place when the capture ends). Ctrl-C ends it cleanly with the
//! counts of packets captured and dropped.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::capture::{self, Capture, Limits, PcapWriter, Target};

#[derive(clap::Args)]
pub struct Args {
    /// The lab's name.
    lab: String,
    /// A NIC (`VM:ethN`) or a network's name.
    target: String,
    /// A capture filter in libpcap's syntax: `icmp`, `tcp port 179`, ...
    #[arg(short = 'f', long = "filter")]
    filter: Option<String>,
    /// Stop after this many packets.
    #[arg(short = 'c', long = "count")]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    seconds: Option<u64>,
    /// Stop after this many bytes captured (default 100 MiB).
    #[arg(long)]
    max_bytes: Option<u64>,
    /// Write pcap to FILE, or to stdout with `-`.
    #[arg(short = 'w', long = "write")]
    write: Option<PathBuf>,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let (t, _) = engine::LabStore::open(state_dir)?.get(&args.lab)?;
    let target = Target::parse(&t, &args.target)?;
    let ifname = target.ifname(&t.name);
    let ns = capture::namespace_of(&t);
    let mut cap = Capture::open(ns.as_deref(), &ifname, args.filter.as_deref())?;
    let defaults = Limits::default();
    let limits = Limits {
        packets: args.count.unwrap_or(defaults.packets),
        seconds: args.seconds.unwrap_or(defaults.seconds),
        bytes: args.max_bytes.unwrap_or(defaults.bytes),
    };
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
    eprintln!(
        "capturing on {target} ({ifname}){}; Ctrl-C stops",
        args.filter
            .as_deref()
            .map(|f| format!(", filter {f:?}"))
            .unwrap_or_default()
    );
    let (ended, counts) = match &args.write {
        Some(p) if p.as_os_str() == "-" => {
            let mut w = PcapWriter::new(std::io::stdout().lock())?;
            cap.run(limits, &STOP, &mut |f| {
                // A closed pipe (wireshark quit) ends the capture.
                Ok(w.write(f.time, f.data, f.len)
                    .and_then(|_| w.flush())
                    .is_ok())
            })?
        }
        Some(path) => {
            let tmp = tmp_path(path);
            let file = std::fs::File::create(&tmp)?;
            let mut w = PcapWriter::new(std::io::BufWriter::new(file))?;
            let r = cap.run(limits, &STOP, &mut |f| {
                w.write(f.time, f.data, f.len)
                    .map_err(capture::CaptureError::Write)?;
                Ok(true)
            });
            let file = w.into_inner().into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)?;
            engine::fsutil::sync_parent(path)?;
            r?
        }
        None => {
            let mut out = std::io::stdout().lock();
            cap.run(limits, &STOP, &mut |f| {
                let s = capture::summarize(f.data);
                let line = format!(
                    "{:>5} {:>10.6} {} → {} {} {} {}\n",
                    f.no, f.elapsed, s.source, s.destination, s.protocol, f.len, s.info
                );
                Ok(out
                    .write_all(line.as_bytes())
                    .and_then(|_| out.flush())
                    .is_ok())
            })?
        }
    };
    eprintln!(
        "{} packets captured, {} dropped ({})",
        counts.captured,
        counts.dropped,
        ended.describe()
    );
    Ok(ExitCode::SUCCESS)
}

/// `dir/.name.tmp` beside `path`.
fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "capture.pcap".into());
    path.with_file_name(format!(".{name}.tmp"))
}
