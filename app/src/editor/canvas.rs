//! The canvas (cytoscape, in app/js/canvas.js) and the editor talk in typed
//! messages, one JSON object each, tagged by `type`: [`ToCanvas`] says what
//! to draw, [`FromCanvas`] says what the user did. Both are plain serde
//! types, unit-tested here; js/canvas.js is their other end.

use std::collections::BTreeMap;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use topology::lifecycle::VmState;

use super::Ed;
use crate::edit;
use crate::graph::{self, parse_id, Element};

/// What the palette offers: a bare VM, a bridge, or a VM made from a node
/// template (`tpl:NAME`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PaletteItem {
    Vm,
    Bridge,
    Template(String),
}

impl TryFrom<String> for PaletteItem {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match s.as_str() {
            "vm" => Ok(PaletteItem::Vm),
            "bridge" => Ok(PaletteItem::Bridge),
            _ => s
                .strip_prefix("tpl:")
                .map(|n| PaletteItem::Template(n.to_string()))
                .ok_or_else(|| format!("{s:?} is not in the palette")),
        }
    }
}

impl From<PaletteItem> for String {
    fn from(p: PaletteItem) -> String {
        match p {
            PaletteItem::Vm => "vm".into(),
            PaletteItem::Bridge => "bridge".into(),
            PaletteItem::Template(n) => format!("tpl:{n}"),
        }
    }
}

/// What the user did on the canvas.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromCanvas {
    /// A palette item dropped at canvas coordinates.
    Drop {
        what: PaletteItem,
        x: f64,
        y: f64,
    },
    /// A node dragged to a new position.
    Move {
        id: String,
        x: f64,
        y: f64,
    },
    /// A link drawn from one node to another.
    Link {
        source: String,
        target: String,
    },
    /// The selection changed.
    Select {
        ids: Vec<String>,
    },
    /// Delete was pressed with these selected.
    Delete {
        ids: Vec<String>,
    },
    /// Right-click on a VM, a link or a bridge, at canvas pixels.
    Context {
        id: String,
        x: f64,
        y: f64,
    },
    /// A click elsewhere: the context menu closes.
    CloseMenu,
    Undo,
    Redo,
}

/// What the canvas is told to show.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToCanvas {
    /// The topology as cytoscape elements (`graph::elements`).
    Elements {
        elements: serde_json::Value,
    },
    /// Every VM's state, by name.
    States {
        states: BTreeMap<String, VmState>,
    },
    Select {
        ids: Vec<String>,
    },
    /// The connectivity check's verdict on the links (edge ids).
    Check {
        failing: Vec<String>,
        passing: Vec<String>,
    },
    /// Dragging from a node draws a link.
    DrawMode {
        on: bool,
    },
    /// Zoom to show the whole lab.
    Fit,
    /// The links and bridges (element ids) being captured on.
    Captures {
        ids: Vec<String>,
    },
    /// What failing lab tests involve (element ids), highlighted.
    Highlight {
        ids: Vec<String>,
    },
    /// Download the whole drawing as a PNG file.
    Png {
        filename: String,
    },
}

impl Ed {
    /// What the canvas reports the user did.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub(super) fn on_canvas(self, msg: FromCanvas) {
        match msg {
            FromCanvas::Drop { what, x, y } => {
                let mut id = String::new();
                let templates = self.node_templates.get_untracked();
                self.edit(|t| {
                    id = match what {
                        PaletteItem::Vm => graph::vm_id(&edit::add_vm(t, x, y)),
                        PaletteItem::Bridge => graph::bridge_id(&edit::add_bridge(t, x, y)),
                        PaletteItem::Template(name) => {
                            let vm = edit::add_vm(t, x, y);
                            if let (Some(tpl), Some(n)) = (
                                templates.iter().find(|x| x.name == name),
                                t.nodes.iter_mut().find(|n| n.name == vm),
                            ) {
                                topology::nodetpl::apply(tpl, n);
                            }
                            graph::vm_id(&vm)
                        }
                    }
                });
                self.selection.set(vec![id]);
            }
            FromCanvas::Move { id, x, y } => self.edit(|t| edit::move_to(t, &id, x, y)),
            FromCanvas::Link { source, target } => {
                let mut result = Ok(());
                self.edit(|t| result = edit::link(t, &source, &target));
                if let Err(e) = result {
                    self.error.set(Some(e));
                }
            }
            FromCanvas::Select { ids } => {
                if ids != self.selection.get_untracked() {
                    self.selection.set(ids);
                }
            }
            FromCanvas::Delete { ids } => {
                self.edit(|t| edit::delete(t, &ids));
                self.selection.set(vec![]);
            }
            FromCanvas::Context { id, x, y } => match parse_id(&id) {
                Some(Element::Vm(vm)) => {
                    self.link_menu.set(None);
                    self.menu.set(Some((vm, x, y)));
                }
                Some(Element::Nic(..) | Element::Bridge(_)) => {
                    self.menu.set(None);
                    self.link_menu.set(Some((id, x, y)));
                }
                None => {}
            },
            FromCanvas::CloseMenu => {
                self.menu.set(None);
                self.link_menu.set(None);
            }
            FromCanvas::Undo => self.undo(),
            FromCanvas::Redo => self.redo(),
        }
    }
}

/// Creates the canvas in `el`, opens the event stream from `seq`, and keeps
/// the canvas showing the editor's state; all is torn down on cleanup.
#[cfg(feature = "hydrate")]
pub(super) fn mount(
    ed: Ed,
    node_ref: leptos::prelude::NodeRef<leptos::html::Div>,
    draw: leptos::prelude::RwSignal<bool>,
    fit: leptos::prelude::RwSignal<u32>,
    connection: leptos::prelude::RwSignal<String>,
    seq: u64,
) {
    use leptos::prelude::*;
    use send_wrapper::SendWrapper;
    use topology::events::Event;
    use wasm_bindgen::prelude::*;

    let editor = StoredValue::new_local(None::<SendWrapper<graph::js::Editor>>);
    let send = move |msg: ToCanvas| {
        let json = serde_json::to_string(&msg).expect("a message serializes");
        editor.with_value(|e| {
            if let Some(e) = e {
                e.receive(&json)
            }
        });
    };
    Effect::new(move |_| {
        let Some(el) = node_ref.get() else { return };
        if editor.with_value(|e| e.is_some()) {
            return;
        }
        // JS may still call back after this editor is gone (a timer, a
        // last websocket message): those calls are dropped.
        let alive = std::rc::Rc::new(std::cell::Cell::new(true));
        let a1 = alive.clone();
        let cb = Closure::<dyn Fn(String)>::new(move |json: String| {
            if !a1.get() {
                return;
            }
            match serde_json::from_str::<FromCanvas>(&json) {
                Ok(msg) => ed.on_canvas(msg),
                Err(e) => {
                    leptos::logging::error!("a message from the canvas that is none: {e}: {json}")
                }
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
        send(ToCanvas::Elements {
            elements: graph::elements(&ed.topo.get()),
        })
    });
    Effect::new(move |_| {
        let states = ed
            .states
            .get()
            .into_iter()
            .map(|(k, s)| (k, s.state))
            .collect();
        // Elements first (a new VM), then its state.
        let _ = ed.topo.get();
        send(ToCanvas::States { states });
    });
    Effect::new(move |_| {
        send(ToCanvas::Select {
            ids: ed.selection.get(),
        })
    });
    Effect::new(move |_| {
        let (failing, passing) =
            super::check::check_edges(&ed.topo.get(), ed.check.get().as_deref().unwrap_or(&[]));
        send(ToCanvas::Check { failing, passing });
    });
    Effect::new(move |prev: Option<u32>| {
        let n = fit.get();
        if prev.is_some() {
            send(ToCanvas::Fit);
        }
        n
    });
    Effect::new(move |_| send(ToCanvas::DrawMode { on: draw.get() }));
    Effect::new(move |_| {
        let ids = super::test_panel::highlighted(&ed.topo.get(), &ed.test_results.get());
        send(ToCanvas::Highlight { ids });
    });
    Effect::new(move |prev: Option<u32>| {
        let n = ed.png.get();
        if prev.is_some() {
            send(ToCanvas::Png {
                filename: format!("{}.png", ed.topo.get_untracked().name),
            });
        }
        n
    });
    Effect::new(move |_| {
        let _ = ed.topo.get();
        let mut ids: Vec<String> = ed
            .captures
            .get()
            .into_iter()
            .filter(|c| c.running)
            .map(|c| c.element)
            .collect();
        ids.sort();
        ids.dedup();
        send(ToCanvas::Captures { ids });
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn messages_from_the_canvas_read_as_js_canvas_writes_them() {
        let read = |v: serde_json::Value| serde_json::from_value::<FromCanvas>(v).unwrap();
        assert_eq!(
            read(json!({"type": "drop", "what": "bridge", "x": 10, "y": 20.5})),
            FromCanvas::Drop {
                what: PaletteItem::Bridge,
                x: 10.0,
                y: 20.5
            }
        );
        assert_eq!(
            read(json!({"type": "select", "ids": ["vm:a", "net:lan"]})),
            FromCanvas::Select {
                ids: vec!["vm:a".into(), "net:lan".into()]
            }
        );
        assert_eq!(read(json!({"type": "close_menu"})), FromCanvas::CloseMenu);
        assert_eq!(read(json!({"type": "redo"})), FromCanvas::Redo);
        assert_eq!(
            read(json!({"type": "link", "source": "vm:a", "target": "net:lan"})),
            FromCanvas::Link {
                source: "vm:a".into(),
                target: "net:lan".into()
            }
        );
    }

    #[test]
    fn a_message_the_editor_does_not_know_is_refused_not_ignored() {
        for bad in [
            json!({"type": "explode"}),
            json!({"type": "drop", "what": "router", "x": 1, "y": 1}),
            json!({"type": "move", "id": "vm:a"}),
        ] {
            assert!(
                serde_json::from_value::<FromCanvas>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn messages_to_the_canvas_carry_their_type_and_fields() {
        let msg = ToCanvas::States {
            states: [("vm1".to_string(), VmState::Crashed)].into(),
        };
        assert_eq!(
            serde_json::to_value(&msg).unwrap(),
            json!({"type": "states", "states": {"vm1": "crashed"}})
        );
        assert_eq!(
            serde_json::to_value(ToCanvas::DrawMode { on: true }).unwrap(),
            json!({"type": "draw_mode", "on": true})
        );
        assert_eq!(
            serde_json::to_value(ToCanvas::Fit).unwrap(),
            json!({"type": "fit"})
        );
    }
}
