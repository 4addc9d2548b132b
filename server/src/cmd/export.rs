//! `minivm export (LAB | -f FILE) --format clab [-o DIR]`: a lab in
//! containerlab's format (`topology::clab::export`): DIR/<lab>.clab.yml and
//! the files it names beside it (without -o: the .clab.yml on stdout, for a
//! lab that names no files). What the format cannot say is reported.
//!
//! `--format kubevirt [-o DIR] [--cni ovn-layer2|bridge] [--registry R]`:
//! the lab as Kubernetes manifests for KubeVirt, CDI and Multus
//! (`engine::kubevirt`), one a file, for `kubectl apply -f DIR`, with
//! REPORT.txt beside them (without -o: one YAML stream on stdout).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

#[derive(clap::Args)]
pub struct Args {
    /// The stored lab's name.
    lab: Option<String>,
    /// Or a topology file.
    #[arg(short = 'f', long = "file", conflicts_with = "lab")]
    file: Option<PathBuf>,
    /// The format: clab (containerlab's .clab.yml) or kubevirt (manifests
    /// for a Kubernetes cluster with KubeVirt, CDI and Multus).
    #[arg(long, value_parser = ["clab", "kubevirt"])]
    format: String,
    /// kubevirt: how lab networks are made: ovn-layer2 (an OVN-Kubernetes
    /// layer-2 overlay spanning nodes) or bridge (the bridge CNI, for a
    /// single-node cluster).
    #[arg(long, value_parser = ["ovn-layer2", "bridge"], default_value = "ovn-layer2")]
    cni: String,
    /// kubevirt: the registry path the containerDisks are pushed to (the
    /// golden images import REGISTRY/IMAGE:latest).
    #[arg(long, default_value = "localhost:5000/minivm")]
    registry: String,
    /// kubevirt: the size of each golden volume and each VM's disk.
    #[arg(long, default_value = "1Gi")]
    disk_size: String,
    /// The directory to write into (made if missing).
    #[arg(short = 'o', long = "output")]
    output: Option<PathBuf>,
}

pub fn run(args: Args, state_dir: &Path) -> anyhow::Result<ExitCode> {
    let t = match (&args.lab, &args.file) {
        (Some(l), None) => engine::LabStore::open(state_dir)?.get(l)?.0,
        (None, Some(f)) => super::validate::load(f)?,
        _ => bail!("name the lab, or give its file with -f"),
    };
    if args.format == "kubevirt" {
        return kubevirt(&args, &t);
    }
    let out = topology::clab::export(&t);
    for line in &out.report {
        eprintln!("  report: {line}");
    }
    match args.output {
        None if out.files.is_empty() => print!("{}", out.clab),
        None => bail!(
            "lab {:?} names {} file(s): give a directory to write them into with -o",
            t.name,
            out.files.len()
        ),
        Some(dir) => {
            let write = |rel: &str, text: &str| -> anyhow::Result<()> {
                let p = dir.join(rel);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                engine::fsutil::write_atomic(&p, text.as_bytes())
                    .with_context(|| format!("cannot write {}", p.display()))
            };
            let main = format!("{}.clab.yml", t.name);
            write(&main, &out.clab)?;
            for (rel, text) in &out.files {
                write(rel, text)?;
            }
            println!(
                "exported lab {:?} to {} ({} file(s) beside it)",
                t.name,
                dir.join(&main).display(),
                out.files.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn kubevirt(args: &Args, t: &topology::Topology) -> anyhow::Result<ExitCode> {
    let opts = engine::kubevirt::Options {
        cni: engine::kubevirt::Cni::parse(&args.cni).expect("clap checked it"),
        registry: args.registry.clone(),
        disk_size: args.disk_size.clone(),
    };
    let out = engine::kubevirt::export(t, &opts)
        .with_context(|| format!("lab {:?} cannot run on Kubernetes as it is", t.name))?;
    for line in &out.report {
        eprintln!("  report: {line}");
    }
    let Some(dir) = &args.output else {
        print!("{}", out.stream());
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for m in &out.manifests {
        let p = dir.join(&m.file);
        engine::fsutil::write_atomic(&p, m.yaml().as_bytes())
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    let mut report = format!(
        "minivm lab {:?} for KubeVirt, CDI and Multus: `kubectl apply -f` this directory \
         (namespace {}; `kubectl delete namespace {}` removes the lab).\n\
         First push each image's containerDisk: `minivm image export IMAGE --containerdisk -o IMAGE.tar`, \
         then `skopeo copy oci-archive:IMAGE.tar docker://{}/IMAGE:latest`.\nNot carried:\n",
        t.name, out.namespace, out.namespace, args.registry
    );
    for line in &out.report {
        report.push_str(&format!("- {line}\n"));
    }
    let p = dir.join("REPORT.txt");
    engine::fsutil::write_atomic(&p, report.as_bytes())
        .with_context(|| format!("cannot write {}", p.display()))?;
    println!(
        "exported lab {:?} to {} ({} manifests, namespace {}; apply with `kubectl apply -f {}`)",
        t.name,
        dir.display(),
        out.manifests.len(),
        out.namespace,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
