//! kill -9 of `minivm up` at random moments (one early, one in the middle
//! of making devices and disks, one while VMs boot; the moments are printed
//! so that a failure can be replayed with MINIVM_KILL_SEED): each time the
//! next `up` converges to a fully running lab that plans nothing, and
//! `down --cleanup` leaves no process, namespace, interface or file.
//! Needs root.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{leftovers, minivm, ok, states, Down};

/// A small deterministic generator: the moments are random per run, and
/// reproducible from the printed seed.
fn moments(seed: u64) -> Vec<u64> {
    let mut x = seed | 1;
    let mut next = |lo: u64, hi: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        lo + x % (hi - lo)
    };
    vec![next(0, 300), next(300, 1200), next(1200, 4000)]
}

#[test]
fn up_killed_at_random_moments_then_up_converges_and_down_leaves_nothing() {
    let state = common::state_dir();
    let s = state.path();
    let lab = format!("kill-test-{}", std::process::id());
    let file = common::lab_file(s, "router", &lab);
    let f = file.to_str().unwrap();
    ok(minivm(s, &["image", "build"]));
    let _down = Down(s.to_path_buf(), lab.clone());

    let seed = std::env::var("MINIVM_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let at = moments(seed);
    eprintln!("MINIVM_KILL_SEED={seed}: kill -9 of `minivm up` after {at:?} ms");
    for ms in at {
        let mut up = Command::new(env!("CARGO_BIN_EXE_minivm"))
            .arg("--state-dir")
            .arg(s)
            .args(["up", "-f", f])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        up.kill().unwrap(); // SIGKILL, to the process this test started
        up.wait().unwrap();

        ok(minivm(s, &["up", "-f", f, "--timeout", "300"]));
        let st = states(s, &lab);
        assert!(
            st.values()
                .all(|(state, pid)| state == "running" && pid.is_some()),
            "after a kill at {ms} ms: {st:?}"
        );
        assert_eq!(st.len(), 3);
        let plan = ok(minivm(s, &["up", "-f", f, "--dry-run", "--json"]));
        assert_eq!(
            plan.trim(),
            "[]",
            "after a kill at {ms} ms the lab is converged"
        );
        ok(minivm(
            s,
            &[
                "exec",
                &lab,
                "h1",
                "--",
                "ping",
                "-c",
                "1",
                "-W",
                "5",
                "10.20.0.12",
            ],
        ));

        ok(minivm(s, &["down", &lab, "--cleanup"]));
        assert_eq!(
            leftovers(s, &lab),
            Vec::<String>::new(),
            "after a kill at {ms} ms"
        );
    }
}
