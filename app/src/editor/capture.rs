//! Packet captures: started from a link's or a bridge's context menu, listed
//! as tabs below the canvas (every capture of the lab, from any page), each
//! with a live packet table, a BPF filter, pause, stop, clear, download and
//! delete. The rows come from the server as the capture goes (polled); the
//! pcap file is the server's, downloaded as it is.

use leptos::prelude::*;

use super::Ed;
use crate::api::{
    capture_rows, delete_capture, list_captures, server_message, start_capture, stop_capture,
};
use crate::graph::{parse_id, Element};
use topology::capture::{CaptureInfo, Row};

/// `nic:h1:0` → `h1:eth0` (`h1:eth1` in a lab with a management network,
/// whose eth0 that is), `net:lan` → `lan`: what a capture is started on.
pub(super) fn target_of(t: &topology::Topology, element: &str) -> Option<String> {
    match parse_id(element)? {
        Element::Nic(vm, i) => Some(format!("{vm}:eth{}", topology::mgmt::guest_nic_index(t, i))),
        Element::Bridge(net) => Some(net),
        Element::Vm(_) => None,
    }
}

/// The most rows the table shows (the newest); the file has them all.
const SHOWN: usize = 2000;

impl Ed {
    /// Starts a capture on a canvas element (a link or a bridge) and shows it.
    pub(super) fn start_capture(self, element: String, filter: String) {
        let t = self.topo.get_untracked();
        let Some(target) = target_of(&t, &element) else {
            return;
        };
        let lab = t.name;
        leptos::task::spawn_local(async move {
            match start_capture(lab, target, filter).await {
                Ok(info) => {
                    let id = info.id.clone();
                    self.captures.update(|c| c.push(info));
                    self.capture_open.set(Some(id));
                }
                Err(e) => self.error.set(Some(server_message(&e))),
            }
        });
    }

    /// The lab's captures, as the server has them now.
    pub(super) fn refresh_captures(self) {
        let lab = self.topo.get_untracked().name;
        leptos::task::spawn_local(async move {
            if let Ok(list) = list_captures(lab).await {
                if list != self.captures.get_untracked() {
                    self.captures.set(list);
                }
            }
        });
    }
}

#[component]
pub(super) fn CapturePanel(ed: Ed) -> impl IntoView {
    let rows = RwSignal::new(Vec::<Row>::new());
    let next = RwSignal::new(1u64);
    let paused = RwSignal::new(false);
    let filter = RwSignal::new(String::new());
    let polling = RwSignal::new(false);
    // Another capture shown: its rows from the start.
    Effect::new(move |prev: Option<Option<String>>| {
        let now = ed.capture_open.get();
        if prev.as_ref() != Some(&now) {
            rows.set(vec![]);
            next.set(1);
            paused.set(false);
            if let Some(f) = now.as_ref().and_then(|id| {
                ed.captures
                    .get_untracked()
                    .into_iter()
                    .find(|c| &c.id == id)
                    .map(|c| c.filter)
            }) {
                filter.set(f);
            }
        }
        now
    });
    let poll = move || {
        if polling.get_untracked() || paused.get_untracked() {
            return;
        }
        let Some(id) = ed.capture_open.get_untracked() else {
            return;
        };
        polling.set(true);
        let from = next.get_untracked();
        leptos::task::spawn_local(async move {
            if let Ok(page) = capture_rows(id.clone(), from).await {
                if ed.capture_open.get_untracked().as_deref() == Some(id.as_str()) {
                    if let Some(last) = page.rows.last() {
                        next.set(last.no + 1);
                        rows.update(|r| {
                            r.extend(page.rows);
                            let extra = r.len().saturating_sub(SHOWN);
                            r.drain(..extra);
                        });
                    }
                    let info = page.info;
                    ed.captures.update(|c| {
                        if let Some(x) = c.iter_mut().find(|x| x.id == info.id) {
                            if *x != info {
                                *x = info;
                            }
                        }
                    });
                }
            }
            polling.set(false);
        });
    };
    #[cfg(feature = "hydrate")]
    {
        let tick = std::cell::Cell::new(0u32);
        if let Ok(h) = set_interval_with_handle(
            move || {
                tick.set(tick.get() + 1);
                poll();
                if tick.get().is_multiple_of(4) {
                    ed.refresh_captures();
                }
            },
            std::time::Duration::from_millis(500),
        ) {
            on_cleanup(move || h.clear());
        }
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = poll;
    let open_info = move || -> Option<CaptureInfo> {
        let id = ed.capture_open.get()?;
        ed.captures.get().into_iter().find(|c| c.id == id)
    };
    view! {
        <section class="capture-panel">
            <div class="capture-tabs">
                <strong>"Captures"</strong>
                <For
                    each=move || ed.captures.get()
                    key=|c| (c.id.clone(), c.running)
                    children=move |c| {
                        let id = c.id.clone();
                        let id2 = id.clone();
                        let label = format!(
                            "{}{}",
                            super::capture::target_of(&ed.topo.get_untracked(), &c.element)
                                .unwrap_or_default(),
                            if c.running { " ●" } else { "" },
                        );
                        view! {
                            <button
                                class="capture-tab"
                                data-capture=id.clone()
                                class:active=move || {
                                    ed.capture_open.get().as_deref() == Some(id2.as_str())
                                }
                                on:click=move |_| ed.capture_open.set(Some(id.clone()))
                            >
                                {label}
                            </button>
                        }
                    }
                />
                <button class="capture-close" on:click=move |_| ed.capture_open.set(None)>
                    "×"
                </button>
            </div>
            {move || {
                open_info()
                    .map(|c| {
                        let id = c.id.clone();
                        let element = c.element.clone();
                        let (id_stop, id_del) = (id.clone(), id.clone());
                        view! {
                            <div class="capture-bar" data-capture=id.clone()>
                                <span class="capture-state">
                                    {if c.running {
                                        format!("capturing · {} packets", c.counts.captured)
                                    } else {
                                        format!(
                                            "{} · {} packets, {} dropped",
                                            c.ended.map_or("stopped", |e| e.describe()),
                                            c.counts.captured,
                                            c.counts.dropped,
                                        )
                                    }}
                                </span>
                                <input
                                    class="capture-filter"
                                    placeholder="BPF filter, e.g. icmp or tcp port 179"
                                    prop:value=move || filter.get()
                                    on:input=move |ev| filter.set(event_target_value(&ev))
                                />
                                <button
                                    class="capture-restart"
                                    title="A new capture on the same link with this filter"
                                    on:click=move |_| {
                                        ed.start_capture(element.clone(), filter.get_untracked())
                                    }
                                >
                                    "Capture with filter"
                                </button>
                                <button
                                    class="capture-pause"
                                    on:click=move |_| paused.update(|p| *p = !*p)
                                >
                                    {move || if paused.get() { "Resume" } else { "Pause" }}
                                </button>
                                <button
                                    class="capture-stop"
                                    prop:disabled=!c.running
                                    on:click=move |_| {
                                        let id = id_stop.clone();
                                        leptos::task::spawn_local(async move {
                                            if let Err(e) = stop_capture(id).await {
                                                ed.error.set(Some(server_message(&e)));
                                            }
                                        });
                                    }
                                >
                                    "Stop"
                                </button>
                                <button class="capture-clear" on:click=move |_| rows.set(vec![])>
                                    "Clear"
                                </button>
                                <a
                                    class="capture-download"
                                    href=format!("/captures/{id}.pcap")
                                    download=format!("{id}.pcap")
                                >
                                    "Download pcap"
                                </a>
                                <button
                                    class="capture-delete"
                                    on:click=move |_| {
                                        let id = id_del.clone();
                                        leptos::task::spawn_local(async move {
                                            match delete_capture(id.clone()).await {
                                                Ok(()) => {
                                                    ed.captures.update(|c| c.retain(|x| x.id != id));
                                                    ed.capture_open.set(None);
                                                }
                                                Err(e) => ed.error.set(Some(server_message(&e))),
                                            }
                                        });
                                    }
                                >
                                    "Delete"
                                </button>
                                {c
                                    .error
                                    .clone()
                                    .map(|e| view! { <span class="field-error">{e}</span> })}
                            </div>
                        }
                    })
            }}
            <div class="capture-table-wrap">
                <table class="capture-table">
                    <thead>
                        <tr>
                            <th>"No."</th>
                            <th>"Time"</th>
                            <th>"Source"</th>
                            <th>"Destination"</th>
                            <th>"Protocol"</th>
                            <th>"Length"</th>
                            <th>"Info"</th>
                        </tr>
                    </thead>
                    <tbody>
                        <For
                            each=move || rows.get()
                            key=|r| r.no
                            children=move |r| {
                                let protocol = r.protocol.clone();
                                view! {
                                    <tr class="capture-row" data-protocol=protocol>
                                        <td>{r.no}</td>
                                        <td>{format!("{:.6}", r.time)}</td>
                                        <td>{r.source}</td>
                                        <td>{r.destination}</td>
                                        <td>{r.protocol}</td>
                                        <td>{r.length}</td>
                                        <td>{r.info}</td>
                                    </tr>
                                }
                            }
                        />
                    </tbody>
                </table>
            </div>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_or_a_bridge_is_a_capture_target_and_a_vm_is_not() {
        let mut t = topology::parse(topology::examples::ROUTER, topology::Format::Yaml).unwrap();
        assert_eq!(target_of(&t, "nic:h1:0").as_deref(), Some("h1:eth0"));
        assert_eq!(target_of(&t, "net:lan").as_deref(), Some("lan"));
        assert_eq!(target_of(&t, "vm:h1"), None);
        // With a management network, the VM's own first NIC is its eth1.
        t.mgmt = Some(topology::Mgmt {
            subnet: "172.20.20.0/24".into(),
            nat: false,
            ports: vec![],
        });
        assert_eq!(target_of(&t, "nic:h1:0").as_deref(), Some("h1:eth1"));
    }
}
