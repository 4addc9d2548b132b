//! The properties panel: the selection's fields (a VM, a bridge, or with
//! nothing selected the lab's defaults and problems), each bound to the
//! topology with its validation error beside it, in `minivm validate`'s
//! words.

use leptos::prelude::*;
use topology::lifecycle::VmAction;
use topology::{Route, Topology};

use super::console::ExecBox;
use super::Ed;
use crate::api::list_images;
use crate::edit;
use crate::graph::{parse_id, Element};

#[component]
pub(super) fn Properties(ed: Ed) -> impl IntoView {
    let images = Resource::new(|| (), |_| list_images());
    move || {
        let sel = ed.selection.get();
        let t = ed.topo.get();
        match sel.as_slice() {
            [one] => match parse_id(one) {
                Some(Element::Vm(n)) => match t.nodes.iter().position(|v| v.name == n) {
                    Some(i) => view! { <VmProps ed i images /> }.into_any(),
                    None => ().into_any(),
                },
                Some(Element::Bridge(n)) => match t.networks.iter().position(|v| v.name == n) {
                    Some(i) => view! { <BridgeProps ed i /> }.into_any(),
                    None => ().into_any(),
                },
                Some(Element::Nic(vm, nic)) => {
                    view! { <super::link::LinkPanel ed vm nic /> }.into_any()
                }
                None => ().into_any(),
            },
            [] => view! { <LabProps ed /> }.into_any(),
            many => view! {
                <aside class="properties">
                    <h3>{format!("{} selected", many.len())}</h3>
                </aside>
            }
            .into_any(),
        }
    }
}

/// A text field bound to part of the topology; `set` makes one undoable edit.
fn field(
    ed: Ed,
    label: &'static str,
    class: &'static str,
    path: String,
    get: impl Fn(&Topology) -> String + Send + Sync + 'static,
    set: impl Fn(&mut Topology, String) + Send + Sync + Copy + 'static,
) -> impl IntoView {
    let problem = ed.problem(path.clone());
    let has_problem = ed.problem(path.clone());
    view! {
        <label class="field">
            <span>{label}</span>
            <input
                class=class
                data-path=path.clone()
                class:invalid=move || has_problem().is_some()
                prop:value=move || get(&ed.topo.get())
                on:change=move |ev| {
                    let v = event_target_value(&ev);
                    ed.edit(|t| set(t, v));
                }
            />
            {move || {
                problem()
                    .map(|m| {
                        view! {
                            <span class="field-error" data-path=path.clone()>
                                {m}
                            </span>
                        }
                    })
            }}
        </label>
    }
}

fn opt(v: String) -> Option<String> {
    let v = v.trim().to_string();
    (!v.is_empty()).then_some(v)
}

#[component]
fn VmProps(
    ed: Ed,
    i: usize,
    images: Resource<Result<Vec<String>, ServerFnError>>,
) -> impl IntoView {
    let t = ed.topo.get_untracked();
    let node = t.nodes[i].clone();
    let vm = node.name.clone();
    let p = move |f: &str| format!("nodes[{i}].{f}");
    let state = {
        let vm = vm.clone();
        move || {
            ed.states
                .get()
                .get(&vm)
                .map(|s| s.state)
                .unwrap_or_default()
                .to_string()
        }
    };
    let state2 = state.clone();
    let nets: Vec<String> = t.networks.iter().map(|n| n.name.clone()).collect();
    let (v1, v2, v3, v4, v5) = (vm.clone(), vm.clone(), vm.clone(), vm.clone(), vm.clone());
    let nics = node
        .nics
        .iter()
        .enumerate()
        .map(|(k, nic)| {
            let nets = nets.clone();
            let current = nic.network.clone();
            view! {
                <div class="nic" data-nic=k>
                    <strong>
                        {format!(
                            "eth{}",
                            topology::mgmt::guest_nic_index(&ed.topo.get_untracked(), k),
                        )}
                    </strong>
                    <select
                        class="nic-network"
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            ed.edit(|t| t.nodes[i].nics[k].network = v);
                        }
                    >
                        {nets
                            .into_iter()
                            .map(|n| {
                                let sel = n == current;
                                let label = n.clone();
                                view! {
                                    <option value=n selected=sel>
                                        {label}
                                    </option>
                                }
                            })
                            .collect_view()}
                    </select>
                    {field(
                        ed,
                        "address",
                        "nic-address",
                        format!("nodes[{i}].nics[{k}].address"),
                        move |t| {
                            t.nodes
                                .get(i)
                                .and_then(|n| n.nics.get(k))
                                .and_then(|n| n.address.clone())
                                .unwrap_or_default()
                        },
                        move |t, v| t.nodes[i].nics[k].address = opt(v),
                    )}
                    {field(
                        ed,
                        "MAC",
                        "nic-mac",
                        format!("nodes[{i}].nics[{k}].mac"),
                        move |t| {
                            t.nodes
                                .get(i)
                                .and_then(|n| n.nics.get(k))
                                .and_then(|n| n.mac.clone())
                                .unwrap_or_default()
                        },
                        move |t, v| t.nodes[i].nics[k].mac = opt(v),
                    )}
                    <button
                        class="remove-nic"
                        on:click=move |_| {
                            ed.edit(|t| {
                                t.nodes[i].nics.remove(k);
                            })
                        }
                    >
                        "Remove"
                    </button>
                </div>
            }
        })
        .collect_view();
    let routes = node
        .routes
        .iter()
        .enumerate()
        .map(|(k, _)| {
            view! {
                <div class="route">
                    {field(
                        ed,
                        "to",
                        "route-to",
                        format!("nodes[{i}].routes[{k}].to"),
                        move |t| {
                            t.nodes
                                .get(i)
                                .and_then(|n| n.routes.get(k))
                                .map(|r| r.to.clone())
                                .unwrap_or_default()
                        },
                        move |t, v| t.nodes[i].routes[k].to = v,
                    )}
                    {field(
                        ed,
                        "via",
                        "route-via",
                        format!("nodes[{i}].routes[{k}].via"),
                        move |t| {
                            t.nodes
                                .get(i)
                                .and_then(|n| n.routes.get(k))
                                .map(|r| r.via.clone())
                                .unwrap_or_default()
                        },
                        move |t, v| t.nodes[i].routes[k].via = v,
                    )}
                    <button
                        class="remove-route"
                        on:click=move |_| {
                            ed.edit(|t| {
                                t.nodes[i].routes.remove(k);
                            })
                        }
                    >
                        "Remove"
                    </button>
                </div>
            }
        })
        .collect_view();
    let current_image = t.node_image(&node).unwrap_or("").to_string();
    view! {
        <aside class="properties vm-props" data-vm=vm.clone()>
            <h3>
                "VM " {vm.clone()} " "
                <span class=move || format!("badge {}", state2())>{state}</span>
            </h3>
            <div class="buttons">
                <button
                    class="start-vm"
                    on:click=move |_| ed.action(VmAction::Start, vec![v1.clone()])
                >
                    "Start"
                </button>
                <button
                    class="stop-vm"
                    on:click=move |_| ed.action(VmAction::Stop, vec![v2.clone()])
                >
                    "Stop"
                </button>
                <button
                    class="restart-vm"
                    on:click=move |_| ed.action(VmAction::Restart, vec![v3.clone()])
                >
                    "Restart"
                </button>
                <button
                    class="suspend-vm"
                    title="Save its memory and stop: the next Start resumes it where it was"
                    on:click=move |_| ed.action(VmAction::Suspend, vec![v5.clone()])
                >
                    "Suspend"
                </button>
                <button class="console-vm" on:click=move |_| ed.console.set(Some(v4.clone()))>
                    "Console"
                </button>
            </div>
            {field(
                ed,
                "name",
                "vm-name",
                p("name"),
                move |t| t.nodes.get(i).map(|n| n.name.clone()).unwrap_or_default(),
                move |t, v| {
                    t.nodes[i].name = v.trim().to_string();
                },
            )}
            <label class="field">
                <span>"image"</span>
                <select
                    class="vm-image"
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        ed.edit(|t| t.nodes[i].image = opt(v));
                    }
                >
                    <option value="">"(lab default)"</option>
                    <Suspense>
                        {move || {
                            images
                                .get()
                                .and_then(|r| r.ok())
                                .map(|list| {
                                    let cur = current_image.clone();
                                    let mut list = list;
                                    if !cur.is_empty() && !list.contains(&cur) {
                                        list.push(cur.clone());
                                    }
                                    list.into_iter()
                                        .map(|n| {
                                            let sel = ed
                                                .topo
                                                .get_untracked()
                                                .nodes
                                                .get(i)
                                                .and_then(|x| x.image.clone()) == Some(n.clone());
                                            let label = n.clone();
                                            view! {
                                                <option value=n selected=sel>
                                                    {label}
                                                </option>
                                            }
                                        })
                                        .collect_view()
                                })
                        }}
                    </Suspense>
                </select>
                {move || {
                    ed.problem(p("image"))().map(|m| view! { <span class="field-error">{m}</span> })
                }}
            </label>
            {field(
                ed,
                "CPUs",
                "vm-cpus",
                p("cpus"),
                move |t| {
                    t.nodes.get(i).and_then(|n| n.cpus).map(|c| c.to_string()).unwrap_or_default()
                },
                move |t, v| t.nodes[i].cpus = opt(v).map(|v| v.parse().unwrap_or(0)),
            )}
            {field(
                ed,
                "memory (MiB)",
                "vm-memory",
                p("memory_mib"),
                move |t| {
                    t.nodes
                        .get(i)
                        .and_then(|n| n.memory_mib)
                        .map(|c| c.to_string())
                        .unwrap_or_default()
                },
                move |t, v| t.nodes[i].memory_mib = opt(v).map(|v| v.parse().unwrap_or(0)),
            )}
            <label class="field checkbox">
                <input
                    type="checkbox"
                    class="vm-forward"
                    prop:checked=move || ed.topo.get().nodes.get(i).is_some_and(|n| n.ip_forward)
                    on:change=move |ev| {
                        let on = event_target_checked(&ev);
                        ed.edit(|t| t.nodes[i].ip_forward = on);
                    }
                />
                <span>"IP forwarding (router)"</span>
            </label>
            <label class="field">
                <span>"restart policy"</span>
                <select
                    class="vm-restart"
                    prop:value=move || restart_name(
                        ed.topo.get().nodes.get(i).and_then(|n| n.restart),
                    )
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        ed.edit(|t| t.nodes[i].restart = restart_policy(&v));
                    }
                >
                    <option value="">"(lab default)"</option>
                    <option value="no">"no: a crash stays crashed"</option>
                    <option value="on-failure">"on-failure: restart it, with backoff"</option>
                </select>
            </label>
            <h4>"NICs"</h4>
            {nics}
            <h4>"Routes"</h4>
            {routes}
            <button
                class="add-route"
                on:click=move |_| {
                    ed.edit(|t| {
                        t.nodes[i]
                            .routes
                            .push(Route {
                                to: "0.0.0.0/0".into(),
                                via: String::new(),
                            })
                    })
                }
            >
                "Add route"
            </button>
            <super::setup::NodeSetup ed i />
            <super::nodetpl::SaveNodeTemplate ed i />
            <ExecBox lab=t.name.clone() vm=vm.clone() />
        </aside>
    }
}

#[component]
fn BridgeProps(ed: Ed, i: usize) -> impl IntoView {
    let name = ed.topo.get_untracked().networks[i].name.clone();
    view! {
        <aside class="properties bridge-props" data-bridge=name.clone()>
            <h3>"Bridge " {name.clone()}</h3>
            {field(
                ed,
                "name",
                "bridge-name",
                format!("networks[{i}].name"),
                move |t| t.networks.get(i).map(|n| n.name.clone()).unwrap_or_default(),
                move |t, v| {
                    let old = t.networks[i].name.clone();
                    edit::rename_network(t, &old, v.trim());
                },
            )}
            {field(
                ed,
                "subnet",
                "bridge-subnet",
                format!("networks[{i}].subnet"),
                move |t| t.networks.get(i).and_then(|n| n.subnet.clone()).unwrap_or_default(),
                move |t, v| t.networks[i].subnet = opt(v),
            )}
        </aside>
    }
}

/// A restart policy as the topology file spells it ("" for unset).
fn restart_name(p: Option<topology::RestartPolicy>) -> &'static str {
    match p {
        None => "",
        Some(topology::RestartPolicy::No) => "no",
        Some(topology::RestartPolicy::OnFailure) => "on-failure",
    }
}

fn restart_policy(name: &str) -> Option<topology::RestartPolicy> {
    match name {
        "no" => Some(topology::RestartPolicy::No),
        "on-failure" => Some(topology::RestartPolicy::OnFailure),
        _ => None,
    }
}

#[component]
fn LabProps(ed: Ed) -> impl IntoView {
    view! {
        <aside class="properties lab-props">
            <h3>"Lab defaults"</h3>
            {field(
                ed,
                "image",
                "default-image",
                "defaults.image".into(),
                |t| t.defaults.as_ref().and_then(|d| d.image.clone()).unwrap_or_default(),
                |t, v| t.defaults.get_or_insert_with(Default::default).image = opt(v),
            )}
            {field(
                ed,
                "CPUs",
                "default-cpus",
                "defaults.cpus".into(),
                |t| {
                    t.defaults
                        .as_ref()
                        .and_then(|d| d.cpus)
                        .map(|c| c.to_string())
                        .unwrap_or_default()
                },
                |t, v| {
                    t.defaults.get_or_insert_with(Default::default).cpus = opt(v)
                        .map(|v| v.parse().unwrap_or(0));
                },
            )}
            {field(
                ed,
                "memory (MiB)",
                "default-memory",
                "defaults.memory_mib".into(),
                |t| {
                    t.defaults
                        .as_ref()
                        .and_then(|d| d.memory_mib)
                        .map(|c| c.to_string())
                        .unwrap_or_default()
                },
                |t, v| {
                    t.defaults.get_or_insert_with(Default::default).memory_mib = opt(v)
                        .map(|v| v.parse().unwrap_or(0));
                },
            )}
            <h4>"Problems"</h4>
            <ul class="problems">
                {move || {
                    ed.problems
                        .get()
                        .into_iter()
                        .map(|p| view! { <li data-path=p.path.clone()>{p.to_string()}</li> })
                        .collect_view()
                }}
            </ul>
        </aside>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policy_names_are_the_file_s() {
        for p in [
            None,
            Some(topology::RestartPolicy::No),
            Some(topology::RestartPolicy::OnFailure),
        ] {
            assert_eq!(restart_policy(restart_name(p)), p);
            if let Some(p) = p {
                assert_eq!(
                    serde_json::to_value(p).unwrap(),
                    serde_json::json!(restart_name(Some(p)))
                );
            }
        }
    }
}
