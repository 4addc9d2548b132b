//! Load on a real `minivm serve`:
//! - 50 websocket clients stay connected while the 8 VMs of a lab start
//!   and stop (through the web app's Start and Stop): every client gets
//!   every event, in order, with sequence numbers without a gap, and all
//!   get the same stream.
//! - 20 saves of one lab at once, all from the same revision: exactly one
//!   wins, the other 19 get 409 Conflict, the stored lab is the winner's.
//! - 20 writers that each add their own VM, reloading and retrying on a
//!   conflict: exactly one save wins per revision, and no edit is lost.
//!
//! The figures (event counts, time to deliver, conflicts) are printed.
//! Needs root.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use common::{Down, Server};
use futures_util::StreamExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const CLIENTS: usize = 50;
const VMS: usize = 8;
const WRITERS: usize = 20;

fn lab_text(name: &str) -> String {
    let mut y = format!(
        "version: 1\nname: {name}\ndefaults: {{image: tiny, cpus: 1, memory_mib: 128}}\nnetworks: [{{name: lan, subnet: 10.41.0.0/24}}]\nnodes:\n"
    );
    for i in 1..=VMS {
        y += &format!("  - {{name: vm{i}, nics: [{{network: lan}}]}}\n");
    }
    y
}

/// The stored lab: its topology (JSON value) and revision.
fn get(server: &Server, lab: &str) -> (Value, String) {
    let (code, body) = server.call("get_lab", &[("name", lab)]);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    (
        v["topology"].clone(),
        v["revision"].as_str().unwrap().to_string(),
    )
}

fn save(server: &Server, t: &Value, revision: &str) -> (u16, String) {
    server.call(
        "save_lab",
        &[("topology_json", &t.to_string()), ("revision", revision)],
    )
}

/// Waits until `lab`'s VMs are all in `state` (by `minivm status`).
fn wait_all(state: &std::path::Path, lab: &str, want: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let st = common::states(state, lab);
        if st.len() == VMS && st.values().all(|(s, _)| s == want) {
            return;
        }
        assert!(Instant::now() < deadline, "not all {want}: {st:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn fifty_clients_see_every_event_and_concurrent_saves_conflict_cleanly() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let lab = format!("load-test-{}", std::process::id());
    let _down = Down(s.to_path_buf(), lab.clone());
    let server = Server::start(s);
    let (code, body) = server.call("import_lab", &[("text", &lab_text(&lab))]);
    assert_eq!(code, 200, "{body}");

    // 50 clients, each collecting the stream from the first event on,
    // until it has seen the sentinel revision (saved at the very end).
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sentinel: Arc<std::sync::Mutex<Option<String>>> = Default::default();
    let connected = Arc::new(tokio::sync::Barrier::new(CLIENTS + 1));
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let url = format!("ws://{}/ws/events?since=0", server.addr);
        let origin = format!("http://{}", server.addr);
        let token = server.token.clone();
        let (sentinel, connected) = (sentinel.clone(), connected.clone());
        let lab = lab.clone();
        clients.push(rt.spawn(async move {
            let mut req = url.into_client_request().unwrap();
            req.headers_mut().insert("origin", origin.parse().unwrap());
            req.headers_mut()
                .insert("x-minivm-token", token.parse().unwrap());
            let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
            connected.wait().await;
            let mut seqs = Vec::new();
            let mut events = Vec::new();
            while let Some(m) = ws.next().await {
                let Message::Text(text) = m.unwrap() else {
                    continue;
                };
                let e: Value = serde_json::from_str(&text).unwrap();
                seqs.push(e["seq"].as_u64().unwrap());
                let done = e["type"] == "lab_changed"
                    && e["lab"] == lab.as_str()
                    && e["revision"].as_str().is_some()
                    && sentinel.lock().unwrap().as_deref() == e["revision"].as_str();
                events.push(e);
                if done {
                    break;
                }
            }
            (seqs, events)
        }));
    }
    rt.block_on(connected.wait());

    // 8 VMs start and stop through the web app, while the 50 listen.
    let started = Instant::now();
    let (code, body) = server.call("lab_action", &[("lab", &lab), ("action", "start")]);
    assert_eq!(code, 200, "{body}");
    wait_all(s, &lab, "running", Duration::from_secs(400));
    let up = started.elapsed();
    let (code, body) = server.call("lab_action", &[("lab", &lab), ("action", "stop")]);
    assert_eq!(code, 200, "{body}");
    wait_all(s, &lab, "stopped", Duration::from_secs(120));
    // Let the watcher report the last states, then the sentinel save.
    std::thread::sleep(Duration::from_millis(500));
    let (mut t, rev) = get(&server, &lab);
    t["nodes"][0]["position"] = serde_json::json!({"x": 1.0, "y": 1.0});
    // Its revision is known before the save (the hash of the stored bytes):
    // the save announces it at once, maybe before its answer is read.
    let model: topology::Topology = serde_json::from_value(t.clone()).unwrap();
    let sentinel_rev = topology::revision_of(topology::to_json(&model).as_bytes());
    *sentinel.lock().unwrap() = Some(sentinel_rev.clone());
    let waited = Instant::now();
    let (code, body) = save(&server, &t, &rev);
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<String>(&body).unwrap(), sentinel_rev);
    let results: Vec<(Vec<u64>, Vec<Value>)> = rt.block_on(async {
        let mut out = Vec::new();
        for c in clients {
            out.push(
                tokio::time::timeout(Duration::from_secs(30), c)
                    .await
                    .expect("every client sees the sentinel")
                    .unwrap(),
            );
        }
        out
    });
    let delivered = waited.elapsed();

    let (first_seqs, first_events) = &results[0];
    let n = first_seqs.len() as u64;
    assert_eq!(
        *first_seqs,
        (1..=n).collect::<Vec<_>>(),
        "from 1, without a gap"
    );
    for (i, (seqs, events)) in results.iter().enumerate() {
        assert_eq!(seqs, first_seqs, "client {i}: the same sequence");
        assert_eq!(events, first_events, "client {i}: the same events");
    }
    let vm_events = first_events
        .iter()
        .filter(|e| e["type"] == "vm_state" && e["lab"] == lab.as_str())
        .count();
    for state in ["starting", "running", "stopped"] {
        let vms: BTreeSet<&str> = first_events
            .iter()
            .filter(|e| e["type"] == "vm_state" && e["lab"] == lab.as_str() && e["state"] == state)
            .map(|e| e["vm"].as_str().unwrap())
            .collect();
        assert_eq!(vms.len(), VMS, "every VM was seen {state}: {vms:?}");
    }
    eprintln!(
        "{CLIENTS} clients: each got the same {n} events (seq 1..={n}, no gap; {vm_events} VM state changes) while {VMS} VMs started ({:.1} s) and stopped; the last reached all {CLIENTS} within {delivered:?} of its save",
        up.as_secs_f64()
    );

    // 20 saves at once from one revision: one wins, 19 conflict.
    let (t, rev) = get(&server, &lab);
    let barrier = Arc::new(Barrier::new(WRITERS));
    let answers: Vec<(usize, u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|i| {
                let (mut t, rev, barrier, server) =
                    (t.clone(), rev.clone(), barrier.clone(), &server);
                scope.spawn(move || {
                    t["nodes"][1]["position"] = serde_json::json!({"x": i as f64, "y": 2.0});
                    barrier.wait();
                    let (code, body) = save(server, &t, &rev);
                    (i, code, body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<&(usize, u16, String)> = answers.iter().filter(|a| a.1 == 200).collect();
    assert_eq!(winners.len(), 1, "exactly one wins: {answers:?}");
    for (i, code, body) in &answers {
        assert!(
            *code == 200 || (*code == 409 && body.contains("changed elsewhere")),
            "writer {i}: {code} {body}"
        );
    }
    let (stored, _) = get(&server, &lab);
    assert_eq!(
        stored["nodes"][1]["position"]["x"].as_f64(),
        Some(winners[0].0 as f64),
        "the stored lab is the winner's"
    );

    // 20 writers, each adding its own VM, retrying on conflict: nothing lost.
    let started = Instant::now();
    let wins: Vec<(String, String, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..WRITERS)
            .map(|i| {
                let server = &server;
                let lab = lab.clone();
                scope.spawn(move || {
                    let mut conflicts = 0;
                    loop {
                        let (mut t, rev) = get(server, &lab);
                        t["nodes"].as_array_mut().unwrap().push(serde_json::json!({
                            "name": format!("w{i}"),
                            "nics": [{"network": "lan"}]
                        }));
                        let (code, body) = save(server, &t, &rev);
                        match code {
                            200 => {
                                return (
                                    rev,
                                    serde_json::from_str::<String>(&body).unwrap(),
                                    conflicts,
                                )
                            }
                            409 => conflicts += 1,
                            _ => panic!("writer {i}: {code} {body}"),
                        }
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let took = started.elapsed();
    let from: BTreeSet<&String> = wins.iter().map(|w| &w.0).collect();
    assert_eq!(from.len(), WRITERS, "one winner per revision: {wins:?}");
    let (stored, last) = get(&server, &lab);
    let names: BTreeSet<String> = stored["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap().to_string())
        .collect();
    for i in 0..WRITERS {
        assert!(names.contains(&format!("w{i}")), "w{i} was lost: {names:?}");
    }
    assert_eq!(names.len(), VMS + WRITERS);
    assert!(wins.iter().any(|w| w.1 == last));
    let conflicts: usize = wins.iter().map(|w| w.2).sum();
    eprintln!(
        "{WRITERS} saves from one revision: 1 won, {} got 409; {WRITERS} retrying writers: all {WRITERS} edits kept, {conflicts} conflicts retried, {took:?} in all",
        WRITERS - 1
    );
}
