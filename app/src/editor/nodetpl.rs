//! Node templates in the editor: the palette lists them under VM and
//! Bridge (drag one onto the canvas: a VM with its settings and its kind's
//! icon); the user's can be renamed, deleted and exported as JSON, and a
//! JSON file imported. A selected VM is saved as one from its panel.

use leptos::prelude::*;
use topology::DeviceKind;

use super::Ed;
use crate::api::{
    change_node_template, list_node_templates, save_as_template, save_node_template, server_message,
};

impl Ed {
    /// Saves the (saved) lab as a lab template of the user's, under a
    /// name asked for.
    pub(super) fn save_as_template(self) {
        if self.dirty() {
            self.error.set(Some(
                "save the lab first: the saved lab becomes the template".into(),
            ));
            return;
        }
        let lab = self.topo.get_untracked().name;
        let Some(name) = window()
            .prompt_with_message_and_default(
                "Save this lab as template",
                &format!("{lab}-template"),
            )
            .ok()
            .flatten()
            .filter(|n| !n.trim().is_empty())
        else {
            return;
        };
        leptos::task::spawn_local(async move {
            match save_as_template(lab, name.trim().to_string(), String::new()).await {
                Ok(()) => self
                    .status
                    .set(format!("saved as template {}", name.trim())),
                Err(e) => self.error.set(Some(server_message(&e))),
            }
        });
    }

    /// The node templates, as the server has them now.
    pub(super) fn refresh_node_templates(self) {
        leptos::task::spawn_local(async move {
            match list_node_templates().await {
                Ok(list) => self.node_templates.set(list),
                Err(e) => self.error.set(Some(server_message(&e))),
            }
        });
    }

    /// Renames (`to` given), deletes (`to` empty) or imports (`name`
    /// empty, JSON in `to`) a node template, then lists them again.
    fn change_node_template(self, name: String, to: String) {
        leptos::task::spawn_local(async move {
            match change_node_template(name, to).await {
                Ok(_) => self.refresh_node_templates(),
                Err(e) => self.error.set(Some(server_message(&e))),
            }
        });
    }
}

#[component]
pub(super) fn NodeTemplates(ed: Ed) -> impl IntoView {
    let file_ref = NodeRef::<leptos::html::Input>::new();
    let on_file = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(input) = file_ref.get() {
            use wasm_bindgen::prelude::*;
            let cb = Closure::<dyn Fn(String)>::new(move |text: String| {
                ed.change_node_template(String::new(), text)
            });
            crate::graph::js::read_first_file(&input, cb.as_ref().unchecked_ref());
            cb.forget();
        }
    };
    let item = move |t: topology::nodetpl::NodeTemplate| {
        let name = t.name.clone();
        let (n1, n2) = (name.clone(), name.clone());
        let json = serde_json::to_string_pretty(&t).expect("serializes");
        let file = format!("{}.node.json", t.name);
        let export = move |_| {
            #[cfg(feature = "hydrate")]
            crate::graph::js::download_text(&file, &json);
            #[cfg(not(feature = "hydrate"))]
            let _ = (&file, &json);
        };
        let rename = move |_| {
            let to = window()
                .prompt_with_message_and_default(&format!("Rename node template {n1:?} to"), &n1)
                .ok()
                .flatten()
                .unwrap_or_default();
            if !to.trim().is_empty() && to.trim() != n1 {
                ed.change_node_template(n1.clone(), to);
            }
        };
        let delete = move |_| {
            if window()
                .confirm_with_message(&format!("Delete node template {n2:?}?"))
                .unwrap_or(false)
            {
                ed.change_node_template(n2.clone(), String::new());
            }
        };
        let builtin = t.builtin;
        view! {
            <div class="palette-tpl" data-template=name.clone()>
                <div
                    class=format!("palette-item node-tpl kind-{}", t.kind.name())
                    draggable="true"
                    data-palette=format!("tpl:{name}")
                    title=format!(
                        "{} · {} · {} MiB",
                        t.kind.name(),
                        t.image.clone().unwrap_or_else(|| "lab default".into()),
                        t.memory_mib.map(|m| m.to_string()).unwrap_or_else(|| "default".into()),
                    )
                >
                    {name.clone()}
                </div>
                {(!builtin)
                    .then(|| {
                        view! {
                            <span class="tpl-actions">
                                <button class="rename-tpl" title="Rename" on:click=rename>
                                    "✎"
                                </button>
                                <button class="export-tpl" title="Export JSON" on:click=export>
                                    "⇩"
                                </button>
                                <button class="delete-tpl" title="Delete" on:click=delete>
                                    "×"
                                </button>
                            </span>
                        }
                    })}
            </div>
        }
    };
    view! {
        <div class="node-templates">
            {move || ed.node_templates.get().into_iter().map(item).collect_view()}
            <label class="muted import-tpl">
                "Import node template: "
                <input type="file" accept=".json" node_ref=file_ref on:change=on_file />
            </label>
        </div>
    }
}

/// "Save as node template" for VM `i`: a name, a kind, Save.
#[component]
pub(super) fn SaveNodeTemplate(ed: Ed, i: usize) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let kind = RwSignal::new(String::from("host"));
    let said = RwSignal::new(None::<(bool, String)>);
    let save = move |_| {
        let Some(node) = ed.topo.get_untracked().nodes.get(i).cloned() else {
            return;
        };
        let (n, k) = (
            name.get_untracked().trim().to_string(),
            kind.get_untracked(),
        );
        leptos::task::spawn_local(async move {
            let json = serde_json::to_string(&node).expect("serializes");
            match save_node_template(json, n.clone(), k).await {
                Ok(()) => {
                    said.set(Some((true, format!("saved as node template {n}"))));
                    ed.refresh_node_templates();
                }
                Err(e) => said.set(Some((false, server_message(&e)))),
            }
        });
    };
    view! {
        <details class="save-node-template">
            <summary>"Save as node template"</summary>
            <input
                class="node-template-name"
                placeholder="template name"
                prop:value=move || name.get()
                on:input=move |ev| name.set(event_target_value(&ev))
            />
            <select
                class="node-template-kind"
                on:change=move |ev| kind.set(event_target_value(&ev))
            >
                {DeviceKind::ALL
                    .iter()
                    .map(|k| view! { <option value=k.name()>{k.name()}</option> })
                    .collect_view()}
            </select>
            <button class="save-node-template-button" on:click=save>
                "Save"
            </button>
            {move || {
                said.get()
                    .map(|(ok, m)| {
                        view! { <span class=if ok { "muted" } else { "field-error" }>{m}</span> }
                    })
            }}
        </details>
    }
}
