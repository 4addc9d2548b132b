//! A VM's serial console panel (xterm.js over /ws/console) and its command
//! box (the guest agent).

use leptos::prelude::*;

use super::Ed;
use crate::api::{exec_vm, server_message};
#[cfg(feature = "hydrate")]
use crate::graph;

/// A VM's serial console (xterm.js), attached over a websocket; several
/// pages may watch and type. Closing it releases nothing the VM needs.
#[component]
pub(super) fn ConsolePanel(ed: Ed, lab: String, vm: String) -> impl IntoView {
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
                <button class="close-console" on:click=move |_| ed.console.set(None)>
                    "Close"
                </button>
            </div>
            <div class="terminal" node_ref=node_ref></div>
        </div>
    }
}

/// A command box for a VM: runs through the guest agent, shows the output.
#[component]
pub(super) fn ExecBox(lab: String, vm: String) -> impl IntoView {
    let line = RwSignal::new(String::new());
    let output = RwSignal::new(None::<(i32, String)>);
    // Runs so far: the output of run n carries data-run=n.
    let runs = RwSignal::new(0u32);
    let run = move || {
        let (lab, vm, l) = (lab.clone(), vm.clone(), line.get_untracked());
        output.set(None);
        leptos::task::spawn_local(async move {
            let result = match exec_vm(lab, vm, l).await {
                Ok(r) => (r.exit_code, format!("{}{}", r.stdout, r.stderr)),
                Err(e) => (-1, server_message(&e)),
            };
            runs.update(|n| *n += 1);
            output.set(Some(result));
        });
    };
    let run2 = run.clone();
    view! {
        <div class="exec-box" data-runs=move || runs.get()>
            <h4>"Run a command"</h4>
            <div class="exec-line">
                <input
                    class="exec-input"
                    placeholder="ip -4 addr"
                    prop:value=move || line.get()
                    on:input=move |ev| line.set(event_target_value(&ev))
                    on:keydown=move |ev| {
                        if ev.key() == "Enter" {
                            run()
                        }
                    }
                />
                <button class="exec-run" on:click=move |_| run2()>
                    "Run"
                </button>
            </div>
            {move || {
                output
                    .get()
                    .map(|(code, text)| {
                        view! {
                            <pre class="exec-output" data-exit=code data-run=runs.get_untracked()>
                                {text}
                            </pre>
                            <span class="muted">{format!("exit {code}")}</span>
                        }
                    })
            }}
        </div>
    }
}
