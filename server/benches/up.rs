//! `minivm up` against a plain shell script doing the same by hand
//! (qemu-img, ip, qemu-system-x86_64, then waiting for the same readiness
//! line on the serial console), for 1 and 4 VMs, run side by side and
//! alternated; then the time of a no-op `up` of a running lab. Prints
//! medians and ratios. Run: `cargo bench -p server --bench up` (as root).
//! Targets (issue 4): `up` ≤ 1.10 × the script; no-op `up` ≤ 100 ms.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const REPS: usize = 3;
const NOOP_RUNS: usize = 7;

/// The script a user would write from the seed's manual steps. Everything
/// it is given comes from this bench, never from user input.
const SCRIPT: &str = r#"set -e
D=$1; NS=$2; N=$3; BASE=$4; ACCEL=$5
ip netns add "$NS"
ip -n "$NS" link add br0 type bridge
ip -n "$NS" link set br0 up
i=1
while [ "$i" -le "$N" ]; do
  qemu-img create -q -f qcow2 -F qcow2 -b "$BASE" "$D/vm$i.qcow2"
  ip -n "$NS" tuntap add dev "tap$i" mode tap
  ip -n "$NS" link set "tap$i" master br0 up
  ip netns exec "$NS" qemu-system-x86_64 -name "vm$i" -machine pc -accel "$ACCEL" -smp 1 -m 128 \
    -nodefaults -no-user-config -display none -no-reboot \
    -drive "file=$D/vm$i.qcow2,if=virtio,format=qcow2" \
    -fw_cfg "name=opt/org.minivm/config,file=$D/vm$i.conf" \
    -netdev "tap,id=n0,ifname=tap$i,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=n0,mac=$(cat "$D/vm$i.mac"),romfile=" \
    -serial "file:$D/vm$i.log" -daemonize -pidfile "$D/vm$i.pid"
  i=$((i+1))
done
i=1
while [ "$i" -le "$N" ]; do
  until grep -q "minivm: ready vm$i" "$D/vm$i.log" 2>/dev/null; do sleep 0.02; done
  i=$((i+1))
done
"#;

fn lab_yaml(name: &str, n: usize) -> String {
    let mut y = format!(
        "version: 1\nname: {name}\ndefaults: {{image: tiny, cpus: 1, memory_mib: 128}}\nnetworks: [{{name: lan, subnet: 10.50.0.0/24}}]\nnodes:\n"
    );
    for i in 1..=n {
        y += &format!(
            "  - {{name: vm{i}, nics: [{{network: lan, address: 10.50.0.{}/24}}]}}\n",
            10 + i
        );
    }
    y
}

fn minivm(state: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_minivm"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("minivm");
    assert!(
        out.status.success(),
        "minivm {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// One run of the script for `n` VMs; returns its wall time, then removes
/// what it made (its QEMUs by their pidfiles, its namespace).
fn script_once(state: &Path, n: usize, accel: &str) -> Duration {
    let d = tempfile::tempdir_in(state).unwrap();
    let t = topology::parse_and_validate(&lab_yaml("script", n), topology::Format::Yaml).unwrap();
    let nics = topology::resolve::nics(&t);
    for i in 1..=n {
        let vm = format!("vm{i}");
        std::fs::write(
            d.path().join(format!("{vm}.conf")),
            engine::seed::render(&t, &vm).unwrap().minivm_conf,
        )
        .unwrap();
        std::fs::write(
            d.path().join(format!("{vm}.mac")),
            nics[&vm][0].mac.to_string(),
        )
        .unwrap();
    }
    let ns = format!("mvbench-{}", std::process::id());
    let base = state.join("images/tiny.qcow2");
    let started = Instant::now();
    let status = Command::new("sh")
        .args(["-c", SCRIPT, "script"])
        .arg(d.path())
        .arg(&ns)
        .arg(n.to_string())
        .arg(&base)
        .arg(accel)
        .status()
        .unwrap();
    let took = started.elapsed();
    for i in 1..=n {
        if let Some(pid) = std::fs::read_to_string(d.path().join(format!("vm{i}.pid")))
            .ok()
            .and_then(|p| p.trim().parse::<i32>().ok())
        {
            // SAFETY: kill(2) of a QEMU this bench's script started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    assert!(status.success(), "the script failed");
    took
}

/// One `minivm up` of `n` VMs from nothing; returns its wall time. The lab
/// stays up (for the no-op figure); the caller takes it down.
fn minivm_once(state: &Path, lab: &str, n: usize) -> Duration {
    let file = state.join(format!("{lab}.yaml"));
    std::fs::write(&file, lab_yaml(lab, n)).unwrap();
    let started = Instant::now();
    minivm(state, &["up", "-f", file.to_str().unwrap()]);
    started.elapsed()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn secs(v: &[Duration]) -> String {
    v.iter()
        .map(|d| format!("{:.2}", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() {
    let state = tempfile::tempdir().unwrap();
    let s = state.path();
    std::fs::set_permissions(s, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    minivm(s, &["image", "build"]);
    let accel = engine::accel::choose(s).accel.name();
    println!("accelerator: {accel}; {REPS} runs of each, alternated");
    let lab = |n: usize| format!("bench-{}-{n}", std::process::id());
    for n in [1usize, 4] {
        let (mut script, mut ours) = (Vec::new(), Vec::new());
        for rep in 0..REPS {
            let run_ours = || {
                let d = minivm_once(s, &lab(n), n);
                minivm(s, &["down", &lab(n), "--cleanup"]);
                d
            };
            if rep % 2 == 0 {
                script.push(script_once(s, n, accel));
                ours.push(run_ours());
            } else {
                ours.push(run_ours());
                script.push(script_once(s, n, accel));
            }
        }
        let (ms, mo) = (median(script.clone()), median(ours.clone()));
        println!(
            "up of {n} VM(s) to ready: minivm median {:.2} s [{}], script median {:.2} s [{}], ratio {:.2} (target <= 1.10)",
            mo.as_secs_f64(),
            secs(&ours),
            ms.as_secs_f64(),
            secs(&script),
            mo.as_secs_f64() / ms.as_secs_f64()
        );
    }
    // The no-op: a running lab of 4 VMs, `up` again.
    minivm_once(s, &lab(4), 4);
    let file = s.join(format!("{}.yaml", lab(4)));
    let mut noop = Vec::new();
    for _ in 0..NOOP_RUNS {
        let t = Instant::now();
        minivm(s, &["up", "-f", file.to_str().unwrap()]);
        noop.push(t.elapsed());
    }
    minivm(s, &["down", &lab(4), "--cleanup"]);
    let ms: Vec<String> = noop
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
        .collect();
    println!(
        "no-op up of a running 4-VM lab: median {:.1} ms [{}] (target <= 100 ms)",
        median(noop).as_secs_f64() * 1000.0,
        ms.join(", ")
    );
}
