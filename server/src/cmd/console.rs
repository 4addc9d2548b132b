//! `minivm console LAB VM`: attaches the terminal to the VM's serial
//! console, after what it printed so far. When `minivm serve` runs on the
//! same state directory, it holds the console (QEMU serves one reader), so
//! this goes through the server's console websocket and shares its
//! scrollback and its other viewers (browser pages); otherwise it connects
//! to the serial socket itself, after the tail of console.log. Ctrl-]
//! detaches and leaves the VM running; so does the end of input when stdin
//! is not a terminal.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Ctrl-], as in telnet and virsh.
const ESCAPE: u8 = 0x1d;
const SCROLLBACK_LINES: usize = 30;

#[derive(clap::Args)]
pub struct Args {
    lab: String,
    vm: String,
}

/// The terminal in raw mode for as long as this lives; restored on drop.
struct Raw(Option<libc::termios>);

impl Raw {
    fn enter() -> Raw {
        // SAFETY: isatty/tcgetattr/tcsetattr on fd 0 with a termios we own.
        unsafe {
            if libc::isatty(0) != 1 {
                return Raw(None);
            }
            let mut saved: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut saved) != 0 {
                return Raw(None);
            }
            let mut raw = saved;
            libc::cfmakeraw(&mut raw);
            libc::tcsetattr(0, libc::TCSANOW, &raw);
            Raw(Some(saved))
        }
    }

    fn restore(saved: &Option<libc::termios>) {
        if let Some(t) = saved {
            // SAFETY: restoring the attributes read in `enter`.
            unsafe { libc::tcsetattr(0, libc::TCSANOW, t) };
        }
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        Raw::restore(&self.0);
    }
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let engine = super::engine(state_dir)?;
    let t = super::stored_lab(state_dir, &args.lab, std::slice::from_ref(&args.vm))?;
    let dir = engine.vm_files(&t.name, &args.vm);
    if !engine::lab::running_qemus(&t.name).contains_key(&args.vm) {
        bail!(
            "{}: not running; start it with `minivm start {} {}`",
            args.vm,
            t.name,
            args.vm
        );
    }
    if let Some(server) = super::serve::running(state_dir) {
        return through_server(&server, &t.name, &args.vm);
    }
    let sock = dir.serial_socket();
    let deadline = Instant::now() + Duration::from_secs(5);
    let stream = loop {
        match UnixStream::connect(&sock) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot connect to {}", sock.display()))
            }
        }
    };
    let log_path = dir.console_log();
    let scrollback = String::from_utf8_lossy(&engine::console::log_tail(&log_path)).into_owned();
    let lines: Vec<&str> = scrollback.lines().collect();
    let mut out = std::io::stdout();
    writeln!(
        out,
        "--- console of {} in lab {} (Ctrl-] detaches) ---",
        args.vm, t.name
    )?;
    for l in &lines[lines.len().saturating_sub(SCROLLBACK_LINES)..] {
        writeln!(out, "{l}")?;
    }
    out.flush()?;

    let raw = Raw::enter();
    let saved = raw.0;
    let mut reader = stream.try_clone()?;
    let mut log = engine::console::ConsoleLog::open(&log_path);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut out = std::io::stdout();
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                    log.write(&buf[..n]);
                }
            }
        }
        Raw::restore(&saved);
        let _ = writeln!(out, "\r\n--- console closed: the VM stopped ---");
        std::process::exit(0);
    });

    let mut writer = stream;
    let mut stdin = std::io::stdin();
    let mut buf = [0u8; 1024];
    loop {
        let n = stdin.read(&mut buf)?;
        if n == 0 {
            break;
        }
        let (send, detach) = until_escape(&buf[..n]);
        writer.write_all(send).context("the console went away")?;
        if detach {
            break;
        }
    }
    drop(raw);
    let _ = writer.shutdown(std::net::Shutdown::Both);
    eprintln!("\r\n--- detached; {} keeps running ---", args.vm);
    Ok(ExitCode::SUCCESS)
}

/// Splits `chunk` at the escape key: what to send, and whether to detach.
fn until_escape(chunk: &[u8]) -> (&[u8], bool) {
    match chunk.iter().position(|b| *b == ESCAPE) {
        Some(i) => (&chunk[..i], true),
        None => (chunk, false),
    }
}

/// The console through `minivm serve`'s websocket.
fn through_server(server: &super::serve::Running, lab: &str, vm: &str) -> anyhow::Result<ExitCode> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let url = format!("{}/ws/console/{lab}/{vm}", server.url.replacen("http://", "ws://", 1));
        let mut req = url.as_str().into_client_request()?;
        if let Some(t) = &server.token {
            req.headers_mut().insert("x-minivm-token", t.parse()?);
        }
        let (ws, _) = tokio_tungstenite::connect_async(req).await.with_context(|| format!("cannot attach through {url}"))?;
        let (mut tx, mut rx) = ws.split();
        println!("--- console of {vm} in lab {lab}, shared through minivm serve (Ctrl-] detaches) ---");
        let raw = Raw::enter();
        let (in_tx, mut in_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(16);
        std::thread::spawn(move || {
            let mut stdin = std::io::stdin();
            let mut buf = [0u8; 1024];
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let (send, detach) = until_escape(&buf[..n]);
                        if in_tx.blocking_send(send.to_vec()).is_err() || detach {
                            break;
                        }
                    }
                }
            }
            // Dropping the sender tells the loop below to detach.
        });
        let mut out = std::io::stdout();
        let closed = loop {
            tokio::select! {
                input = in_rx.recv() => match input {
                    Some(bytes) if !bytes.is_empty() => tx.send(Message::Binary(bytes.into())).await?,
                    Some(_) => {}
                    None => break false,
                },
                msg = rx.next() => match msg {
                    Some(Ok(Message::Binary(b))) => { out.write_all(&b)?; out.flush()?; }
                    Some(Ok(Message::Text(t))) => { out.write_all(t.as_bytes())?; out.flush()?; }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => break true,
                },
            }
        };
        let _ = tx.close().await;
        drop(raw);
        if closed {
            eprintln!("\r\n--- console closed: the VM stopped ---");
        } else {
            eprintln!("\r\n--- detached; {vm} keeps running ---");
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
