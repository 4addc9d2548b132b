//! Node templates: the palette's presets beyond a bare VM. A node template
//! is a VM's settings without its place in a lab (image, CPUs, memory,
//! forwarding, restart policy, files, exec commands) and the kind of
//! device it is, which the canvas draws with its own icon. Built in: a host
//! and an FRR router; the user's are saved from a VM ("Save as node
//! template"), renamed, deleted, exported and imported as JSON. Pure.

use serde::{Deserialize, Serialize};

use crate::model::{DeviceKind, FileSpec, Node, RestartPolicy};
use crate::validate::Problem;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeTemplate {
    /// Shown in the palette; a plain name (letters, digits, '-').
    pub name: String,
    pub kind: DeviceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mib: Option<u32>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ip_forward: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exec: Vec<String>,
    /// Built in (not renamed, deleted or saved over).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub builtin: bool,
}

const FRR_DAEMONS: &str = "# FRR daemons to start (zebra and staticd always run).\n\
ospfd=yes\nbgpd=yes\nvtysh_enable=yes\n\
zebra_options=\"  -A 127.0.0.1 -s 90000000\"\n\
ospfd_options=\"  -A 127.0.0.1\"\n\
bgpd_options=\"  -A 127.0.0.1\"\n\
staticd_options=\"-A 127.0.0.1\"\n";

/// The built-in presets: a host (tiny) and an FRR router (frr, forwarding,
/// ospfd and bgpd enabled, configured with vtysh or a frr.conf file).
pub fn builtins() -> Vec<NodeTemplate> {
    vec![
        NodeTemplate {
            name: "host".into(),
            kind: DeviceKind::Host,
            image: Some("tiny".into()),
            cpus: Some(1),
            memory_mib: Some(96),
            ip_forward: false,
            restart: None,
            files: vec![],
            exec: vec![],
            builtin: true,
        },
        NodeTemplate {
            name: "frr-router".into(),
            kind: DeviceKind::Router,
            image: Some("frr".into()),
            cpus: Some(1),
            memory_mib: Some(192),
            ip_forward: true,
            restart: None,
            files: vec![FileSpec {
                path: "/etc/frr/daemons".into(),
                content: Some(FRR_DAEMONS.into()),
                source: None,
                mode: None,
            }],
            exec: vec![],
            builtin: true,
        },
    ]
}

/// A VM's settings as a template named `name`. Every field of `Node` is
/// named here and in [`apply`]: a new one does not compile until it says
/// whether a template carries it.
pub fn from_node(name: &str, kind: DeviceKind, n: &Node) -> NodeTemplate {
    let Node {
        name: _,
        image,
        cpus,
        memory_mib,
        // The VM's own place in the lab, never a template's.
        nics: _,
        routes: _,
        mgmt_address: _,
        position: _,
        ip_forward,
        restart,
        files,
        exec,
        // Given by the caller (a template always has one).
        kind: _,
    } = n;
    NodeTemplate {
        name: name.trim().to_string(),
        kind,
        image: image.clone(),
        cpus: *cpus,
        memory_mib: *memory_mib,
        ip_forward: *ip_forward,
        restart: *restart,
        files: files.clone(),
        exec: exec.clone(),
        builtin: false,
    }
}

/// Gives node `n` the template's settings (its name, NICs, routes and
/// place stay its own).
pub fn apply(tpl: &NodeTemplate, n: &mut Node) {
    let Node {
        name: _,
        image,
        cpus,
        memory_mib,
        nics: _,
        routes: _,
        mgmt_address: _,
        position: _,
        ip_forward,
        restart,
        files,
        exec,
        kind,
    } = n;
    *image = tpl.image.clone();
    *cpus = tpl.cpus;
    *memory_mib = tpl.memory_mib;
    *ip_forward = tpl.ip_forward;
    *restart = tpl.restart;
    *files = tpl.files.clone();
    *exec = tpl.exec.clone();
    *kind = Some(tpl.kind);
}

/// What is wrong with a template: its name, and anything the topology's
/// validator says of a VM with its settings (paths named as the
/// template's fields).
pub fn problems(tpl: &NodeTemplate) -> Vec<Problem> {
    let mut out = Vec::new();
    if let Err(e) = crate::names::check_name(&tpl.name) {
        out.push(Problem::new("name", format!("{:?}: {e}", tpl.name)));
    }
    let mut n: Node = serde_json::from_value(serde_json::json!({"name": "vm1"})).expect("a node");
    apply(tpl, &mut n);
    if n.image.is_none() {
        n.image = Some("tiny".into());
    }
    let t = crate::Topology {
        version: crate::FORMAT_VERSION,
        name: "check".into(),
        defaults: None,
        networks: vec![],
        nodes: vec![n],
        network_mode: Default::default(),
        mgmt: None,
        tests: vec![],
    };
    for p in crate::validate(&t) {
        let path = p
            .path
            .strip_prefix("nodes[0].")
            .unwrap_or(&p.path)
            .to_string();
        out.push(Problem::new(path, p.message));
    }
    out
}

/// Reads a template exported as JSON.
pub fn parse(text: &str) -> Result<NodeTemplate, Vec<Problem>> {
    if text.len() > crate::parse::MAX_FILE_BYTES {
        return Err(vec![Problem::new("", "the file is too large")]);
    }
    let mut tpl: NodeTemplate =
        serde_json::from_str(text).map_err(|e| vec![Problem::new("", e.to_string())])?;
    tpl.builtin = false;
    match problems(&tpl) {
        p if p.is_empty() => Ok(tpl),
        p => Err(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_a_router_forwards() {
        for t in builtins() {
            assert_eq!(problems(&t), vec![], "{}", t.name);
        }
        let r = &builtins()[1];
        assert!(r.ip_forward && r.kind == DeviceKind::Router);
    }

    #[test]
    fn a_vm_saved_as_a_template_gives_its_settings_to_another() {
        let lab = crate::templates::instantiate_builtin("router", "x", &[]).unwrap();
        let mut r1 = lab.node("r1").unwrap().clone();
        r1.exec = vec!["sysctl -w net.ipv4.ip_forward=1".into()];
        r1.memory_mib = Some(200);
        let tpl = from_node("my-router", DeviceKind::Router, &r1);
        let json = serde_json::to_string(&tpl).unwrap();
        let back = parse(&json).unwrap();
        let mut other = lab.node("h1").unwrap().clone();
        apply(&back, &mut other);
        assert_eq!(other.name, "h1");
        assert_eq!(other.memory_mib, Some(200));
        assert!(other.ip_forward);
        assert_eq!(other.kind, Some(DeviceKind::Router));
        assert_eq!(other.nics, lab.node("h1").unwrap().nics);
    }

    #[test]
    fn bad_templates_are_refused_by_field() {
        let p = parse(r#"{"name": "Bad Name", "kind": "host"}"#).unwrap_err();
        assert_eq!(p[0].path, "name");
        let p = parse(r#"{"name": "x", "kind": "host", "memory_mib": 1}"#).unwrap_err();
        assert_eq!(p[0].path, "memory_mib");
        let p = parse(r#"{"name": "x", "kind": "toaster"}"#).unwrap_err();
        assert!(p[0].message.contains("unknown variant"), "{p:?}");
        let p = parse(r#"{"name": "x", "kind": "host", "files": [{"path": "rel"}]}"#).unwrap_err();
        assert!(p.iter().any(|p| p.path.starts_with("files[0]")), "{p:?}");
    }
}
