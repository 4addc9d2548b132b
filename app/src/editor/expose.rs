//! The host's opt-in to port forwards beyond loopback, as a switch in the
//! toolbar: shown only when the lab has such forwards, and naming what it
//! exposes. The opt-in is the host's (kept with the lab's state, never in
//! the lab file); `minivm up --expose` sets the same.

use leptos::prelude::*;

use super::Ed;
use crate::api::{get_expose, server_message, set_expose};

/// The lab's forwards that listen beyond loopback, as "ADDR:PORT → VM:PORT".
fn exposing(t: &topology::Topology) -> Vec<String> {
    t.mgmt
        .iter()
        .flat_map(|m| &m.ports)
        .filter_map(|p| topology::mgmt::parse_port(p).ok())
        .filter(|f| !f.local_only())
        .map(|f| {
            format!(
                "{}:{}/{} → {}:{}",
                f.host_addr,
                f.host_port,
                f.proto.as_str(),
                f.node,
                f.port
            )
        })
        .collect()
}

#[component]
pub fn ExposeSwitch(ed: Ed) -> impl IntoView {
    let on = RwSignal::new(None::<bool>);
    let lab = move || ed.topo.with(|t| t.name.clone());
    Effect::new(move |_| {
        let lab = lab();
        leptos::task::spawn_local(async move {
            match get_expose(lab).await {
                Ok(v) => on.set(Some(v)),
                Err(e) => ed.error.set(Some(server_message(&e))),
            }
        });
    });
    let toggle = move |ev: leptos::ev::Event| {
        let want = event_target_checked(&ev);
        let lab = lab();
        leptos::task::spawn_local(async move {
            match set_expose(lab, want).await {
                Ok(()) => {
                    on.set(Some(want));
                    ed.status.set(if want {
                        "port forwards beyond loopback: allowed from the next start".into()
                    } else {
                        "port forwards beyond loopback: refused from the next start".into()
                    });
                }
                Err(e) => ed.error.set(Some(server_message(&e))),
            }
        });
    };
    move || {
        let list = ed.topo.with(exposing);
        (!list.is_empty()).then(|| {
            let what = list.join(", ");
            view! {
                <label
                    class="expose-switch"
                    title=format!(
                        "Lets every machine that reaches these addresses of this host connect to the VMs: {what}",
                    )
                >
                    <input
                        type="checkbox"
                        class="expose"
                        prop:checked=move || on.get().unwrap_or(false)
                        prop:disabled=move || on.get().is_none()
                        on:change=toggle
                    />
                    {format!("Expose port forwards beyond this host ({what})")}
                </label>
            }
        })
    }
}
