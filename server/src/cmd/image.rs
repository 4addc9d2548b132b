//! `minivm image build|list|import|rm|export`: the base image store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use engine::image::{self, ImageStore};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// Build a built-in base image from Debian packages, offline: `tiny`
    /// (busybox) or `frr` (busybox and the FRR routing suite).
    Build {
        #[arg(default_value = image::DEFAULT_IMAGE)]
        name: String,
        /// What to build under NAME: tiny or frr. Default: NAME's own
        /// flavour when NAME is tiny or frr, else tiny.
        #[arg(long, value_parser = ["tiny", "frr"])]
        flavour: Option<String>,
        /// Do nothing when the image already exists.
        #[arg(long)]
        if_missing: bool,
    },
    /// List images: name, format, sizes, sha256, and the labs that use each.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Import a disk image (qcow2, raw with a partition table, vmdk, ...) as a base image.
    Import { name: String, file: PathBuf },
    /// Remove an image; refused while an overlay uses it.
    Rm { name: String },
    /// Write an image as a KubeVirt containerDisk: an OCI image archive
    /// (`skopeo copy oci-archive:FILE docker://REGISTRY/minivm/NAME:latest`).
    Export {
        name: String,
        /// The containerDisk format (the only one).
        #[arg(long, required = true)]
        containerdisk: bool,
        /// The archive to write.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let store = ImageStore::open(state_dir)?;
    match args.command {
        Cmd::Build {
            name,
            if_missing,
            flavour,
        } => {
            if if_missing && store.exists(&name)? {
                println!("image {name:?} is present");
                return Ok(ExitCode::SUCCESS);
            }
            let started = Instant::now();
            let steps = image::build::STEPS.len();
            let flavour = flavour
                .as_deref()
                .or(Some(name.as_str()))
                .and_then(image::build::Flavour::parse)
                .unwrap_or(image::build::Flavour::Tiny);
            let rec = image::build::build(&store, &name, flavour, &mut |i, step| {
                eprintln!("[{}/{steps}] {step}", i + 1);
            })
            .with_context(|| format!("cannot build image {name:?}"))?;
            println!(
                "built image {:?}: {} ({:.1} MB file, {} MiB virtual) in {:.1} s",
                rec.name,
                store.path(&rec.name)?.display(),
                rec.file_size as f64 / 1e6,
                rec.virtual_size >> 20,
                started.elapsed().as_secs_f64()
            );
        }
        Cmd::List { json } => {
            let labs = engine::LabStore::open(state_dir)?.list_with_topologies()?;
            let mut rows = Vec::new();
            for rec in store.list()? {
                let mut used_by: Vec<String> = labs
                    .iter()
                    .filter(|(_, t)| {
                        t.nodes
                            .iter()
                            .any(|n| t.node_image(n) == Some(rec.name.as_str()))
                    })
                    .map(|(name, _)| name.clone())
                    .collect();
                used_by.sort();
                rows.push((rec, used_by));
            }
            if json {
                let v: Vec<_> = rows
                    .iter()
                    .map(|(r, u)| serde_json::json!({ "image": r, "used_by": u }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!(
                    "{:<16} {:<7} {:>9} {:>9}  {:<16} USED BY",
                    "NAME", "FORMAT", "VIRTUAL", "FILE", "SHA256"
                );
                for (r, u) in &rows {
                    println!(
                        "{:<16} {:<7} {:>8}M {:>8.1}M  {:<16} {}",
                        r.name,
                        r.format,
                        r.virtual_size >> 20,
                        r.file_size as f64 / 1048576.0,
                        &r.sha256[..16],
                        if u.is_empty() {
                            "-".to_string()
                        } else {
                            u.join(",")
                        }
                    );
                }
                let missing: Vec<&str> = image::build::Flavour::ALL
                    .iter()
                    .map(|f| f.name())
                    .filter(|n| !rows.iter().any(|(r, _)| r.name == *n))
                    .collect();
                if !missing.is_empty() {
                    println!(
                        "built-in, not built yet (built on first use, or by `minivm image build NAME`): {}",
                        missing.join(", ")
                    );
                }
            }
        }
        Cmd::Import { name, file } => {
            let rec = store
                .import(&name, &file)
                .with_context(|| format!("cannot import {}", file.display()))?;
            println!(
                "imported {:?}: {} MiB virtual, sha256 {}",
                rec.name,
                rec.virtual_size >> 20,
                rec.sha256
            );
        }
        Cmd::Export { name, output, .. } => {
            let path = store.path(&name)?;
            let rec = store.get(&name)?;
            if rec.format != "qcow2" {
                anyhow::bail!(
                    "image {name:?} is {}; a containerDisk here holds qcow2 (convert it with qemu-img and import it again)",
                    rec.format
                );
            }
            if rec.guest < image::build::CLOUD_GUEST_VERSION && rec.source.starts_with("built") {
                anyhow::bail!(
                    "image {name:?} was built before its guest read cloud-init user-data, so on a cluster it would boot unconfigured: \
                     rebuild it (`minivm image rm {name}` then `minivm image build {name}`) and export again"
                );
            }
            let w = image::containerdisk::write(&name, &path, &output)
                .with_context(|| format!("cannot write {}", output.display()))?;
            println!(
                "wrote containerDisk {} ({:.1} MB): image {}, disk {}\nload it: skopeo copy oci-archive:{} docker://REGISTRY/minivm/{name}:latest",
                output.display(),
                w.bytes as f64 / 1e6,
                w.manifest_digest,
                w.disk_path,
                output.display()
            );
        }
        Cmd::Rm { name } => {
            let users = store.overlays_using(&name)?;
            store
                .remove(&name, users)
                .with_context(|| format!("cannot remove image {name:?}"))?;
            println!("removed image {name:?}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
