//! A save torn by kill -9 never leaves a lab unreadable: a writer saves a
//! 120-VM lab over and over through `minivm serve` while the server is
//! killed -9 at 20 random moments. After each kill the lab reads and
//! validates, and holds either the last acknowledged save or the one that
//! was in flight; the next save removes the killed writer's temporary file.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{call_at, Server};
use serde_json::Value;

fn lab_text(name: &str) -> String {
    let mut y = format!(
        "version: 1\nname: {name}\ndefaults: {{image: tiny}}\nnetworks: [{{name: lan, subnet: 10.0.0.0/16}}]\nnodes:\n"
    );
    for i in 1..=120 {
        y +=
            &format!("  - {{name: vm{i}, nics: [{{network: lan}}], position: {{x: 0, y: {i}}}}}\n");
    }
    y
}

#[test]
fn saves_killed_mid_write_never_leave_a_lab_unreadable() {
    let state = common::state_dir();
    let s = state.path();
    let lab = format!("torn-test-{}", std::process::id());
    let store = engine::LabStore::open(s).unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    let mut x = seed | 1;
    let mut saves_total = 0u64;
    eprintln!("seed {seed}");
    for round in 0..20 {
        let mut server = Server::start(s);
        if round == 0 {
            let (code, body) = server.call("import_lab", &[("text", &lab_text(&lab))]);
            assert_eq!(code, 200, "{body}");
        }
        // The writer: each save sets vm1's x to the next number, until the
        // server is gone.
        let before = store
            .get(&lab)
            .map(|(t, _)| t.nodes[0].position.as_ref().unwrap().x as u64)
            .unwrap_or(0);
        let acked = Arc::new(AtomicU64::new(before));
        let writer = {
            let (acked, lab, addr, token) = (
                acked.clone(),
                lab.clone(),
                server.addr.clone(),
                server.token.clone(),
            );
            std::thread::spawn(move || {
                let mut saves = 0u64;
                while let Ok((200, body)) = call_at(&addr, &token, "get_lab", &[("name", &lab)]) {
                    let v: Value = serde_json::from_str(&body).unwrap();
                    let mut t = v["topology"].clone();
                    let n = t["nodes"][0]["position"]["x"].as_f64().unwrap() as u64 + 1;
                    t["nodes"][0]["position"]["x"] = n.into();
                    let rev = v["revision"].as_str().unwrap();
                    let form = [
                        ("topology_json", t.to_string()),
                        ("revision", rev.to_string()),
                    ];
                    let form: Vec<(&str, &str)> =
                        form.iter().map(|(k, v)| (*k, v.as_str())).collect();
                    match call_at(&addr, &token, "save_lab", &form) {
                        Ok((200, _)) => {
                            acked.store(n, Ordering::SeqCst);
                            saves += 1;
                        }
                        _ => break,
                    }
                }
                saves
            })
        };
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        std::thread::sleep(Duration::from_millis(30 + x % 300));
        server.kill();
        saves_total += writer.join().unwrap();

        let (t, _) = store
            .get(&lab)
            .unwrap_or_else(|e| panic!("round {round}: the lab is unreadable: {e}"));
        assert!(topology::validate(&t).is_empty());
        assert_eq!(t.nodes.len(), 120);
        let stored = t.nodes[0].position.as_ref().unwrap().x as u64;
        let last = acked.load(Ordering::SeqCst);
        assert!(
            stored == last || stored == last + 1,
            "round {round}: stored {stored}, last acknowledged {last}"
        );
    }
    // A save after the kills leaves only the lab's own files (its record,
    // and the lock file that every operation on it takes, the import's
    // among them).
    let (t, rev) = store.get(&lab).unwrap();
    store
        .put(&t, Some(&rev))
        .map(|_| ())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut names: Vec<String> = std::fs::read_dir(s.join("labs").join(&lab))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [".lock", "topology.json"],
        "no temporary file is left"
    );
    eprintln!(
        "{saves_total} saves acknowledged across 20 kills -9; the lab read back whole every time"
    );
}
