//! A lab as Kubernetes manifests for a cluster with KubeVirt (VMs as
//! resources), CDI (disks as DataVolumes) and Multus (extra NICs):
//! `minivm export --format kubevirt`.
//!
//! What a lab becomes:
//! - a Namespace `minivm-<lab>` labelled with the lab (deleting it is
//!   `down --cleanup`);
//! - a NetworkAttachmentDefinition per network: an OVN-Kubernetes layer-2
//!   overlay (spans nodes), or a bridge-CNI bridge for a single-node
//!   cluster ([`Cni`]); the management network is the pod network
//!   (masquerade binding: KubeVirt hands the guest 10.0.2.2/24 behind
//!   10.0.2.1, which the exported seed configures; without `nat` a
//!   NetworkPolicy keeps the VMs' pod traffic inside the namespace);
//! - a VirtualMachine per node: CPUs, memory, one bridge-bound interface per
//!   NIC with the node's MAC, `runStrategy` from `restart`, the serial
//!   console, virtio-rng, a root disk cloned from the image's golden
//!   DataVolume, and a cloud-init NoCloud disk whose data
//!   [`crate::seed::render_cloud`] makes (the same code as the local seed);
//!   data over KubeVirt's 2048-byte inline limit goes in a Secret;
//! - per image, the golden DataVolume in the namespace `minivm-images`,
//!   imported from the image's containerDisk in a registry (`minivm image
//!   export NAME --containerdisk`), and the RBAC that lets the lab's
//!   namespace clone it.
//!
//! What a cluster cannot be told (impairments, links set down, capture, port
//! forwards, lab tests) is listed in the report with the manual way.

use std::collections::BTreeSet;

use serde_json::{json, Value};
use topology::resolve::ResolvedNic;
use topology::{RestartPolicy, Topology};

/// KubeVirt's limit on inline `userData` and `networkData` (bytes).
pub const INLINE_LIMIT: usize = 2048;
/// The namespace that holds the golden images.
pub const IMAGES_NAMESPACE: &str = "minivm-images";
/// The label that names a lab on everything exported for it.
pub const LAB_LABEL: &str = "minivm.org/lab";
/// The masquerade binding's guest network (KubeVirt's default).
pub const POD_SUBNET: &str = "10.0.2.0/24";
pub const POD_GUEST_ADDRESS: &str = "10.0.2.2";

/// How lab networks are made on the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Cni {
    /// OVN-Kubernetes `layer2` secondary network: one L2 segment across
    /// all the cluster's nodes.
    #[default]
    OvnLayer2,
    /// The bridge CNI plugin: a Linux bridge on the node (single-node
    /// clusters; on more nodes each node has its own segment).
    Bridge,
}

impl Cni {
    pub fn parse(s: &str) -> Option<Cni> {
        match s {
            "ovn-layer2" => Some(Cni::OvnLayer2),
            "bridge" => Some(Cni::Bridge),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub cni: Cni,
    /// Where the containerDisks are pushed: `REGISTRY/<image>:latest`.
    pub registry: String,
    /// Size of each image's golden volume and of each VM's clone.
    pub disk_size: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cni: Cni::default(),
            registry: "localhost:5000/minivm".into(),
            disk_size: "1Gi".into(),
        }
    }
}

/// One manifest: its file name in the output directory, its kind and the
/// document.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub file: String,
    pub kind: &'static str,
    pub doc: Value,
}

impl Manifest {
    pub fn yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.doc).expect("a JSON value serializes as YAML")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub namespace: String,
    /// In the order `kubectl apply -f DIR` reads them (by file name).
    pub manifests: Vec<Manifest>,
    /// What is not carried, each with the manual way on a cluster.
    pub report: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KubevirtError {
    #[error("{field}: {value:?} {reason}")]
    Name {
        field: String,
        value: String,
        reason: &'static str,
    },
    #[error("{option}: {value:?} {reason}")]
    Option {
        option: &'static str,
        value: String,
        reason: &'static str,
    },
}

/// A Kubernetes quantity as a disk size takes it: digits, an optional
/// fraction, an optional binary or decimal suffix (`1Gi`, `512Mi`, `2G`).
fn is_quantity(s: &str) -> bool {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &s[digits.len()..];
    let mut parts = digits.splitn(2, '.');
    let whole = parts.next().unwrap_or_default();
    let frac = parts.next();
    !whole.is_empty()
        && whole.chars().all(|c| c.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.chars().all(|c| c.is_ascii_digit()))
        && [
            "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
        ]
        .contains(&suffix)
}

fn check_options(opts: &Options) -> Result<(), KubevirtError> {
    if !is_quantity(&opts.disk_size) {
        return Err(KubevirtError::Option {
            option: "--disk-size",
            value: opts.disk_size.clone(),
            reason: "is not a Kubernetes quantity (like 1Gi or 512Mi)",
        });
    }
    let registry_ok = !opts.registry.is_empty()
        && !opts.registry.contains("://")
        && opts
            .registry
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._:/".contains(c));
    if !registry_ok {
        return Err(KubevirtError::Option {
            option: "--registry",
            value: opts.registry.clone(),
            reason: "is not a registry path (like localhost:5000/minivm: host, port and path, no scheme)",
        });
    }
    Ok(())
}

impl Exported {
    /// Every manifest in one YAML stream (`kubectl apply -f FILE`), the
    /// report first as comments.
    pub fn stream(&self) -> String {
        let mut s = format!(
            "# minivm lab for KubeVirt, CDI and Multus: kubectl apply -f this file (namespace {}).\n",
            self.namespace
        );
        for line in &self.report {
            s.push_str(&format!("# not carried: {line}\n"));
        }
        for m in &self.manifests {
            s.push_str("---\n");
            s.push_str(&m.yaml());
        }
        s
    }
}

/// The namespace a lab runs in.
pub fn namespace(lab: &str) -> String {
    format!("minivm-{lab}")
}

/// The golden DataVolume of an image: a DNS-1123 label made from the image
/// name (lowercase; `_` and `.` become `-`).
pub fn golden_name(image: &str) -> String {
    let s: String = image
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    format!("minivm-{}", s.trim_matches('-'))
}

/// Kubernetes names must end with a letter or a digit (minivm's may end
/// with `-`); anything else minivm allows in a name Kubernetes does too.
fn check_k8s_name(field: String, value: &str) -> Result<(), KubevirtError> {
    if value.ends_with('-') {
        return Err(KubevirtError::Name {
            field,
            value: value.into(),
            reason: "ends with '-'; Kubernetes names must end with a letter or digit",
        });
    }
    Ok(())
}

/// The guest's configuration on the cluster: the lab with its management
/// network replaced by the pod network as the masquerade binding presents
/// it (every VM 10.0.2.2/24 behind 10.0.2.1).
pub fn cluster_view(t: &Topology) -> Topology {
    let mut k = t.clone();
    if let Some(m) = &mut k.mgmt {
        m.subnet = POD_SUBNET.into();
        m.ports.clear();
        for n in &mut k.nodes {
            n.mgmt_address = Some(POD_GUEST_ADDRESS.into());
        }
    }
    k
}

/// `t` (valid) as manifests.
pub fn export(t: &Topology, opts: &Options) -> Result<Exported, KubevirtError> {
    check_options(opts)?;
    check_k8s_name("name".into(), &t.name)?;
    for (i, n) in t.networks.iter().enumerate() {
        check_k8s_name(format!("networks[{i}].name"), &n.name)?;
    }
    for (i, n) in t.nodes.iter().enumerate() {
        check_k8s_name(format!("nodes[{i}].name"), &n.name)?;
    }
    let ns = namespace(&t.name);
    let view = cluster_view(t);
    let eff = topology::mgmt::effective(&view);
    let nics = topology::resolve::nics(&eff);
    let labels = json!({
        LAB_LABEL: t.name,
        "app.kubernetes.io/managed-by": "minivm",
    });
    let mut out = Vec::new();
    let mut report = Vec::new();

    out.push(Manifest {
        file: "00-namespace.yaml".into(),
        kind: "Namespace",
        doc: json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": ns, "labels": labels},
        }),
    });

    // The golden images and the right to clone them.
    let images: BTreeSet<&str> = t
        .nodes
        .iter()
        .map(|n| t.node_image(n).unwrap_or("tiny"))
        .collect();
    out.push(Manifest {
        file: "01-images-namespace.yaml".into(),
        kind: "Namespace",
        doc: json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": IMAGES_NAMESPACE, "labels": {"app.kubernetes.io/managed-by": "minivm"}},
        }),
    });
    for image in &images {
        let golden = golden_name(image);
        out.push(Manifest {
            file: format!("02-image-{golden}.yaml"),
            kind: "DataVolume",
            doc: json!({
                "apiVersion": "cdi.kubevirt.io/v1beta1",
                "kind": "DataVolume",
                "metadata": {
                    "name": golden,
                    "namespace": IMAGES_NAMESPACE,
                    "labels": {"app.kubernetes.io/managed-by": "minivm", "minivm.org/image": golden},
                },
                "spec": {
                    "source": {"registry": {"url": format!("docker://{}/{image}:latest", opts.registry)}},
                    "storage": {"resources": {"requests": {"storage": opts.disk_size}}},
                },
            }),
        });
    }
    out.push(Manifest {
        file: "03-clone-role.yaml".into(),
        kind: "ClusterRole",
        doc: json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "minivm-datavolume-cloner", "labels": {"app.kubernetes.io/managed-by": "minivm"}},
            "rules": [{
                "apiGroups": ["cdi.kubevirt.io"],
                "resources": ["datavolumes/source"],
                "verbs": ["*"],
            }],
        }),
    });
    out.push(Manifest {
        file: "04-clone-binding.yaml".into(),
        kind: "RoleBinding",
        doc: json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": format!("{ns}-clone"), "namespace": IMAGES_NAMESPACE, "labels": labels},
            "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}],
            "roleRef": {"kind": "ClusterRole", "name": "minivm-datavolume-cloner", "apiGroup": "rbac.authorization.k8s.io"},
        }),
    });

    for net in &t.networks {
        let config = match opts.cni {
            Cni::OvnLayer2 => json!({
                "cniVersion": "0.3.1",
                "name": format!("{ns}-{}", net.name),
                "type": "ovn-k8s-cni-overlay",
                "topology": "layer2",
                "netAttachDefName": format!("{ns}/{}", net.name),
            }),
            Cni::Bridge => json!({
                "cniVersion": "0.3.1",
                "name": format!("{ns}-{}", net.name),
                "type": "bridge",
                "bridge": topology::names::bridge_ifname(&t.name, &net.name),
                "ipam": {},
            }),
        };
        out.push(Manifest {
            file: format!("10-network-{}.yaml", net.name),
            kind: "NetworkAttachmentDefinition",
            doc: json!({
                "apiVersion": "k8s.cni.cncf.io/v1",
                "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": net.name, "namespace": ns, "labels": labels},
                "spec": {"config": serde_json::to_string(&config).expect("serializes")},
            }),
        });
    }
    let with_subnet: Vec<&str> = t
        .networks
        .iter()
        .filter(|n| n.subnet.is_some())
        .map(|n| n.name.as_str())
        .collect();
    if !with_subnet.is_empty() {
        report.push(format!(
            "the subnets of {} are not given to the cluster networks (no IPAM): each VM sets the addresses it has locally",
            with_subnet.join(", ")
        ));
    }

    for node in &t.nodes {
        let name = node.name.as_str();
        let seed = crate::seed::render_cloud(&view, name).expect("the node is in the lab");
        let nics: &[ResolvedNic] = nics.get(name).map(Vec::as_slice).unwrap_or(&[]);
        let mut interfaces = Vec::new();
        let mut networks = Vec::new();
        for nic in nics {
            if nic.network == topology::mgmt::NETWORK && t.mgmt.is_some() {
                interfaces.push(json!({
                    "name": nic.ifname,
                    "masquerade": {},
                    "macAddress": nic.mac.to_string(),
                    "model": "virtio",
                }));
                networks.push(json!({"name": nic.ifname, "pod": {}}));
            } else {
                interfaces.push(json!({
                    "name": nic.ifname,
                    "bridge": {},
                    "macAddress": nic.mac.to_string(),
                    "model": "virtio",
                }));
                networks.push(json!({"name": nic.ifname, "multus": {"networkName": nic.network}}));
            }
        }
        for (k, nic) in node.nics.iter().enumerate() {
            let guest = topology::mgmt::guest_nic_index(t, k);
            if !nic.impair.is_none() {
                report.push(format!(
                    "{name} eth{guest}: impairment {} is not carried; on a cluster, set it with tc netem on the VM's interface inside its virt-launcher pod (`kubectl debug` with a tool image that has tc, e.g. `tc qdisc add dev <pod interface> root netem delay 20ms loss 1%`)",
                    nic.impair.label()
                ));
            }
            if !nic.up {
                report.push(format!(
                    "{name} eth{guest}: the link is down locally and is not carried (it starts up); on a cluster, `virtctl` cannot unplug it: set the interface's `state: down` in the VM spec (KubeVirt 1.3 and later) and restart the VM"
                ));
            }
        }

        let user_data_inline = seed.user_data.len() <= INLINE_LIMIT;
        let net_inline = seed.network_config.len() <= INLINE_LIMIT;
        let secret = format!("{name}-cloudinit");
        let mut cloud = serde_json::Map::new();
        if user_data_inline {
            cloud.insert("userData".into(), json!(seed.user_data));
        } else {
            cloud.insert("secretRef".into(), json!({"name": secret}));
        }
        if net_inline {
            cloud.insert("networkData".into(), json!(seed.network_config));
        } else {
            cloud.insert("networkDataSecretRef".into(), json!({"name": secret}));
        }
        if !(user_data_inline && net_inline) {
            let mut data = serde_json::Map::new();
            if !user_data_inline {
                data.insert("userdata".into(), json!(seed.user_data));
            }
            if !net_inline {
                data.insert("networkdata".into(), json!(seed.network_config));
            }
            out.push(Manifest {
                file: format!("20-cloudinit-{name}.yaml"),
                kind: "Secret",
                doc: json!({
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {"name": secret, "namespace": ns, "labels": labels},
                    "type": "Opaque",
                    "stringData": data,
                }),
            });
        }

        let image = t.node_image(node).unwrap_or("tiny");
        let disk = format!("{name}-rootdisk");
        let run_strategy = match t.node_restart(node) {
            RestartPolicy::No => "Once",
            RestartPolicy::OnFailure => "RerunOnFailure",
        };
        let mut vm_labels = labels.clone();
        vm_labels["minivm.org/node"] = json!(name);
        if let Some(kind) = node.kind {
            vm_labels["minivm.org/kind"] = json!(kind.name());
        }
        out.push(Manifest {
            file: format!("30-vm-{name}.yaml"),
            kind: "VirtualMachine",
            doc: json!({
                "apiVersion": "kubevirt.io/v1",
                "kind": "VirtualMachine",
                "metadata": {"name": name, "namespace": ns, "labels": vm_labels},
                "spec": {
                    "runStrategy": run_strategy,
                    "dataVolumeTemplates": [{
                        "metadata": {"name": disk, "labels": labels},
                        "spec": {
                            "source": {"pvc": {"namespace": IMAGES_NAMESPACE, "name": golden_name(image)}},
                            "storage": {"resources": {"requests": {"storage": opts.disk_size}}},
                        },
                    }],
                    "template": {
                        "metadata": {"labels": vm_labels},
                        "spec": {
                            "domain": {
                                "cpu": {"cores": t.node_cpus(node)},
                                "memory": {"guest": format!("{}Mi", t.node_memory_mib(node))},
                                "devices": {
                                    "autoattachSerialConsole": true,
                                    "rng": {},
                                    "disks": [
                                        {"name": "rootdisk", "bootOrder": 1, "disk": {"bus": "virtio"}},
                                        {"name": "cloudinitdisk", "disk": {"bus": "virtio"}},
                                    ],
                                    "interfaces": interfaces,
                                },
                            },
                            "networks": networks,
                            "terminationGracePeriodSeconds": 10,
                            "volumes": [
                                {"name": "rootdisk", "dataVolume": {"name": disk}},
                                {"name": "cloudinitdisk", "cloudInitNoCloud": cloud},
                            ],
                        },
                    },
                },
            }),
        });
    }

    if t.mgmt.as_ref().is_some_and(|m| !m.nat) {
        // Without `nat` the VMs reach one another and the host, not the
        // world: on a cluster, their pods may talk within the namespace only.
        out.push(Manifest {
            file: "11-mgmt-no-egress.yaml".into(),
            kind: "NetworkPolicy",
            doc: json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "NetworkPolicy",
                "metadata": {"name": "mgmt-no-egress", "namespace": ns, "labels": labels},
                "spec": {
                    "podSelector": {"matchLabels": {LAB_LABEL: t.name}},
                    "policyTypes": ["Egress"],
                    "egress": [{"to": [{"podSelector": {}}]}],
                },
            }),
        });
    }
    if let Some(m) = &t.mgmt {
        for p in &m.ports {
            if let Ok(f) = topology::mgmt::parse_port(p) {
                report.push(format!(
                    "mgmt port {p:?} is not carried: expose it with `virtctl expose vm {} -n {ns} --name {}-{} --port {} --target-port {} --protocol {} --type NodePort`",
                    f.node, f.node, f.port, f.host_port, f.port, f.proto.as_str().to_uppercase()
                ));
            }
        }
        report.push(format!(
            "mgmt: the management network is the pod network (masquerade: each VM is {POD_GUEST_ADDRESS}/24 behind 10.0.2.1{}), not the subnet {}",
            if m.nat {
                " and reaches out through its pod"
            } else {
                "; without nat a NetworkPolicy keeps its traffic inside the namespace"
            },
            m.subnet
        ));
    }
    if !t.tests.is_empty() {
        report.push(format!(
            "{} lab test(s) are not carried: run the same checks with `virtctl ssh` or `virtctl console` (the serial console) against the VMs",
            t.tests.len()
        ));
    }
    report.push(
        "capture is not carried: on a cluster, run tcpdump on the VM's interface in its virt-launcher pod's network namespace (`kubectl debug node/NODE` with a tool image)".into(),
    );
    out.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(Exported {
        namespace: ns,
        manifests: out,
        report,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Topology {
        topology::parse(topology::examples::ROUTER, topology::Format::Yaml).unwrap()
    }

    fn vm<'a>(e: &'a Exported, name: &str) -> &'a Value {
        &e.manifests
            .iter()
            .find(|m| m.kind == "VirtualMachine" && m.doc["metadata"]["name"] == name)
            .unwrap()
            .doc
    }

    #[test]
    fn one_vm_per_node_one_network_per_network_and_a_labelled_namespace() {
        let t = router();
        let e = export(&t, &Options::default()).unwrap();
        let count = |k: &str| e.manifests.iter().filter(|m| m.kind == k).count();
        assert_eq!(count("VirtualMachine"), t.nodes.len());
        assert_eq!(count("NetworkAttachmentDefinition"), t.networks.len());
        let ns = &e.manifests[0];
        assert_eq!(ns.kind, "Namespace");
        assert_eq!(ns.doc["metadata"]["name"], "minivm-router");
        assert_eq!(ns.doc["metadata"]["labels"][LAB_LABEL], "router");
        // Files sort in the order kubectl must apply them.
        let files: Vec<_> = e.manifests.iter().map(|m| m.file.clone()).collect();
        let mut sorted = files.clone();
        sorted.sort();
        assert_eq!(files, sorted);
    }

    #[test]
    fn interfaces_carry_the_nodes_macs_in_order_on_multus_networks() {
        let t = router();
        let e = export(&t, &Options::default()).unwrap();
        let nics = topology::resolve::nics(&t);
        let r1 = vm(&e, "r1");
        let spec = &r1["spec"]["template"]["spec"];
        let ifs = spec["domain"]["devices"]["interfaces"].as_array().unwrap();
        assert_eq!(ifs.len(), 2);
        for (i, nic) in nics["r1"].iter().enumerate() {
            assert_eq!(ifs[i]["macAddress"], nic.mac.to_string());
            assert_eq!(ifs[i]["name"], nic.ifname);
            assert!(ifs[i]["bridge"].is_object());
            assert_eq!(spec["networks"][i]["multus"]["networkName"], nic.network);
        }
        let mib = t.node_memory_mib(t.node("r1").unwrap());
        assert_eq!(spec["domain"]["memory"]["guest"], format!("{mib}Mi"));
    }

    #[test]
    fn user_data_is_the_cloud_seed_and_carries_the_conf() {
        let t = router();
        let e = export(&t, &Options::default()).unwrap();
        let h1 = vm(&e, "h1");
        let cloud = &h1["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"];
        let seed = crate::seed::render_cloud(&t, "h1").unwrap();
        assert_eq!(cloud["userData"], seed.user_data);
        assert_eq!(cloud["networkData"], seed.network_config);
        assert!(seed
            .user_data
            .contains("  - path: /etc/minivm/minivm.conf\n"));
    }

    #[test]
    fn the_stream_is_every_manifest_after_the_report() {
        let e = export(&router(), &Options::default()).unwrap();
        let s = e.stream();
        let docs: Vec<Value> = s
            .split("\n---\n")
            .skip(1)
            .map(|d| serde_yaml_ng::from_str(d).unwrap())
            .collect();
        assert_eq!(
            docs,
            e.manifests
                .iter()
                .map(|m| m.doc.clone())
                .collect::<Vec<_>>()
        );
        assert!(s.lines().any(|l| l.starts_with("# not carried: capture")));
    }

    #[test]
    fn restart_maps_to_run_strategy() {
        let mut t = router();
        t.nodes[0].restart = Some(RestartPolicy::OnFailure);
        let e = export(&t, &Options::default()).unwrap();
        assert_eq!(
            vm(&e, &t.nodes[0].name)["spec"]["runStrategy"],
            "RerunOnFailure"
        );
        assert_eq!(vm(&e, &t.nodes[1].name)["spec"]["runStrategy"], "Once");
    }

    #[test]
    fn big_user_data_goes_to_a_secret() {
        let mut t = router();
        t.nodes[0].files.push(topology::FileSpec {
            path: "/etc/big".into(),
            content: Some("x".repeat(3000)),
            source: None,
            mode: None,
        });
        let name = t.nodes[0].name.clone();
        let e = export(&t, &Options::default()).unwrap();
        let cloud = &vm(&e, &name)["spec"]["template"]["spec"]["volumes"][1]["cloudInitNoCloud"];
        assert_eq!(cloud["secretRef"]["name"], format!("{name}-cloudinit"));
        assert!(cloud.get("userData").is_none());
        let secret = e.manifests.iter().find(|m| m.kind == "Secret").unwrap();
        assert!(secret.doc["stringData"]["userdata"]
            .as_str()
            .unwrap()
            .starts_with("#cloud-config\n"));
    }

    #[test]
    fn mgmt_is_the_pod_network_and_its_ports_are_reported() {
        let mut t = router();
        t.mgmt = Some(topology::Mgmt {
            subnet: "172.20.20.0/24".into(),
            nat: true,
            ports: vec!["2222:h1:22".into()],
        });
        let e = export(&t, &Options::default()).unwrap();
        let h1 = vm(&e, "h1");
        let spec = &h1["spec"]["template"]["spec"];
        assert!(spec["domain"]["devices"]["interfaces"][0]["masquerade"].is_object());
        assert!(spec["networks"][0]["pod"].is_object());
        let conf = crate::seed::render_cloud(&cluster_view(&t), "h1")
            .unwrap()
            .minivm_conf;
        assert!(conf.contains(" eth0 10.0.2.2/24\n"), "{conf}");
        assert!(conf.contains("route 0.0.0.0/0 10.0.2.1\n"), "{conf}");
        assert!(e.report.iter().any(|r| r.contains("virtctl expose vm h1")));
        // With nat, the pods reach out; without, a policy keeps them in.
        assert!(!e.manifests.iter().any(|m| m.kind == "NetworkPolicy"));
        t.mgmt.as_mut().unwrap().nat = false;
        let e = export(&t, &Options::default()).unwrap();
        let p = e
            .manifests
            .iter()
            .find(|m| m.kind == "NetworkPolicy")
            .unwrap();
        assert_eq!(p.doc["spec"]["policyTypes"], json!(["Egress"]));
        assert_eq!(
            p.doc["spec"]["podSelector"]["matchLabels"][LAB_LABEL],
            "router"
        );
    }

    #[test]
    fn bridge_cni_names_a_short_bridge() {
        let t = router();
        let e = export(
            &t,
            &Options {
                cni: Cni::Bridge,
                ..Options::default()
            },
        )
        .unwrap();
        let nad = e
            .manifests
            .iter()
            .find(|m| m.kind == "NetworkAttachmentDefinition")
            .unwrap();
        let config: Value =
            serde_json::from_str(nad.doc["spec"]["config"].as_str().unwrap()).unwrap();
        assert_eq!(config["type"], "bridge");
        assert!(config["bridge"].as_str().unwrap().len() <= 15);
    }

    #[test]
    fn names_kubernetes_refuses_are_refused_with_the_field() {
        let mut t = router();
        t.nodes[1].name = "h1-".into();
        let err = export(&t, &Options::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "nodes[1].name: \"h1-\" ends with '-'; Kubernetes names must end with a letter or digit"
        );
        assert_eq!(golden_name("My_Image.v2"), "minivm-my-image-v2");
    }

    #[test]
    fn bad_options_are_refused_with_the_flag() {
        let t = router();
        let with = |disk: &str, registry: &str| {
            export(
                &t,
                &Options {
                    disk_size: disk.into(),
                    registry: registry.into(),
                    ..Options::default()
                },
            )
        };
        for good in ["1Gi", "512Mi", "2G", "1.5Gi", "1073741824"] {
            assert!(with(good, "localhost:5000/minivm").is_ok(), "{good}");
        }
        for bad in ["", "Gi", "1 Gi", "1GB", "-1Gi", "1.Gi"] {
            let e = with(bad, "localhost:5000/minivm").unwrap_err().to_string();
            assert!(e.starts_with("--disk-size: "), "{bad}: {e}");
        }
        for bad in ["", "docker://r/m", "r/m name", "r/m\n"] {
            let e = with("1Gi", bad).unwrap_err().to_string();
            assert!(e.starts_with("--registry: "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn exec_lines_become_a_quoted_script() {
        let s =
            crate::seed::exec_script(&["sh -c \"echo it's > /tmp/x\"".into(), "ip link".into()]);
        assert_eq!(
            s,
            "#!/bin/sh\n'sh' '-c' 'echo it'\\''s > /tmp/x' || exit $?\n'ip' 'link' || exit $?\n"
        );
    }
}
