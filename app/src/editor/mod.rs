//! The lab editor, one concern per file:
//!
//! | file | concern |
//! |---|---|
//! | `mod.rs` | the shared state (`Ed`): edits, undo/redo, save with the lab's revision, VM actions, live events; the page layout |
//! | `canvas.rs` | the canvas: typed messages to and from js/canvas.js, and the hydrate-side glue |
//! | `props.rs` | the properties panel (VM, bridge, lab defaults) with each field's error beside it |
//! | `console.rs` | a VM's serial console panel and its command box |
//! | `check.rs` | the connectivity matrix and the links it colours |
//! | `capture.rs` | packet captures: tabs, the live packet table, filter, pause, stop, download |
//! | `link.rs` | a link's panel: up/down, impairments, presets, applied live |
//! | `setup.rs` | a VM's files (written at boot) and exec commands (run once ready) |
//! | `snapshots.rs` | lab snapshots: take, list, restore, delete |
//! | `tests.rs` | the lab's tests: edit, run (each result live), failing ones highlighted |
//! | `nodetpl.rs` | node templates in the palette (drag one in; rename, delete, export, import) and "Save as node template" |

mod canvas;
mod capture;
mod check;
mod console;
mod expose;
mod link;
mod nodetpl;
mod props;
mod setup;
mod snapshots;
mod test_panel;

use std::collections::BTreeMap;

use leptos::prelude::*;
use topology::events::{Event, EventKind};
use topology::lifecycle::{VmAction, VmState, VmStatus};
use topology::{Problem, Topology};

use crate::api::{check_lab, get_lab, lab_action, save_lab, server_message, CheckCell, LabView};
use crate::edit;
use crate::graph::{self, parse_id, Element};
use check::Matrix;
use console::ConsolePanel;
use props::Properties;

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
    /// The link or bridge whose context menu is open, and where.
    link_menu: RwSignal<Option<(String, f64, f64)>>,
    /// The lab's packet captures, and the one shown below the canvas.
    captures: RwSignal<Vec<topology::capture::CaptureInfo>>,
    capture_open: RwSignal<Option<String>>,
    /// The Snapshots panel is open below the canvas.
    snapshots_open: RwSignal<bool>,
    /// The Tests panel is open below the canvas, and the last run's
    /// results by test name.
    tests_open: RwSignal<bool>,
    test_results: RwSignal<BTreeMap<String, test_panel::TestState>>,
    /// Bumped to have the canvas download itself as a PNG.
    png: RwSignal<u32>,
    /// The palette's node templates (built-in presets, then the user's).
    node_templates: RwSignal<Vec<topology::nodetpl::NodeTemplate>>,
    /// Told after each save (the lab list refreshes).
    on_saved: Callback<()>,
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

    fn save(self) {
        let on_saved = self.on_saved;
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

    fn action(self, action: VmAction, vms: Vec<String>) {
        let lab = self.topo.get_untracked().name;
        if self.dirty_untracked() {
            self.error
                .set(Some("save the lab first: VMs run what is saved".into()));
            return;
        }
        leptos::task::spawn_local(async move {
            if let Err(e) = lab_action(lab, action.to_string(), vms).await {
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
}

/// What a VM's context menu offers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum MenuItem {
    Vm(VmAction),
    Console,
    Delete,
}

impl MenuItem {
    /// The button's class: `menu-start`, `menu-console`, ...
    fn class(self) -> &'static str {
        match self {
            MenuItem::Vm(a) => a.as_str(),
            MenuItem::Console => "console",
            MenuItem::Delete => "delete",
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
        link_menu: RwSignal::new(None),
        captures: RwSignal::new(vec![]),
        capture_open: RwSignal::new(None),
        snapshots_open: RwSignal::new(false),
        tests_open: RwSignal::new(false),
        test_results: RwSignal::new(BTreeMap::new()),
        png: RwSignal::new(0),
        node_templates: RwSignal::new(vec![]),
        on_saved,
    };
    // In the browser only (effects do not run on the server).
    Effect::new(move |_| ed.refresh_captures());
    Effect::new(move |_| ed.refresh_node_templates());
    let draw = RwSignal::new(false);
    let fit = RwSignal::new(0u32);
    let connection = RwSignal::new(String::from("connecting"));
    let node_ref = NodeRef::<leptos::html::Div>::new();
    let name = view.topology.name.clone();

    #[cfg(feature = "hydrate")]
    canvas::mount(ed, node_ref, draw, fit, connection, view.seq);

    let export = move |_| {
        let t = ed.topo.get_untracked();
        #[cfg(feature = "hydrate")]
        graph::js::download_text(&format!("{}.json", t.name), &topology::to_json(&t));
        #[cfg(not(feature = "hydrate"))]
        let _ = t;
    };
    let export_svg = move |_| {
        let t = ed.topo.get_untracked();
        #[cfg(feature = "hydrate")]
        graph::js::download_text(&format!("{}.svg", t.name), &topology::graph::svg(&t, 1.0));
        #[cfg(not(feature = "hydrate"))]
        let _ = t;
    };
    // The saved lab as KubeVirt manifests (one YAML file), made by the
    // server as `minivm export --format kubevirt` makes them.
    let export_kubevirt = move |_| {
        if ed.dirty() {
            ed.error
                .set(Some("save the lab first: the saved lab is exported".into()));
            return;
        }
        let lab = ed.topo.get_untracked().name;
        leptos::task::spawn_local(async move {
            match crate::api::export_kubevirt(lab, "ovn-layer2".into()).await {
                Ok(x) => {
                    #[cfg(feature = "hydrate")]
                    graph::js::download_text(&x.file, &x.yaml);
                    ed.status.set(format!(
                        "exported {} manifests for KubeVirt to {} ({} things not carried, listed at its top)",
                        x.manifests, x.file, x.not_carried
                    ));
                }
                Err(e) => ed.error.set(Some(server_message(&e))),
            }
        });
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
                <button class="save" prop:disabled=move || !ed.dirty() on:click=move |_| ed.save()>
                    {move || if ed.dirty() { "Save*" } else { "Saved" }}
                </button>
                <button
                    class="undo"
                    title="Ctrl+Z"
                    prop:disabled=move || ed.undo.get().is_empty()
                    on:click=move |_| ed.undo()
                >
                    "Undo"
                </button>
                <button
                    class="redo"
                    title="Ctrl+Shift+Z"
                    prop:disabled=move || ed.redo.get().is_empty()
                    on:click=move |_| ed.redo()
                >
                    "Redo"
                </button>
                <button
                    class="draw-links"
                    class:active=move || draw.get()
                    on:click=move |_| draw.update(|d| *d = !*d)
                    title="Drag from a VM to a bridge to link them"
                >
                    {move || if draw.get() { "Drawing links" } else { "Draw links" }}
                </button>
                <button
                    class="fit"
                    title="Zoom to show the whole lab"
                    on:click=move |_| fit.update(|n| *n += 1)
                >
                    "Fit"
                </button>
                <button class="export" on:click=export>
                    "Export JSON"
                </button>
                <button class="export-png" on:click=move |_| ed.png.update(|n| *n += 1)>
                    "PNG"
                </button>
                <button class="export-svg" on:click=export_svg>
                    "SVG"
                </button>
                <button
                    class="export-kubevirt"
                    title="Download the saved lab as manifests for a Kubernetes cluster with KubeVirt (kubectl apply -f)"
                    on:click=export_kubevirt
                >
                    "KubeVirt"
                </button>
                <button class="tests-open" on:click=move |_| ed.tests_open.update(|o| *o = !*o)>
                    "Tests"
                </button>
                <button
                    class="save-as-template"
                    title="Save this lab as a template (in the gallery of New from template)"
                    on:click=move |_| ed.save_as_template()
                >
                    "Save as template"
                </button>
                <button
                    class="check-lab"
                    prop:disabled=move || ed.checking.get()
                    on:click=move |_| ed.run_check()
                >
                    {move || if ed.checking.get() { "Checking…" } else { "Check connectivity" }}
                </button>
                <button
                    class="snapshots-open"
                    on:click=move |_| ed.snapshots_open.update(|o| *o = !*o)
                >
                    "Snapshots"
                </button>
                <expose::ExposeSwitch ed />
                <span class="sep"></span>
                <button class="start-lab" on:click=move |_| ed.action(VmAction::Start, vec![])>
                    "Start lab"
                </button>
                <button class="stop-lab" on:click=move |_| ed.action(VmAction::Stop, vec![])>
                    "Stop lab"
                </button>
                <button
                    class="start-selected"
                    on:click=move |_| ed.action(VmAction::Start, selected_vms())
                >
                    "Start selected"
                </button>
                <button
                    class="stop-selected"
                    on:click=move |_| ed.action(VmAction::Stop, selected_vms())
                >
                    "Stop selected"
                </button>
            </div>
            {move || {
                ed.stale
                    .get()
                    .then(|| {
                        view! {
                            <div class="banner stale">
                                "This lab was changed elsewhere. "
                                <button class="reload" on:click=move |_| ed.reload()>
                                    "Reload"
                                </button>
                                " (your unsaved edits would be lost; saving now is refused)"
                            </div>
                        }
                    })
            }}
            {move || {
                ed.error
                    .get()
                    .map(|e| {
                        view! {
                            <div class="banner error">
                                <span class="error-text">{e}</span>
                                <button on:click=move |_| ed.error.set(None)>"×"</button>
                            </div>
                        }
                    })
            }}
            <div class="workspace">
                <div class="palette">
                    <div class="palette-item vm" draggable="true" data-palette="vm">
                        "VM"
                    </div>
                    <div class="palette-item bridge" draggable="true" data-palette="bridge">
                        "Bridge"
                    </div>
                    <nodetpl::NodeTemplates ed />
                    <p class="muted">"Drag onto the canvas. Delete removes the selection."</p>
                </div>
                <div class="canvas-wrap">
                    <div class="canvas" node_ref=node_ref data-lab=name.clone() tabindex="0"></div>
                    {move || {
                        ed.menu
                            .get()
                            .map(|(vm, x, y)| {
                                let item = move |label: &'static str, what: MenuItem, vm: String| {
                                    view! {
                                        <button
                                            class=format!("menu-{}", what.class())
                                            on:click=move |_| {
                                                ed.menu.set(None);
                                                match what {
                                                    MenuItem::Console => ed.console.set(Some(vm.clone())),
                                                    MenuItem::Delete => {
                                                        ed.edit(|t| edit::delete(t, &[graph::vm_id(&vm)]))
                                                    }
                                                    MenuItem::Vm(action) => ed.action(action, vec![vm.clone()]),
                                                }
                                            }
                                        >
                                            {label}
                                        </button>
                                    }
                                };
                                view! {
                                    <div
                                        class="context-menu"
                                        data-vm=vm.clone()
                                        style=format!("left: {x}px; top: {y}px")
                                    >
                                        <strong>{vm.clone()}</strong>
                                        {item("Start", MenuItem::Vm(VmAction::Start), vm.clone())}
                                        {item("Stop", MenuItem::Vm(VmAction::Stop), vm.clone())}
                                        {item(
                                            "Restart",
                                            MenuItem::Vm(VmAction::Restart),
                                            vm.clone(),
                                        )}
                                        {item(
                                            "Suspend",
                                            MenuItem::Vm(VmAction::Suspend),
                                            vm.clone(),
                                        )}
                                        {item("Console", MenuItem::Console, vm.clone())}
                                        {item("Delete", MenuItem::Delete, vm.clone())}
                                    </div>
                                }
                            })
                    }}
                    {move || {
                        ed.link_menu
                            .get()
                            .map(|(element, x, y)| {
                                let title = capture::target_of(&ed.topo.get_untracked(), &element)
                                    .unwrap_or_default();
                                let data = element.clone();
                                view! {
                                    <div
                                        class="context-menu link-menu"
                                        data-element=data
                                        style=format!("left: {x}px; top: {y}px")
                                    >
                                        <strong>{title}</strong>
                                        <button
                                            class="menu-capture"
                                            on:click=move |_| {
                                                ed.link_menu.set(None);
                                                ed.start_capture(element.clone(), String::new());
                                            }
                                        >
                                            "Capture"
                                        </button>
                                    </div>
                                }
                            })
                    }}
                </div>
                <Properties ed />
            </div>
            {move || ed.check.get().map(|cells| view! { <Matrix ed cells /> })}
            {move || {
                (ed.capture_open.get().is_some()).then(|| view! { <capture::CapturePanel ed /> })
            }}
            {move || ed.snapshots_open.get().then(|| view! { <snapshots::SnapshotsPanel ed /> })}
            {move || ed.tests_open.get().then(|| view! { <test_panel::TestsPanel ed /> })}
            {
                let lab = name.clone();
                move || ed.console.get().map(|vm| view! { <ConsolePanel ed lab=lab.clone() vm /> })
            }
            <div class="statusbar">
                <span class="status-text">{move || ed.status.get()}</span>
                <span class="connection">{move || format!("events: {}", connection.get())}</span>
                <span class="problems-count">
                    {move || match ed.problems.get().len() {
                        0 => "valid".to_string(),
                        n => format!("{n} problem(s)"),
                    }}
                </span>
            </div>
        </div>
    }
}
