//! The canvas: a topology turned into cytoscape elements (pure, tested
//! natively), and the browser-only binding that draws them.

use serde_json::{json, Value};
use topology::Topology;

/// Element id of a VM.
pub fn vm_id(node: &str) -> String {
    format!("vm:{node}")
}

/// Element id of a bridge.
pub fn bridge_id(network: &str) -> String {
    format!("net:{network}")
}

/// Cytoscape elements: VMs and bridges as nodes, each NIC as an edge from
/// its VM to its bridge, labelled with its guest interface name.
pub fn elements(t: &Topology) -> Value {
    let mut out = Vec::new();
    for net in &t.networks {
        let mut e = json!({
            "group": "nodes",
            "data": { "id": bridge_id(&net.name), "label": net.name, "kind": "bridge", "subnet": net.subnet },
        });
        if let Some(p) = net.position {
            e["position"] = json!({ "x": p.x, "y": p.y });
        }
        out.push(e);
    }
    for node in &t.nodes {
        let mut e = json!({
            "group": "nodes",
            "data": { "id": vm_id(&node.name), "label": node.name, "kind": "vm" },
        });
        if let Some(p) = node.position {
            e["position"] = json!({ "x": p.x, "y": p.y });
        }
        out.push(e);
    }
    for node in &t.nodes {
        for (i, nic) in node.nics.iter().enumerate() {
            // A NIC whose network is missing has no edge (validation reports it).
            if t.network(&nic.network).is_none() {
                continue;
            }
            out.push(json!({
                "group": "edges",
                "data": {
                    "id": format!("nic:{}:{i}", node.name),
                    "source": vm_id(&node.name),
                    "target": bridge_id(&nic.network),
                    "label": format!("eth{i}"),
                    "address": nic.address,
                },
            }));
        }
    }
    Value::Array(out)
}

/// Draws `t` into `container`, replacing what was there.
#[cfg(feature = "hydrate")]
pub fn render(container: &web_sys::HtmlElement, t: &Topology) {
    js::render_graph(container, &t.name, &elements(t).to_string());
}

#[cfg(feature = "hydrate")]
mod js {
    use wasm_bindgen::prelude::*;

    // Bundled by build.rs from js/graph.js and the npm cytoscape package.
    #[wasm_bindgen(module = "/js/dist/graph.mjs")]
    extern "C" {
        #[wasm_bindgen(js_name = renderGraph)]
        pub fn render_graph(container: &web_sys::HtmlElement, lab: &str, elements_json: &str);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_example_becomes_three_vms_two_bridges_four_links() {
        let t = topology::parse(topology::examples::ROUTER, topology::Format::Yaml).unwrap();
        let els = elements(&t);
        let els = els.as_array().unwrap();
        let count = |kind: &str| els.iter().filter(|e| e["data"]["kind"] == kind).count();
        assert_eq!(count("vm"), 3);
        assert_eq!(count("bridge"), 2);
        let edges: Vec<_> = els.iter().filter(|e| e["group"] == "edges").collect();
        assert_eq!(edges.len(), 4);
        let r1_eth1 = edges
            .iter()
            .find(|e| e["data"]["id"] == "nic:r1:1")
            .unwrap();
        assert_eq!(r1_eth1["data"]["target"], "net:right");
        assert_eq!(r1_eth1["data"]["label"], "eth1");
        let h1 = els.iter().find(|e| e["data"]["id"] == "vm:h1").unwrap();
        assert_eq!(h1["position"], json!({"x": 80.0, "y": 340.0}));
    }
}
