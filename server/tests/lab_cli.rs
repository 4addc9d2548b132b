//! `minivm up / status / down` as a user runs them, on a copy of
//! examples/router.yaml renamed for this test (so its namespace and devices
//! can never be a real lab's), in a fresh state directory. The guard runs
//! `down --cleanup` even when an assertion fails. Needs root.

mod common;

use common::{leftovers, minivm, text, Down};

#[test]
fn up_status_check_idempotent_up_bad_input_and_down_cleanup() {
    let state = common::state_dir();
    let s = state.path();
    let lab = format!("cli-test-{}", std::process::id());
    let file = common::lab_file(s, "router", &lab);
    let f = file.to_str().unwrap();

    // Unknown image (not a built-in one, which would be built on first
    // use): refused before anything is made.
    let unknown = s.join("unknown-image.yaml");
    std::fs::write(
        &unknown,
        std::fs::read_to_string(&file)
            .unwrap()
            .replace("image: tiny", "image: tiny2"),
    )
    .unwrap();
    let out = minivm(s, &["up", "-f", unknown.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no image named \"tiny2\""),
        "{}",
        text(&out.stderr)
    );
    assert!(!s.join("labs").join(&lab).exists());
    assert!(!engine::net::namespace_exists(
        &topology::names::netns_name(&lab)
    ));

    common::tiny_image(s);
    let _down = Down(s.to_path_buf(), lab.clone());

    // Invalid file: refused, nothing changed.
    let bad = s.join("bad.yaml");
    std::fs::write(
        &bad,
        format!("version: 1\nname: {lab}\nnodes: [{{name: x, cpus: 0}}]\n"),
    )
    .unwrap();
    let out = minivm(s, &["up", "-f", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("nodes[0].cpus"),
        "{}",
        text(&out.stderr)
    );
    assert!(!s.join("labs").join(&lab).exists());

    let out = minivm(s, &["up", "-f", f, "--dry-run", "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(plan.as_array().unwrap().len() >= 12, "{plan:#}");
    assert!(
        !engine::net::namespace_exists(&topology::names::netns_name(&lab)),
        "dry run changes nothing"
    );

    let out = minivm(s, &["up", "-f", f, "--timeout", "300"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("3 VMs ready"));

    let out = minivm(s, &["status", &lab, "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vms = st[0]["vms"].as_array().unwrap();
    assert_eq!(vms.len(), 3);
    assert!(
        vms.iter()
            .all(|v| v["state"] == "running" && v["pid"].as_u64().is_some()),
        "{st:#}"
    );
    let h1 = vms.iter().find(|v| v["name"] == "h1").unwrap();
    assert_eq!(h1["addresses"], serde_json::json!(["eth0=10.10.0.11/24"]));

    let out = minivm(s, &["up", "-f", f, "--dry-run", "--json"]);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap(),
        serde_json::json!([])
    );
    let out = minivm(s, &["up", "-f", f]);
    assert!(
        text(&out.stdout).contains("0 step(s) applied"),
        "{}",
        text(&out.stdout)
    );

    // The connectivity matrix: all six pairs pass (four direct, two routed
    // through r1); with h1's eth0 down, exactly the pairs through it fail.
    let out = minivm(s, &["check", &lab, "--json"]);
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let all: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 6, "{all:#}");
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|o| o["ok"] == true && o["rtt_ms"].as_f64().is_some()),
        "{all:#}"
    );
    let down = minivm(
        s,
        &[
            "exec", &lab, "h1", "--", "ip", "link", "set", "eth0", "down",
        ],
    );
    assert!(down.status.success(), "{}", text(&down.stderr));
    let out = minivm(s, &["check", &lab, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let after: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut failed: Vec<String> = after
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["ok"] == false)
        .map(|o| {
            format!(
                "{}->{}",
                o["from"].as_str().unwrap(),
                o["to"].as_str().unwrap()
            )
        })
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        ["h1->h2", "h1->r1", "h2->h1", "r1->h1"],
        "{after:#}"
    );

    let out = minivm(s, &["down", &lab, "--cleanup"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(leftovers(s, &lab), Vec::<String>::new());
    // `ps` agrees that no QEMU of the lab is left.
    let ps = text(
        &std::process::Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .unwrap()
            .stdout,
    );
    assert!(
        !ps.contains(&format!("minivm:{lab}:")),
        "a QEMU of the lab is left"
    );
}
