//! The connectivity matrix (`minivm check` in the page) and the links its
//! result colours on the canvas.

use leptos::prelude::*;
use topology::Topology;

use super::Ed;
use crate::api::CheckCell;
use crate::graph;

#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
/// The links a check result colours: a pair's NICs on the network they
/// share (for a routed pair, each end's NICs). Returns (failing, passing).
pub fn check_edges(t: &Topology, cells: &[CheckCell]) -> (Vec<String>, Vec<String>) {
    let mut failing = Vec::new();
    let mut passing = Vec::new();
    for c in cells {
        let mut ids = Vec::new();
        for vm in [&c.from, &c.to] {
            if let Some(node) = t.node(vm) {
                for (i, nic) in node.nics.iter().enumerate() {
                    if c.network.as_ref().is_none_or(|n| *n == nic.network) {
                        ids.push(graph::nic_id(vm, i));
                    }
                }
            }
        }
        if c.ok {
            passing.extend(ids)
        } else {
            failing.extend(ids)
        }
    }
    failing.sort();
    failing.dedup();
    passing.sort();
    passing.dedup();
    (failing, passing)
}

/// The connectivity matrix: a row per source VM, a column per target.
#[component]
pub(super) fn Matrix(ed: Ed, cells: Vec<CheckCell>) -> impl IntoView {
    let mut vms: Vec<String> = cells
        .iter()
        .flat_map(|c| [c.from.clone(), c.to.clone()])
        .collect();
    vms.sort();
    vms.dedup();
    let failed = cells.iter().filter(|c| !c.ok).count();
    let header = vms
        .iter()
        .map(|v| view! { <th>{v.clone()}</th> })
        .collect_view();
    let rows = vms
        .iter()
        .map(|from| {
            let tds =
                vms.iter()
                    .map(|to| {
                        match cells.iter().find(|c| &c.from == from && &c.to == to) {
                Some(c) if c.ok => view! {
                    <td
                        class="pass"
                        data-from=from.clone()
                        data-to=to.clone()
                        title=c.address.clone()
                    >
                        {c.rtt_ms.map(|r| format!("{r:.1} ms")).unwrap_or_else(|| "ok".into())}
                    </td>
                }.into_any(),
                Some(c) => view! {
                    <td
                        class="fail"
                        data-from=from.clone()
                        data-to=to.clone()
                        title=c.error.clone().unwrap_or_default()
                    >
                        "✗"
                    </td>
                }.into_any(),
                None => view! { <td class="na">"·"</td> }.into_any(),
            }
                    })
                    .collect_view();
            view! {
                <tr>
                    <th>{from.clone()}</th>
                    {tds}
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="matrix">
            <div class="matrix-head">
                <strong>"Connectivity"</strong>
                <span class="muted">
                    {format!("{} pair(s), {failed} failed; rows ping columns", cells.len())}
                </span>
                <button class="close-matrix" on:click=move |_| ed.check.set(None)>
                    "Close"
                </button>
            </div>
            <table>
                <thead>
                    <tr>
                        <th></th>
                        {header}
                    </tr>
                </thead>
                <tbody>{rows}</tbody>
            </table>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cell(from: &str, to: &str, network: Option<&str>, ok: bool) -> CheckCell {
        CheckCell {
            from: from.into(),
            to: to.into(),
            address: String::new(),
            network: network.map(Into::into),
            ok,
            rtt_ms: None,
            error: None,
        }
    }

    #[test]
    fn failing_pairs_colour_their_links() {
        let t = topology::parse_and_validate(topology::examples::ROUTER, topology::Format::Yaml)
            .unwrap();
        let cells = [
            cell("h1", "r1", Some("left"), false),
            cell("h2", "r1", Some("right"), true),
            cell("h1", "h2", None, false),
        ];
        let (failing, passing) = check_edges(&t, &cells);
        assert_eq!(failing, ["nic:h1:0", "nic:h2:0", "nic:r1:0"]);
        assert_eq!(passing, ["nic:h2:0", "nic:r1:1"]);
    }
}
