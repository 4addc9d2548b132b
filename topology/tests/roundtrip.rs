use topology::{
    examples, parse, parse_and_validate, schema, to_json, to_yaml, validate, Format, Topology,
};

/// An example as the store holds it: its `source` files read in.
fn load(text: &str) -> Topology {
    topology::parse_read_and_validate(text, Format::Yaml, &mut examples::read_source)
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn examples_are_valid() {
    let t = load(examples::TRIANGLE);
    assert_eq!(
        (
            t.name.as_str(),
            t.nodes.len(),
            t.networks.len(),
            t.link_count()
        ),
        ("triangle", 3, 1, 3)
    );
    let r = load(examples::ROUTER);
    assert_eq!(
        (
            r.name.as_str(),
            r.nodes.len(),
            r.networks.len(),
            r.link_count()
        ),
        ("router", 3, 2, 4)
    );
    assert!(r.node("r1").unwrap().ip_forward);
}

#[test]
fn yaml_to_model_to_json_to_model_is_equal() {
    for text in examples::ALL {
        let a = load(text);
        let json = to_json(&a);
        let b = parse_and_validate(&json, Format::Json).unwrap();
        assert_eq!(a, b);
        let c = parse_and_validate(&to_yaml(&b), Format::Yaml).unwrap();
        assert_eq!(a, c);
        // JSON through the YAML reader too: YAML is a superset of JSON.
        assert_eq!(parse(&json, Format::Yaml).unwrap(), a);
    }
}

#[test]
fn defaults_apply() {
    let t = load(examples::ROUTER);
    let h1 = t.node("h1").unwrap();
    assert_eq!(t.node_image(h1), Some("tiny"));
    assert_eq!(t.node_cpus(h1), 1);
    assert_eq!(t.node_memory_mib(h1), 128);
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut t = load(examples::ROUTER);
    t.nodes[0].cpus = Some(0);
    t.nodes[1].nics[0].network = "nowhere".into();
    t.nodes[2].name = "H2".into();
    let paths: Vec<String> = validate(&t).into_iter().map(|p| p.path).collect();
    assert_eq!(
        paths,
        vec!["nodes[0].cpus", "nodes[1].nics[0].network", "nodes[2].name"]
    );
}

#[test]
fn committed_schema_matches_the_types() {
    let generated = schema::schema_json();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/topology.v1.json");
        std::fs::write(path, &generated).unwrap();
        return;
    }
    assert_eq!(
        schema::COMMITTED_SCHEMA, generated,
        "topology/schema/topology.v1.json is stale: run `UPDATE_SCHEMA=1 cargo test -p topology --test roundtrip`"
    );
    let v: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert_eq!(v["additionalProperties"], serde_json::json!(false));
    assert!(v["properties"]["nodes"].is_object());
}
