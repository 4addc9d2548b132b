//! containerlab import as a user runs it: the FRR triangle of
//! examples/clab/frr-triangle (three FRR routers in a group with
//! startup-config files and daemons through extras, three PCs configured
//! by exec lines) imported from its files, brought up: OSPF converges,
//! `check` passes every pair, every PC pings every other PC. Stored in the
//! state directory without -o, refused a second time under the same name;
//! bad input imports nothing. Needs root.

mod common;

use std::time::{Duration, Instant};

use common::{minivm, ok, text, Down};

#[test]
fn the_frr_triangle_imports_comes_up_and_converges() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    common::frr_image(s);
    let src = s.join("clab");
    common::copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/clab/frr-triangle"),
        &src,
    );
    let clab = src.join("frr-triangle.clab.yml");
    let lab = format!("clab-{}", std::process::id());

    // Bad input: nothing imported, the place named.
    let bad = src.join("bad.clab.yml");
    std::fs::write(&bad, "name: x\ntopology:\n  nodes: {a: {kind: linux}}\n  links: [{endpoints: [\"a:eth1\", \"b:eth1\"]}]\n").unwrap();
    let out = minivm(s, &["import", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("topology.links[0].endpoints[1]: no node \"b\""),
        "{}",
        text(&out.stderr)
    );
    assert!(!s.join("labs/x").exists());

    // Stored: once; the same name again is refused.
    ok(minivm(
        s,
        &[
            "import",
            clab.to_str().unwrap(),
            "--name",
            &format!("{lab}-stored"),
        ],
    ));
    let out = minivm(
        s,
        &[
            "import",
            clab.to_str().unwrap(),
            "--name",
            &format!("{lab}-stored"),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("exists already"),
        "{}",
        text(&out.stderr)
    );

    // Written, then brought up as any lab file.
    let yaml = s.join("lab.yaml");
    let out = minivm(
        s,
        &[
            "import",
            clab.to_str().unwrap(),
            "--name",
            &lab,
            "-o",
            yaml.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("report: topology.nodes.Router1: named \"router1\" here"));
    let _down = Down(s.to_path_buf(), lab.clone());
    ok(minivm(s, &["up", "-f", yaml.to_str().unwrap()]));

    let deadline = Instant::now() + Duration::from_secs(90);
    for r in ["router1", "router2", "router3"] {
        loop {
            let out = minivm(
                s,
                &[
                    "exec",
                    &lab,
                    r,
                    "--",
                    "vtysh",
                    "-c",
                    "show ip ospf neighbor",
                ],
            );
            if text(&out.stdout).matches("Full/").count() == 2 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{r}: OSPF did not converge:\n{}",
                text(&out.stdout)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    // Every pair the lab implies, PCs through their routers included.
    let mut last = String::new();
    let passed = (0..30).any(|_| {
        let out = minivm(s, &["check", &lab]);
        last = text(&out.stdout);
        out.status.success() || {
            std::thread::sleep(Duration::from_secs(1));
            false
        }
    });
    assert!(passed, "{last}");
    for (from, to) in [
        ("pc1", "192.168.12.2"),
        ("pc2", "192.168.13.2"),
        ("pc3", "192.168.11.2"),
    ] {
        let out = minivm(
            s,
            &["exec", &lab, from, "--", "ping", "-c", "1", "-W", "3", to],
        );
        assert!(
            out.status.success(),
            "{from} -> {to}: {}",
            text(&out.stdout)
        );
    }
    ok(minivm(s, &["down", &lab, "--cleanup"]));
    assert_eq!(common::leftovers(s, &lab), Vec::<String>::new());
}
