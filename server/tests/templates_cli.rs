//! Templates and lab tests as a user runs them: each small built-in
//! template (up to 4 VMs: lan, router, star with 3 hosts) becomes a lab
//! with `minivm new -o`, comes up, and passes its own tests with `minivm
//! test`; a deliberately failing expectation fails with its name and the
//! output that did not match, exit 1, and `--junit` writes XML a reader
//! parses. The FRR templates (6 or more VMs) run in the longer run:
//! `cargo test -p server --test templates_cli -- --ignored`. Needs root.

mod common;

use common::{minivm, ok, text, Down};

fn lab_from_template(template: &str, sets: &[&str], with_frr: bool) {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    if with_frr {
        common::frr_image(s);
    }
    let lab = format!(
        "tp-{}-{}",
        template.replace("ospf-", "o"),
        std::process::id()
    );
    let file = s.join("lab.yaml");
    let mut argv = vec![
        "new",
        &lab,
        "--template",
        template,
        "-o",
        file.to_str().unwrap(),
    ];
    for set in sets {
        argv.extend(["--set", set]);
    }
    ok(minivm(s, &argv));
    let _down = Down(s.to_path_buf(), lab.clone());
    ok(minivm(s, &["up", "-f", file.to_str().unwrap()]));
    // A bare file name, written in the directory the command runs in.
    let junit = s.join("junit.xml");
    let out = common::minivm_in(s, s, &["test", &lab, "--junit", "junit.xml"]);
    let said = text(&out.stdout);
    assert!(
        out.status.success(),
        "{template}: {said}{}",
        text(&out.stderr)
    );
    assert!(
        said.contains(" failed") && said.contains(" 0 failed"),
        "{said}"
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit XML parses");
    assert_eq!(
        doc.descendants()
            .filter(|n| n.has_tag_name("failure"))
            .count(),
        0
    );
    ok(minivm(s, &["down", &lab, "--cleanup"]));
}

#[test]
fn lan_template_comes_up_and_passes_its_tests() {
    lab_from_template("lan", &[], false);
}

#[test]
fn router_template_comes_up_and_passes_its_tests() {
    lab_from_template("router", &["net=10.71.0.0/16"], false);
}

#[test]
fn star_template_of_three_comes_up_and_passes_its_tests() {
    lab_from_template("star", &["n=3"], false);
}

#[test]
#[ignore = "longer run: 6+ FRR/tiny VMs each"]
fn frr_templates_come_up_and_pass_their_tests() {
    lab_from_template("ospf-triangle", &[], true);
    lab_from_template("bgp", &[], true);
    lab_from_template("ospf-ring", &["n=4"], true);
}

#[test]
fn a_failing_expectation_fails_with_its_name_and_output_and_junit_says_so() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let lab = format!("tpfail-{}", std::process::id());
    let file = s.join("lab.yaml");
    ok(minivm(
        s,
        &[
            "new",
            &lab,
            "--template",
            "lan",
            "--set",
            "net=10.72.0.0/16",
            "-o",
            file.to_str().unwrap(),
        ],
    ));
    let mut yaml = std::fs::read_to_string(&file).unwrap();
    yaml += "- name: h1 is called zebra\n  exec: {vm: h1, cmd: cat /etc/hostname}\n  stdout: zebra\n  retry_for: 2s\n";
    yaml += "- name: nothing answers at .99\n  ping: {from: h1, to: 10.72.1.99}\n  expect: fail\n";
    std::fs::write(&file, yaml).unwrap();
    let _down = Down(s.to_path_buf(), lab.clone());
    ok(minivm(s, &["up", "-f", file.to_str().unwrap()]));
    // A bare file name, written in the directory the command runs in.
    let junit = s.join("junit.xml");
    let out = common::minivm_in(s, s, &["test", &lab, "--junit", "junit.xml"]);
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("FAIL  h1 is called zebra"), "{said}");
    assert!(
        said.contains("expected exit 0 with \"zebra\" in the output"),
        "{said}"
    );
    assert!(
        said.contains("      | h1"),
        "the output that did not match: {said}"
    );
    assert!(said.contains("ok    nothing answers at .99"), "{said}");
    assert!(said.contains("4 test(s): 3 passed, 1 failed"), "{said}");

    let xml = std::fs::read_to_string(&junit).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("JUnit XML parses");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .unwrap();
    assert_eq!(suite.attribute("tests"), Some("4"));
    assert_eq!(suite.attribute("failures"), Some("1"));
    let failed: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .filter(|c| c.children().any(|f| f.has_tag_name("failure")))
        .map(|c| c.attribute("name").unwrap().to_string())
        .collect();
    assert_eq!(failed, ["h1 is called zebra"]);

    let out = minivm(s, &["test", &lab, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout)).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 4);
    ok(minivm(s, &["down", &lab, "--cleanup"]));
}
