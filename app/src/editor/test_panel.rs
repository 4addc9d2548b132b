//! The Tests panel: the lab's tests (`tests:` in its topology) listed and
//! edited in place (each change one undoable edit, its error beside it),
//! added and removed; "Run tests" runs every one at once on the saved lab
//! and shows each pending, then passed or failed with the output that did
//! not match as it comes; a failing test's VMs and links are highlighted
//! on the canvas.

use std::collections::BTreeMap;

use leptos::prelude::*;
use topology::{ExecTest, Expect, LabTest, PingTest};

use super::Ed;
use crate::api::{run_lab_test, server_message};
use topology::labtest::Outcome as TestResult;

/// Where one test stands in the last run.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum TestState {
    Pending,
    Done(TestResult),
    Error(String),
}

/// The canvas elements a failing result involves: its VMs, the networks,
/// and the links between them.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(super) fn highlighted(
    t: &topology::Topology,
    results: &BTreeMap<String, TestState>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for r in results.values() {
        let TestState::Done(r) = r else { continue };
        if r.passed {
            continue;
        }
        for vm in &r.vms {
            ids.push(crate::graph::vm_id(vm));
            if let Some(n) = t.node(vm) {
                for (i, nic) in n.nics.iter().enumerate() {
                    if r.networks.contains(&nic.network) {
                        ids.push(crate::graph::nic_id(vm, i));
                    }
                }
            }
        }
        ids.extend(r.networks.iter().map(|n| crate::graph::bridge_id(n)));
    }
    ids.sort();
    ids.dedup();
    ids
}

#[component]
pub(super) fn TestsPanel(ed: Ed) -> impl IntoView {
    let count = move || ed.topo.get().tests.len();
    let run_all = move |_| {
        if ed.dirty() {
            ed.error.set(Some(
                "save the lab first: tests run on the saved lab".into(),
            ));
            return;
        }
        let t = ed.topo.get_untracked();
        ed.test_results.set(
            t.tests
                .iter()
                .map(|x| (x.name.trim().to_string(), TestState::Pending))
                .collect(),
        );
        for test in &t.tests {
            let (lab, name) = (t.name.clone(), test.name.trim().to_string());
            leptos::task::spawn_local(async move {
                let state = match run_lab_test(lab, name.clone()).await {
                    Ok(r) => TestState::Done(r),
                    Err(e) => TestState::Error(server_message(&e)),
                };
                ed.test_results.update(|m| {
                    m.insert(name, state);
                });
            });
        }
    };
    let add = move |kind: &'static str| {
        ed.edit(|t| {
            let first = t.nodes.first().map(|n| n.name.clone()).unwrap_or_default();
            let second = t.nodes.get(1).map(|n| n.name.clone()).unwrap_or_default();
            let mut k = t.tests.len() + 1;
            while t.tests.iter().any(|x| x.name == format!("test {k}")) {
                k += 1;
            }
            t.tests.push(LabTest {
                name: format!("test {k}"),
                ping: (kind == "ping").then(|| PingTest {
                    from: first.clone(),
                    to: second,
                }),
                exec: (kind == "exec").then(|| ExecTest {
                    vm: first,
                    cmd: "hostname".into(),
                }),
                expect: Expect::Pass,
                stdout: None,
                retry_for: None,
            })
        })
    };
    let summary = move || {
        let r = ed.test_results.get();
        let passed = r
            .values()
            .filter(|s| matches!(s, TestState::Done(x) if x.passed))
            .count();
        let pending = r.values().filter(|s| **s == TestState::Pending).count();
        if r.is_empty() {
            String::new()
        } else if pending > 0 {
            format!("{pending} running…")
        } else {
            format!("{passed} of {} passed", r.len())
        }
    };
    view! {
        <div class="tests-panel">
            <div class="tests-bar">
                <strong>"Tests"</strong>
                <button class="run-tests" on:click=run_all prop:disabled=move || count() == 0>
                    "Run tests"
                </button>
                <button class="add-ping-test" on:click=move |_| add("ping")>
                    "Add ping test"
                </button>
                <button class="add-exec-test" on:click=move |_| add("exec")>
                    "Add command test"
                </button>
                <span class="tests-summary">{summary}</span>
                <button class="close" on:click=move |_| ed.tests_open.set(false)>
                    "×"
                </button>
            </div>
            {move || {
                (count() == 0)
                    .then(|| {
                        view! {
                            <p class="muted">
                                "No tests yet: a ping between two VMs, or a command whose output must contain a text."
                            </p>
                        }
                    })
            }}
            <div class="test-rows">
                {move || (0..count()).map(|k| view! { <TestRow ed k /> }).collect_view()}
            </div>
        </div>
    }
}

#[component]
fn TestRow(ed: Ed, k: usize) -> impl IntoView {
    let get = move || ed.topo.get().tests.get(k).cloned();
    let p = move |f: &str| format!("tests[{k}]{f}");
    let problems = [
        ed.problem(p(".name")),
        ed.problem(p("")),
        ed.problem(p(".ping.from")),
        ed.problem(p(".ping.to")),
        ed.problem(p(".exec.vm")),
        ed.problem(p(".exec.cmd")),
        ed.problem(p(".retry_for")),
        ed.problem(p(".stdout")),
    ];
    let problem = move || problems.iter().find_map(|f| f());
    let state = move || {
        let name = get().map(|t| t.name.trim().to_string()).unwrap_or_default();
        ed.test_results.get().get(&name).cloned()
    };
    let mark = move || match state() {
        None => ("", "not run"),
        Some(TestState::Pending) => ("pending", "running…"),
        Some(TestState::Done(r)) if r.passed => ("passed", "passed"),
        Some(TestState::Done(_)) | Some(TestState::Error(_)) => ("failed", "failed"),
    };
    let field = move |label: &'static str,
                      class: &'static str,
                      value: fn(&LabTest) -> String,
                      set: fn(&mut LabTest, String)| {
        view! {
            <label class="field">
                <span>{label}</span>
                <input
                    class=class
                    prop:value=move || get().map(|t| value(&t)).unwrap_or_default()
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        ed.edit(|t| {
                            if let Some(x) = t.tests.get_mut(k) {
                                set(x, v.trim().to_string())
                            }
                        })
                    }
                />
            </label>
        }
    };
    let is_ping = move || get().is_some_and(|t| t.ping.is_some());
    view! {
        <div
            class="test-row"
            data-test=move || get().map(|t| t.name).unwrap_or_default()
            data-state=move || mark().0
        >
            <span class=move || format!("test-mark {}", mark().0)>{move || mark().1}</span>
            {field("name", "test-name", |t| t.name.clone(), |t, v| t.name = v)}
            {move || {
                if is_ping() {
                    view! {
                        <span class="test-kind">
                            {field(
                                "ping from",
                                "test-from",
                                |t| t.ping.as_ref().map(|p| p.from.clone()).unwrap_or_default(),
                                |t, v| {
                                    if let Some(p) = t.ping.as_mut() {
                                        p.from = v;
                                    }
                                },
                            )}
                            {field(
                                "to",
                                "test-to",
                                |t| t.ping.as_ref().map(|p| p.to.clone()).unwrap_or_default(),
                                |t, v| {
                                    if let Some(p) = t.ping.as_mut() {
                                        p.to = v;
                                    }
                                },
                            )}
                        </span>
                    }
                        .into_any()
                } else {
                    view! {
                        <span class="test-kind">
                            {field(
                                "in VM",
                                "test-vm",
                                |t| t.exec.as_ref().map(|e| e.vm.clone()).unwrap_or_default(),
                                |t, v| {
                                    if let Some(e) = t.exec.as_mut() {
                                        e.vm = v;
                                    }
                                },
                            )}
                            {field(
                                "run",
                                "test-cmd",
                                |t| t.exec.as_ref().map(|e| e.cmd.clone()).unwrap_or_default(),
                                |t, v| {
                                    if let Some(e) = t.exec.as_mut() {
                                        e.cmd = v;
                                    }
                                },
                            )}
                            {field(
                                "output has",
                                "test-stdout",
                                |t| t.stdout.clone().unwrap_or_default(),
                                |t, v| t.stdout = Some(v).filter(|s| !s.is_empty()),
                            )}
                        </span>
                    }
                        .into_any()
                }
            }}
            <label class="field">
                <span>"expect"</span>
                <select
                    class="test-expect"
                    prop:value=move || {
                        if get().is_some_and(|t| t.expect == Expect::Fail) {
                            "fail"
                        } else {
                            "pass"
                        }
                    }
                    on:change=move |ev| {
                        let v = event_target_value(&ev);
                        ed.edit(|t| {
                            if let Some(x) = t.tests.get_mut(k) {
                                x.expect = if v == "fail" { Expect::Fail } else { Expect::Pass };
                            }
                        })
                    }
                >
                    <option value="pass">"pass"</option>
                    <option value="fail">"fail"</option>
                </select>
            </label>
            {field(
                "retry for",
                "test-retry",
                |t| t.retry_for.clone().unwrap_or_default(),
                |t, v| t.retry_for = Some(v).filter(|s| !s.is_empty()),
            )}
            <button
                class="remove-test"
                on:click=move |_| {
                    ed.edit(|t| {
                        if k < t.tests.len() {
                            t.tests.remove(k);
                        }
                    })
                }
            >
                "Remove"
            </button>
            {move || problem().map(|m| view! { <span class="field-error">{m}</span> })}
            {move || match state() {
                Some(TestState::Done(r)) if !r.passed => {
                    Some(
                        view! {
                            <pre class="test-output">
                                {format!(
                                    "expected {}; exit code {} after {} attempt(s)\n{}",
                                    r.expected,
                                    r.exit_code,
                                    r.attempts,
                                    r.output,
                                )}
                            </pre>
                        }
                            .into_any(),
                    )
                }
                Some(TestState::Error(e)) => {
                    Some(view! { <pre class="test-output">{e}</pre> }.into_any())
                }
                _ => None,
            }}
        </div>
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn a_failing_ping_highlights_both_vms_their_shared_network_and_its_links() {
        let t = topology::templates::instantiate_builtin("router", "r", &[]).unwrap();
        let result = |passed| TestResult {
            name: "h1 reaches r1".into(),
            vm: "h1".into(),
            passed,
            expected: "exit 0".into(),
            exit_code: 1,
            output: String::new(),
            attempts: 1,
            seconds: 0.1,
            vms: vec!["h1".into(), "r1".into()],
            networks: vec!["lan1".into()],
        };
        let mut m = BTreeMap::new();
        m.insert("a".to_string(), TestState::Done(result(false)));
        m.insert("b".to_string(), TestState::Pending);
        assert_eq!(
            highlighted(&t, &m),
            ["net:lan1", "nic:h1:0", "nic:r1:0", "vm:h1", "vm:r1"]
        );
        m.insert("a".to_string(), TestState::Done(result(true)));
        assert!(highlighted(&t, &m).is_empty());
    }
}
