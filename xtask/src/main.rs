//! `cargo xtask build [--release]`: the project's build command. It builds
//! the `minivm` binary and the site that binary serves, and stamps the site
//! with the binary's identity so that a server never serves a site from
//! another build (see `server/src/web/site.rs`).
//!
//! The steps, each a plain program or library call:
//! 1. `cargo build -p server --bin minivm` (the `ssr` side);
//! 2. `cargo build -p frontend --target wasm32-unknown-unknown` (the `hydrate`
//!    side; the size-tuned `wasm-release` profile in release);
//! 3. wasm-bindgen through `wasm-bindgen-cli-support`, pinned by Cargo.lock
//!    to the same release as the `wasm-bindgen` crate the frontend uses;
//! 4. in release, `wasm-opt -Oz` from the npm package `binaryen`;
//! 5. style/main.css → pkg/minivm.css, public/* → the site root;
//! 6. the stamp (build.txt), then the new site replaces the old one.
//!
//! The site lands in `target/<profile>/site`, next to the binary it belongs
//! to, so a debug build never overwrites the site of the release server.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use sha2::{Digest, Sha256};

/// The name the server's pages load: pkg/minivm.js, pkg/minivm_bg.wasm,
/// pkg/minivm.css (Leptos' `output_name`).
const OUTPUT_NAME: &str = "minivm";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The file in the site root that names the binary the site was built with.
/// Its format is read by `server/src/web/site.rs`.
const STAMP: &str = "build.txt";

#[derive(Parser)]
#[command(name = "cargo xtask", about = "MiniVM's build command")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the minivm binary and its site into target/<profile>/.
    Build {
        /// Optimised build (target/release): what scripts/run.sh serves.
        #[arg(long)]
        release: bool,
    },
}

/// What differs between a debug and a release build.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Profile {
    Debug,
    Release,
}

impl Profile {
    /// The directory under target/ holding the server binary and the site.
    fn dir(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "release",
        }
    }

    /// The cargo profile of the wasm build, and its directory.
    fn wasm_profile(self) -> &'static str {
        match self {
            Profile::Debug => "dev",
            Profile::Release => "wasm-release",
        }
    }

    fn wasm_dir(self) -> &'static str {
        match self {
            Profile::Debug => "debug",
            Profile::Release => "wasm-release",
        }
    }

    fn server_args(self) -> Vec<&'static str> {
        let mut args = vec!["build", "--locked", "-p", "server", "--bin", "minivm"];
        if self == Profile::Release {
            args.push("--release");
        }
        args
    }

    fn wasm_args(self) -> Vec<&'static str> {
        vec![
            "build",
            "--locked",
            "-p",
            "frontend",
            "--lib",
            "--target",
            WASM_TARGET,
            "--profile",
            self.wasm_profile(),
        ]
    }
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Build { release } => {
            let profile = if release {
                Profile::Release
            } else {
                Profile::Debug
            };
            build(&Paths::from_env(), profile)
        }
    }
}

/// Where things are: the workspace and its target directory.
struct Paths {
    root: PathBuf,
    target: PathBuf,
}

impl Paths {
    fn from_env() -> Paths {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("xtask/ is inside the workspace")
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .map(|t| if t.is_absolute() { t } else { root.join(t) })
            .unwrap_or_else(|| root.join("target"));
        Paths { root, target }
    }
}

fn build(paths: &Paths, profile: Profile) -> Result<()> {
    let started = Instant::now();
    step("the server", || cargo(paths, &profile.server_args()))?;
    step("the wasm frontend", || cargo(paths, &profile.wasm_args()))?;

    let out = paths.target.join(profile.dir());
    let site = out.join("site");
    let staging = out.join(format!(".site.new-{}", std::process::id()));
    remove_dir_if_present(&staging)?;
    let pkg = staging.join("pkg");
    std::fs::create_dir_all(&pkg).with_context(|| format!("cannot create {}", pkg.display()))?;

    let wasm_in = paths
        .target
        .join(WASM_TARGET)
        .join(profile.wasm_dir())
        .join("frontend.wasm");
    step("wasm-bindgen", || bindgen(&wasm_in, &pkg))?;
    let wasm_out = pkg.join(format!("{OUTPUT_NAME}_bg.wasm"));
    if profile == Profile::Release {
        step("wasm-opt -Oz", || wasm_opt(&paths.root, &wasm_out))?;
    }
    step("style and public files", || {
        copy_file(
            &paths.root.join("style/main.css"),
            &pkg.join(format!("{OUTPUT_NAME}.css")),
        )?;
        copy_tree(&paths.root.join("public"), &staging)
    })?;
    let server = out.join("minivm");
    step("the build stamp", || {
        write_stamp(&server, profile, &staging)
    })?;
    replace_dir(&staging, &site)?;

    let wasm_size =
        std::fs::metadata(site.join("pkg").join(format!("{OUTPUT_NAME}_bg.wasm")))?.len();
    eprintln!(
        "xtask: built {} and {} (wasm {} KiB) in {:.1} s",
        server.display(),
        site.display(),
        wasm_size / 1024,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs one step and says how long it took.
fn step(what: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("xtask: {what} ...");
    let t = Instant::now();
    f().with_context(|| format!("building {what} failed"))?;
    eprintln!("xtask: {what}: {:.1} s", t.elapsed().as_secs_f64());
    Ok(())
}

fn cargo(paths: &Paths, args: &[&str]) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(&paths.root)
        .status()
        .with_context(|| format!("cannot run {}", Path::new(&cargo).display()))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// wasm-bindgen for the browser (ES module, `--target web`), no TypeScript.
fn bindgen(wasm: &Path, pkg: &Path) -> Result<()> {
    if !wasm.exists() {
        bail!("{} is missing after the wasm build", wasm.display());
    }
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(wasm)
        .out_name(OUTPUT_NAME)
        .web(true)
        .context("wasm-bindgen refused --target web")?
        .typescript(false)
        .generate(pkg)
        .context("wasm-bindgen failed")
}

/// Optimises for size in place, with binaryen's wasm-opt from npm (no
/// download: `npm ci` installs it with the other front-end packages).
fn wasm_opt(root: &Path, wasm: &Path) -> Result<()> {
    let wasm_opt = root.join("node_modules/.bin/wasm-opt");
    if !wasm_opt.exists() {
        bail!(
            "{} is missing: run `npm ci` in {} (scripts/setup.sh does)",
            wasm_opt.display(),
            root.display()
        );
    }
    let tmp = wasm.with_extension("opt.wasm");
    // The wasm features rustc enables by default for wasm32-unknown-unknown.
    let status = Command::new(&wasm_opt)
        .arg("-Oz")
        .args([
            "--enable-bulk-memory",
            "--enable-mutable-globals",
            "--enable-nontrapping-float-to-int",
            "--enable-sign-ext",
            "--enable-reference-types",
            "--enable-multivalue",
        ])
        .arg(wasm)
        .arg("-o")
        .arg(&tmp)
        .status()
        .with_context(|| format!("cannot run {}", wasm_opt.display()))?;
    if !status.success() {
        bail!("wasm-opt failed ({status})");
    }
    std::fs::rename(&tmp, wasm).with_context(|| format!("cannot move {}", tmp.display()))
}

/// The stamp: the profile and the identity of the binary the site belongs
/// to. Size and modification time let the server check itself cheaply; the
/// SHA-256 decides when they differ (a copied binary).
fn write_stamp(server: &Path, profile: Profile, site: &Path) -> Result<()> {
    let meta =
        std::fs::metadata(server).with_context(|| format!("cannot read {}", server.display()))?;
    let mtime = meta
        .modified()?
        .duration_since(UNIX_EPOCH)
        .context("the binary's modification time is before 1970")?;
    let text = format!(
        "profile {}\nserver-size {}\nserver-mtime-ns {}\nserver-sha256 {}\n",
        profile.dir(),
        meta.len(),
        mtime.as_nanos(),
        sha256_file(server)?
    );
    std::fs::write(site.join(STAMP), text).context("cannot write the build stamp")
}

fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    std::fs::copy(from, to)
        .map(|_| ())
        .with_context(|| format!("cannot copy {} to {}", from.display(), to.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for entry in
        std::fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))?
    {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::create_dir_all(&dest)?;
            copy_tree(&entry.path(), &dest)?;
        } else {
            copy_file(&entry.path(), &dest)?;
        }
    }
    Ok(())
}

fn remove_dir_if_present(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Puts the finished site in place of the old one: a running server sees
/// either the old site or the new one, each whole, for all but an instant.
fn replace_dir(new: &Path, dest: &Path) -> Result<()> {
    let old = dest.with_file_name(format!(".site.old-{}", std::process::id()));
    if dest.exists() {
        std::fs::rename(dest, &old)
            .with_context(|| format!("cannot move {} aside", dest.display()))?;
    }
    std::fs::rename(new, dest)
        .with_context(|| format!("cannot move the site to {}", dest.display()))?;
    remove_dir_if_present(&old)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_build_uses_the_size_profile_and_a_debug_build_the_dev_one() {
        assert!(Profile::Release.wasm_args().contains(&"wasm-release"));
        assert!(Profile::Release.server_args().contains(&"--release"));
        assert!(Profile::Debug.wasm_args().contains(&"dev"));
        assert!(!Profile::Debug.server_args().contains(&"--release"));
    }

    #[test]
    fn the_bindgen_library_is_the_release_of_the_wasm_bindgen_crate_in_the_lock_file() {
        let lock = std::fs::read_to_string(Paths::from_env().root.join("Cargo.lock")).unwrap();
        let version_of = |name: &str| {
            let head = format!("name = \"{name}\"\nversion = \"");
            let at = lock
                .find(&head)
                .unwrap_or_else(|| panic!("{name} in Cargo.lock"))
                + head.len();
            lock[at..].split('"').next().unwrap().to_string()
        };
        assert_eq!(
            version_of("wasm-bindgen"),
            version_of("wasm-bindgen-cli-support")
        );
    }
}
