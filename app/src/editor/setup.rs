//! A VM's setup in its panel: the files written into the guest at boot
//! (path, mode, text) and the commands run once it is ready (`exec`, one a
//! line). Each change is one undoable edit with its error beside it, in
//! `minivm validate`'s words; the outcomes of the commands reach the page
//! as the lab's activity and errors.

use leptos::prelude::*;
use topology::FileSpec;

use super::Ed;

#[component]
pub(super) fn NodeSetup(ed: Ed, i: usize) -> impl IntoView {
    let files = move || {
        ed.topo
            .get()
            .nodes
            .get(i)
            .map(|n| n.files.len())
            .unwrap_or_default()
    };
    let file_row = move |k: usize| {
        let get = move || {
            ed.topo
                .get()
                .nodes
                .get(i)
                .and_then(|n| n.files.get(k).cloned())
        };
        let p = move |f: &str| format!("nodes[{i}].files[{k}]{f}");
        let (path_problem, mode_problem, content_problem, file_problem) = (
            ed.problem(p(".path")),
            ed.problem(p(".mode")),
            ed.problem(p(".content")),
            ed.problem(p("")),
        );
        view! {
            <div class="file-row" data-file=k>
                <label class="field">
                    <span>"path"</span>
                    <input
                        class="file-path"
                        data-path=p(".path")
                        prop:value=move || get().map(|f| f.path).unwrap_or_default()
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            ed.edit(|t| t.nodes[i].files[k].path = v.trim().to_string())
                        }
                    />
                    {move || path_problem().map(|m| view! { <span class="field-error">{m}</span> })}
                </label>
                <label class="field">
                    <span>"mode"</span>
                    <input
                        class="file-mode"
                        placeholder="0644"
                        prop:value=move || get().and_then(|f| f.mode).unwrap_or_default()
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            ed.edit(|t| {
                                t.nodes[i].files[k].mode = Some(v.trim().to_string())
                                    .filter(|m| !m.is_empty())
                            })
                        }
                    />
                    {move || mode_problem().map(|m| view! { <span class="field-error">{m}</span> })}
                </label>
                <label class="field">
                    <span>"content"</span>
                    <textarea
                        class="file-content"
                        rows="6"
                        prop:value=move || get().and_then(|f| f.content).unwrap_or_default()
                        on:change=move |ev| {
                            let v = event_target_value(&ev);
                            ed.edit(|t| {
                                let f = &mut t.nodes[i].files[k];
                                f.content = Some(v);
                                f.source = None;
                            })
                        }
                    ></textarea>
                    {move || {
                        content_problem()
                            .or_else(&file_problem)
                            .map(|m| view! { <span class="field-error">{m}</span> })
                    }}
                </label>
                <button
                    class="remove-file"
                    on:click=move |_| {
                        ed.edit(|t| {
                            t.nodes[i].files.remove(k);
                        })
                    }
                >
                    "Remove file"
                </button>
            </div>
        }
    };
    let exec_text = move || {
        ed.topo
            .get()
            .nodes
            .get(i)
            .map(|n| n.exec.join("\n"))
            .unwrap_or_default()
    };
    let exec_problems = move || {
        let prefix = format!("nodes[{i}].exec");
        ed.problems
            .get()
            .into_iter()
            .filter(|p| p.path.starts_with(&prefix))
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    };
    view! {
        <h4>"Files (written at boot)"</h4>
        {move || (0..files()).map(file_row).collect_view()}
        <button
            class="add-file"
            on:click=move |_| {
                ed.edit(|t| {
                    let n = t.nodes[i].files.len() + 1;
                    t.nodes[i]
                        .files
                        .push(FileSpec {
                            path: format!("/etc/lab/file{n}"),
                            content: Some(String::new()),
                            source: None,
                            mode: None,
                        })
                })
            }
        >
            "Add file"
        </button>
        <h4>"Run once ready (one command a line)"</h4>
        <textarea
            class="node-exec"
            rows="3"
            placeholder="ip link set eth0 mtu 1400"
            prop:value=exec_text
            on:change=move |ev| {
                let v = event_target_value(&ev);
                ed.edit(|t| {
                    t.nodes[i].exec = v
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_string)
                        .collect();
                })
            }
        ></textarea>
        {move || {
            exec_problems()
                .into_iter()
                .map(|m| view! { <span class="field-error">{m}</span> })
                .collect_view()
        }}
    }
}
