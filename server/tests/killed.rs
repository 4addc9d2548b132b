//! kill -9 in the middle of `up` and of `down`, of the CLI and of the
//! server, at 22 moments chosen by the test: 11 spread over the time an
//! `up` takes and 11 over the time a `down` takes, half of each with the
//! CLI and half with `minivm serve` doing the work (the page's Start and
//! Stop). After each kill in an `up`, the next `up` converges to a fully
//! running lab that plans nothing; after each kill in a `down`, the next
//! `down --cleanup` leaves no process, namespace, interface or file. The
//! moments are random per run and printed with their seed, so that a
//! failure can be replayed exactly with the printed
//! `MINIVM_KILL_SEED=SEED/UP_MS/DOWN_MS`. The longer run tries many seeds:
//! `cargo test -p server --test killed -- --ignored`. Needs root.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{leftovers, minivm, ok, states, Down, Server};

const LAB: &str = "version: 1
name: NAME
defaults: {image: tiny, cpus: 1, memory_mib: 128}
networks: [{name: lan, subnet: 10.31.0.0/24}]
nodes:
  - {name: a, nics: [{network: lan, address: 10.31.0.11/24}]}
  - {name: b, nics: [{network: lan, address: 10.31.0.12/24}]}
";

/// How many kills per operation (up, down).
const KILLS: u64 = 11;

/// A small deterministic generator: random per run, reproducible from the seed.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// `KILLS` moments spread over `0..span` ms: one at random in each slice.
fn moments(rng: &mut Rng, span: u64) -> Vec<u64> {
    (0..KILLS)
        .map(|i| span * i / KILLS + rng.below(span / KILLS))
        .collect()
}

/// The seed and the spans the kills are spread over: from
/// `MINIVM_KILL_SEED` (`SEED` or `SEED/UP_MS/DOWN_MS`), or a new seed over
/// the spans measured in this run.
fn parse_seed(given: Option<&str>, up_ms: u64, down_ms: u64) -> (u64, u64, u64) {
    let Some(given) = given else {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        return (seed, up_ms, down_ms);
    };
    let parts: Vec<u64> = given
        .split('/')
        .map(|p| {
            p.trim().parse().unwrap_or_else(|_| {
                panic!("MINIVM_KILL_SEED={given:?}: SEED or SEED/UP_MS/DOWN_MS")
            })
        })
        .collect();
    match parts[..] {
        [seed] => (seed, up_ms, down_ms),
        [seed, up, down] => (seed, up, down.max(200)),
        _ => panic!("MINIVM_KILL_SEED={given:?}: SEED or SEED/UP_MS/DOWN_MS"),
    }
}

#[test]
fn a_full_seed_fixes_the_kill_moments() {
    let a = parse_seed(Some("1796667296778788081/9000/1500"), 1, 1);
    assert_eq!(a, (1796667296778788081, 9000, 1500));
    let b = parse_seed(Some("1796667296778788081"), 7000, 900);
    assert_eq!(b, (1796667296778788081, 7000, 900));
    let mut r1 = Rng(a.0 | 1);
    let mut r2 = Rng(a.0 | 1);
    assert_eq!(moments(&mut r1, 9000), moments(&mut r2, 9000));
}

fn spawn(state: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_minivm"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// SIGKILL to a process this test started, `ms` after `since`.
fn kill_at(child: &mut Child, since: Instant, ms: u64) {
    let at = since + Duration::from_millis(ms);
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The web app doing `action` on the lab (storing it first when asked),
/// killed -9 `ms` after the request was answered.
fn server_killed(state: &Path, lab: &str, text: &str, action: &str, ms: u64) {
    let mut server = Server::start(state);
    if action == "start" {
        let (code, body) = server.call("import_lab", &[("text", text)]);
        assert_eq!(code, 200, "{body}");
    }
    let (code, body) = server.call("lab_action", &[("lab", lab), ("action", action)]);
    assert_eq!(code, 200, "{body}");
    let since = Instant::now();
    kill_at(&mut server.child, since, ms);
}

fn converged_up(state: &Path, lab: &str, f: &str, what: &str) {
    ok(minivm(state, &["up", "-f", f, "--timeout", "300"]));
    let st = states(state, lab);
    assert!(
        st.len() == 2
            && st
                .values()
                .all(|(state, pid)| state == "running" && pid.is_some()),
        "{what}: {st:?}"
    );
    let plan = ok(minivm(state, &["up", "-f", f, "--dry-run", "--json"]));
    assert_eq!(plan.trim(), "[]", "{what}: the lab is converged");
}

fn clean_down(state: &Path, lab: &str, what: &str) {
    ok(minivm(state, &["down", lab, "--cleanup"]));
    assert_eq!(leftovers(state, lab), Vec::<String>::new(), "{what}");
}

#[test]
fn killed_in_up_or_down_then_up_converges_and_down_leaves_nothing() {
    let given = std::env::var("MINIVM_KILL_SEED").ok();
    kill_rounds(&[given.as_deref()]);
}

/// The moment the kill test hits by chance, made to happen: `up` killed
/// while a warm clone waits for its identity, and the clone then unable to
/// take it (its configuration gone). The next `up` stops that clone, says
/// why, and boots it cold: the lab converges.
#[test]
fn a_clone_cut_short_that_cannot_take_its_identity_boots_cold() {
    let l = KillLab::new("kill-id");
    let (s, lab, f) = (l.state.path(), l.lab.as_str(), l.file.as_str());
    // The warm image of this shape exists after one up.
    converged_up(s, lab, f, "first up");
    clean_down(s, lab, "first down");

    let vms = s.join("labs").join(lab).join("vms");
    let mut up = spawn(s, &["up", "-f", f]);
    let deadline = Instant::now() + Duration::from_secs(300);
    let pending = loop {
        // The marker names the clone's QEMU once it is launched.
        if let Some(vm) = ["a", "b"].into_iter().find(|vm| {
            std::fs::read_to_string(vms.join(vm).join("identity-pending"))
                .is_ok_and(|t| !t.trim().is_empty())
        }) {
            break vm;
        }
        assert!(
            up.try_wait().unwrap().is_none(),
            "up ended before a clone waited for its identity"
        );
        assert!(
            Instant::now() < deadline,
            "no clone waited for its identity"
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    up.kill().unwrap();
    up.wait().unwrap();
    std::fs::remove_file(vms.join(pending).join("minivm.conf")).unwrap();

    let out = minivm(s, &["up", "-f", f, "--timeout", "300"]);
    let said = format!("{}{}", common::text(&out.stdout), common::text(&out.stderr));
    assert!(out.status.success(), "{said}");
    assert!(said.contains("cannot take its identity"), "{said}");
    converged_up(s, lab, f, "after the clone could not take its identity");
    let host = ok(minivm(
        s,
        &["exec", lab, pending, "--", "cat", "/etc/hostname"],
    ));
    assert_eq!(host.trim(), pending);
    clean_down(s, lab, "last down");
}

/// The test lab (two VMs of one shape) in a state directory of its own,
/// with its topology file; taken down with `--cleanup` when dropped.
struct KillLab {
    // Dropped first: the lab goes down before its state directory goes.
    _down: Down,
    state: tempfile::TempDir,
    lab: String,
    text: String,
    file: String,
}

impl KillLab {
    fn new(prefix: &str) -> KillLab {
        let state = common::state_dir();
        let lab = format!("{prefix}-{}", std::process::id());
        let text = LAB.replace("NAME", &lab);
        let file = state.path().join(format!("{lab}.yaml"));
        std::fs::write(&file, &text).unwrap();
        common::tiny_image(state.path());
        KillLab {
            _down: Down(state.path().to_path_buf(), lab.clone()),
            file: file.to_str().unwrap().to_string(),
            state,
            lab,
            text,
        }
    }
}

/// The longer run: many seeds, one after another on one lab
/// (`MINIVM_KILL_RUNS`, 6 by default; about a minute each):
/// `cargo test -p server --test killed -- --ignored`.
#[test]
#[ignore]
fn many_seeds() {
    let runs: usize = std::env::var("MINIVM_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    kill_rounds(&vec![None; runs]);
}

/// For each seed (`None`: a new one), an up and a down measured, then
/// `KILLS` kills in up and in down, each followed by a converging `up` or
/// a clean `down --cleanup`.
fn kill_rounds(seeds: &[Option<&str>]) {
    let l = KillLab::new("kill-test");
    let (s, lab, text, f) = (
        l.state.path(),
        l.lab.as_str(),
        l.text.as_str(),
        l.file.as_str(),
    );
    for given in seeds {
        kill_round(s, lab, text, f, *given);
    }
}

fn kill_round(s: &Path, lab: &str, text: &str, f: &str, given: Option<&str>) {
    // How long a whole up and a whole down take here, to spread the kills.
    let t = Instant::now();
    converged_up(s, lab, f, "first up");
    let measured_up = t.elapsed().as_millis() as u64;
    let t = Instant::now();
    clean_down(s, lab, "first down");
    let measured_down = (t.elapsed().as_millis() as u64).max(200);

    // `SEED` spreads the kills over the times measured here;
    // `SEED/UP_MS/DOWN_MS` (as printed below) replays a run's kill moments
    // exactly.
    let (seed, up_ms, down_ms) = parse_seed(given, measured_up, measured_down);
    let mut rng = Rng(seed | 1);
    let ups = moments(&mut rng, up_ms);
    let downs = moments(&mut rng, down_ms);
    let seed = format!("{seed}/{up_ms}/{down_ms}");
    eprintln!(
        "MINIVM_KILL_SEED={seed}: up takes {measured_up} ms, down {measured_down} ms here; kill -9 in up after {ups:?} ms, in down after {downs:?} ms"
    );

    for (i, (&u, &d)) in ups.iter().zip(&downs).enumerate() {
        let by_server = i % 2 == 1;
        let who = if by_server {
            "minivm serve"
        } else {
            "minivm up"
        };
        let what = format!("after kill -9 of {who} {u} ms into up (seed {seed})");
        if by_server {
            server_killed(s, lab, text, "start", u);
        } else {
            let mut up = spawn(s, &["up", "-f", f]);
            kill_at(&mut up, Instant::now(), u);
        }
        converged_up(s, lab, f, &what);

        let who = if by_server {
            "minivm serve (stop)"
        } else {
            "minivm down"
        };
        let what = format!("after kill -9 of {who} {d} ms into down (seed {seed})");
        if by_server {
            server_killed(s, lab, text, "stop", d);
        } else {
            let mut down = spawn(s, &["down", lab, "--cleanup"]);
            kill_at(&mut down, Instant::now(), d);
        }
        clean_down(s, lab, &what);
    }
}
