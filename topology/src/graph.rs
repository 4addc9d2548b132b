//! A lab as text and pictures for people who paste labs into documents:
//! a Mermaid graph, a Graphviz dot graph, and an SVG drawing (node names
//! kept as text) laid out from the editor's positions, or on a circle for
//! nodes that have none. VMs are boxes (routers, the ones that forward,
//! rounded), networks are small circles, NICs are edges labelled ethN and
//! their address. Pure.

use std::fmt::Write as _;

use crate::model::Topology;

/// Identifiers for Mermaid and dot: the name's letters and digits, `_`
/// for anything else, prefixed by kind so a VM and a network may share a
/// name.
fn id(kind: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("{kind}_{clean}")
}

fn edges(t: &Topology) -> Vec<(String, String, String)> {
    let t = &*crate::mgmt::effective(t);
    let nics = crate::resolve::nics(t);
    let mut out = Vec::new();
    for n in &t.nodes {
        for r in nics.get(&n.name).map(Vec::as_slice).unwrap_or(&[]) {
            let label = match r.address {
                Some(a) => format!("{} {a}", r.ifname),
                None => r.ifname.clone(),
            };
            out.push((n.name.clone(), r.network.clone(), label));
        }
    }
    out
}

/// `flowchart LR`: VMs as boxes, routers rounded, networks as circles.
pub fn mermaid(t: &Topology) -> String {
    let t = &*crate::mgmt::effective(t);
    let mut s = String::from("flowchart LR\n");
    for n in &t.nodes {
        let (open, close) = if n.ip_forward { ("(", ")") } else { ("[", "]") };
        writeln!(
            s,
            "  {}{open}\"{}\"{close}",
            id("vm", &n.name),
            esc_mermaid(&n.name)
        )
        .expect("writing to a String");
    }
    for net in &t.networks {
        writeln!(
            s,
            "  {}((\"{}\"))",
            id("net", &net.name),
            esc_mermaid(&net.name)
        )
        .expect("writing to a String");
    }
    for (vm, net, label) in edges(t) {
        writeln!(
            s,
            "  {} ---|\"{}\"| {}",
            id("vm", &vm),
            esc_mermaid(&label),
            id("net", &net)
        )
        .expect("writing to a String");
    }
    s
}

fn esc_mermaid(s: &str) -> String {
    s.replace('"', "#quot;")
}

/// An undirected Graphviz graph.
pub fn dot(t: &Topology) -> String {
    let t = &*crate::mgmt::effective(t);
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    let mut s = format!("graph {} {{\n  layout=neato; overlap=false;\n", q(&t.name));
    for n in &t.nodes {
        let style = if n.ip_forward {
            "shape=box, style=rounded"
        } else {
            "shape=box"
        };
        writeln!(
            s,
            "  {} [label={}, {style}];",
            id("vm", &n.name),
            q(&n.name)
        )
        .expect("writing to a String");
    }
    for net in &t.networks {
        writeln!(
            s,
            "  {} [label={}, shape=circle];",
            id("net", &net.name),
            q(&net.name)
        )
        .expect("writing to a String");
    }
    for (vm, net, label) in edges(t) {
        writeln!(
            s,
            "  {} -- {} [label={}];",
            id("vm", &vm),
            id("net", &net),
            q(&label)
        )
        .expect("writing to a String");
    }
    s.push_str("}\n");
    s
}

/// A VM as drawn: name, x, y, whether it forwards (a router).
type PlacedVm = (String, f64, f64, bool);
/// A network as drawn: name, x, y.
type PlacedNet = (String, f64, f64);

/// Where each VM and network is drawn: its position, else a place on a
/// circle.
fn layout(t: &Topology) -> (Vec<PlacedVm>, Vec<PlacedNet>) {
    let total = t.nodes.len() + t.networks.len();
    let mut k = 0;
    let mut place = |p: Option<&crate::model::Position>| {
        let at = p.map(|p| (p.x, p.y)).unwrap_or_else(|| {
            let a = std::f64::consts::TAU * k as f64 / total.max(1) as f64;
            (300.0 + 220.0 * a.cos(), 260.0 + 220.0 * a.sin())
        });
        k += 1;
        at
    };
    let vms = t
        .nodes
        .iter()
        .map(|n| {
            let (x, y) = place(n.position.as_ref());
            (n.name.clone(), x, y, n.ip_forward)
        })
        .collect();
    let nets = t
        .networks
        .iter()
        .map(|n| {
            let (x, y) = place(n.position.as_ref());
            (n.name.clone(), x, y)
        })
        .collect();
    (vms, nets)
}

fn esc_xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A standalone SVG drawing of the lab, `scale` 1.0 for full size (the
/// gallery uses a small one). Names are `<text>`.
pub fn svg(t: &Topology, scale: f64) -> String {
    let (vms, nets) = layout(t);
    let xs = vms.iter().map(|v| v.1).chain(nets.iter().map(|n| n.1));
    let ys = vms.iter().map(|v| v.2).chain(nets.iter().map(|n| n.2));
    let (min_x, max_x) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let (min_y, max_y) = ys.fold((f64::MAX, f64::MIN), |(a, b), y| (a.min(y), b.max(y)));
    let (min_x, min_y) = if min_x == f64::MAX {
        (0.0, 0.0)
    } else {
        (min_x, min_y)
    };
    let pad = 60.0;
    let w = (max_x - min_x).max(0.0) + 2.0 * pad;
    let h = (max_y - min_y).max(0.0) + 2.0 * pad;
    let at = |x: f64, y: f64| (x - min_x + pad, y - min_y + pad);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{:.0}\" height=\"{:.0}\" viewBox=\"0 0 {w:.0} {h:.0}\" font-family=\"sans-serif\" font-size=\"13\">\n<title>{}</title>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n",
        w * scale,
        h * scale,
        esc_xml(&t.name)
    );
    for (vm, net, _) in edges(t) {
        let a = vms.iter().find(|v| v.0 == vm);
        let b = nets.iter().find(|n| n.0 == net);
        if let (Some(a), Some(b)) = (a, b) {
            let (x1, y1) = at(a.1, a.2);
            let (x2, y2) = at(b.1, b.2);
            writeln!(
                s,
                "<line x1=\"{x1:.0}\" y1=\"{y1:.0}\" x2=\"{x2:.0}\" y2=\"{y2:.0}\" stroke=\"#888\" stroke-width=\"2\"/>"
            )
            .expect("writing to a String");
        }
    }
    for (name, x, y) in &nets {
        let (x, y) = at(*x, *y);
        writeln!(
            s,
            "<g class=\"network\"><circle cx=\"{x:.0}\" cy=\"{y:.0}\" r=\"12\" fill=\"#f0a030\"/><text x=\"{x:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text></g>",
            y + 28.0,
            esc_xml(name)
        )
        .expect("writing to a String");
    }
    for (name, x, y, router) in &vms {
        let (x, y) = at(*x, *y);
        let (fill, rx) = if *router {
            ("#2e8b57", 14)
        } else {
            ("#3b6fd4", 3)
        };
        writeln!(
            s,
            "<g class=\"vm\"><rect x=\"{:.0}\" y=\"{:.0}\" width=\"36\" height=\"36\" rx=\"{rx}\" fill=\"{fill}\"/><text x=\"{x:.0}\" y=\"{:.0}\" text-anchor=\"middle\">{}</text></g>",
            x - 18.0,
            y - 18.0,
            y + 34.0,
            esc_xml(name)
        )
        .expect("writing to a String");
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab() -> Topology {
        crate::templates::instantiate_builtin("router", "r", &[]).unwrap()
    }

    #[test]
    fn mermaid_has_every_node_network_and_nic() {
        let m = mermaid(&lab());
        assert!(m.starts_with("flowchart LR\n"));
        assert!(m.contains("  vm_r1(\"r1\")\n"), "{m}");
        assert!(m.contains("  vm_h1[\"h1\"]\n"), "{m}");
        assert!(m.contains("  net_lan1((\"lan1\"))\n"), "{m}");
        assert!(
            m.contains("  vm_h2 ---|\"eth0 10.20.2.10/24\"| net_lan2\n"),
            "{m}"
        );
        assert_eq!(m.matches("---").count(), 4);
    }

    #[test]
    fn dot_is_an_undirected_graph_with_quoted_labels() {
        let d = dot(&lab());
        assert!(d.starts_with("graph \"r\" {"));
        assert!(
            d.contains("vm_r1 -- net_lan2 [label=\"eth1 10.20.2.1/24\"];"),
            "{d}"
        );
        assert!(d.trim_end().ends_with('}'));
    }

    #[test]
    fn svg_keeps_every_name_as_text_and_escapes_it() {
        let mut t = lab();
        t.nodes[0].position = None;
        let s = svg(&t, 0.5);
        for name in ["r1", "h1", "h2", "lan1", "lan2"] {
            assert!(s.contains(&format!(">{name}</text>")), "{name}: {s}");
        }
        assert_eq!(s.matches("<line ").count(), 4);
        assert!(s.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        let empty =
            crate::parse_and_validate("version: 1\nname: e\n", crate::Format::Yaml).unwrap();
        assert!(svg(&empty, 1.0).ends_with("</svg>\n"));
    }
}
