//! `minivm serve`: the web app. Works from any working directory: the
//! compiled site (wasm, JS, CSS) is found next to the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};

use crate::web::site;

#[derive(clap::Args)]
pub struct Args {
    /// Address and port to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:3000")]
    bind: SocketAddr,
    /// The compiled site (`cargo xtask build` output); found next to the binary when not given.
    #[arg(long, env = "MINIVM_SITE_ROOT")]
    site_root: Option<PathBuf>,
    /// The token every request must present (on loopback too: any local
    /// user can reach a loopback port). One is made up if not given; the
    /// login URL that carries it is printed, and kept for root in
    /// `<state>/run/serve.json` (0600).
    #[arg(long, env = "MINIVM_TOKEN")]
    token: Option<String>,
}

/// Stack of each async worker thread.
const WORKER_STACK: usize = 16 * 1024 * 1024;

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let site_root = match args.site_root {
        Some(p) => p,
        None => site::locate(&exe)?,
    };
    match site::check(&site_root, &exe, site::PROFILE)? {
        site::Verdict::Matches => {}
        site::Verdict::Unstamped => tracing::warn!(
            site = %site_root.display(),
            "the site has no build stamp ({}): serving it as it is",
            site::STAMP
        ),
    }
    let store = engine::LabStore::open(state_dir)
        .with_context(|| format!("cannot open the state directory {}", state_dir.display()))?;
    let seeded = store
        .seed_if_empty(
            topology::examples::ALL,
            &mut topology::examples::read_source,
        )
        .context("cannot seed the example labs")?;
    if seeded > 0 {
        tracing::info!(
            count = seeded,
            "seeded the example labs into an empty state directory"
        );
    }
    let token = match args.token {
        Some(t)
            if t.len() < 16
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            anyhow::bail!("--token: at least 16 characters of letters, digits, '-' and '_' (a guessable token guards nothing)")
        }
        Some(t) => t,
        None => kept_token(state_dir)?,
    };
    // QEMU and every other child is started without it (see vm.rs).
    std::env::remove_var("MINIVM_TOKEN");
    let engine = super::engine(state_dir)?;
    tracing::info!(accelerator = engine.accel.accel.name(), reason = %engine.accel.reason, "engine ready");
    let service = engine::service::Service::new(engine, store);
    service.clone().watch();
    // Server-side rendering of the editor nests deep view types: a debug
    // build overflows tokio's default 2 MiB worker stack. The stack is only
    // reserved, not used, beyond what rendering needs.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(WORKER_STACK)
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(serve(args.bind, site_root, service, token))?;
    Ok(ExitCode::SUCCESS)
}

async fn serve(
    bind: SocketAddr,
    site_root: PathBuf,
    service: std::sync::Arc<engine::service::Service>,
    token: String,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("cannot listen on {bind}"))?;
    let addr = listener.local_addr()?;
    let options = LeptosOptions::builder()
        .output_name("minivm")
        .site_root(site_root.to_string_lossy().into_owned())
        .site_pkg_dir("pkg")
        .site_addr(addr)
        .build();
    let routes = generate_route_list(app::App);
    let gate = crate::web::guard::Gate::new(addr, token.clone());
    let context = {
        let service = service.clone();
        move || {
            provide_context(service.store.clone());
            provide_context(service.clone());
        }
    };
    let events = Router::new()
        .route("/ws/events", get(crate::web::events::handler))
        .route("/ws/console/{lab}/{vm}", get(crate::web::console::handler))
        .route("/captures/{file}", get(crate::web::captures::download))
        .with_state(service.clone());
    let router = Router::new()
        .merge(events)
        .route("/schema/topology.v1.json", get(schema))
        .route("/healthz", get(|| async { "ok" }))
        .leptos_routes_with_context(&options, routes, context.clone(), {
            let options = options.clone();
            move || app::shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler_with_context(
            context,
            app::shell,
        ))
        .with_state(options)
        .layer(axum::extract::DefaultBodyLimit::max(
            crate::web::guard::MAX_BODY as usize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            gate,
            crate::web::guard::middleware,
        ));
    // Tests and scripts read these lines: the port, then the login URL.
    println!("listening on http://{addr}");
    let marker = Marker::write(&service.engine.state_dir, addr, &token);
    let shown = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    println!("open http://{shown}/?token={token}");
    println!(
        "(the token is needed for every request; it is kept for root in {}/run/serve.json)",
        service.engine.state_dir.display()
    );
    tracing::info!(%addr, site = %site_root.display(), "serving");
    axum::serve(listener, router.into_make_service())
        .with_graceful_shutdown(shutdown())
        .await
        .context("the server failed")?;
    drop(marker);
    Ok(())
}

/// A server running on a state directory, as `<state>/run/serve.json` says.
pub struct Running {
    pub url: String,
    pub token: Option<String>,
}

/// `<state>/run/serve.json` (0600 from its creation, in a 0700 directory):
/// where this server listens and its token, for CLI commands that go
/// through it (`minivm console`). Removed on exit.
struct Marker(PathBuf);

impl Marker {
    fn write(state_dir: &Path, addr: SocketAddr, token: &str) -> Option<Marker> {
        use std::os::unix::fs::PermissionsExt;
        let dir = state_dir.join("run");
        std::fs::create_dir_all(&dir).ok()?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).ok()?;
        let path = dir.join("serve.json");
        // Off loopback, CLI commands still come over loopback.
        let host = if addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        };
        let body = serde_json::json!({ "url": format!("http://{host}"), "token": token, "pid": std::process::id() });
        engine::fsutil::write_private(&path, body.to_string().as_bytes()).ok()?;
        Some(Marker(path))
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The server running on `state_dir`, if one answers (a marker left by a
/// killed server is ignored).
pub fn running(state_dir: &Path) -> Option<Running> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state_dir.join("run/serve.json")).ok()?).ok()?;
    let url = v["url"].as_str()?.to_string();
    let addr: SocketAddr = url.strip_prefix("http://")?.parse().ok()?;
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500)).ok()?;
    Some(Running {
        url,
        token: v["token"].as_str().map(str::to_string),
    })
}

async fn schema() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/schema+json")],
        topology::schema::COMMITTED_SCHEMA,
    )
}

async fn shutdown() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}

/// The state directory's token, `<state>/run/token` (0600, in a 0700
/// directory), made on the first start: a restarted server keeps it, so an
/// open page's cookie still works. A file that is not root's own private
/// regular file is replaced, never trusted.
fn kept_token(state_dir: &Path) -> anyhow::Result<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = state_dir.join("run");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot make {} private", dir.display()))?;
    let path = dir.join("token");
    if let Ok(m) = std::fs::symlink_metadata(&path) {
        let own =
            m.file_type().is_file() && m.mode() & 0o077 == 0 && m.uid() == engine::process::euid();
        if own {
            let t = std::fs::read_to_string(&path).unwrap_or_default();
            let t = t.trim();
            if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(t.to_string());
            }
        }
    }
    let t = random_token()?;
    engine::fsutil::write_private(&path, t.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(t)
}

/// 128 random bits from the kernel, hex.
fn random_token() -> anyhow::Result<String> {
    use std::io::Read;
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}
