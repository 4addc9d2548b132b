//! The canvas: a topology turned into cytoscape elements (pure, tested
//! natively), and the browser-only binding to js/graph.js.

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

/// Element id of a NIC (an edge).
pub fn nic_id(node: &str, index: usize) -> String {
    format!("nic:{node}:{index}")
}

/// What an element id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element {
    Vm(String),
    Bridge(String),
    Nic(String, usize),
}

pub fn parse_id(id: &str) -> Option<Element> {
    if let Some(n) = id.strip_prefix("vm:") {
        return Some(Element::Vm(n.to_string()));
    }
    if let Some(n) = id.strip_prefix("net:") {
        return Some(Element::Bridge(n.to_string()));
    }
    let (node, i) = id.strip_prefix("nic:")?.rsplit_once(':')?;
    Some(Element::Nic(node.to_string(), i.parse().ok()?))
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
        if let Some(k) = node.kind {
            e["data"]["device"] = json!(k.name());
        }
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
            // An impaired link says how in its label; a link set down
            // says so too (the canvas draws both differently).
            let mut label = format!("eth{}", topology::mgmt::guest_nic_index(t, i));
            if !nic.up {
                label.push_str(" · down");
            }
            if !nic.impair.is_none() {
                label.push_str(&format!(" · {}", nic.impair.label()));
            }
            out.push(json!({
                "group": "edges",
                "data": {
                    "id": nic_id(&node.name, i),
                    "source": vm_id(&node.name),
                    "target": bridge_id(&nic.network),
                    "label": label,
                    "address": nic.address,
                    "impaired": !nic.impair.is_none(),
                    "down": !nic.up,
                },
            }));
        }
    }
    Value::Array(out)
}

#[cfg(feature = "hydrate")]
pub mod js {
    use wasm_bindgen::prelude::*;

    // Bundled by build.rs from js/graph.js and the npm packages.
    #[wasm_bindgen(module = "/js/dist/graph.mjs")]
    extern "C" {
        pub type Editor;
        /// `on_message` gets each `FromCanvas` message as JSON.
        #[wasm_bindgen(constructor)]
        pub fn new(
            container: &web_sys::HtmlElement,
            lab: &str,
            on_message: &js_sys::Function,
        ) -> Editor;
        /// One `ToCanvas` message as JSON.
        #[wasm_bindgen(method)]
        pub fn receive(this: &Editor, message_json: &str);
        #[wasm_bindgen(method)]
        pub fn destroy(this: &Editor);

        pub type Events;
        #[wasm_bindgen(constructor)]
        pub fn new(
            since: f64,
            on_message: &js_sys::Function,
            on_status: &js_sys::Function,
        ) -> Events;
        #[wasm_bindgen(method)]
        pub fn close(this: &Events);

        pub type ConsoleView;
        #[wasm_bindgen(constructor)]
        pub fn new(
            container: &web_sys::HtmlElement,
            lab: &str,
            vm: &str,
            on_status: &js_sys::Function,
        ) -> ConsoleView;
        #[wasm_bindgen(method)]
        pub fn focus(this: &ConsoleView);
        #[wasm_bindgen(method)]
        pub fn destroy(this: &ConsoleView);

        #[wasm_bindgen(js_name = downloadText)]
        pub fn download_text(filename: &str, text: &str);
        #[wasm_bindgen(js_name = readFirstFile)]
        pub fn read_first_file(input: &web_sys::HtmlElement, on_text: &js_sys::Function);
        #[wasm_bindgen(js_name = readAllFiles)]
        pub fn read_all_files(input: &web_sys::HtmlElement, on_json: &js_sys::Function);
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

    #[test]
    fn an_impaired_or_down_link_says_so_in_its_label_and_data() {
        let mut t = topology::parse(topology::examples::ROUTER, topology::Format::Yaml).unwrap();
        t.nodes[1].nics[0].impair.delay_ms = 40;
        t.nodes[1].nics[0].impair.loss_pct = 0.5;
        t.nodes[2].nics[0].up = false;
        let els = elements(&t);
        let edge = |id: &str| {
            els.as_array()
                .unwrap()
                .iter()
                .find(|e| e["data"]["id"] == id)
                .unwrap()
                .clone()
        };
        let h1 = edge("nic:h1:0");
        assert_eq!(h1["data"]["label"], "eth0 · 40ms 0.5% loss");
        assert_eq!(h1["data"]["impaired"], true);
        assert_eq!(h1["data"]["down"], false);
        let h2 = edge("nic:h2:0");
        assert_eq!(h2["data"]["label"], "eth0 · down");
        assert_eq!(h2["data"]["down"], true);
    }

    #[test]
    fn ids_round_trip() {
        assert_eq!(parse_id(&vm_id("h1")), Some(Element::Vm("h1".into())));
        assert_eq!(
            parse_id(&bridge_id("lan")),
            Some(Element::Bridge("lan".into()))
        );
        assert_eq!(
            parse_id(&nic_id("r1", 2)),
            Some(Element::Nic("r1".into(), 2))
        );
        assert_eq!(parse_id("nic:r1:x"), None);
    }
}
