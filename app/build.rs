//! Bundles js/graph.js (and the files it imports: canvas.js, events.js,
//! console.js) with the npm packages they import (cytoscape, xterm) into
//! js/dist/graph.mjs, which the wasm bundle imports through wasm-bindgen.
//! Only the browser build (feature `hydrate`) needs it. The npm packages
//! come from `npm ci` at the workspace root (scripts/setup.sh).

use std::path::Path;
use std::process::Command;

fn main() {
    for f in ["graph.js", "canvas.js", "events.js", "console.js"] {
        println!("cargo:rerun-if-changed=js/{f}");
    }
    println!("cargo:rerun-if-changed=../package-lock.json");
    if std::env::var_os("CARGO_FEATURE_HYDRATE").is_none() {
        return;
    }
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest)
        .parent()
        .expect("app/ is inside the workspace");
    let esbuild = root.join("node_modules/.bin/esbuild");
    if !esbuild.exists() {
        panic!(
            "{} is missing: run `npm ci` in {} (scripts/setup.sh does)",
            esbuild.display(),
            root.display()
        );
    }
    let out = Path::new(&manifest).join("js/dist/graph.mjs");
    let tmp = Path::new(&manifest).join(format!("js/dist/.graph.{}.mjs", std::process::id()));
    std::fs::create_dir_all(out.parent().unwrap()).expect("create js/dist");
    let status = Command::new(&esbuild)
        .arg(Path::new(&manifest).join("js/graph.js"))
        .args([
            "--bundle",
            "--format=esm",
            "--minify",
            "--target=es2020",
            "--loader:.css=text",
            "--log-level=warning",
        ])
        .arg(format!("--outfile={}", tmp.display()))
        .current_dir(root)
        .status()
        .expect("run esbuild");
    assert!(status.success(), "esbuild failed to bundle js/graph.js");
    // Atomic: the ssr and hydrate builds may run this at the same time.
    std::fs::rename(&tmp, &out).expect("move the bundle into place");
}
