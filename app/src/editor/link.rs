//! A link's panel (a NIC selected on the canvas): the guest's link up or
//! down, the impairments of what the VM sends, and presets picked in one
//! click. Every change is one undoable edit, saved at once: on a running
//! lab the server applies it live, without restarting the VM.

use leptos::prelude::*;
use topology::{Impair, Topology};

use super::Ed;

/// One-click link profiles: (class, label, impairment).
pub(super) const PRESETS: [(&str, &str, Impair); 6] = [
    ("lan", "LAN", Impair::NONE),
    (
        "wan",
        "WAN 40 ms",
        Impair {
            delay_ms: 40,
            jitter_ms: 2,
            ..Impair::NONE
        },
    ),
    (
        "dsl",
        "DSL",
        Impair {
            delay_ms: 15,
            jitter_ms: 3,
            loss_pct: 0.1,
            rate_kbit: 16_000,
            ..Impair::NONE
        },
    ),
    (
        "3g",
        "3G",
        Impair {
            delay_ms: 100,
            jitter_ms: 20,
            loss_pct: 1.0,
            rate_kbit: 2_000,
            ..Impair::NONE
        },
    ),
    (
        "satellite",
        "Satellite 600 ms",
        Impair {
            delay_ms: 600,
            jitter_ms: 10,
            rate_kbit: 10_000,
            ..Impair::NONE
        },
    ),
    (
        "lossy",
        "Lossy 5%",
        Impair {
            loss_pct: 5.0,
            ..Impair::NONE
        },
    ),
];

/// The impairment fields: (field, label, unit).
const FIELDS: [(&str, &str, &str); 7] = [
    ("delay_ms", "Delay", "ms"),
    ("jitter_ms", "Jitter", "ms"),
    ("loss_pct", "Loss", "%"),
    ("rate_kbit", "Rate", "kbit/s"),
    ("corrupt_pct", "Corrupt", "%"),
    ("duplicate_pct", "Duplicate", "%"),
    ("reorder_pct", "Reorder", "%"),
];

fn get(i: &Impair, field: &str) -> String {
    match field {
        "delay_ms" => i.delay_ms.to_string(),
        "jitter_ms" => i.jitter_ms.to_string(),
        "loss_pct" => i.loss_pct.to_string(),
        "rate_kbit" => i.rate_kbit.to_string(),
        "corrupt_pct" => i.corrupt_pct.to_string(),
        "duplicate_pct" => i.duplicate_pct.to_string(),
        "reorder_pct" => i.reorder_pct.to_string(),
        _ => String::new(),
    }
}

/// `i` with `field` set from the text typed; the reason when it is no number.
pub(super) fn set(i: &mut Impair, field: &str, text: &str) -> Result<(), String> {
    let t = text.trim();
    let t = if t.is_empty() { "0" } else { t };
    let whole = || {
        t.parse::<u64>()
            .map_err(|_| format!("{field}: {text:?} is not a whole number"))
    };
    let real = || {
        t.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| format!("{field}: {text:?} is not a number"))
    };
    match field {
        "delay_ms" => {
            i.delay_ms = u32::try_from(whole()?).map_err(|_| format!("{field}: too large"))?
        }
        "jitter_ms" => {
            i.jitter_ms = u32::try_from(whole()?).map_err(|_| format!("{field}: too large"))?
        }
        "rate_kbit" => i.rate_kbit = whole()?,
        "loss_pct" => i.loss_pct = real()?,
        "corrupt_pct" => i.corrupt_pct = real()?,
        "duplicate_pct" => i.duplicate_pct = real()?,
        "reorder_pct" => i.reorder_pct = real()?,
        _ => return Err(format!("no field {field}")),
    }
    Ok(())
}

impl Ed {
    /// One edit of NIC `nic` of node `k`, saved at once (applied live by
    /// the server when the lab runs).
    fn edit_link(self, k: usize, nic: usize, f: impl FnOnce(&mut topology::Nic)) {
        self.edit(|t: &mut Topology| {
            if let Some(n) = t.nodes.get_mut(k).and_then(|n| n.nics.get_mut(nic)) {
                f(n);
            }
        });
        if self.dirty_untracked() && self.problems.get_untracked().is_empty() {
            self.save();
        }
    }
}

#[component]
pub(super) fn LinkPanel(ed: Ed, vm: String, nic: usize) -> impl IntoView {
    let t = ed.topo.get_untracked();
    let Some(k) = t.nodes.iter().position(|n| n.name == vm) else {
        return ().into_any();
    };
    let Some(network) = t.nodes[k].nics.get(nic).map(|n| n.network.clone()) else {
        return ().into_any();
    };
    let current = move || {
        ed.topo
            .get()
            .nodes
            .get(k)
            .and_then(|n| n.nics.get(nic).cloned())
    };
    let fields = FIELDS
        .iter()
        .map(|&(field, label, unit)| {
            let path = format!("nodes[{k}].nics[{nic}].impair.{field}");
            let problem = ed.problem(path.clone());
            let has_problem = ed.problem(path.clone());
            view! {
                <label class="field">
                    <span>{format!("{label} ({unit})")}</span>
                    <input
                        class=format!("impair-{field}")
                        data-path=path.clone()
                        inputmode="decimal"
                        class:invalid=move || has_problem().is_some()
                        prop:value=move || {
                            current().map(|n| get(&n.impair, field)).unwrap_or_default()
                        }
                        on:change=move |ev| {
                            let text = event_target_value(&ev);
                            let mut i = current().map(|n| n.impair).unwrap_or_default();
                            match set(&mut i, field, &text) {
                                Ok(()) => ed.edit_link(k, nic, |n| n.impair = i),
                                Err(e) => ed.error.set(Some(e)),
                            }
                        }
                    />
                    {move || problem().map(|m| view! { <span class="field-error">{m}</span> })}
                </label>
            }
        })
        .collect_view();
    let presets = PRESETS
        .iter()
        .map(|&(class, label, impair)| {
            view! {
                <button
                    class="preset"
                    data-preset=class
                    class:active=move || current().is_some_and(|n| n.impair == impair)
                    on:click=move |_| ed.edit_link(k, nic, |n| n.impair = impair)
                >
                    {label}
                </button>
            }
        })
        .collect_view();
    let running = {
        let vm = vm.clone();
        move || ed.states.get().get(&vm).is_some_and(|s| s.pid.is_some())
    };
    view! {
        <aside class="properties link-props" data-link=format!("{vm}:eth{nic}")>
            <h3>
                {format!(
                    "{vm} eth{} → {network}",
                    topology::mgmt::guest_nic_index(&ed.topo.get_untracked(), nic),
                )}
            </h3>
            <label class="field switch">
                <input
                    type="checkbox"
                    class="link-up"
                    prop:checked=move || current().is_some_and(|n| n.up)
                    on:change=move |ev| {
                        let up = event_target_checked(&ev);
                        ed.edit_link(k, nic, |n| n.up = up)
                    }
                />
                <span>"Link up (off: the guest loses its carrier, both directions cut)"</span>
            </label>
            <p class="muted">"What " {vm.clone()} " sends through this link:"</p>
            <div class="presets">{presets}</div>
            {fields}
            <p class="muted link-live">
                {move || {
                    if running() {
                        "Applied live, in place: the VM keeps running."
                    } else {
                        "Applied when the VM starts."
                    }
                }}
            </p>
        </aside>
    }
    .into_any()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_values_set_their_field_or_say_why_not() {
        let mut i = Impair::NONE;
        set(&mut i, "delay_ms", "40").unwrap();
        set(&mut i, "loss_pct", "0.5").unwrap();
        set(&mut i, "rate_kbit", "").unwrap();
        assert_eq!(
            i,
            Impair {
                delay_ms: 40,
                loss_pct: 0.5,
                ..Impair::NONE
            }
        );
        assert!(set(&mut i, "delay_ms", "4.5")
            .unwrap_err()
            .contains("whole number"));
        assert!(set(&mut i, "loss_pct", "lots")
            .unwrap_err()
            .contains("not a number"));
        assert!(set(&mut i, "loss_pct", "NaN").is_err());
    }

    #[test]
    fn every_preset_is_a_valid_impairment() {
        for (class, _, i) in PRESETS {
            assert!(
                topology::validate::impair_problems(&i).is_empty(),
                "{class}"
            );
        }
        assert_eq!(PRESETS[0].2, Impair::NONE, "LAN clears");
    }
}
