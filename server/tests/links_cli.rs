//! `minivm capture` and `minivm link` as a user runs them, on a two-VM lab
//! of the test's own: a capture on h1:eth0 while h1 pings h2, read back by
//! an independent reader (Debian's tcpdump), holds the echo request and
//! reply with the right addresses; `-f icmp` keeps ARP out; `-c 3` stops
//! after 3 packets; a capture on the network sees the same ping. `link`
//! changes several parameters at once, live, and `status` shows them; a
//! 200 ms delay shows in the RTT (netem, or the relay without it), and
//! bad input is refused naming the field. Needs root.

mod common;

use std::process::{Command, Stdio};

use common::{minivm, ok, text, Down};

fn lab_yaml(lab: &str) -> String {
    format!(
        "version: 1
name: {lab}
defaults: {{image: tiny}}
networks:
  - {{name: lan, subnet: 10.31.0.0/24}}
nodes:
  - {{name: h1, nics: [{{network: lan, address: 10.31.0.11/24}}]}}
  - {{name: h2, nics: [{{network: lan, address: 10.31.0.12/24}}]}}
"
    )
}

/// `tcpdump -r FILE -n` lines.
fn tcpdump(file: &std::path::Path) -> Vec<String> {
    let out = Command::new("tcpdump")
        .args(["-r"])
        .arg(file)
        .args(["-n", "-e"])
        .output()
        .expect("tcpdump is installed (scripts/setup.sh)");
    assert!(out.status.success(), "tcpdump: {}", text(&out.stderr));
    text(&out.stdout).lines().map(str::to_string).collect()
}

/// Starts `minivm capture ARGS` in the background, waits until it says it
/// captures, runs `during`, then waits for the capture to end (by its own
/// limit) and returns its stdout and stderr.
fn capture_while(
    state: &std::path::Path,
    args: &[&str],
    during: impl FnOnce(),
) -> (String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_minivm"))
        .arg("--state-dir")
        .arg(state)
        .arg("capture")
        .args(args)
        // Relative paths (`-w all.pcap`) are the state directory's.
        .current_dir(state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first stderr line says the capture is open.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.starts_with("capturing on"), "{first}");
    during();
    let out = child.wait_with_output().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(out.status.success(), "capture: {first}{rest}");
    (text(&out.stdout), format!("{first}{rest}"))
}

#[test]
fn capture_a_ping_and_change_links_live() {
    let state = common::state_dir();
    let s = state.path();
    common::tiny_image(s);
    let lab = format!("links-cli-{}", std::process::id());
    let file = s.join("lab.yaml");
    std::fs::write(&file, lab_yaml(&lab)).unwrap();
    let _down = Down(s.to_path_buf(), lab.clone());
    ok(minivm(s, &["up", "-f", file.to_str().unwrap()]));
    let ping = |n: &str| {
        ok(minivm(
            s,
            &[
                "exec",
                &lab,
                "h1",
                "--",
                "/bin/ping",
                "-c",
                n,
                "-W",
                "5",
                "10.31.0.12",
            ],
        ))
    };
    let pids_before = common::states(s, &lab);

    // A pcap file of h1's NIC, ICMP only, 4 packets: two requests, two
    // replies, in both directions of the one NIC.
    let pcap = s.join("h1.pcap");
    let (_, said) = capture_while(
        s,
        &[
            &lab,
            "h1:eth0",
            "-f",
            "icmp",
            "-c",
            "4",
            "--seconds",
            "60",
            "-w",
            pcap.to_str().unwrap(),
        ],
        || drop(ping("2")),
    );
    assert!(
        said.contains("4 packets captured, 0 dropped (packet limit reached)"),
        "{said}"
    );
    let lines = tcpdump(&pcap);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("10.31.0.11 > 10.31.0.12: ICMP echo request")),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("10.31.0.12 > 10.31.0.11: ICMP echo reply")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("ARP")),
        "-f icmp keeps ARP out: {lines:#?}"
    );

    // A filter that is not `icmp` lets ARP through (the neighbour entries
    // are flushed so that h1 asks again); `-c 3` stops after 3 packets.
    // IPv6 is filtered out: just-started guests send router solicitations
    // and listener reports whenever they please.
    ok(minivm(
        s,
        &[
            "exec", &lab, "h1", "--", "/sbin/ip", "neigh", "flush", "dev", "eth0",
        ],
    ));
    let all = s.join("all.pcap");
    capture_while(
        s,
        &[
            &lab,
            "h1:eth0",
            "-f",
            "not ip6",
            "-c",
            "3",
            "--seconds",
            "60",
            // A bare file name, in the directory the command runs in.
            "-w",
            "all.pcap",
        ],
        || drop(ping("2")),
    );
    let lines = tcpdump(&all);
    assert_eq!(lines.len(), 3, "-c 3: {lines:#?}");
    assert!(lines.iter().any(|l| l.contains("ARP")), "{lines:#?}");

    // Lines on stdout, on the whole network.
    let (out, _) = capture_while(
        s,
        &[&lab, "lan", "-f", "icmp", "-c", "2", "--seconds", "60"],
        || drop(ping("1")),
    );
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].contains("10.31.0.11 → 10.31.0.12 ICMP") && rows[0].contains("echo request"),
        "{out}"
    );
    assert!(
        rows[1].contains("10.31.0.12 → 10.31.0.11 ICMP") && rows[1].contains("echo reply"),
        "{out}"
    );

    // `-w -`: pcap on stdout, which tcpdump reads.
    let out = Command::new(env!("CARGO_BIN_EXE_minivm"))
        .arg("--state-dir")
        .arg(s)
        .args(["capture", &lab, "h1:eth0", "--seconds", "1", "-w", "-"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        &out.stdout[0..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "a pcap header"
    );

    // A bad filter or target: refused with the reason.
    let bad = minivm(s, &["capture", &lab, "h1:eth0", "-f", "icmp and and"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("invalid capture filter"),
        "{}",
        text(&bad.stderr)
    );
    let bad = minivm(s, &["capture", &lab, "h9:eth0"]);
    assert!(
        text(&bad.stderr).contains("neither a NIC"),
        "{}",
        text(&bad.stderr)
    );

    // Several parameters in one command, live: the plan step, the stored
    // lab, `status`, and the VMs keep their QEMUs.
    let r: serde_json::Value = serde_json::from_str(&ok(minivm(
        s,
        &[
            "link", &lab, "h1:eth0", "--loss", "100%", "--rate", "10mbit", "--json",
        ],
    )))
    .unwrap();
    assert_eq!(r["impair"]["loss_pct"], 100.0);
    assert_eq!(r["impair"]["rate_kbit"], 10_000);
    assert_eq!(r["steps"].as_array().unwrap().len(), 1, "{r}");
    let out = minivm(
        s,
        &[
            "exec",
            &lab,
            "h1",
            "--",
            "/bin/ping",
            "-c",
            "1",
            "-W",
            "2",
            "10.31.0.12",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "h1's frames are all dropped");
    let st: serde_json::Value =
        serde_json::from_str(&ok(minivm(s, &["status", &lab, "--json"]))).unwrap();
    assert_eq!(
        st[0]["vms"][0]["nics"][0]["impair_label"],
        "100% loss 10mbit"
    );
    assert!(ok(minivm(s, &["status", &lab]))
        .contains("eth0 lan        up                       100% loss 10mbit"));
    ok(minivm(s, &["link", &lab, "h1:eth0", "--clear"]));
    ping("1");
    let down = ok(minivm(s, &["link", &lab, "h1:eth0", "--down"]));
    assert!(down.contains("h1 eth0 down"), "{down}");
    let carrier = ok(minivm(
        s,
        &[
            "exec",
            &lab,
            "h1",
            "--",
            "/bin/cat",
            "/sys/class/net/eth0/carrier",
        ],
    ));
    assert_eq!(carrier.trim(), "0");
    ok(minivm(s, &["link", &lab, "h1:eth0", "--up"]));
    assert_eq!(common::states(s, &lab), pids_before, "no QEMU restarted");

    // A 200 ms delay on what h1 sends: h1's RTT to h2 is 200..400 ms (one
    // way, not twice), made by netem where the kernel has it and by the
    // lab's relay where it has not; cleared, back under 100 ms. Live.
    let avg_rtt = || -> f64 {
        let out = ping("5");
        let avg = out
            .lines()
            .find_map(|l| l.strip_prefix("round-trip min/avg/max = "))
            .and_then(|v| v.split('/').nth(1))
            .and_then(|v| v.parse().ok());
        avg.unwrap_or_else(|| panic!("no RTT in {out}"))
    };
    let r: serde_json::Value = serde_json::from_str(&ok(minivm(
        s,
        &["link", &lab, "h1:eth0", "--delay", "200ms", "--json"],
    )))
    .unwrap();
    assert_eq!(r["impair"]["delay_ms"], 200);
    let rtt = avg_rtt();
    assert!(
        (200.0..400.0).contains(&rtt),
        "RTT {rtt} ms with 200 ms delay"
    );
    ok(minivm(s, &["link", &lab, "h1:eth0", "--clear"]));
    let rtt = avg_rtt();
    assert!(rtt < 100.0, "RTT {rtt} ms after clear");
    assert_eq!(common::states(s, &lab), pids_before, "no QEMU restarted");

    // Refused, nothing changed: a NIC the VM does not have, a jitter
    // larger than the delay.
    let out = minivm(s, &["link", &lab, "h1:eth3", "--loss", "1%"]);
    assert!(
        text(&out.stderr).contains("h1 has no eth3"),
        "{}",
        text(&out.stderr)
    );
    let out = minivm(s, &["link", &lab, "h1:eth0", "--jitter", "5ms"]);
    assert!(
        text(&out.stderr).contains("nodes[0].nics[0].impair.jitter_ms: larger than delay_ms"),
        "{}",
        text(&out.stderr)
    );
}
