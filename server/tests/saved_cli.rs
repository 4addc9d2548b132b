//! Saved VM state as a user runs it: a process started in a guest and a
//! file written in its /tmp survive `stop --save` and `start` (the VM
//! resumes where it was, ready at once, its exec commands not run again);
//! `status` shows the state saved; a changed memory size discards the
//! saved state with the reason in `up`'s progress and the VM boots afresh.
//! Needs root.

mod common;

use common::{minivm, ok, text, Down};

fn exec(state: &std::path::Path, lab: &str, vm: &str, args: &[&str]) -> (i32, String) {
    let mut argv = vec!["exec", lab, vm, "--"];
    argv.extend_from_slice(args);
    let out = minivm(state, &argv);
    (out.status.code().unwrap_or(-1), text(&out.stdout))
}

#[test]
fn a_saved_vm_resumes_with_its_processes_and_files_and_a_changed_one_boots_afresh() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let lab = format!("saved-cli-{}", std::process::id());
    let file = s.join("lab.yaml");
    let yaml = format!(
        "version: 1\nname: {lab}\ndefaults: {{image: tiny}}\nnetworks: [{{name: lan, subnet: 10.37.0.0/24}}]\nnodes:\n  - name: a\n    nics: [{{network: lan}}]\n    exec: [\"sh -c \\\"echo run >> /tmp/exec-runs\\\"\"]\n  - name: b\n    nics: [{{network: lan}}]\n"
    );
    std::fs::write(&file, &yaml).unwrap();
    let f = file.to_str().unwrap();
    let _down = Down(s.to_path_buf(), lab.clone());
    ok(minivm(s, &["up", "-f", f]));

    // A process and a file that only live in the guest's memory.
    let (code, pid) = exec(
        s,
        &lab,
        "a",
        &[
            "sh",
            "-c",
            "echo kept > /tmp/x; sleep 100000 > /dev/null 2>&1 & echo $!",
        ],
    );
    assert_eq!(code, 0);
    let pid = pid.trim().to_string();

    let out = minivm(s, &["stop", "--save", &lab, "a"]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("a saved (") && said.contains("its next start resumes it"),
        "{said}"
    );
    let st: serde_json::Value =
        serde_json::from_str(&ok(minivm(s, &["status", &lab, "--json"]))).unwrap();
    let a = st[0]["vms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "a")
        .unwrap()
        .clone();
    assert_eq!(a["state"], "stopped");
    assert!(a["saved_bytes"].as_u64().unwrap() > 0, "{a}");

    let out = minivm(s, &["start", &lab, "a"]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("a is resumed from its saved state"), "{said}");
    let (code, out) = exec(
        s,
        &lab,
        "a",
        &[
            "sh",
            "-c",
            &format!("cat /tmp/x; kill -0 {pid} && echo alive; cat /tmp/exec-runs"),
        ],
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "kept\nalive\nrun\n"),
        "one boot, one exec run"
    );
    // a and b still talk.
    ok(minivm(s, &["check", &lab]));

    // Saved again, then more memory: the state no longer fits.
    ok(minivm(s, &["stop", "--save", &lab]));
    std::fs::write(
        &file,
        yaml.replace("  - name: a\n", "  - name: a\n    memory_mib: 160\n"),
    )
    .unwrap();
    let out = minivm(s, &["up", "-f", f]);
    let said = text(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(
        said.contains("a's saved state is discarded (memory 128 → 160 MiB): it boots afresh"),
        "{said}"
    );
    assert!(said.contains("b is resumed from its saved state"), "{said}");
    let (_, out) = exec(
        s,
        &lab,
        "a",
        &["sh", "-c", "cat /tmp/x 2>/dev/null; cat /tmp/exec-runs"],
    );
    assert_eq!(out, "run\n", "a booted afresh and ran its exec once");

    ok(minivm(s, &["down", &lab, "--cleanup"]));
    assert_eq!(common::leftovers(s, &lab), Vec::<String>::new());
}
