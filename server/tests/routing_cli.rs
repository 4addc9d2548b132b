//! Routing labs as a user runs them, with the `frr` image: the OSPF triangle
//! of examples/ospf.yaml (three FRR routers, a host behind each) converges,
//! every host reaches every other host and every router's loopback, vtysh
//! through `exec` shows Full neighbours, and cutting a triangle link in a
//! guest reroutes around it; the BGP line of examples/bgp.yaml (three ASes)
//! converges and its hosts ping across it. Needs root.

mod common;

use std::time::{Duration, Instant};

use common::{minivm, ok, text, Down};

/// The two labs run one after the other: each is five or six VMs under TCG.
static ONE_LAB_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `minivm exec LAB VM -- ARGS`: (exit code, stdout + stderr).
fn exec(state: &std::path::Path, lab: &str, vm: &str, args: &[&str]) -> (i32, String) {
    let mut argv = vec!["exec", lab, vm, "--"];
    argv.extend_from_slice(args);
    let out = minivm(state, &argv);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout) + &text(&out.stderr),
    )
}

/// Polls `what` until it holds or `limit` passes; the last output on failure.
fn eventually(limit: Duration, what: &str, mut f: impl FnMut() -> Result<(), String>) {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(()) => return,
            Err(last) if Instant::now() > deadline => {
                panic!("{what}: not within {limit:?}; last:\n{last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

fn pings(state: &std::path::Path, lab: &str, vm: &str, addr: &str) -> Result<(), String> {
    match exec(state, lab, vm, &["ping", "-c", "1", "-W", "2", addr]) {
        (0, _) => Ok(()),
        (code, out) => Err(format!("{vm} -> {addr}: exit {code}\n{out}")),
    }
}

fn images(state: &std::path::Path) {
    common::tiny_image(state);
    common::frr_image(state);
}

#[test]
fn ospf_triangle_converges_reaches_everything_and_reroutes_around_a_cut() {
    let _one = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let state = common::state_dir();
    let s = state.path();
    images(s);
    let lab = format!("ospf-{}", std::process::id());
    let file = common::lab_file_with_sources(s, "ospf", &lab);
    let _down = Down(s.to_path_buf(), lab.clone());
    ok(minivm(s, &["up", "-f", file.to_str().unwrap()]));

    // Converged: each router has its two triangle neighbours Full.
    for r in ["r1", "r2", "r3"] {
        eventually(
            Duration::from_secs(90),
            &format!("{r}'s OSPF neighbours"),
            || {
                let (code, out) = exec(s, &lab, r, &["vtysh", "-c", "show ip ospf neighbor"]);
                match out.matches("Full/").count() {
                    2 if code == 0 => Ok(()),
                    _ => Err(out),
                }
            },
        );
    }
    // Every host reaches every other host and every router's loopback.
    let hosts = [
        ("h1", "10.1.0.10"),
        ("h2", "10.2.0.10"),
        ("h3", "10.3.0.10"),
    ];
    let loopbacks = ["10.255.0.1", "10.255.0.2", "10.255.0.3"];
    for (from, _) in hosts {
        let targets = hosts
            .iter()
            .filter(|(h, _)| *h != from)
            .map(|(_, a)| *a)
            .chain(loopbacks);
        for addr in targets {
            eventually(Duration::from_secs(30), "ping", || {
                pings(s, &lab, from, addr)
            });
        }
    }
    // Shortest path first: once SPF has run on every LSA (its hold timer
    // can leave a detour through r3 in place for a few seconds after the
    // adjacencies are Full), h2 is reached over the direct r1-r2 link.
    eventually(Duration::from_secs(30), "direct route r1 -> r2", || {
        let (_, route) = exec(s, &lab, "r1", &["ip", "route", "get", "10.2.0.10"]);
        if route.contains("via 10.0.12.2 dev eth0") {
            Ok(())
        } else {
            Err(route)
        }
    });

    // Cut r1-r2 inside r1: traffic to h2 goes round through r3.
    let (code, out) = exec(s, &lab, "r1", &["ip", "link", "set", "eth0", "down"]);
    assert_eq!(code, 0, "{out}");
    eventually(Duration::from_secs(60), "reroute via r3", || {
        let (_, route) = exec(s, &lab, "r1", &["ip", "route", "get", "10.2.0.10"]);
        if route.contains("via 10.0.13.3 dev eth1") {
            Ok(())
        } else {
            Err(route)
        }
    });
    eventually(Duration::from_secs(30), "h1 -> h2 after the cut", || {
        pings(s, &lab, "h1", "10.2.0.10")
    });
    eventually(Duration::from_secs(30), "h2 -> h1 after the cut", || {
        pings(s, &lab, "h2", "10.1.0.10")
    });

    ok(minivm(s, &["down", &lab, "--cleanup"]));
    assert_eq!(common::leftovers(s, &lab), Vec::<String>::new());
}

#[test]
fn bgp_line_of_three_ases_converges_and_hosts_ping_across() {
    let _one = ONE_LAB_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let state = common::state_dir();
    let s = state.path();
    images(s);
    let lab = format!("bgp-{}", std::process::id());
    let file = common::lab_file_with_sources(s, "bgp", &lab);
    let _down = Down(s.to_path_buf(), lab.clone());
    ok(minivm(s, &["up", "-f", file.to_str().unwrap()]));

    // AS 65002 has both sessions up and has learned each end's network.
    eventually(Duration::from_secs(90), "r2's BGP table", || {
        let (_, out) = exec(s, &lab, "r2", &["vtysh", "-c", "show ip bgp"]);
        if out.contains("10.1.0.0/24") && out.contains("10.3.0.0/24") {
            Ok(())
        } else {
            Err(out)
        }
    });
    let (code, summary) = exec(s, &lab, "r2", &["vtysh", "-c", "show bgp summary"]);
    assert_eq!(code, 0, "{summary}");
    assert!(
        summary.contains("65001") && summary.contains("65003"),
        "{summary}"
    );
    // r1 learned AS 65003's network through 65002 (AS path 65002 65003).
    let (_, r1) = exec(s, &lab, "r1", &["vtysh", "-c", "show ip bgp 10.3.0.0/24"]);
    assert!(r1.contains("65002 65003"), "{r1}");
    eventually(Duration::from_secs(30), "h1 -> h3", || {
        pings(s, &lab, "h1", "10.3.0.10")
    });
    eventually(Duration::from_secs(30), "h3 -> h1", || {
        pings(s, &lab, "h3", "10.1.0.10")
    });

    ok(minivm(s, &["down", &lab, "--cleanup"]));
    assert_eq!(common::leftovers(s, &lab), Vec::<String>::new());
}
