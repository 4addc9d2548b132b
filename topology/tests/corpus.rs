//! A generated corpus of bad topologies (issue 7): every field of the router
//! example in turn given a wrong type, an out-of-range value, a broken
//! reference or a name that must never reach a path or an interface
//! (`../`, `/`, NUL, very long, unicode look-alikes), in JSON and in YAML;
//! plus duplicates, huge and deeply nested files and YAML alias bombs. Each
//! must be refused with a problem naming the field. With the hand-written
//! fixtures (tests/fixtures/bad) this is well over 200 bad files.

use serde_json::{json, Value};
use topology::{parse_and_validate, Format};

fn router() -> Value {
    let t = parse_and_validate(topology::examples::ROUTER, Format::Yaml).unwrap();
    serde_json::to_value(&t).unwrap()
}

/// Sets `path` (`nodes.0.cpus`) in `v`.
fn set(v: &mut Value, path: &str, value: Value) {
    let mut cur = v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = match p.parse::<usize>() {
            Ok(i) => &mut cur[i],
            Err(_) => &mut cur[*p],
        };
    }
    let last = parts[parts.len() - 1];
    match last.parse::<usize>() {
        Ok(i) => cur[i] = value,
        Err(_) => cur[last] = value,
    }
}

/// `nodes.0.cpus` → `nodes[0].cpus`, the way problems name fields.
fn problem_path(path: &str) -> String {
    let mut out = String::new();
    for p in path.split('.') {
        if p.parse::<usize>().is_ok() {
            out += &format!("[{p}]");
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out += p;
        }
    }
    out
}

fn bad_names() -> Vec<Value> {
    vec![
        json!(""),
        json!("Upper"),
        json!("a/b"),
        json!("../etc"),
        json!("a\u{0}b"),
        json!("x".repeat(64)),
        json!("ｈ1"),       // fullwidth h: a look-alike
        json!("h\u{0430}"), // Cyrillic a
        json!("-lead"),
        json!(5),
    ]
}

/// (field path, bad value) for every field the router example has.
fn mutations() -> Vec<(String, Value)> {
    let mut m: Vec<(String, Value)> = Vec::new();
    let mut add =
        |path: String, values: Vec<Value>| m.extend(values.into_iter().map(|v| (path.clone(), v)));
    add(
        "version".into(),
        vec![json!(0), json!(2), json!("1"), json!(null)],
    );
    add("name".into(), bad_names());
    add("network_mode".into(), vec![json!("bridge"), json!(1)]);
    add(
        "defaults.cpus".into(),
        vec![json!(0), json!(100000), json!("two"), json!(-1)],
    );
    add(
        "defaults.memory_mib".into(),
        vec![json!(0), json!(1), json!(100_000_000), json!(1.5)],
    );
    add(
        "defaults.image".into(),
        vec![json!(""), json!("../base"), json!("a/b"), json!(3)],
    );
    for n in 0..2 {
        add(format!("networks.{n}.name"), bad_names());
        add(
            format!("networks.{n}.subnet"),
            vec![
                json!("10.0.0.0"),
                json!("10.0.0.0/33"),
                json!("300.0.0.0/8"),
                json!("x"),
                json!(24),
            ],
        );
        add(
            format!("networks.{n}.position"),
            vec![json!("here"), json!({"x": "a", "y": 1})],
        );
    }
    let nics = [(0, 2), (1, 1), (2, 1)];
    for (n, count) in nics {
        add(format!("nodes.{n}.name"), bad_names());
        add(
            format!("nodes.{n}.cpus"),
            vec![json!(0), json!(100000), json!("two")],
        );
        add(
            format!("nodes.{n}.memory_mib"),
            vec![json!(0), json!(100_000_000), json!("big")],
        );
        add(
            format!("nodes.{n}.image"),
            vec![json!(""), json!("../x"), json!("a/b"), json!(1)],
        );
        add(
            format!("nodes.{n}.ip_forward"),
            vec![json!("yes"), json!(1)],
        );
        add(format!("nodes.{n}.nics"), vec![json!("eth0"), json!([1])]);
        for k in 0..count {
            add(
                format!("nodes.{n}.nics.{k}.network"),
                vec![json!("nope"), json!(""), json!(7)],
            );
            add(
                format!("nodes.{n}.nics.{k}.address"),
                vec![
                    json!("10.0.0.1"),
                    json!("999.1.1.1/24"),
                    json!("10.10.0.1/33"),
                    json!("x"),
                    json!(12),
                ],
            );
            add(
                format!("nodes.{n}.nics.{k}.mac"),
                vec![
                    json!("zz"),
                    json!("01:00:00:00:00:01"),
                    json!("52:54:00:00:00"),
                    json!(5),
                ],
            );
        }
    }
    for n in [1, 2] {
        add(
            format!("nodes.{n}.routes.0.to"),
            vec![json!("x"), json!("10.0.0.0/40"), json!(3)],
        );
        add(
            format!("nodes.{n}.routes.0.via"),
            vec![json!("x"), json!(3)],
        );
    }
    m
}

fn expect_refused(text: &str, format: Format, want: &str, what: &str) {
    match parse_and_validate(text, format) {
        Ok(_) => FAILURES.with(|f| f.borrow_mut().push(format!("{what}: accepted"))),
        Err(e) => {
            let problems = e.problems();
            if !problems.iter().any(|p| {
                p.path == want
                    || p.path.starts_with(&format!("{want}."))
                    || p.path.starts_with(&format!("{want}["))
            }) {
                FAILURES.with(|f| {
                    f.borrow_mut()
                        .push(format!("{what}: no problem names {want}: {problems:?}"))
                });
            }
            assert!(
                problems.iter().all(|p| !p.message.is_empty()),
                "{what}: {problems:?}"
            );
        }
    }
}

thread_local! {
    static FAILURES: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

#[test]
fn every_field_refuses_bad_values_in_json_and_yaml() {
    let base = router();
    let ms = mutations();
    assert!(ms.len() >= 150, "{} mutations", ms.len());
    for (path, value) in &ms {
        let mut v = base.clone();
        set(&mut v, path, value.clone());
        let want = problem_path(path);
        let what = format!("{path} = {value}");
        expect_refused(
            &serde_json::to_string_pretty(&v).unwrap(),
            Format::Json,
            &want,
            &what,
        );
        // YAML reads a plain scalar into a string field as that string (a
        // number 3 as the image named "3"), which is what YAML users expect;
        // those cases are checked in JSON only.
        if !(value.is_number()
            && matches!(
                path.rsplit('.').next(),
                Some("image" | "network" | "address" | "mac" | "subnet" | "to" | "via" | "name")
            ))
        {
            expect_refused(
                &serde_yaml_ng::to_string(&v).unwrap(),
                Format::Yaml,
                &want,
                &format!("{what} (YAML)"),
            );
        }
    }
    let failures = FAILURES.with(|f| f.borrow().clone());
    assert!(
        failures.is_empty(),
        "{} of {} bad files were not refused as they should be:\n{}",
        failures.len(),
        ms.len() * 2,
        failures.join("\n")
    );
}

#[test]
fn duplicates_unknown_fields_and_missing_ones_are_named() {
    let base = router();
    type Mutation = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Mutation, &str)> = vec![
        (
            "duplicate node",
            Box::new(|v| set(v, "nodes.1.name", json!("r1"))),
            "nodes[1].name",
        ),
        (
            "duplicate network",
            Box::new(|v| set(v, "networks.1.name", json!("left"))),
            "networks[1].name",
        ),
        (
            "duplicate address",
            Box::new(|v| set(v, "nodes.1.nics.0.address", json!("10.10.0.1/24"))),
            "nodes[1].nics[0].address",
        ),
        (
            "unknown top-level field",
            Box::new(|v| set(v, "extra", json!(1))),
            "extra",
        ),
        (
            "unknown node field",
            Box::new(|v| set(v, "nodes.0.disk", json!("big"))),
            "nodes[0].disk",
        ),
        (
            "unknown nic field",
            Box::new(|v| set(v, "nodes.0.nics.0.vlan", json!(5))),
            "nodes[0].nics[0].vlan",
        ),
        (
            "missing node name",
            Box::new(|v| drop(v["nodes"][0].as_object_mut().unwrap().remove("name"))),
            "nodes[0]",
        ),
        (
            "missing version",
            Box::new(|v| drop(v.as_object_mut().unwrap().remove("version"))),
            "",
        ),
    ];
    for (what, f, want) in cases {
        let mut v = base.clone();
        f(&mut v);
        let text = serde_json::to_string(&v).unwrap();
        let problems = parse_and_validate(&text, Format::Json)
            .expect_err(what)
            .problems();
        assert!(
            problems.iter().any(|p| p.path.starts_with(want)),
            "{what}: {problems:?}"
        );
    }
}

#[test]
fn huge_deep_and_alias_bomb_files_are_refused_quickly() {
    let started = std::time::Instant::now();
    // Over the size limit.
    let huge = format!(
        "version: 1\nname: big\n# {}\n",
        "x".repeat(topology::MAX_FILE_BYTES)
    );
    assert!(parse_and_validate(&huge, Format::Yaml).is_err());
    // Deeply nested.
    let deep_json = format!(
        "{{\"version\": 1, \"name\": \"d\", \"x\": {}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(parse_and_validate(&deep_json, Format::Json).is_err());
    let deep_yaml = format!(
        "version: 1\nname: d\nx: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(parse_and_validate(&deep_yaml, Format::Yaml).is_err());
    // A billion laughs.
    let mut bomb = String::from(
        "version: 1\nname: bomb\na0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        bomb += &format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 9].join(", ")
        );
    }
    bomb += "nodes: *a9\n";
    assert!(parse_and_validate(&bomb, Format::Yaml).is_err());
    // Aliases used for what they are meant for still work when the result is valid.
    let aliased = "version: 1\nname: al\ndefaults: {image: tiny}\nnetworks: [{name: lan, subnet: 10.1.0.0/24}]\nnodes:\n  - {name: a, nics: &n [{network: lan}]}\n  - {name: b, nics: *n}\n";
    assert!(parse_and_validate(aliased, Format::Yaml).is_ok());
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
