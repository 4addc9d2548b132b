//! The main screen: the lab list (create, import, rename, duplicate,
//! delete) and the selected lab's editor.

use leptos::prelude::*;
use leptos_router::hooks::{use_navigate, use_query_map};

use crate::api::{
    create_from_template, create_lab, delete_lab, duplicate_lab, get_lab, import_lab, list_labs,
    list_templates, rename_lab, server_message, LabSummary, TemplateCard,
};
use crate::editor::Editor;

#[component]
pub fn LabsPage() -> impl IntoView {
    let query = use_query_map();
    let labs = Resource::new(|| (), |_| list_labs());
    // The lab in the URL (?lab=NAME), else the first one.
    let selected = move || {
        // `?lab=` with no name is no lab: the first one is shown.
        query
            .read()
            .get("lab")
            .filter(|n| !n.is_empty())
            .or_else(|| {
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
                <a class="schema-link" href="/schema/topology.v1.json">
                    "Topology schema v1"
                </a>
            </header>
            <nav class="sidebar">
                <h2>"Labs"</h2>
                <Suspense fallback=|| {
                    view! { <p class="muted">"Loading labs…"</p> }
                }>
                    {move || {
                        labs.get()
                            .map(|r| match r {
                                Ok(list) => {
                                    view! { <LabList list selected=Signal::derive(selected) /> }
                                        .into_any()
                                }
                                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                            })
                    }}
                </Suspense>
                <LabManager
                    selected=Signal::derive(selected)
                    on_change=Callback::new(move |_| labs.refetch())
                />
            </nav>
            <section class="main">
                <Suspense fallback=|| {
                    view! { <p class="muted">"Loading lab…"</p> }
                }>
                    {move || {
                        lab.get()
                            .map(|r| match r {
                                Ok(Some(view)) => {
                                    view! {
                                        <Editor
                                            view
                                            on_saved=Callback::new(move |_| labs.refetch())
                                        />
                                    }
                                        .into_any()
                                }
                                Ok(None) => {
                                    view! { <p class="muted">"No lab yet: create one."</p> }
                                        .into_any()
                                }
                                Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                            })
                    }}
                </Suspense>
            </section>
        </div>
    }
}

#[component]
fn LabList(list: Vec<LabSummary>, selected: Signal<Option<String>>) -> impl IntoView {
    view! {
        <ul class="lab-list">
            {list
                .into_iter()
                .map(|l| {
                    let name = l.name.clone();
                    let is_selected = move || selected.get().as_deref() == Some(name.as_str());
                    view! {
                        <li class:selected=is_selected>
                            <a href=format!("/?lab={}", l.name) data-lab=l.name.clone()>
                                {l.name.clone()}
                            </a>
                            <span class="muted">
                                {format!("{} VMs · {} bridges", l.nodes, l.networks)}
                            </span>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
    }
}

/// What the lab list's buttons do: one variant each, so no word can be
/// taken for another (least of all for Delete).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LabOp {
    New,
    Import,
    Rename,
    Duplicate,
    Delete,
}

impl LabOp {
    /// As the page says it ("rename: done").
    fn word(self) -> &'static str {
        match self {
            LabOp::New => "new",
            LabOp::Import => "import",
            LabOp::Rename => "rename",
            LabOp::Duplicate => "duplicate",
            LabOp::Delete => "delete",
        }
    }
}

/// New, import, rename, duplicate, delete.
#[component]
fn LabManager(selected: Signal<Option<String>>, on_change: Callback<()>) -> impl IntoView {
    let name = RwSignal::new(String::new());
    let import_text = RwSignal::new(String::new());
    // A containerlab folder's files (JSON: path in the folder → text).
    let import_files = RwSignal::new(String::new());
    let message = RwSignal::new(None::<(bool, String)>);
    let navigate = use_navigate();
    let go = move |lab: String| {
        on_change.run(());
        // After a delete there is no lab to name: the list's first is shown.
        let to = if lab.is_empty() {
            "/".to_string()
        } else {
            format!("/?lab={lab}")
        };
        navigate(&to, Default::default());
    };
    let run = {
        let go = go.clone();
        move |what: LabOp| {
            let go = go.clone();
            let new_name = name.get_untracked().trim().to_string();
            let current = selected.get_untracked().unwrap_or_default();
            let text = import_text.get_untracked();
            let files = import_files.get_untracked();
            leptos::task::spawn_local(async move {
                let mut report = Vec::new();
                let result = match what {
                    LabOp::New => create_lab(new_name).await,
                    LabOp::Import => {
                        import_lab(text, Some(new_name), Some(files))
                            .await
                            .map(|(lab, r)| {
                                report = r;
                                lab
                            })
                    }
                    LabOp::Rename => rename_lab(current, new_name).await,
                    LabOp::Duplicate => duplicate_lab(current, new_name).await,
                    LabOp::Delete => {
                        let ok = window()
                            .confirm_with_message(&format!("Delete lab {current:?} and its disks?"))
                            .unwrap_or(false);
                        if !ok {
                            return;
                        }
                        delete_lab(current.clone()).await.map(|_| String::new())
                    }
                };
                match result {
                    Ok(lab) => {
                        let mut m = format!("{}: done", what.word());
                        for line in &report {
                            m.push_str(&format!("\nreport: {line}"));
                        }
                        message.set(Some((true, m)));
                        name.set(String::new());
                        import_text.set(String::new());
                        import_files.set(String::new());
                        go(lab);
                    }
                    Err(e) => message.set(Some((false, server_message(&e)))),
                }
            });
        }
    };
    let (r1, r2, r3, r4, r5) = (run.clone(), run.clone(), run.clone(), run.clone(), run);
    let file_ref = NodeRef::<leptos::html::Input>::new();
    let folder_ref = NodeRef::<leptos::html::Input>::new();
    let on_folder = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(input) = folder_ref.get() {
            use wasm_bindgen::prelude::*;
            let cb = Closure::<dyn Fn(String)>::new(move |json: String| {
                // The folder's .clab.yml is the topology, unless one is pasted.
                if import_text.get_untracked().trim().is_empty() {
                    if let Ok(files) =
                        serde_json::from_str::<std::collections::BTreeMap<String, String>>(&json)
                    {
                        if let Some((_, t)) = files.iter().find(|(k, _)| {
                            !k.contains('/')
                                && (k.ends_with(".clab.yml") || k.ends_with(".clab.yaml"))
                        }) {
                            import_text.set(t.clone());
                        }
                    }
                }
                import_files.set(json);
            });
            crate::graph::js::read_all_files(&input, cb.as_ref().unchecked_ref());
            cb.forget();
        }
    };
    let on_file = move |_| {
        #[cfg(feature = "hydrate")]
        if let Some(input) = file_ref.get() {
            use wasm_bindgen::prelude::*;
            let cb = Closure::<dyn Fn(String)>::new(move |text: String| import_text.set(text));
            crate::graph::js::read_first_file(&input, cb.as_ref().unchecked_ref());
            cb.forget();
        }
    };
    view! {
        <div class="lab-manager">
            <input
                class="lab-name"
                placeholder="lab name"
                prop:value=move || name.get()
                on:input=move |ev| name.set(event_target_value(&ev))
            />
            <div class="buttons">
                <button class="new-lab" on:click=move |_| r1(LabOp::New)>
                    "New"
                </button>
                <button class="rename-lab" on:click=move |_| r2(LabOp::Rename)>
                    "Rename"
                </button>
                <button class="duplicate-lab" on:click=move |_| r3(LabOp::Duplicate)>
                    "Duplicate"
                </button>
                <button class="delete-lab danger" on:click=move |_| r4(LabOp::Delete)>
                    "Delete"
                </button>
            </div>
            <Gallery name message go=Callback::new(go.clone()) />
            <details class="import">
                <summary>"Import JSON or YAML, or a containerlab lab"</summary>
                <input type="file" accept=".json,.yaml,.yml" node_ref=file_ref on:change=on_file />
                <label class="muted">
                    "containerlab folder (its .clab.yml and the files it names): "
                    <input
                        type="file"
                        class="import-folder"
                        multiple
                        prop:webkitdirectory=true
                        node_ref=folder_ref
                        on:change=on_folder
                    />
                </label>
                <textarea
                    class="import-text"
                    rows="6"
                    placeholder="or paste a topology here"
                    prop:value=move || import_text.get()
                    on:input=move |ev| import_text.set(event_target_value(&ev))
                ></textarea>
                <button class="import-lab" on:click=move |_| r5(LabOp::Import)>
                    "Import"
                </button>
                <p class="muted">"The name above, if given, replaces the file's."</p>
            </details>
            {move || {
                message
                    .get()
                    .map(|(ok, m)| view! { <pre class=if ok { "ok" } else { "error" }>{m}</pre> })
            }}
        </div>
    }
}

/// "New from template": each template with a small picture of its lab, its
/// description and its parameters; Create makes a lab of the name above.
#[component]
fn Gallery(
    name: RwSignal<String>,
    message: RwSignal<Option<(bool, String)>>,
    go: Callback<String>,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let cards = Resource::new(
        move || open.get(),
        |open| async move {
            if open {
                list_templates().await
            } else {
                Ok(vec![])
            }
        },
    );
    let card = move |c: TemplateCard| {
        let values: RwSignal<Vec<(String, String)>> = RwSignal::new(
            c.info
                .params
                .iter()
                .map(|p| (p.name.clone(), p.default.clone()))
                .collect(),
        );
        let template = c.info.name.clone();
        let create = move |_| {
            let lab = name.get_untracked().trim().to_string();
            let template = template.clone();
            let sets = values.get_untracked();
            leptos::task::spawn_local(async move {
                match create_from_template(lab, template.clone(), sets).await {
                    Ok(lab) => {
                        message.set(Some((true, format!("new from template {template}: done"))));
                        name.set(String::new());
                        go.run(lab);
                    }
                    Err(e) => message.set(Some((false, server_message(&e)))),
                }
            });
        };
        let params = c
            .info
            .params
            .iter()
            .enumerate()
            .map(|(k, p)| {
                let title = p.description.clone();
                view! {
                    <label class="field" title=title>
                        <span>{p.name.clone()}</span>
                        <input
                            class="template-param"
                            data-param=p.name.clone()
                            prop:value=move || {
                                values.get().get(k).map(|(_, v)| v.clone()).unwrap_or_default()
                            }
                            on:change=move |ev| {
                                let v = event_target_value(&ev);
                                values.update(|vals| vals[k].1 = v.trim().to_string())
                            }
                        />
                    </label>
                }
            })
            .collect_view();
        view! {
            <div class="template-card" data-template=c.info.name.clone()>
                <div class="template-picture" inner_html=c.svg></div>
                <strong>{c.info.name.clone()}</strong>
                <span class="muted">{if c.info.builtin { " built in" } else { " yours" }}</span>
                <p class="template-description">{c.info.description.clone()}</p>
                {params}
                <button class="create-from-template" on:click=create>
                    "Create"
                </button>
            </div>
        }
    };
    view! {
        <details class="templates" on:toggle=move |_| open.set(true)>
            <summary>"New from template"</summary>
            <p class="muted">"The lab takes the name typed above."</p>
            <Suspense fallback=|| {
                view! { <p class="muted">"Loading templates…"</p> }
            }>
                {move || {
                    cards
                        .get()
                        .map(|r| match r {
                            Ok(list) => {
                                view! {
                                    <div class="template-gallery">
                                        {list.into_iter().map(card).collect_view()}
                                    </div>
                                }
                                    .into_any()
                            }
                            Err(e) => view! { <p class="error">{e.to_string()}</p> }.into_any(),
                        })
                }}
            </Suspense>
        </details>
    }
}
