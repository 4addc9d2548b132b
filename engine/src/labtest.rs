//! Running a lab's tests (`topology::labtest` plans them): each test's
//! command in its VM through the guest agent, retried until it holds or its
//! `retry_for` has passed. Tests of different VMs run in parallel; one
//! VM's run one after another (its agent takes one client at a time).
//! Results are reported as each one ends, and written as JUnit XML for CI
//! systems.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use topology::labtest::Planned;
use topology::Topology;

use crate::lab::Engine;

/// How long one attempt's command may run.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(30);
/// The pause between attempts of a retried test.
const RETRY_PAUSE: Duration = Duration::from_millis(1000);

pub use topology::labtest::Outcome;

/// Runs one planned test to its end.
pub fn run_one(engine: &Engine, lab: &str, p: &Planned) -> Outcome {
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (code, output) = match engine.exec(lab, &p.vm, &p.argv, ATTEMPT_LIMIT) {
            Ok(r) => (r.exit_code, format!("{}{}", r.stdout, r.stderr)),
            Err(e) => (-1, crate::report(&e)),
        };
        let passed = p.holds(code, &output);
        if passed || started.elapsed() + RETRY_PAUSE > p.retry_for {
            return Outcome {
                name: p.name.clone(),
                vm: p.vm.clone(),
                passed,
                expected: p.expectation(),
                exit_code: code,
                output,
                attempts,
                seconds: started.elapsed().as_secs_f64(),
                vms: p.vms.clone(),
                networks: p.networks.clone(),
            };
        }
        std::thread::sleep(RETRY_PAUSE);
    }
}

/// Runs every test of `t` (a lab that is up), each VM's tests in order,
/// VMs in parallel; `done` is called as each test ends. Returns the
/// outcomes in the topology's order.
pub fn run(engine: &Engine, t: &Topology, done: &(dyn Fn(&Outcome) + Sync)) -> Vec<Outcome> {
    let planned = topology::labtest::plan(t);
    let mut by_vm: BTreeMap<&str, Vec<(usize, &Planned)>> = BTreeMap::new();
    for (i, p) in planned.iter().enumerate() {
        by_vm.entry(p.vm.as_str()).or_default().push((i, p));
    }
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for tests in by_vm.values() {
            let results = &results;
            scope.spawn(move || {
                for (i, p) in tests {
                    let o = run_one(engine, &t.name, p);
                    done(&o);
                    results.lock().expect("not poisoned").push((*i, o));
                }
            });
        }
    });
    let mut results = results.into_inner().expect("not poisoned");
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, o)| o).collect()
}

/// JUnit XML of a run: one `testsuite` (the lab), one `testcase` per test,
/// a `failure` with the expectation and the last output for each failed one.
pub fn junit_xml(lab: &str, outcomes: &[Outcome]) -> String {
    let failures = outcomes.iter().filter(|o| !o.passed).count();
    let total: f64 = outcomes.iter().map(|o| o.seconds).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x += &format!(
        "<testsuites name=\"minivm\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">\n",
        outcomes.len()
    );
    x += &format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{total:.3}\">\n",
        esc(lab),
        outcomes.len()
    );
    for o in outcomes {
        x += &format!(
            "    <testcase name=\"{}\" classname=\"{}.{}\" time=\"{:.3}\"",
            esc(&o.name),
            esc(lab),
            esc(&o.vm),
            o.seconds
        );
        if o.passed {
            x += "/>\n";
        } else {
            x += &format!(
                ">\n      <failure message=\"expected {}; exit code {} after {} attempt(s)\">{}</failure>\n    </testcase>\n",
                esc(&o.expected),
                o.exit_code,
                o.attempts,
                esc(&o.output)
            );
        }
    }
    x += "  </testsuite>\n</testsuites>\n";
    x
}

/// Text for XML content and attributes: the five special characters
/// escaped, characters XML 1.0 cannot carry dropped.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{fffe}' || c == '\u{ffff}' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(name: &str, passed: bool, output: &str) -> Outcome {
        Outcome {
            name: name.into(),
            vm: "h1".into(),
            passed,
            expected: "exit 0 with \"Full\" in the output".into(),
            exit_code: i32::from(!passed),
            output: output.into(),
            attempts: 3,
            seconds: 1.5,
            vms: vec!["h1".into()],
            networks: vec![],
        }
    }

    #[test]
    fn junit_is_xml_a_reader_parses_with_each_failure_and_its_output() {
        let xml = junit_xml(
            "lab-1",
            &[
                outcome("hosts <reach> & \"ping\"", true, ""),
                outcome("ospf is full", false, "Init\u{1}/DROther <x>\n"),
            ],
        );
        let doc = roxmltree::Document::parse(&xml).expect("valid XML");
        let suite = doc
            .descendants()
            .find(|n| n.has_tag_name("testsuite"))
            .unwrap();
        assert_eq!(suite.attribute("name"), Some("lab-1"));
        assert_eq!(suite.attribute("tests"), Some("2"));
        assert_eq!(suite.attribute("failures"), Some("1"));
        let cases: Vec<_> = suite
            .children()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases[0].attribute("name"), Some("hosts <reach> & \"ping\""));
        assert!(cases[0].children().all(|c| !c.has_tag_name("failure")));
        let failure = cases[1]
            .children()
            .find(|c| c.has_tag_name("failure"))
            .unwrap();
        assert_eq!(failure.text(), Some("Init/DROther <x>\n"));
        assert!(failure
            .attribute("message")
            .unwrap()
            .contains("expected exit 0 with \"Full\""));
    }
}
