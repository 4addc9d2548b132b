//! Two ways in at once: the CLI starts a lab's VM while the web app renames
//! the lab. Both wait for the lab's lock (the test holds it first), then go
//! in either order. Exactly one wins, and nothing is lost: a start that
//! won leaves the VM running and the rename refused (409); a rename that
//! won leaves the start refused (no such lab), nothing at all under the old
//! name, and the VM's disk under the new one. Needs root.

mod common;

use std::io::BufReader;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{minivm, ok, text, Down, Server};

fn exec(state: &Path, lab: &str, script: &str) -> String {
    ok(minivm(
        state,
        &["exec", lab, "vm1", "--", "sh", "-c", script],
    ))
}

/// Waits until `n` processes wait for the flock of the file with inode
/// `inode` (`/proc/locks` lists waiters with `->`).
fn wait_for_waiters(inode: u64, n: usize) {
    let needle = format!(":{inode} ");
    for _ in 0..600 {
        let locks = std::fs::read_to_string("/proc/locks").unwrap();
        let waiting = locks
            .lines()
            .filter(|l| l.contains("->") && l.contains(&needle))
            .count();
        if waiting >= n {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{n} waiter(s) for the lab's lock never came");
}

#[test]
fn a_rename_racing_a_start_has_one_winner_and_loses_nothing() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let names = [
        format!("race-{}", std::process::id()),
        format!("race-{}-r", std::process::id()),
    ];
    let file = s.join("lab.yaml");
    std::fs::write(
        &file,
        format!(
            "version: 1\nname: {}\ndefaults: {{image: tiny}}\nnodes: [{{name: vm1}}]\n",
            names[0]
        ),
    )
    .unwrap();
    let _down = [
        Down(s.to_path_buf(), names[0].clone()),
        Down(s.to_path_buf(), names[1].clone()),
    ];
    ok(minivm(s, &["up", "-f", file.to_str().unwrap()]));
    exec(s, &names[0], "echo kept > /root/kept; sync");
    let server = Server::start(s);
    let mut current = 0;
    let mut winners = Vec::new();
    for round in 0..2 {
        let (from, to) = (&names[current], &names[1 - current]);
        // Saved, so that a start resumes it in a moment.
        ok(minivm(s, &["stop", from, "vm1", "--save"]));
        let lock_path = s.join("labs").join(from).join(".lock");
        let held = engine::fsutil::lock_file(&lock_path, true)
            .unwrap()
            .unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&held.metadata().unwrap());
        let spawn_start = || {
            Command::new(env!("CARGO_BIN_EXE_minivm"))
                .arg("--state-dir")
                .arg(s)
                .args(["start", from, "vm1"])
                .stderr(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let spawn_rename = || {
            let (addr, token) = (server.addr.clone(), server.token.clone());
            let (from, to) = (from.clone(), to.clone());
            std::thread::spawn(move || {
                common::call_at(&addr, &token, "rename_lab", &[("from", &from), ("to", &to)])
                    .unwrap()
            })
        };
        // Round 0 queues the start first, round 1 the rename: the kernel
        // wakes waiters in order, so each side gets to win (either outcome
        // is checked, whichever the kernel picks).
        let (mut start, rename) = if round == 0 {
            let start = spawn_start();
            wait_for_waiters(inode, 1);
            (start, spawn_rename())
        } else {
            let rename = spawn_rename();
            wait_for_waiters(inode, 1);
            (spawn_start(), rename)
        };
        wait_for_waiters(inode, 2);
        let mut said = String::new();
        let mut lines = BufReader::new(start.stderr.take().unwrap());
        drop(held);
        let (code, body) = rename.join().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut lines, &mut rest).unwrap();
        said.push_str(&rest);
        let started = start.wait().unwrap().success();
        let labs = s.join("labs");
        match (started, code) {
            (true, 409) => {
                assert!(body.contains("while VMs run (vm1)"), "{body}");
                assert_eq!(common::states(s, from)["vm1"].0, "running");
                assert!(!labs.join(to).exists(), "the refused rename left {to}");
                winners.push("start");
            }
            (false, 200) => {
                assert!(said.contains(&format!("no lab named {from:?}")), "{said}");
                assert!(
                    !labs.join(from).exists(),
                    "the refused start left {from}: {:?}",
                    std::fs::read_dir(labs.join(from)).map(|d| d.count())
                );
                assert!(labs.join(to).join("vms/vm1/overlay.qcow2").exists());
                assert!(engine::lab::running_qemus(from).is_empty());
                ok(minivm(s, &["start", to, "vm1"]));
                current = 1 - current;
                winners.push("rename");
            }
            other => {
                panic!("round {round}: not one winner: start {started} ({said}), rename {other:?}")
            }
        }
        // Nothing lost: the VM has its disk, under whichever name won.
        assert_eq!(exec(s, &names[current], "cat /root/kept"), "kept\n");
    }
    println!("winners: {winners:?}");
    drop(server);
    ok(minivm(s, &["down", &names[current], "--cleanup"]));
    let out = minivm(s, &["status", &names[1 - current]]);
    assert!(!out.status.success(), "{}", text(&out.stdout));
}
