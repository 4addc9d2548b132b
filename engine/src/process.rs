//! Running host tools (qemu-img, mke2fs, apt-get, ...) with argument
//! vectors, never a shell string, and turning a failure into an error that
//! says which program failed and what it printed.

use std::io::Write;
use std::process::{Command, Output, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot start {program} (is it installed?)")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("{program} failed ({status}): {stderr}")]
    Failed {
        program: String,
        status: String,
        stderr: String,
    },
}

fn program_of(cmd: &Command) -> String {
    cmd.get_program().to_string_lossy().into_owned()
}

/// Runs `cmd` to completion, returning its output when it exits 0.
pub fn run(cmd: &mut Command) -> Result<Output, ProcessError> {
    run_with_input(cmd, None)
}

/// Like [`run`], writing `input` to the program's standard input.
pub fn run_with_input(cmd: &mut Command, input: Option<&[u8]>) -> Result<Output, ProcessError> {
    let program = program_of(cmd);
    tracing::debug!(?cmd, "run");
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| ProcessError::Spawn {
        program: program.clone(),
        source,
    })?;
    if let Some(input) = input {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        // A thread, so that a program that writes before it reads cannot deadlock us.
        std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
    }
    let out = child
        .wait_with_output()
        .map_err(|source| ProcessError::Spawn {
            program: program.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        let stderr = if stderr.is_empty() {
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        } else {
            stderr
        };
        Err(ProcessError::Failed {
            program,
            status: out.status.to_string(),
            stderr,
        })
    }
}

/// Standard output of a successful run, as text.
pub fn stdout(cmd: &mut Command) -> Result<String, ProcessError> {
    Ok(String::from_utf8_lossy(&run(cmd)?.stdout).into_owned())
}

/// This process's effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid takes nothing and cannot fail.
    unsafe { libc::geteuid() }
}
