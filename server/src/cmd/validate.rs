//! `minivm validate FILE`: every problem on stderr and exit 1, or a one-line
//! summary on stdout and exit 0. Changes nothing.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use topology::{parse_read_and_validate, Format, MAX_FILE_BYTES};

#[derive(clap::Args)]
pub struct Args {
    /// Topology file, YAML or JSON (`-` for standard input).
    file: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let name = args.file.display().to_string();
    let text = read_limited(&args.file).with_context(|| format!("cannot read {name}"))?;
    let text = match text {
        Some(t) => t,
        None => {
            eprintln!(
                "{name}: the file is larger than {MAX_FILE_BYTES} bytes; refused without parsing"
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let format = if name == "-" {
        Format::sniff(&text)
    } else {
        Format::from_file_name(&name)
    };
    match parse_read_and_validate(&text, format, &mut source_reader(&args.file)) {
        Ok(t) => {
            println!(
                "{name}: ok: lab {:?}, {} VMs, {} bridges, {} links (format v{})",
                t.name,
                t.nodes.len(),
                t.networks.len(),
                t.link_count(),
                t.version
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let problems = e.problems();
            for p in &problems {
                eprintln!("{name}: {p}");
            }
            eprintln!("{name}: {} problem(s); nothing was changed", problems.len());
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Reads and validates a topology file for the commands that act on it;
/// every problem is in the error.
pub fn load(path: &std::path::Path) -> anyhow::Result<topology::Topology> {
    let name = path.display().to_string();
    let text = read_limited(path)
        .with_context(|| format!("cannot read {name}"))?
        .ok_or_else(|| {
            anyhow::anyhow!("{name}: larger than {MAX_FILE_BYTES} bytes; refused without parsing")
        })?;
    let format = if name == "-" {
        Format::sniff(&text)
    } else {
        Format::from_file_name(&name)
    };
    parse_read_and_validate(&text, format, &mut source_reader(path))
        .map_err(|e| anyhow::anyhow!("{name} is invalid; nothing was changed:\n{e}"))
}

/// Reads a node file's `source` relative to the topology file `file`, at
/// most `MAX_FILE_CONTENT` bytes (standard input has no directory).
pub fn source_reader(file: &std::path::Path) -> impl FnMut(&str) -> Result<String, String> + '_ {
    move |src| {
        if file.as_os_str() == "-" {
            return Err(
                "a topology read from standard input has no directory to read it from".into(),
            );
        }
        let dir = file.parent().unwrap_or(std::path::Path::new("."));
        engine::fsutil::read_confined(
            dir,
            std::path::Path::new(src),
            topology::validate::MAX_FILE_CONTENT,
        )
        .map_err(|e| e.to_string())
    }
}

/// Reads at most MAX_FILE_BYTES (+1 to notice more); `None` when larger.
pub fn read_limited(path: &std::path::Path) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    let limit = MAX_FILE_BYTES as u64 + 1;
    if path.as_os_str() == "-" {
        std::io::stdin().take(limit).read_to_end(&mut buf)?;
    } else {
        std::fs::File::open(path)?
            .take(limit)
            .read_to_end(&mut buf)?;
    }
    if buf.len() > MAX_FILE_BYTES {
        return Ok(None);
    }
    String::from_utf8(buf).map(Some).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is not UTF-8 text",
        )
    })
}
