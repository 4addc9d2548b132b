//! Fuzzing topology parsing and validation (issue 7) with proptest: random
//! text, and random structural mutations of a valid lab, in YAML and JSON.
//! Nothing may panic or hang; an accepted file must be valid; a refused one
//! must say why. Names that validation accepts can never reach a path or an
//! interface badly.
//!
//! The test command runs a short smoke (a few hundred cases). The long run:
//!     MINIVM_FUZZ_SECS=600 cargo test --release -p topology --test fuzz -- --nocapture

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::Value;
use topology::{parse, parse_and_validate, Format};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        "[a-z0-9./:-]{0,20}".prop_map(Value::String),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every path (as JSON pointers) in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => m
            .iter()
            .for_each(|(k, x)| pointers(x, format!("{at}/{k}"), out)),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| pointers(x, format!("{at}/{i}"), out)),
        _ => {}
    }
}

fn base() -> Value {
    serde_json::to_value(parse_and_validate(topology::examples::ROUTER, Format::Yaml).unwrap())
        .unwrap()
}

/// Per fuzzing thread: the last input, since when, and whether it is still
/// being checked. A watchdog (long runs only) prints a thread that has been
/// 30 s in one check (a hang names its input) or 30 s without starting a new
/// one (generation is stuck, or the thread is starved).
type Current = std::collections::HashMap<std::thread::ThreadId, (Instant, String, bool)>;
static CURRENT: std::sync::Mutex<Option<Current>> = std::sync::Mutex::new(None);

fn watchdog() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| loop {
            std::thread::sleep(Duration::from_secs(10));
            for (since, text, checking) in CURRENT.lock().unwrap().iter().flat_map(|m| m.values()) {
                if since.elapsed() > Duration::from_secs(30) {
                    let what = if *checking {
                        "still checking"
                    } else {
                        "no new case since"
                    };
                    eprintln!("{what} ({:?}): {text:?}", since.elapsed());
                }
            }
        });
    });
}

/// Marks this thread's check of `text` as started (`true`) or done.
fn mark(text: &str, checking: bool) {
    let mut current = CURRENT.lock().unwrap();
    let map = current.get_or_insert_with(Default::default);
    map.insert(
        std::thread::current().id(),
        (Instant::now(), text.to_string(), checking),
    );
}

/// Forgets this thread (its property is done).
fn unmark() {
    if let Some(m) = CURRENT.lock().unwrap().as_mut() {
        m.remove(&std::thread::current().id());
    }
}

/// Parses both ways and checks the outcome is coherent, quickly.
fn check(text: &str) -> Result<(), TestCaseError> {
    mark(text, true);
    for format in [Format::Json, Format::Yaml] {
        let started = Instant::now();
        match parse_and_validate(text, format) {
            Ok(t) => prop_assert!(topology::validate(&t).is_empty()),
            Err(e) => {
                let problems = e.problems();
                prop_assert!(!problems.is_empty());
                prop_assert!(
                    problems.iter().all(|p| !p.message.is_empty()),
                    "{problems:?}"
                );
            }
        }
        let _ = parse(text, format);
        prop_assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?} on {} bytes",
            started.elapsed(),
            text.len()
        );
    }
    mark(text, false);
    Ok(())
}

fn mutated() -> impl Strategy<Value = String> {
    let b = base();
    let mut ptrs = Vec::new();
    pointers(&b, String::new(), &mut ptrs);
    (0..ptrs.len(), json_value(), 0..3u8, any::<bool>()).prop_map(move |(i, value, how, yaml)| {
        let mut v = b.clone();
        let p = &ptrs[i];
        match how {
            0 => {
                if let Some(slot) = v.pointer_mut(p) {
                    *slot = value;
                }
            }
            1 => {
                // Remove the key or element.
                if let Some((parent, last)) = p.rsplit_once('/') {
                    match v.pointer_mut(parent) {
                        Some(Value::Object(m)) => drop(m.remove(last)),
                        Some(Value::Array(a)) => {
                            if let Ok(k) = last.parse::<usize>() {
                                if k < a.len() {
                                    a.remove(k);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {
                // Duplicate an element of the array it is in.
                if let Some((parent, last)) = p.rsplit_once('/') {
                    if let (Some(Value::Array(a)), Ok(k)) =
                        (v.pointer_mut(parent), last.parse::<usize>())
                    {
                        if k < a.len() {
                            let dup = a[k].clone();
                            a.push(dup);
                        }
                    }
                }
            }
        }
        if yaml {
            serde_yaml_ng::to_string(&v).unwrap()
        } else {
            serde_json::to_string(&v).unwrap()
        }
    })
}

/// Runs the properties for `cases` cases, or for MINIVM_FUZZ_SECS seconds.
fn fuzz(cases: u32, prop: impl Fn(&mut TestRunner) -> Result<(), String>) {
    let secs: Option<u64> = std::env::var("MINIVM_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok());
    let deadline = secs.map(|s| Instant::now() + Duration::from_secs(s));
    if secs.is_some() {
        watchdog();
    }
    let mut rounds = 0u64;
    loop {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = prop(&mut runner) {
            panic!("{e}");
        }
        rounds += 1;
        if secs.is_some() && rounds.is_multiple_of(2000) {
            eprintln!("{} cases so far", rounds * u64::from(cases));
        }
        match deadline {
            Some(d) if Instant::now() < d => continue,
            _ => break,
        }
    }
    unmark();
    eprintln!("{} cases passed", rounds * u64::from(cases));
}

#[test]
fn random_text_never_panics_or_hangs() {
    fuzz(300, |r| {
        r.run(
            &prop_oneof![any::<String>(), "[-a-z0-9:{}\\[\\],&*!| \n\"']{0,200}"],
            |s| check(&s),
        )
        .map_err(|e| e.to_string())
    });
}

#[test]
fn mutated_labs_are_accepted_valid_or_refused_with_reasons() {
    fuzz(300, |r| {
        r.run(&mutated(), |s| check(&s)).map_err(|e| e.to_string())
    });
}

#[test]
fn accepted_names_are_safe_for_paths_and_interfaces() {
    fuzz(1000, |r| {
        r.run(
            &prop_oneof![
                any::<String>(),
                "[a-z][a-z0-9-]{0,40}",
                "[a-zA-Z0-9./_-]{0,40}"
            ],
            |s| {
                if topology::names::check_name(&s).is_ok() {
                    prop_assert!(!s.is_empty() && s.len() <= 32, "{s:?}");
                    prop_assert!(
                        s.bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                        "{s:?}"
                    );
                    prop_assert!(s.as_bytes()[0].is_ascii_lowercase(), "{s:?}");
                }
                Ok(())
            },
        )
        .map_err(|e| e.to_string())
    });
}
