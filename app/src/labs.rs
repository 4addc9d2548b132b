//! The main screen: the lab list and the selected lab's canvas.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::{get_lab, list_labs, LabSummary, LabView};

#[component]
pub fn LabsPage() -> impl IntoView {
    let query = use_query_map();
    let labs = Resource::new(|| (), |_| list_labs());
    // The lab in the URL (?lab=NAME), else the first one.
    let selected = move || {
        query.read().get("lab").or_else(|| {
            labs.get()
                .and_then(|r| r.ok())
                .and_then(|list| list.first().map(|l| l.name.clone()))
        })
    };
    let lab = Resource::new(selected, |name| async move {
        match name {
            Some(n) => get_lab(n).await.map(Some),
            None => Ok(None),
        }
    });

    view! {
        <div class="layout">
            <header class="topbar">
                <h1>"MiniVM Launcher"</h1>
                <a class="schema-link" href="/schema/topology.v1.json">"Topology schema v1"</a>
            </header>
            <nav class="sidebar">
                <h2>"Labs"</h2>
                <Suspense fallback=|| view! { <p class="muted">"Loading labs…"</p> }>
                    {move || labs.get().map(|r| match r {
                        Ok(list) => view! { <LabList list selected=Signal::derive(selected)/> }.into_any(),
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    })}
                </Suspense>
            </nav>
            <section class="main">
                <Suspense fallback=|| view! { <p class="muted">"Loading lab…"</p> }>
                    {move || lab.get().map(|r| match r {
                        Ok(Some(lab)) => view! { <LabDetail lab/> }.into_any(),
                        Ok(None) => view! { <p class="muted">"No lab yet."</p> }.into_any(),
                        Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                    })}
                </Suspense>
            </section>
        </div>
    }
}

#[component]
fn LabList(list: Vec<LabSummary>, selected: Signal<Option<String>>) -> impl IntoView {
    view! {
        <ul class="lab-list">
            {list.into_iter().map(|l| {
                let name = l.name.clone();
                let is_selected = move || selected.get().as_deref() == Some(name.as_str());
                view! {
                    <li class:selected=is_selected>
                        <a href=format!("/?lab={}", l.name) data-lab=l.name.clone()>{l.name.clone()}</a>
                        <span class="muted">{format!("{} VMs · {} bridges", l.nodes, l.networks)}</span>
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}

#[component]
fn LabDetail(lab: LabView) -> impl IntoView {
    let t = lab.topology;
    let summary = format!(
        "{} VMs, {} bridges, {} links",
        t.nodes.len(),
        t.networks.len(),
        t.link_count()
    );
    let rows = t
        .nodes
        .iter()
        .map(|n| {
            let addrs = n
                .nics
                .iter()
                .enumerate()
                .map(|(i, nic)| {
                    format!(
                        "eth{i} → {} {}",
                        nic.network,
                        nic.address.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            view! {
                <tr>
                    <td>{n.name.clone()}</td>
                    <td>{t.node_image(n).unwrap_or("").to_string()}</td>
                    <td>{t.node_cpus(n)}</td>
                    <td>{format!("{} MiB", t.node_memory_mib(n))}</td>
                    <td>{addrs}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="lab-header">
            <h2>{t.name.clone()}</h2>
            <span class="muted">{summary}</span>
        </div>
        <Canvas topology=t.clone()/>
        <table class="nodes">
            <thead><tr><th>"VM"</th><th>"Image"</th><th>"CPUs"</th><th>"Memory"</th><th>"NICs"</th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
}

#[component]
fn Canvas(topology: topology::Topology) -> impl IntoView {
    let node_ref = NodeRef::<leptos::html::Div>::new();
    let name = topology.name.clone();
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if let Some(el) = node_ref.get() {
            crate::graph::render(&el, &topology);
        }
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = topology;
    view! { <div class="canvas" node_ref=node_ref data-lab=name></div> }
}
