//! Edits the editor makes to a topology: pure functions, so that undo/redo
//! is a stack of topologies and every edit has a native unit test.

use topology::{Network, Nic, Node, Position, Topology};

use crate::graph::{parse_id, Element};

pub use topology::words::split_words;

fn unused(prefix: &str, taken: impl Fn(&str) -> bool) -> String {
    (1..)
        .map(|i| format!("{prefix}{i}"))
        .find(|n| !taken(n))
        .expect("some number is free")
}

/// Adds a VM at (x, y); returns its name (vm1, vm2, ...).
pub fn add_vm(t: &mut Topology, x: f64, y: f64) -> String {
    let name = unused("vm", |n| t.node(n).is_some());
    t.nodes.push(Node {
        name: name.clone(),
        image: None,
        cpus: None,
        memory_mib: None,
        nics: vec![],
        routes: vec![],
        mgmt_address: None,
        ip_forward: false,
        restart: None,
        files: vec![],
        exec: vec![],
        position: Some(Position { x, y }),
        kind: None,
    });
    name
}

/// Adds a bridge at (x, y) with a /24 no other network of the lab uses;
/// returns its name (net1, net2, ...).
pub fn add_bridge(t: &mut Topology, x: f64, y: f64) -> String {
    let name = unused("net", |n| t.network(n).is_some());
    let subnet = (1..=254).map(|i| format!("10.{i}.0.0/24")).find(|s| {
        !t.networks
            .iter()
            .any(|n| n.subnet.as_deref() == Some(s.as_str()))
    });
    t.networks.push(Network {
        name: name.clone(),
        subnet,
        position: Some(Position { x, y }),
    });
    name
}

/// Moves a VM or bridge.
pub fn move_to(t: &mut Topology, id: &str, x: f64, y: f64) {
    let p = Some(Position { x, y });
    match parse_id(id) {
        Some(Element::Vm(n)) => {
            if let Some(node) = t.nodes.iter_mut().find(|v| v.name == n) {
                node.position = p;
            }
        }
        Some(Element::Bridge(n)) => {
            if let Some(net) = t.networks.iter_mut().find(|v| v.name == n) {
                net.position = p;
            }
        }
        _ => {}
    }
}

/// Links a VM and a bridge (either order): a new NIC, the VM's next ethN.
pub fn link(t: &mut Topology, a: &str, b: &str) -> Result<(), String> {
    let (vm, net) = match (parse_id(a), parse_id(b)) {
        (Some(Element::Vm(v)), Some(Element::Bridge(n)))
        | (Some(Element::Bridge(n)), Some(Element::Vm(v))) => (v, n),
        _ => return Err("a link joins a VM and a bridge".into()),
    };
    if t.network(&net).is_none() {
        return Err(format!("no network named {net:?}"));
    }
    let node = t
        .nodes
        .iter_mut()
        .find(|n| n.name == vm)
        .ok_or_else(|| format!("no VM named {vm:?}"))?;
    node.nics.push(Nic {
        network: net,
        address: None,
        mac: None,
        up: true,
        impair: Default::default(),
    });
    Ok(())
}

/// Deletes elements: a VM, a bridge with every NIC on it, or a NIC.
pub fn delete(t: &mut Topology, ids: &[String]) {
    let mut nics: Vec<(String, usize)> = Vec::new();
    for id in ids {
        match parse_id(id) {
            Some(Element::Vm(n)) => t.nodes.retain(|v| v.name != n),
            Some(Element::Bridge(n)) => {
                t.networks.retain(|v| v.name != n);
                for node in &mut t.nodes {
                    node.nics.retain(|nic| nic.network != n);
                }
            }
            Some(Element::Nic(n, i)) => nics.push((n, i)),
            None => {}
        }
    }
    // Highest index first, so that earlier removals do not shift later ones.
    nics.sort_by_key(|&(_, i)| std::cmp::Reverse(i));
    for (n, i) in nics {
        if let Some(node) = t.nodes.iter_mut().find(|v| v.name == n) {
            if i < node.nics.len() {
                node.nics.remove(i);
            }
        }
    }
}

/// Renames a network and every NIC attached to it.
pub fn rename_network(t: &mut Topology, from: &str, to: &str) {
    for net in &mut t.networks {
        if net.name == from {
            net.name = to.to_string();
        }
    }
    for node in &mut t.nodes {
        for nic in &mut node.nics {
            if nic.network == from {
                nic.network = to.to_string();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn empty() -> Topology {
        topology::parse("version: 1\nname: lab\n", topology::Format::Yaml).unwrap()
    }

    #[test]
    fn a_drawn_lab_is_valid() {
        let mut t = empty();
        let a = add_vm(&mut t, 10.0, 10.0);
        let b = add_vm(&mut t, 50.0, 10.0);
        let n = add_bridge(&mut t, 30.0, 60.0);
        assert_eq!((a.as_str(), b.as_str(), n.as_str()), ("vm1", "vm2", "net1"));
        link(&mut t, "vm:vm1", "net:net1").unwrap();
        link(&mut t, "net:net1", "vm:vm2").unwrap();
        t.defaults = Some(topology::Defaults {
            image: Some("tiny".into()),
            ..Default::default()
        });
        assert_eq!(topology::validate(&t), vec![]);
        assert_eq!(t.networks[0].subnet.as_deref(), Some("10.1.0.0/24"));
        assert_eq!(add_bridge(&mut t, 0.0, 0.0), "net2");
        assert_eq!(t.networks[1].subnet.as_deref(), Some("10.2.0.0/24"));
        assert!(link(&mut t, "vm:vm1", "vm:vm2").is_err());
    }

    #[test]
    fn deleting_a_bridge_takes_its_links_and_nics_go_highest_first() {
        let mut t = empty();
        add_vm(&mut t, 0.0, 0.0);
        add_bridge(&mut t, 0.0, 0.0);
        add_bridge(&mut t, 0.0, 0.0);
        for net in ["net:net1", "net:net2", "net:net1"] {
            link(&mut t, "vm:vm1", net).unwrap();
        }
        delete(&mut t, &["nic:vm1:0".into(), "nic:vm1:2".into()]);
        assert_eq!(
            t.nodes[0]
                .nics
                .iter()
                .map(|n| n.network.as_str())
                .collect::<Vec<_>>(),
            ["net2"]
        );
        delete(&mut t, &["net:net2".into()]);
        assert!(t.nodes[0].nics.is_empty());
        delete(&mut t, &["vm:vm1".into()]);
        assert!(t.nodes.is_empty());
    }

    #[test]
    fn renaming_a_network_moves_its_nics() {
        let mut t = empty();
        add_vm(&mut t, 0.0, 0.0);
        add_bridge(&mut t, 0.0, 0.0);
        link(&mut t, "vm:vm1", "net:net1").unwrap();
        rename_network(&mut t, "net1", "lan");
        assert_eq!(t.nodes[0].nics[0].network, "lan");
        move_to(&mut t, "net:lan", 5.0, 6.0);
        assert_eq!(t.networks[0].position, Some(Position { x: 5.0, y: 6.0 }));
    }
}
