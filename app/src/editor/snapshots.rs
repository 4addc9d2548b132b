//! The Snapshots panel: take a snapshot of the lab (every VM's disk and
//! memory at one moment), list them with size and time, restore one (the
//! VMs that were running resume where they were), delete one.

use leptos::prelude::*;

use super::Ed;
use crate::api::{
    delete_snapshot, list_snapshots, restore_snapshot, save_snapshot, server_message, SnapshotRow,
};

/// `YYYY-MM-DD HH:MM` (UTC) of seconds since the epoch.
fn when(secs: u64) -> String {
    let mut t = topology::time::utc(secs);
    t.truncate(16);
    t
}

#[component]
pub(super) fn SnapshotsPanel(ed: Ed) -> impl IntoView {
    let lab = move || ed.topo.get_untracked().name;
    let version = RwSignal::new(0u32);
    let rows: RwSignal<Vec<SnapshotRow>> = RwSignal::new(vec![]);
    let busy = RwSignal::new(None::<String>);
    let name = RwSignal::new(String::new());
    Effect::new(move |_| {
        version.get();
        let lab = lab();
        leptos::task::spawn_local(async move {
            match list_snapshots(lab).await {
                Ok(r) => rows.set(r),
                Err(e) => ed.error.set(Some(server_message(&e))),
            }
        });
    });
    let run = move |what: &'static str, snap: String| {
        let lab = lab();
        busy.set(Some(format!("{what} {snap}…")));
        leptos::task::spawn_local(async move {
            let r = match what {
                "Saving" => save_snapshot(lab, snap).await,
                "Restoring" => restore_snapshot(lab, snap).await,
                _ => delete_snapshot(lab, snap).await,
            };
            busy.set(None);
            if let Err(e) = r {
                ed.error.set(Some(server_message(&e)));
            }
            version.update(|v| *v += 1);
        });
    };
    view! {
        <div class="snapshots-panel">
            <div class="snapshots-bar">
                <strong>"Snapshots"</strong>
                <input
                    class="snapshot-name"
                    placeholder="name, e.g. before-change"
                    prop:value=move || name.get()
                    on:input=move |ev| name.set(event_target_value(&ev))
                />
                <button
                    class="take-snapshot"
                    prop:disabled=move || busy.get().is_some() || name.get().trim().is_empty()
                    on:click=move |_| run("Saving", name.get_untracked().trim().to_string())
                >
                    "Take snapshot"
                </button>
                <span class="snapshot-busy">{move || busy.get().unwrap_or_default()}</span>
                <button class="snapshots-close" on:click=move |_| ed.snapshots_open.set(false)>
                    "×"
                </button>
            </div>
            <table class="snapshots">
                <thead>
                    <tr>
                        <th>"name"</th>
                        <th>"taken (UTC)"</th>
                        <th>"size"</th>
                        <th>"VMs"</th>
                        <th></th>
                    </tr>
                </thead>
                <tbody>
                    <For
                        each=move || rows.get()
                        key=|r| (r.name.clone(), r.created_at)
                        children=move |r| {
                            let (n1, n2) = (r.name.clone(), r.name.clone());
                            view! {
                                <tr class="snapshot-row" data-snapshot=r.name.clone()>
                                    <td>{r.name.clone()}</td>
                                    <td>{when(r.created_at)}</td>
                                    <td>{format!("{:.1} MB", r.bytes as f64 / 1e6)}</td>
                                    <td>{format!("{} ({} running)", r.vms, r.running)}</td>
                                    <td>
                                        <button
                                            class="restore-snapshot"
                                            prop:disabled=move || busy.get().is_some()
                                            on:click=move |_| run("Restoring", n1.clone())
                                        >
                                            "Restore"
                                        </button>
                                        <button
                                            class="delete-snapshot"
                                            prop:disabled=move || busy.get().is_some()
                                            on:click=move |_| run("Deleting", n2.clone())
                                        >
                                            "Delete"
                                        </button>
                                    </td>
                                </tr>
                            }
                        }
                    />
                </tbody>
            </table>
        </div>
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_in_utc() {
        assert_eq!(super::when(0), "1970-01-01 00:00");
        assert_eq!(super::when(1_796_086_561), "2026-12-01 00:56");
    }
}
