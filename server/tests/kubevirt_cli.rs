//! `minivm export --format kubevirt` and `minivm image export
//! --containerdisk` for real:
//! - every manifest exported for the example labs (and a lab using mgmt,
//!   ports, impairments, exec and a large file), with either CNI, passes
//!   the TypeScript compiler against the types generated from KubeVirt's,
//!   CDI's and Kubernetes' published OpenAPI documents
//!   (`kubevirt/types.ts`), and a manifest with a misspelled or mistyped
//!   field does not;
//! - the example labs' manifests equal the golden files in
//!   `kubevirt/golden/` (`UPDATE_GOLDEN=1` rewrites them);
//! - the containerDisk archive is read by skopeo (which checks every digest
//!   as it copies) and holds the image, byte for byte, at /disk/NAME.qcow2,
//!   owned by 107:107;
//! - the exported cloud-init data, made into a NoCloud ISO as KubeVirt makes
//!   it, boots `tiny` under QEMU to the same hostname, MACs, addresses,
//!   routes, forwarding, files and setup commands as the local seed does.
//!
//! Needs root (QEMU), node_modules (scripts/setup.sh), skopeo and
//! genisoimage.

mod common;
#[path = "../../engine/tests/common/isolated_vm.rs"]
mod isolated_vm;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{minivm, minivm_alone, ok, text};
use isolated_vm::IsolatedVm;
use serde_json::Value;

const EXAMPLES: &[&str] = &["router", "triangle", "ospf", "bgp"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `minivm export -f FILE --format kubevirt EXTRA -o DIR`.
fn run_export(file: &Path, extra: &[&str], dir: &Path) -> std::process::Output {
    let mut args = vec![
        "export",
        "-f",
        file.to_str().unwrap(),
        "--format",
        "kubevirt",
    ];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", dir.to_str().unwrap()]);
    minivm_alone(&args)
}

/// [`run_export`], successful: the files written, by name.
fn export(file: &Path, extra: &[&str], dir: &Path) -> BTreeMap<String, String> {
    ok(run_export(file, extra, dir));
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect()
}

fn docs(files: &BTreeMap<String, String>) -> Vec<(String, Value)> {
    files
        .iter()
        .filter(|(name, _)| name.ends_with(".yaml"))
        .map(|(name, text)| (name.clone(), serde_yaml_ng::from_str(text).unwrap()))
        .collect()
}

/// Type-checks `manifests` (label, document) with tsc: (passed, output).
fn typecheck(manifests: &[(String, Value)]) -> (bool, String) {
    let modules = repo().join("node_modules");
    let tsc = modules.join(".bin/tsc");
    assert!(
        tsc.exists() && modules.join("@kubevirt-ui-ext/kubevirt-api").exists(),
        "no TypeScript compiler or KubeVirt API types in {}: run scripts/setup.sh",
        modules.display()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("types.ts"),
        include_str!("kubevirt/types.ts"),
    )
    .unwrap();
    let mut check = String::from("import type { Kinds } from \"./types\";\n");
    for (i, (label, doc)) in manifests.iter().enumerate() {
        let kind = doc["kind"].as_str().unwrap_or("(no kind)");
        check += &format!(
            "// {label}\nexport const m{i}: Kinds[\"{kind}\"] = {};\n",
            serde_json::to_string_pretty(doc).unwrap()
        );
    }
    std::fs::write(dir.path().join("check.ts"), &check).unwrap();
    let api = modules.join("@kubevirt-ui-ext/kubevirt-api/dist");
    let config = serde_json::json!({
        "compilerOptions": {
            "strict": true, "noEmit": true, "target": "es2022", "module": "esnext",
            "moduleResolution": "bundler", "skipLibCheck": true,
            "paths": {"@kubevirt-ui-ext/kubevirt-api/*": [format!("{}/*/index.d.ts", api.display())]},
        },
        "files": ["check.ts"],
    });
    std::fs::write(dir.path().join("tsconfig.json"), config.to_string()).unwrap();
    let out = Command::new(&tsc)
        .arg("-p")
        .arg(dir.path().join("tsconfig.json"))
        .output()
        .unwrap();
    let report = format!("{}{}", text(&out.stdout), text(&out.stderr));
    (out.status.success(), report)
}

/// The lab that uses what the examples do not: mgmt without nat, with a port forward, an
/// impairment, a link set down, exec, a file too big to go inline (h2), a
/// restart policy and a device kind.
const EDGE: &str = r#"version: 1
name: kvedge
defaults: {image: tiny, memory_mib: 96}
mgmt: {subnet: 172.31.7.0/24, nat: false, ports: ["2201:h1:22"]}
networks: [{name: lan, subnet: 10.64.0.0/24}]
nodes:
  - name: h1
    kind: server
    restart: on-failure
    nics: [{network: lan, impair: {delay_ms: 20, loss_pct: 1}}]
    exec: ["touch /tmp/ready"]
  - name: h2
    nics: [{network: lan, up: false}]
"#;

fn edge_file(dir: &Path) -> PathBuf {
    let big = "x".repeat(3000);
    let text = format!("{EDGE}    files: [{{path: /etc/big, content: \"{big}\"}}]\n");
    let f = dir.join("kvedge.yaml");
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn manifests_type_check_against_the_published_apis_and_match_the_golden_files() {
    let work = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for example in EXAMPLES {
        let file = repo().join(format!("examples/{example}.yaml"));
        for cni in ["ovn-layer2", "bridge"] {
            let dir = work.path().join(format!("{example}-{cni}"));
            let files = export(&file, &["--cni", cni], &dir);
            if cni == "ovn-layer2" {
                golden(example, &files);
            }
            for (name, doc) in docs(&files) {
                all.push((format!("{example} {cni} {name}"), doc));
            }
        }
    }
    let edge = edge_file(work.path());
    let files = export(&edge, &[], &work.path().join("edge"));
    assert!(
        files.contains_key("20-cloudinit-h2.yaml"),
        "{:?}",
        files.keys()
    );
    let report = &files["REPORT.txt"];
    for needle in [
        "virtctl expose vm h1",
        "impairment",
        "h2 eth1: the link is down",
        "capture",
    ] {
        assert!(report.contains(needle), "{needle:?} not in\n{report}");
    }
    let edge_docs = docs(&files);
    let h1 = &edge_docs
        .iter()
        .find(|(n, _)| n == "30-vm-h1.yaml")
        .unwrap()
        .1;
    assert_eq!(h1["spec"]["runStrategy"], "RerunOnFailure");
    assert_eq!(h1["metadata"]["labels"]["minivm.org/kind"], "server");
    assert_eq!(
        h1["spec"]["template"]["spec"]["networks"][0]["pod"],
        serde_json::json!({})
    );
    all.extend(edge_docs.into_iter().map(|(n, d)| (format!("edge {n}"), d)));
    let kinds: std::collections::BTreeSet<&str> =
        all.iter().filter_map(|(_, d)| d["kind"].as_str()).collect();
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "ClusterRole",
            "DataVolume",
            "Namespace",
            "NetworkAttachmentDefinition",
            "NetworkPolicy",
            "RoleBinding",
            "Secret",
            "VirtualMachine"
        ]
    );
    // A name Kubernetes refuses is named, and nothing is written.
    let bad = work.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nname: kvbad\ndefaults: {image: tiny}\nnetworks: [{name: lan-}]\nnodes: [{name: h1, nics: [{network: lan-}]}]\n",
    )
    .unwrap();
    let bad_dir = work.path().join("bad");
    refused(
        &bad,
        &[],
        &bad_dir,
        "networks[0].name: \"lan-\" ends with '-'",
    );
    refused(
        &edge,
        &["--disk-size", "1GB"],
        &bad_dir,
        "--disk-size: \"1GB\" is not a Kubernetes quantity",
    );

    let (passed, out) = typecheck(&all);
    assert!(passed, "{} manifests; tsc says:\n{out}", all.len());
    // Every NetworkAttachmentDefinition's config is a CNI configuration.
    for (label, d) in &all {
        if d["kind"] == "NetworkAttachmentDefinition" {
            let c: Value = serde_json::from_str(d["spec"]["config"].as_str().unwrap())
                .unwrap_or_else(|e| panic!("{label}: config is not JSON: {e}"));
            assert_eq!(c["cniVersion"], "0.3.1", "{label}");
            assert!(
                c["type"] == "ovn-k8s-cni-overlay" || c["type"] == "bridge",
                "{label}"
            );
        }
    }

    // The check can fail: a misspelled field, a number as a string, a
    // missing required field.
    let mut bad = all
        .iter()
        .find(|(_, d)| d["kind"] == "VirtualMachine")
        .unwrap()
        .1
        .clone();
    let domain = &mut bad["spec"]["template"]["spec"]["domain"];
    let devices = domain["devices"].as_object_mut().unwrap();
    let interfaces = devices.remove("interfaces").unwrap();
    devices.insert("interfacez".into(), interfaces);
    domain["cpu"]["cores"] = Value::from("1");
    let mut dv = all
        .iter()
        .find(|(_, d)| d["kind"] == "DataVolume")
        .unwrap()
        .1
        .clone();
    dv.as_object_mut().unwrap().remove("spec");
    let (passed, out) = typecheck(&[("bad vm".into(), bad), ("bad dv".into(), dv)]);
    assert!(!passed);
    for needle in [
        "'\"interfacez\"' does not exist in type 'V1Devices'",
        "Type 'string' is not assignable to type 'number'",
        "Property 'spec' is missing",
    ] {
        assert!(out.contains(needle), "{needle:?} not in\n{out}");
    }
}

/// `minivm export -f FILE --format kubevirt EXTRA -o DIR` fails saying
/// `why`, and writes nothing.
fn refused(file: &Path, extra: &[&str], dir: &Path, why: &str) {
    let out = run_export(file, extra, dir);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(why), "{}", text(&out.stderr));
    assert!(!dir.exists());
}

/// Compares an example's export with `kubevirt/golden/<example>/`.
fn golden(example: &str, files: &BTreeMap<String, String>) {
    let dir = repo().join("server/tests/kubevirt/golden").join(example);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        return;
    }
    let want: BTreeMap<String, String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", dir.display()))
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        files.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{example}: the files differ from {} (UPDATE_GOLDEN=1 rewrites them)",
        dir.display()
    );
    for (name, text) in files {
        assert_eq!(
            text, &want[name],
            "{example}/{name} differs from the golden file (UPDATE_GOLDEN=1 rewrites it)"
        );
    }
}

#[test]
fn containerdisk_archive_is_an_oci_image_holding_the_disk() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let tar = s.join("tiny.tar");
    let out = ok(minivm(
        s,
        &[
            "image",
            "export",
            "tiny",
            "--containerdisk",
            "-o",
            tar.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("/disk/tiny.qcow2"), "{out}");

    let archive = format!("oci-archive:{}", tar.display());
    let inspect = Command::new("skopeo")
        .args(["--insecure-policy", "inspect", &archive])
        .output()
        .expect("skopeo (scripts/setup.sh installs it)");
    assert!(inspect.status.success(), "{}", text(&inspect.stderr));
    let info: Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Layers"].as_array().unwrap().len(), 1);

    // Copying checks each blob against its digest.
    let copied = s.join("copied");
    let copy = Command::new("skopeo")
        .args(["--insecure-policy", "copy", &archive])
        .arg(format!("dir:{}", copied.display()))
        .output()
        .unwrap();
    assert!(copy.status.success(), "{}", text(&copy.stderr));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(copied.join("manifest.json")).unwrap()).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let layer = copied.join(layer.trim_start_matches("sha256:"));
    let listing = Command::new("tar")
        .args(["--numeric-owner", "-tvf"])
        .arg(&layer)
        .output()
        .unwrap();
    let listing = text(&listing.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.contains(" 107/107 ") && l.ends_with(" disk/tiny.qcow2")),
        "{listing}"
    );
    let unpacked = s.join("unpacked");
    std::fs::create_dir_all(&unpacked).unwrap();
    let x = Command::new("tar")
        .arg("-xf")
        .arg(&layer)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .unwrap();
    assert!(x.success());
    let store = engine::image::ImageStore::open(s).unwrap();
    assert_eq!(
        engine::image::sha256_file(&unpacked.join("disk/tiny.qcow2")).unwrap(),
        store.get("tiny").unwrap().sha256,
        "the containerDisk holds the image byte for byte"
    );

    // An image built before its guest read cloud-init user-data would boot
    // unconfigured on a cluster: refused, saying how to fix it.
    let rec_path = s.join("images/tiny.json");
    let mut rec: Value =
        serde_json::from_str(&std::fs::read_to_string(&rec_path).unwrap()).unwrap();
    rec["guest"] = Value::from(2);
    // A hard link to the run's shared image: replaced, never written through.
    std::fs::remove_file(&rec_path).unwrap();
    std::fs::write(&rec_path, rec.to_string()).unwrap();
    let old = s.join("old.tar");
    let out = minivm(
        s,
        &[
            "image",
            "export",
            "tiny",
            "--containerdisk",
            "-o",
            old.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("rebuild it"),
        "{}",
        text(&out.stderr)
    );
    assert!(!old.exists());

    // An image that is not there is named.
    let out = minivm(
        s,
        &[
            "image",
            "export",
            "nope",
            "--containerdisk",
            "-o",
            tar.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("nope"), "{}", text(&out.stderr));
}

const BOOT_LAB: &str = r#"version: 1
name: kvboot
defaults: {image: tiny, memory_mib: 96}
networks: [{name: a, subnet: 10.61.0.0/24}, {name: b, subnet: 10.62.0.0/24}]
nodes:
  - name: r1
    ip_forward: true
    nics: [{network: a, address: 10.61.0.1/24}, {network: b}]
    routes: [{to: 10.63.0.0/24, via: 10.62.0.9}]
    files: [{path: /etc/motd, content: "hello from the lab\n", mode: "0640"}]
    exec: ["sh -c \"echo set up on $(hostname) > /tmp/setup-proof\"", "touch /tmp/second"]
"#;

/// What the two boots must agree on.
const FACTS: &str = r#"hostname
cat /proc/sys/net/ipv4/ip_forward
for d in /sys/class/net/eth*; do echo "${d##*/} $(cat $d/address) $(cat $d/operstate)"; done
ip -4 -o addr show | awk '{print $2, $4}'
ip -4 route
stat -c '%a %s' /etc/motd; cat /etc/motd
cat /tmp/setup-proof; ls /tmp/second"#;

/// Boots `tiny` from a fresh overlay with `seed` (and the fw_cfg conf when
/// given) and NICs with `macs`, waits for ready, runs `exec` through the
/// agent as `up` does, waits for the guest's own setup when `await_setup`,
/// and returns FACTS.
fn boot_and_read(
    store: &engine::image::ImageStore,
    dir: &Path,
    seed: PathBuf,
    fw_cfg: Option<PathBuf>,
    macs: Vec<topology::net::Mac>,
    exec: &[String],
    await_setup: bool,
) -> String {
    use engine::qemu::{self, Nic, NicBackend, VmSpec};
    std::fs::create_dir_all(dir).unwrap();
    let overlay = dir.join("overlay.qcow2");
    store.create_overlay("tiny", &overlay).unwrap();
    let spec = VmSpec {
        lab: "kvboot".into(),
        name: "r1".into(),
        accel: engine::accel::Accel::Tcg,
        cpus: 1,
        memory_mib: 96,
        disk: overlay,
        seed: Some(seed),
        fw_cfg_config: fw_cfg,
        nics: macs
            .into_iter()
            .map(|mac| Nic {
                mac,
                backend: NicBackend::Isolated,
            })
            .collect(),
        run_dir: dir.to_path_buf(),
        wait_for_serial: true,
        incoming: None,
        warm: false,
    };
    let vm = IsolatedVm::boot(&spec, "minivm: ready r1");
    let mut qga = engine::qga::Qga::connect(&qemu::qga_socket(dir), Duration::from_secs(60))
        .expect("guest agent");
    let t = Duration::from_secs(60);
    for line in exec {
        let argv = topology::words::split_words(line).unwrap();
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        let r = qga.exec(&argv[0], &args, t).unwrap();
        assert_eq!(r.exit_code, 0, "{line}: {r:?}");
    }
    if await_setup {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = qga
                .exec("/bin/cat", &["/run/minivm-exec.status"], t)
                .unwrap();
            if r.exit_code == 0 {
                assert_eq!(r.stdout.trim(), "0", "the setup commands failed");
                break;
            }
            assert!(Instant::now() < deadline, "the setup commands never ended");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let r = qga.exec("/bin/sh", &["-c", FACTS], t).unwrap();
    assert_eq!(r.exit_code, 0, "{r:?}\n{:#?}", vm.log);
    r.stdout
}

#[test]
fn exported_cloud_init_configures_tiny_exactly_like_the_local_seed() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let store = engine::image::ImageStore::open(s).unwrap();
    let file = s.join("kvboot.yaml");
    std::fs::write(&file, BOOT_LAB).unwrap();
    let t = topology::parse_and_validate(BOOT_LAB, topology::Format::Yaml).unwrap();

    // The cluster's seed: the exported VM's cloudInitNoCloud data in an
    // ISO 9660 volume labelled cidata, with the meta-data KubeVirt writes.
    let files = export(&file, &[], &s.join("manifests"));
    let vm: Value = serde_yaml_ng::from_str(&files["30-vm-r1.yaml"]).unwrap();
    let spec = &vm["spec"]["template"]["spec"];
    let cloud = &spec["volumes"][1]["cloudInitNoCloud"];
    let iso_dir = s.join("cidata");
    std::fs::create_dir_all(&iso_dir).unwrap();
    std::fs::write(
        iso_dir.join("user-data"),
        cloud["userData"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        iso_dir.join("network-config"),
        cloud["networkData"].as_str().unwrap(),
    )
    .unwrap();
    std::fs::write(
        iso_dir.join("meta-data"),
        "instance-id: r1.minivm-kvboot\nlocal-hostname: r1\n",
    )
    .unwrap();
    let iso = s.join("cidata.iso");
    let mk = Command::new("genisoimage")
        .arg("-output")
        .arg(&iso)
        .args(["-volid", "cidata", "-joliet", "-rock", "-quiet"])
        .arg(iso_dir.join("user-data"))
        .arg(iso_dir.join("meta-data"))
        .arg(iso_dir.join("network-config"))
        .output()
        .expect("genisoimage (scripts/setup.sh installs it)");
    assert!(mk.status.success(), "{}", text(&mk.stderr));
    let cluster_macs: Vec<topology::net::Mac> = spec["domain"]["devices"]["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["macAddress"].as_str().unwrap().parse().unwrap())
        .collect();

    // The local seed, as the engine gives it: the conf through fw_cfg and
    // the vfat cidata disk.
    let seed = engine::seed::render(&t, "r1").unwrap();
    let local = s.join("local");
    std::fs::create_dir_all(&local).unwrap();
    let conf = local.join("minivm.conf");
    std::fs::write(&conf, &seed.minivm_conf).unwrap();
    let vfat = local.join("seed.img");
    engine::seed::write_vfat(&seed, &vfat).unwrap();
    let local_macs: Vec<_> = topology::resolve::nics(&t)["r1"]
        .iter()
        .map(|n| n.mac)
        .collect();
    assert_eq!(
        cluster_macs, local_macs,
        "the manifest carries the lab's MACs"
    );

    let exec = t.node("r1").unwrap().exec.clone();
    let (a, b) = std::thread::scope(|sc| {
        let a = sc.spawn(|| {
            boot_and_read(
                &store,
                &local.join("vm"),
                vfat,
                Some(conf),
                local_macs,
                &exec,
                false,
            )
        });
        let b = sc.spawn(|| {
            boot_and_read(
                &store,
                &s.join("cluster"),
                iso,
                None,
                cluster_macs,
                &[],
                true,
            )
        });
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a, b, "local seed:\n{a}\ncluster seed:\n{b}");
    for needle in [
        "r1\n1\n",
        "eth0 10.61.0.1/24",
        "eth1 10.62.0.1/24",
        "10.63.0.0/24 via 10.62.0.9 dev eth1",
        "640 19\nhello from the lab\n",
        "set up on r1\n/tmp/second",
    ] {
        assert!(b.contains(needle), "{needle:?} not in\n{b}");
    }
}
