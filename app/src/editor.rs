//! The lab editor: canvas (cytoscape through js/graph.js), palette,
//! properties panel with validation beside each field, undo/redo, save
//! with the lab's revision, export, start/stop, and live VM states from the
//! event stream.

use std::collections::BTreeMap;

use leptos::prelude::*;
use topology::events::{Event, EventKind};
use topology::lifecycle::{VmState, VmStatus};
use topology::{Problem, Route, Topology};

use crate::api::{
    check_lab, exec_vm, get_lab, lab_action, list_images, save_lab, CheckCell, LabView,
};
use crate::edit;
use crate::graph::{self, parse_id, Element};
use crate::labs::server_message;

type States = BTreeMap<String, VmStatus>;

/// Everything the editor's parts share. Signals are Copy, so is this.
#[derive(Clone, Copy)]
struct Ed {
    topo: RwSignal<Topology>,
    saved: RwSignal<Topology>,
    revision: RwSignal<String>,
    undo: RwSignal<Vec<Topology>>,
    redo: RwSignal<Vec<Topology>>,
    selection: RwSignal<Vec<String>>,
    states: RwSignal<States>,
    status: RwSignal<String>,
    error: RwSignal<Option<String>>,
    stale: RwSignal<bool>,
    problems: Memo<Vec<Problem>>,
    /// The VM whose context menu is open, and where (canvas pixels).
    menu: RwSignal<Option<(String, f64, f64)>>,
    /// The VM whose console is open below the canvas.
    console: RwSignal<Option<String>>,
    /// The last connectivity check (None: none yet; Some(empty): running).
    check: RwSignal<Option<Vec<CheckCell>>>,
    checking: RwSignal<bool>,
}

impl Ed {
    /// One undoable edit.
    fn edit(self, f: impl FnOnce(&mut Topology)) {
        let cur = self.topo.get_untracked();
        let mut next = cur.clone();
        f(&mut next);
        if next != cur {
            self.undo.update(|u| u.push(cur));
            self.redo.set(vec![]);
            self.topo.set(next);
        }
    }

    fn undo(self) {
        let mut u = self.undo.get_untracked();
        if let Some(prev) = u.pop() {
            self.redo.update(|r| r.push(self.topo.get_untracked()));
            self.undo.set(u);
            self.topo.set(prev);
        }
    }

    fn redo(self) {
        let mut r = self.redo.get_untracked();
        if let Some(next) = r.pop() {
            self.undo.update(|u| u.push(self.topo.get_untracked()));
            self.redo.set(r);
            self.topo.set(next);
        }
    }

    fn dirty(self) -> bool {
        self.topo.get() != self.saved.get()
    }

    fn problem(self, path: String) -> impl Fn() -> Option<String> {
        move || {
            self.problems
                .get()
                .into_iter()
                .find(|p| p.path == path)
                .map(|p| p.message)
        }
    }

    fn save(self, on_saved: Callback<()>) {
        let t = self.topo.get_untracked();
        let rev = self.revision.get_untracked();
        leptos::task::spawn_local(async move {
            match save_lab(topology::to_json(&t), rev).await {
                Ok(rev) => {
                    self.revision.set(rev);
                    self.saved.set(t);
                    self.error.set(None);
                    self.status.set("saved".into());
                    on_saved.run(());
                }
                Err(e) => self.error.set(Some(server_message(&e))),
            }
        });
    }

    /// Reloads the lab from the server (dropping unsaved edits).
    fn reload(self) {
        let name = self.topo.get_untracked().name;
        leptos::task::spawn_local(async move {
            match get_lab(name).await {
                Ok(v) => {
                    self.topo.set(v.topology.clone());
                    self.saved.set(v.topology);
                    self.revision.set(v.revision);
                    self.states.set(v.states);
                    self.stale.set(false);
                    self.error.set(None);
                }
                Err(e) => self.error.set(Some(server_message(&e))),
            }
        });
    }

    fn action(self, action: &'static str, vms: Vec<String>) {
        let lab = self.topo.get_untracked().name;
        if self.dirty_untracked() {
            self.error
                .set(Some("save the lab first: VMs run what is saved".into()));
            return;
        }
        leptos::task::spawn_local(async move {
            if let Err(e) = lab_action(lab, action.into(), vms).await {
                self.error.set(Some(server_message(&e)));
            }
        });
    }

    fn run_check(self) {
        let lab = self.topo.get_untracked().name;
        self.checking.set(true);
        self.status.set("checking connectivity…".into());
        leptos::task::spawn_local(async move {
            match check_lab(lab).await {
                Ok(cells) => {
                    let failed = cells.iter().filter(|c| !c.ok).count();
                    self.status.set(format!(
                        "connectivity: {} pair(s), {failed} failed",
                        cells.len()
                    ));
                    self.check.set(Some(cells));
                }
                Err(e) => self.error.set(Some(server_message(&e))),
            }
            self.checking.set(false);
        });
    }

    fn dirty_untracked(self) -> bool {
        self.topo.get_untracked() != self.saved.get_untracked()
    }

    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn on_event(self, e: Event) {
        let lab = self.topo.get_untracked().name;
        match e.kind {
            EventKind::VmState {
                lab: l,
                vm,
                state,
                pid,
                tail,
            } if l == lab => {
                if state == VmState::Crashed && !tail.is_empty() {
                    self.error.set(Some(format!(
                        "{vm} crashed. Its last console lines:\n{}",
                        tail.join("\n")
                    )));
                }
                self.states.update(|s| {
                    s.insert(vm, VmStatus { state, pid });
                });
            }
            EventKind::LabChanged { lab: l, revision } if l == lab => {
                // Our own save, seen before its answer: what we hold is it.
                let mine =
                    topology::revision_of(topology::to_json(&self.topo.get_untracked()).as_bytes());
                if revision.as_deref() == Some(mine.as_str()) {
                    self.revision.set(mine);
                    self.saved.set(self.topo.get_untracked());
                    self.stale.set(false);
                } else if revision.as_deref() != Some(self.revision.get_untracked().as_str()) {
                    if revision.is_none() {
                        self.error
                            .set(Some("this lab was deleted elsewhere".into()));
                    } else if self.dirty_untracked() {
                        self.stale.set(true);
                    } else {
                        self.reload();
                    }
                }
            }
            EventKind::Activity { lab: l, message } if l == lab => self.status.set(message),
            EventKind::Error { lab: l, message } if l == lab => self.error.set(Some(message)),
            EventKind::Resync => self.reload(),
            _ => {}
        }
    }

    /// What the canvas reports the user did.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    fn on_canvas(self, kind: &str, payload: &str) {
        let v: serde_json::Value = serde_json::from_str(payload).unwrap_or_default();
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        match kind {
            "drop" => {
                let (x, y) = (f("x"), f("y"));
                let mut id = String::new();
                self.edit(|t| {
                    id = if v["kind"] == "vm" {
                        graph::vm_id(&edit::add_vm(t, x, y))
                    } else {
                        graph::bridge_id(&edit::add_bridge(t, x, y))
                    }
                });
                self.selection.set(vec![id]);
            }
            "move" => {
                self.edit(|t| edit::move_to(t, v["id"].as_str().unwrap_or(""), f("x"), f("y")))
            }
            "link" => {
                let (a, b) = (
                    v["source"].as_str().unwrap_or(""),
                    v["target"].as_str().unwrap_or(""),
                );
                let mut result = Ok(());
                self.edit(|t| result = edit::link(t, a, b));
                if let Err(e) = result {
                    self.error.set(Some(e));
                }
            }
            "select" => {
                let ids: Vec<String> = serde_json::from_value(v).unwrap_or_default();
                if ids != self.selection.get_untracked() {
                    self.selection.set(ids);
                }
            }
            "delete" => {
                let ids: Vec<String> = serde_json::from_value(v).unwrap_or_default();
                self.edit(|t| edit::delete(t, &ids));
                self.selection.set(vec![]);
            }
            "context" => self.menu.set(
                match (
                    v["id"].as_str().and_then(parse_id),
                    v["x"].as_f64(),
                    v["y"].as_f64(),
                ) {
                    (Some(Element::Vm(vm)), Some(x), Some(y)) => Some((vm, x, y)),
                    _ => None,
                },
            ),
            "undo" => self.undo(),
            "redo" => self.redo(),
            _ => {}
        }
    }
}

#[component]
pub fn Editor(view: LabView, on_saved: Callback<()>) -> impl IntoView {
    let topo = RwSignal::new(view.topology.clone());
    let problems = Memo::new(move |_| topology::validate(&topo.get()));
    let ed = Ed {
        topo,
        saved: RwSignal::new(view.topology.clone()),
        revision: RwSignal::new(view.revision.clone()),
        undo: RwSignal::new(vec![]),
        redo: RwSignal::new(vec![]),
        selection: RwSignal::new(vec![]),
        states: RwSignal::new(view.states.clone()),
        status: RwSignal::new(String::from("ready")),
        error: RwSignal::new(None),
        stale: RwSignal::new(false),
        problems,
        menu: RwSignal::new(None),
        console: RwSignal::new(None),
        check: RwSignal::new(None),
        checking: RwSignal::new(false),
    };
    let draw = RwSignal::new(false);
    let fit = RwSignal::new(0u32);
    let connection = RwSignal::new(String::from("connecting"));
    let node_ref = NodeRef::<leptos::html::Div>::new();
    let name = view.topology.name.clone();

    #[cfg(feature = "hydrate")]
    {
        use send_wrapper::SendWrapper;
        use wasm_bindgen::prelude::*;
        let editor = StoredValue::new_local(None::<SendWrapper<graph::js::Editor>>);
        let seq = view.seq;
        Effect::new(move |_| {
            let Some(el) = node_ref.get() else { return };
            if editor.with_value(|e| e.is_some()) {
                return;
            }
            // JS may still call back after this editor is gone (a timer, a
            // last websocket message): those calls are dropped.
            let alive = std::rc::Rc::new(std::cell::Cell::new(true));
            let a1 = alive.clone();
            let cb =
                Closure::<dyn Fn(String, String)>::new(move |kind: String, payload: String| {
                    if a1.get() {
                        ed.on_canvas(&kind, &payload)
                    }
                });
            let e = graph::js::Editor::new(
                &el,
                &ed.topo.get_untracked().name,
                cb.as_ref().unchecked_ref(),
            );
            cb.forget();
            editor.set_value(Some(SendWrapper::new(e)));
            let a2 = alive.clone();
            let on_msg = Closure::<dyn Fn(String)>::new(move |m: String| {
                if !a2.get() {
                    return;
                }
                if let Ok(e) = serde_json::from_str::<Event>(&m) {
                    ed.on_event(e);
                }
            });
            let a3 = alive.clone();
            let on_status = Closure::<dyn Fn(String)>::new(move |s: String| {
                if a3.get() {
                    connection.set(s);
                }
            });
            let events = graph::js::Events::new(
                seq as f64,
                on_msg.as_ref().unchecked_ref(),
                on_status.as_ref().unchecked_ref(),
            );
            on_msg.forget();
            on_status.forget();
            let events = SendWrapper::new(events);
            let editor_for_cleanup = editor;
            let alive = SendWrapper::new(alive);
            on_cleanup(move || {
                alive.set(false);
                events.close();
                editor_for_cleanup.with_value(|e| {
                    if let Some(e) = e {
                        e.destroy();
                    }
                });
            });
        });
        Effect::new(move |_| {
            let els = graph::elements(&ed.topo.get()).to_string();
            editor.with_value(|e| {
                if let Some(e) = e {
                    e.set_elements(&els)
                }
            });
        });
        Effect::new(move |_| {
            let s: BTreeMap<String, VmState> = ed
                .states
                .get()
                .into_iter()
                .map(|(k, s)| (k, s.state))
                .collect();
            let json = serde_json::to_string(&s).unwrap_or_default();
            // Elements first (a new VM), then its state.
            let _ = ed.topo.get();
            editor.with_value(|e| {
                if let Some(e) = e {
                    e.set_states(&json)
                }
            });
        });
        Effect::new(move |_| {
            let ids = ed.selection.get();
            editor.with_value(|e| {
                if let Some(e) = e {
                    e.select(ids)
                }
            });
        });
        Effect::new(move |_| {
            let (failing, passing) =
                check_edges(&ed.topo.get(), ed.check.get().as_deref().unwrap_or(&[]));
            let (f, p) = (
                serde_json::to_string(&failing).unwrap_or_default(),
                serde_json::to_string(&passing).unwrap_or_default(),
            );
            editor.with_value(|e| {
                if let Some(e) = e {
                    e.set_check(&f, &p)
                }
            });
        });
        Effect::new(move |prev: Option<u32>| {
            let n = fit.get();
            if prev.is_some() {
                editor.with_value(|e| {
                    if let Some(e) = e {
                        e.fit()
                    }
                });
            }
            n
        });
        Effect::new(move |_| {
            let on = draw.get();
            editor.with_value(|e| {
                if let Some(e) = e {
                    e.set_draw_mode(on)
                }
            });
        });
    }

    let export = move |_| {
        let t = ed.topo.get_untracked();
        #[cfg(feature = "hydrate")]
        graph::js::download_text(&format!("{}.json", t.name), &topology::to_json(&t));
        #[cfg(not(feature = "hydrate"))]
        let _ = t;
    };
    let selected_vms = move || -> Vec<String> {
        ed.selection
            .get_untracked()
            .iter()
            .filter_map(|id| match parse_id(id) {
                Some(Element::Vm(n)) => Some(n),
                _ => None,
            })
            .collect()
    };

    view! {
        <div class="editor" data-lab=name.clone()>
            <div class="toolbar">
                <strong class="lab-title">{name.clone()}</strong>
                <button class="save" prop:disabled=move || !ed.dirty() on:click=move |_| ed.save(on_saved)>
                    {move || if ed.dirty() { "Save*" } else { "Saved" }}
                </button>
                <button class="undo" title="Ctrl+Z" prop:disabled=move || ed.undo.get().is_empty() on:click=move |_| ed.undo()>"Undo"</button>
                <button class="redo" title="Ctrl+Shift+Z" prop:disabled=move || ed.redo.get().is_empty() on:click=move |_| ed.redo()>"Redo"</button>
                <button class="draw-links" class:active=move || draw.get() on:click=move |_| draw.update(|d| *d = !*d)
                    title="Drag from a VM to a bridge to link them">
                    {move || if draw.get() { "Drawing links" } else { "Draw links" }}
                </button>
                <button class="fit" title="Zoom to show the whole lab" on:click=move |_| fit.update(|n| *n += 1)>"Fit"</button>
                <button class="export" on:click=export>"Export JSON"</button>
                <button class="check-lab" prop:disabled=move || ed.checking.get() on:click=move |_| ed.run_check()>
                    {move || if ed.checking.get() { "Checking…" } else { "Check connectivity" }}
                </button>
                <span class="sep"></span>
                <button class="start-lab" on:click=move |_| ed.action("start", vec![])>"Start lab"</button>
                <button class="stop-lab" on:click=move |_| ed.action("stop", vec![])>"Stop lab"</button>
                <button class="start-selected" on:click=move |_| ed.action("start", selected_vms())>"Start selected"</button>
                <button class="stop-selected" on:click=move |_| ed.action("stop", selected_vms())>"Stop selected"</button>
            </div>
            {move || ed.stale.get().then(|| view! {
                <div class="banner stale">"This lab was changed elsewhere. "
                    <button class="reload" on:click=move |_| ed.reload()>"Reload"</button>
                    " (your unsaved edits would be lost; saving now is refused)"</div>
            })}
            {move || ed.error.get().map(|e| view! {
                <div class="banner error"><span class="error-text">{e}</span>
                    <button on:click=move |_| ed.error.set(None)>"×"</button></div>
            })}
            <div class="workspace">
                <div class="palette">
                    <div class="palette-item vm" draggable="true" data-palette="vm">"VM"</div>
                    <div class="palette-item bridge" draggable="true" data-palette="bridge">"Bridge"</div>
                    <p class="muted">"Drag onto the canvas. Delete removes the selection."</p>
                </div>
                <div class="canvas-wrap">
                    <div class="canvas" node_ref=node_ref data-lab=name.clone() tabindex="0"></div>
                    {move || ed.menu.get().map(|(vm, x, y)| {
                        let item = move |label: &'static str, action: &'static str, vm: String| view! {
                            <button class=format!("menu-{action}") on:click=move |_| {
                                ed.menu.set(None);
                                if action == "console" {
                                    ed.console.set(Some(vm.clone()));
                                } else if action == "delete" {
                                    ed.edit(|t| edit::delete(t, &[graph::vm_id(&vm)]));
                                } else {
                                    ed.action(action, vec![vm.clone()]);
                                }
                            }>{label}</button>
                        };
                        view! {
                            <div class="context-menu" data-vm=vm.clone() style=format!("left: {x}px; top: {y}px")>
                                <strong>{vm.clone()}</strong>
                                {item("Start", "start", vm.clone())}
                                {item("Stop", "stop", vm.clone())}
                                {item("Restart", "restart", vm.clone())}
                                {item("Console", "console", vm.clone())}
                                {item("Delete", "delete", vm.clone())}
                            </div>
                        }
                    })}
                </div>
                <Properties ed/>
            </div>
            {move || ed.check.get().map(|cells| view! { <Matrix ed cells/> })}
            {let lab = name.clone(); move || ed.console.get().map(|vm| view! { <ConsolePanel ed lab=lab.clone() vm/> })}
            <div class="statusbar">
                <span class="status-text">{move || ed.status.get()}</span>
                <span class="connection">{move || format!("events: {}", connection.get())}</span>
                <span class="problems-count">{move || match ed.problems.get().len() {
                    0 => "valid".to_string(),
                    n => format!("{n} problem(s)"),
                }}</span>
            </div>
        </div>
    }
}

#[component]
fn Properties(ed: Ed) -> impl IntoView {
    let images = Resource::new(|| (), |_| list_images());
    move || {
        let sel = ed.selection.get();
        let t = ed.topo.get();
        match sel.as_slice() {
            [one] => match parse_id(one) {
                Some(Element::Vm(n)) => match t.nodes.iter().position(|v| v.name == n) {
                    Some(i) => view! { <VmProps ed i images/> }.into_any(),
                    None => ().into_any(),
                },
                Some(Element::Bridge(n)) => match t.networks.iter().position(|v| v.name == n) {
                    Some(i) => view! { <BridgeProps ed i/> }.into_any(),
                    None => ().into_any(),
                },
                Some(Element::Nic(n, i)) => view! {
                    <aside class="properties"><h3>{format!("{n} eth{i}")}</h3><p class="muted">"Select the VM to edit its NICs."</p></aside>
                }.into_any(),
                None => ().into_any(),
            },
            [] => view! { <LabProps ed/> }.into_any(),
            many => view! { <aside class="properties"><h3>{format!("{} selected", many.len())}</h3></aside> }.into_any(),
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
            <input class=class data-path=path.clone() class:invalid=move || has_problem().is_some()
                prop:value=move || get(&ed.topo.get())
                on:change=move |ev| { let v = event_target_value(&ev); ed.edit(|t| set(t, v)); }/>
            {move || problem().map(|m| view! { <span class="field-error" data-path=path.clone()>{m}</span> })}
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
    let (v1, v2, v3, v4) = (vm.clone(), vm.clone(), vm.clone(), vm.clone());
    let nics = node.nics.iter().enumerate().map(|(k, nic)| {
        let nets = nets.clone();
        let current = nic.network.clone();
        view! {
            <div class="nic" data-nic=k>
                <strong>{format!("eth{k}")}</strong>
                <select class="nic-network" on:change=move |ev| { let v = event_target_value(&ev); ed.edit(|t| t.nodes[i].nics[k].network = v); }>
                    {nets.into_iter().map(|n| { let sel = n == current; let label = n.clone(); view! { <option value=n selected=sel>{label}</option> } }).collect_view()}
                </select>
                {field(ed, "address", "nic-address", format!("nodes[{i}].nics[{k}].address"),
                    move |t| t.nodes.get(i).and_then(|n| n.nics.get(k)).and_then(|n| n.address.clone()).unwrap_or_default(),
                    move |t, v| t.nodes[i].nics[k].address = opt(v))}
                {field(ed, "MAC", "nic-mac", format!("nodes[{i}].nics[{k}].mac"),
                    move |t| t.nodes.get(i).and_then(|n| n.nics.get(k)).and_then(|n| n.mac.clone()).unwrap_or_default(),
                    move |t, v| t.nodes[i].nics[k].mac = opt(v))}
                <button class="remove-nic" on:click=move |_| ed.edit(|t| { t.nodes[i].nics.remove(k); })>"Remove"</button>
            </div>
        }
    }).collect_view();
    let routes = node.routes.iter().enumerate().map(|(k, _)| view! {
        <div class="route">
            {field(ed, "to", "route-to", format!("nodes[{i}].routes[{k}].to"),
                move |t| t.nodes.get(i).and_then(|n| n.routes.get(k)).map(|r| r.to.clone()).unwrap_or_default(),
                move |t, v| t.nodes[i].routes[k].to = v)}
            {field(ed, "via", "route-via", format!("nodes[{i}].routes[{k}].via"),
                move |t| t.nodes.get(i).and_then(|n| n.routes.get(k)).map(|r| r.via.clone()).unwrap_or_default(),
                move |t, v| t.nodes[i].routes[k].via = v)}
            <button class="remove-route" on:click=move |_| ed.edit(|t| { t.nodes[i].routes.remove(k); })>"Remove"</button>
        </div>
    }).collect_view();
    let current_image = t.node_image(&node).unwrap_or("").to_string();
    view! {
        <aside class="properties vm-props" data-vm=vm.clone()>
            <h3>"VM " {vm.clone()} " " <span class=move || format!("badge {}", state2())>{state}</span></h3>
            <div class="buttons">
                <button class="start-vm" on:click=move |_| ed.action("start", vec![v1.clone()])>"Start"</button>
                <button class="stop-vm" on:click=move |_| ed.action("stop", vec![v2.clone()])>"Stop"</button>
                <button class="restart-vm" on:click=move |_| ed.action("restart", vec![v3.clone()])>"Restart"</button>
                <button class="console-vm" on:click=move |_| ed.console.set(Some(v4.clone()))>"Console"</button>
            </div>
            {field(ed, "name", "vm-name", p("name"), move |t| t.nodes.get(i).map(|n| n.name.clone()).unwrap_or_default(),
                move |t, v| { t.nodes[i].name = v.trim().to_string(); })}
            <label class="field"><span>"image"</span>
                <select class="vm-image" on:change=move |ev| { let v = event_target_value(&ev); ed.edit(|t| t.nodes[i].image = opt(v)); }>
                    <option value="">"(lab default)"</option>
                    <Suspense>{move || images.get().and_then(|r| r.ok()).map(|list| {
                        let cur = current_image.clone();
                        let mut list = list;
                        if !cur.is_empty() && !list.contains(&cur) { list.push(cur.clone()); }
                        list.into_iter().map(|n| { let sel = ed.topo.get_untracked().nodes.get(i).and_then(|x| x.image.clone()) == Some(n.clone()); let label = n.clone(); view! { <option value=n selected=sel>{label}</option> } }).collect_view()
                    })}</Suspense>
                </select>
                {move || ed.problem(p("image"))().map(|m| view! { <span class="field-error">{m}</span> })}
            </label>
            {field(ed, "CPUs", "vm-cpus", p("cpus"), move |t| t.nodes.get(i).and_then(|n| n.cpus).map(|c| c.to_string()).unwrap_or_default(),
                move |t, v| t.nodes[i].cpus = opt(v).map(|v| v.parse().unwrap_or(0)))}
            {field(ed, "memory (MiB)", "vm-memory", p("memory_mib"), move |t| t.nodes.get(i).and_then(|n| n.memory_mib).map(|c| c.to_string()).unwrap_or_default(),
                move |t, v| t.nodes[i].memory_mib = opt(v).map(|v| v.parse().unwrap_or(0)))}
            <label class="field checkbox"><input type="checkbox" class="vm-forward" prop:checked=move || ed.topo.get().nodes.get(i).is_some_and(|n| n.ip_forward)
                on:change=move |ev| { let on = event_target_checked(&ev); ed.edit(|t| t.nodes[i].ip_forward = on); }/>
                <span>"IP forwarding (router)"</span></label>
            <label class="field"><span>"restart policy"</span>
                <select class="vm-restart" prop:value=move || restart_name(ed.topo.get().nodes.get(i).and_then(|n| n.restart))
                    on:change=move |ev| { let v = event_target_value(&ev); ed.edit(|t| t.nodes[i].restart = restart_policy(&v)); }>
                    <option value="">"(lab default)"</option>
                    <option value="no">"no: a crash stays crashed"</option>
                    <option value="on-failure">"on-failure: restart it, with backoff"</option>
                </select>
            </label>
            <h4>"NICs"</h4>
            {nics}
            <h4>"Routes"</h4>
            {routes}
            <button class="add-route" on:click=move |_| ed.edit(|t| t.nodes[i].routes.push(Route { to: "0.0.0.0/0".into(), via: String::new() }))>"Add route"</button>
            <ExecBox lab=t.name.clone() vm=vm.clone()/>
        </aside>
    }
}

#[component]
fn BridgeProps(ed: Ed, i: usize) -> impl IntoView {
    let name = ed.topo.get_untracked().networks[i].name.clone();
    view! {
        <aside class="properties bridge-props" data-bridge=name.clone()>
            <h3>"Bridge " {name.clone()}</h3>
            {field(ed, "name", "bridge-name", format!("networks[{i}].name"), move |t| t.networks.get(i).map(|n| n.name.clone()).unwrap_or_default(),
                move |t, v| { let old = t.networks[i].name.clone(); edit::rename_network(t, &old, v.trim()); })}
            {field(ed, "subnet", "bridge-subnet", format!("networks[{i}].subnet"), move |t| t.networks.get(i).and_then(|n| n.subnet.clone()).unwrap_or_default(),
                move |t, v| t.networks[i].subnet = opt(v))}
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
            {field(ed, "image", "default-image", "defaults.image".into(), |t| t.defaults.as_ref().and_then(|d| d.image.clone()).unwrap_or_default(),
                |t, v| t.defaults.get_or_insert_with(Default::default).image = opt(v))}
            {field(ed, "CPUs", "default-cpus", "defaults.cpus".into(), |t| t.defaults.as_ref().and_then(|d| d.cpus).map(|c| c.to_string()).unwrap_or_default(),
                |t, v| t.defaults.get_or_insert_with(Default::default).cpus = opt(v).map(|v| v.parse().unwrap_or(0)))}
            {field(ed, "memory (MiB)", "default-memory", "defaults.memory_mib".into(), |t| t.defaults.as_ref().and_then(|d| d.memory_mib).map(|c| c.to_string()).unwrap_or_default(),
                |t, v| t.defaults.get_or_insert_with(Default::default).memory_mib = opt(v).map(|v| v.parse().unwrap_or(0)))}
            <h4>"Problems"</h4>
            <ul class="problems">
                {move || ed.problems.get().into_iter().map(|p| view! { <li data-path=p.path.clone()>{p.to_string()}</li> }).collect_view()}
            </ul>
        </aside>
    }
}

/// A VM's serial console (xterm.js), attached over a websocket; several
/// pages may watch and type. Closing it releases nothing the VM needs.
#[component]
fn ConsolePanel(ed: Ed, lab: String, vm: String) -> impl IntoView {
    let node_ref = NodeRef::<leptos::html::Div>::new();
    let status = RwSignal::new(String::from("connecting"));
    #[cfg(feature = "hydrate")]
    {
        use send_wrapper::SendWrapper;
        use wasm_bindgen::prelude::*;
        let view = StoredValue::new_local(None::<SendWrapper<graph::js::ConsoleView>>);
        let (lab, vm) = (lab.clone(), vm.clone());
        Effect::new(move |_| {
            let Some(el) = node_ref.get() else { return };
            if view.with_value(|v| v.is_some()) {
                return;
            }
            let alive = std::rc::Rc::new(std::cell::Cell::new(true));
            let a = alive.clone();
            let on_status = Closure::<dyn Fn(String)>::new(move |s: String| {
                if a.get() {
                    status.set(s)
                }
            });
            let c = graph::js::ConsoleView::new(&el, &lab, &vm, on_status.as_ref().unchecked_ref());
            on_status.forget();
            c.focus();
            view.set_value(Some(SendWrapper::new(c)));
            let alive = SendWrapper::new(alive);
            on_cleanup(move || {
                alive.set(false);
                view.with_value(|v| {
                    if let Some(v) = v {
                        v.destroy()
                    }
                });
            });
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = &lab;
    view! {
        <div class="console-panel" data-vm=vm.clone()>
            <div class="console-head">
                <strong>{format!("Console: {vm}")}</strong>
                <span class="muted">{move || status.get()}</span>
                <button class="close-console" on:click=move |_| ed.console.set(None)>"Close"</button>
            </div>
            <div class="terminal" node_ref=node_ref></div>
        </div>
    }
}

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
fn Matrix(ed: Ed, cells: Vec<CheckCell>) -> impl IntoView {
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
    let rows = vms.iter().map(|from| {
        let tds = vms.iter().map(|to| {
            match cells.iter().find(|c| &c.from == from && &c.to == to) {
                Some(c) if c.ok => view! {
                    <td class="pass" data-from=from.clone() data-to=to.clone() title=c.address.clone()>
                        {c.rtt_ms.map(|r| format!("{r:.1} ms")).unwrap_or_else(|| "ok".into())}
                    </td>
                }.into_any(),
                Some(c) => view! {
                    <td class="fail" data-from=from.clone() data-to=to.clone() title=c.error.clone().unwrap_or_default()>"✗"</td>
                }.into_any(),
                None => view! { <td class="na">"·"</td> }.into_any(),
            }
        }).collect_view();
        view! { <tr><th>{from.clone()}</th>{tds}</tr> }
    }).collect_view();
    view! {
        <div class="matrix">
            <div class="matrix-head">
                <strong>"Connectivity"</strong>
                <span class="muted">{format!("{} pair(s), {failed} failed; rows ping columns", cells.len())}</span>
                <button class="close-matrix" on:click=move |_| ed.check.set(None)>"Close"</button>
            </div>
            <table><thead><tr><th></th>{header}</tr></thead><tbody>{rows}</tbody></table>
        </div>
    }
}

/// A command box for a VM: runs through the guest agent, shows the output.
#[component]
fn ExecBox(lab: String, vm: String) -> impl IntoView {
    let line = RwSignal::new(String::new());
    let output = RwSignal::new(None::<(i32, String)>);
    let run = move || {
        let (lab, vm, l) = (lab.clone(), vm.clone(), line.get_untracked());
        leptos::task::spawn_local(async move {
            output.set(Some(match exec_vm(lab, vm, l).await {
                Ok(r) => (r.exit_code, format!("{}{}", r.stdout, r.stderr)),
                Err(e) => (-1, server_message(&e)),
            }));
        });
    };
    let run2 = run.clone();
    view! {
        <div class="exec-box">
            <h4>"Run a command"</h4>
            <div class="exec-line">
                <input class="exec-input" placeholder="ip -4 addr" prop:value=move || line.get()
                    on:input=move |ev| line.set(event_target_value(&ev))
                    on:keydown=move |ev| if ev.key() == "Enter" { run() }/>
                <button class="exec-run" on:click=move |_| run2()>"Run"</button>
            </div>
            {move || output.get().map(|(code, text)| view! {
                <pre class="exec-output" data-exit=code>{text}</pre>
                <span class="muted">{format!("exit {code}")}</span>
            })}
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
