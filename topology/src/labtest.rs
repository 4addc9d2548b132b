//! Lab tests (scenarios): expectations stored in the topology (`tests:`)
//! and run on demand by `minivm test` and the editor's Tests panel, like
//! netlab's `validate`. This module is pure: the model's validation and the
//! plan of each test (which VM runs which argument vector, what counts as
//! holding, how long it is retried). Running them is `engine::labtest`.
//!
//! ```yaml
//! tests:
//!   - {name: hosts reach each other, ping: {from: h1, to: h2}}
//!   - {name: firewall blocks, ping: {from: h1, to: 10.9.0.1}, expect: fail}
//!   - name: ospf is full
//!     exec: {vm: r1, cmd: 'vtysh -c "show ip ospf neighbor"'}
//!     stdout: Full
//!     retry_for: 60s
//! ```

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::model::{Expect, Topology};
use crate::validate::Problem;

/// At most this many tests in a lab.
pub const MAX_TESTS: usize = 256;
/// The longest `retry_for`.
pub const MAX_RETRY: Duration = Duration::from_secs(3600);
/// How long one ping waits for its answer (seconds).
pub const PING_WAIT_SECS: u32 = 2;

/// One test, planned: run `argv` in `vm`; it holds when the outcome is
/// what `expect` says, retried until then or until `retry_for` has passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub name: String,
    pub vm: String,
    pub argv: Vec<String>,
    /// The command must succeed (exit 0, with `stdout` in its output) for
    /// `Pass`, and must not for `Fail`.
    pub expect: Expect,
    pub stdout: Option<String>,
    pub retry_for: Duration,
    /// The VMs and networks the test involves (highlighted when it fails).
    pub vms: Vec<String>,
    pub networks: Vec<String>,
}

impl Planned {
    /// Whether an outcome (exit code, output) is what the test expects.
    pub fn holds(&self, exit_code: i32, output: &str) -> bool {
        let succeeded = exit_code == 0
            && self
                .stdout
                .as_ref()
                .is_none_or(|want| output.contains(want));
        succeeded == (self.expect == Expect::Pass)
    }

    /// What the test expects, as users read it.
    pub fn expectation(&self) -> String {
        let what = match &self.stdout {
            Some(s) => format!("exit 0 with {s:?} in the output"),
            None => "exit 0".to_string(),
        };
        match self.expect {
            Expect::Pass => what,
            Expect::Fail => format!("not {what}"),
        }
    }
}

/// What became of one test (the CLI's lines and JSON, JUnit, the
/// editor's Tests panel).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Outcome {
    pub name: String,
    pub vm: String,
    pub passed: bool,
    /// What the test expected, as users read it.
    pub expected: String,
    /// The last attempt's exit code (-1: the command could not run).
    pub exit_code: i32,
    /// The last attempt's output (stdout, then stderr), or why it could not
    /// run.
    pub output: String,
    pub attempts: u32,
    pub seconds: f64,
    /// What the test involves (highlighted on the canvas when it fails).
    pub vms: Vec<String>,
    pub networks: Vec<String>,
}

/// Parses a duration such as `60s`, `2m`, `500ms`, `1h` (a bare number is
/// seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as \"60s\", \"2m\" or \"500ms\""))?;
    let d = match unit {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => {
            return Err(format!(
                "{s:?} has unit {unit:?}; use ms, s, m or h (\"60s\")"
            ))
        }
    };
    if d > MAX_RETRY {
        return Err(format!("{s:?} is longer than an hour"));
    }
    Ok(d)
}

/// The problems of `t.tests` (part of `validate`).
pub fn problems(t: &Topology) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut p = |path: String, msg: String| out.push(Problem::new(path, msg));
    if t.tests.len() > MAX_TESTS {
        p(
            "tests".into(),
            format!("{} tests; at most {MAX_TESTS} are allowed", t.tests.len()),
        );
    }
    let mut names = std::collections::HashSet::new();
    for (i, test) in t.tests.iter().enumerate() {
        let at = format!("tests[{i}]");
        let name = test.name.trim();
        if name.is_empty() {
            p(format!("{at}.name"), "a test needs a name".into());
        } else if name.len() > 200 || name.chars().any(char::is_control) {
            p(
                format!("{at}.name"),
                "at most 200 characters, no control characters".into(),
            );
        } else if !names.insert(name.to_string()) {
            p(format!("{at}.name"), format!("{name:?} is given twice"));
        }
        match (&test.ping, &test.exec) {
            (None, None) => p(at.clone(), "give ping or exec".into()),
            (Some(_), Some(_)) => p(at.clone(), "give ping or exec, not both".into()),
            (Some(ping), None) => {
                if t.node(&ping.from).is_none() {
                    p(
                        format!("{at}.ping.from"),
                        format!("no node named {:?}", ping.from),
                    );
                }
                if ping.to.parse::<Ipv4Addr>().is_err() {
                    match t.node(&ping.to) {
                        None => p(
                            format!("{at}.ping.to"),
                            format!("{:?} is neither a node nor an IPv4 address", ping.to),
                        ),
                        Some(_) if first_address(t, &ping.to).is_none() => p(
                            format!("{at}.ping.to"),
                            format!("node {:?} has no IPv4 address to ping", ping.to),
                        ),
                        Some(_) => {}
                    }
                }
                if test.stdout.is_some() {
                    p(
                        format!("{at}.stdout"),
                        "only an exec test has output to match".into(),
                    );
                }
            }
            (None, Some(exec)) => {
                if t.node(&exec.vm).is_none() {
                    p(
                        format!("{at}.exec.vm"),
                        format!("no node named {:?}", exec.vm),
                    );
                }
                match crate::words::split_words(&exec.cmd) {
                    Err(e) => p(format!("{at}.exec.cmd"), format!("{:?}: {e}", exec.cmd)),
                    Ok(w) if w.is_empty() => p(format!("{at}.exec.cmd"), "an empty command".into()),
                    Ok(_) => {}
                }
            }
        }
        if let Some(r) = &test.retry_for {
            if let Err(e) = parse_duration(r) {
                p(format!("{at}.retry_for"), e);
            }
        }
    }
    out
}

/// The first IPv4 address of `node` (its first NIC that has one).
pub fn first_address(t: &Topology, node: &str) -> Option<Ipv4Addr> {
    let t = &*crate::mgmt::effective(t);
    crate::resolve::nics(t)
        .get(node)?
        .iter()
        .filter(|n| n.network != crate::mgmt::NETWORK)
        .find_map(|n| n.address.map(|a| a.addr))
}

/// Every test of a valid topology, planned.
pub fn plan(t: &Topology) -> Vec<Planned> {
    t.tests
        .iter()
        .filter_map(|test| {
            let retry_for = test
                .retry_for
                .as_deref()
                .and_then(|r| parse_duration(r).ok())
                .unwrap_or_default();
            let (vm, argv, mut vms) = match (&test.ping, &test.exec) {
                (Some(ping), _) => {
                    let addr = match ping.to.parse::<Ipv4Addr>() {
                        Ok(a) => a,
                        Err(_) => first_address(t, &ping.to)?,
                    };
                    let mut vms = vec![ping.from.clone()];
                    if t.node(&ping.to).is_some() {
                        vms.push(ping.to.clone());
                    }
                    let argv = ["ping", "-c", "1", "-W", &PING_WAIT_SECS.to_string()]
                        .iter()
                        .map(|s| s.to_string())
                        .chain([addr.to_string()])
                        .collect();
                    (ping.from.clone(), argv, vms)
                }
                (None, Some(exec)) => (
                    exec.vm.clone(),
                    crate::words::split_words(&exec.cmd).ok()?,
                    vec![exec.vm.clone()],
                ),
                (None, None) => return None,
            };
            vms.dedup();
            // The networks the involved VMs share (or, for one VM, its own).
            let nets_of = |vm: &str| -> Vec<String> {
                t.node(vm)
                    .map(|n| n.nics.iter().map(|c| c.network.clone()).collect())
                    .unwrap_or_default()
            };
            let mut networks = nets_of(&vms[0]);
            if let Some(other) = vms.get(1) {
                let theirs = nets_of(other);
                networks.retain(|n| theirs.contains(n));
            }
            networks.sort();
            networks.dedup();
            Some(Planned {
                name: test.name.trim().to_string(),
                vm,
                argv,
                expect: test.expect,
                stdout: test.stdout.clone(),
                retry_for,
                vms,
                networks,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{parse_and_validate, Format};

    const LAB: &str = r#"
version: 1
name: t
defaults: {image: tiny}
networks: [{name: lan, subnet: 10.5.0.0/24}, {name: wan, subnet: 10.6.0.0/24}, {name: dark}]
nodes:
  - {name: h1, nics: [{network: lan, address: 10.5.0.1/24}]}
  - {name: h2, nics: [{network: lan, address: 10.5.0.2/24}, {network: wan, address: 10.6.0.2/24}]}
  - {name: h3, nics: [{network: dark}]}
tests:
  - {name: reach, ping: {from: h1, to: h2}}
  - {name: blocked, ping: {from: h1, to: 10.9.0.1}, expect: fail}
  - {name: ospf, exec: {vm: h2, cmd: 'vtysh -c "show ip ospf neighbor"'}, stdout: Full, retry_for: 60s}
"#;

    #[test]
    fn tests_are_planned_as_argument_vectors_with_their_expectations() {
        let t = parse_and_validate(LAB, Format::Yaml).unwrap();
        let p = plan(&t);
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].vm, "h1");
        assert_eq!(p[0].argv, ["ping", "-c", "1", "-W", "2", "10.5.0.2"]);
        assert_eq!(p[0].vms, ["h1", "h2"]);
        assert_eq!(p[0].networks, ["lan"]);
        assert_eq!(p[0].retry_for, Duration::ZERO);
        assert_eq!(p[1].expect, Expect::Fail);
        assert_eq!(p[1].vms, ["h1"]);
        assert_eq!(p[2].argv, ["vtysh", "-c", "show ip ospf neighbor"]);
        assert_eq!(p[2].retry_for, Duration::from_secs(60));
        assert_eq!(p[2].networks, ["lan", "wan"]);
    }

    #[test]
    fn an_outcome_holds_by_exit_code_output_and_expectation() {
        let t = parse_and_validate(LAB, Format::Yaml).unwrap();
        let p = plan(&t);
        assert!(p[0].holds(0, ""));
        assert!(!p[0].holds(1, ""));
        assert!(p[1].holds(1, "100% packet loss"));
        assert!(!p[1].holds(0, ""));
        assert!(p[2].holds(0, "10.255.0.2 Full/DR"));
        assert!(!p[2].holds(0, "Init"));
        assert!(!p[2].holds(1, "Full"));
        assert_eq!(p[2].expectation(), "exit 0 with \"Full\" in the output");
        assert_eq!(p[1].expectation(), "not exit 0");
    }

    #[test]
    fn durations_read_as_users_write_them() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("2d").unwrap_err().contains("unit \"d\""));
        assert!(parse_duration("2h")
            .unwrap_err()
            .contains("longer than an hour"));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn bad_tests_are_named_by_field_and_reason() {
        let bad = [
            (
                "{name: '', ping: {from: h1, to: h2}}",
                "tests[0].name",
                "needs a name",
            ),
            ("{name: x}", "tests[0]", "give ping or exec"),
            (
                "{name: x, ping: {from: h1, to: h2}, exec: {vm: h1, cmd: ls}}",
                "tests[0]",
                "not both",
            ),
            (
                "{name: x, ping: {from: h9, to: h2}}",
                "tests[0].ping.from",
                "no node named \"h9\"",
            ),
            (
                "{name: x, ping: {from: h1, to: nowhere}}",
                "tests[0].ping.to",
                "neither a node",
            ),
            (
                "{name: x, ping: {from: h1, to: h3}}",
                "tests[0].ping.to",
                "no IPv4 address",
            ),
            (
                "{name: x, ping: {from: h1, to: h2}, stdout: ok}",
                "tests[0].stdout",
                "only an exec",
            ),
            (
                "{name: x, exec: {vm: h9, cmd: ls}}",
                "tests[0].exec.vm",
                "no node",
            ),
            (
                "{name: x, exec: {vm: h1, cmd: '\"open'}}",
                "tests[0].exec.cmd",
                "quote",
            ),
            (
                "{name: x, exec: {vm: h1, cmd: ''}}",
                "tests[0].exec.cmd",
                "empty",
            ),
            (
                "{name: x, exec: {vm: h1, cmd: ls}, retry_for: 3d}",
                "tests[0].retry_for",
                "unit",
            ),
            (
                "{name: x, exec: {vm: h1, cmd: ls}, expect: maybe}",
                "tests[0].expect",
                "unknown variant",
            ),
            (
                "{name: x, exec: {vm: h1, cmd: ls}, colour: red}",
                "tests[0]",
                "unknown field",
            ),
        ];
        let head = LAB.split("tests:").next().unwrap();
        for (test, path, why) in bad {
            let text = format!("{head}tests:\n  - {test}\n");
            let problems = match parse_and_validate(&text, Format::Yaml) {
                Ok(_) => panic!("{test} was accepted"),
                Err(crate::LoadError::Invalid(p)) => p,
                Err(e) => panic!("{test}: {e}"),
            };
            assert!(
                problems
                    .iter()
                    .any(|p| p.path.starts_with(path) && p.message.contains(why)),
                "{test}: {problems:?}"
            );
        }
        let twice = format!(
            "{head}tests:\n  - {{name: a, exec: {{vm: h1, cmd: ls}}}}\n  - {{name: a, exec: {{vm: h1, cmd: ls}}}}\n"
        );
        let Err(crate::LoadError::Invalid(p)) = parse_and_validate(&twice, Format::Yaml) else {
            panic!("a name given twice was accepted")
        };
        assert_eq!(p[0].path, "tests[1].name");
    }
}
