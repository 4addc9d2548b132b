//! The built-in example labs, seeded into an empty state directory, with
//! the files their `source` fields name (beside them in examples/).

pub const TRIANGLE: &str = include_str!("../../examples/triangle.yaml");
pub const ROUTER: &str = include_str!("../../examples/router.yaml");
pub const OSPF: &str = include_str!("../../examples/ospf.yaml");
pub const ALL: &[&str] = &[TRIANGLE, ROUTER, OSPF];

/// The examples' source files: path as a `source` field writes it → text.
const SOURCES: &[(&str, &str)] = &[
    ("ospf/daemons", include_str!("../../examples/ospf/daemons")),
    (
        "ospf/r1/frr.conf",
        include_str!("../../examples/ospf/r1/frr.conf"),
    ),
    (
        "ospf/r2/frr.conf",
        include_str!("../../examples/ospf/r2/frr.conf"),
    ),
    (
        "ospf/r3/frr.conf",
        include_str!("../../examples/ospf/r3/frr.conf"),
    ),
];

/// Reads an example's `source` file (for `parse_read_and_validate`).
pub fn read_source(path: &str) -> Result<String, String> {
    SOURCES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, text)| text.to_string())
        .ok_or_else(|| "not a file of the built-in examples".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_is_valid_with_its_sources_read() {
        for text in ALL {
            let t = crate::parse_read_and_validate(text, crate::Format::Yaml, &mut read_source)
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(t
                .nodes
                .iter()
                .flat_map(|n| &n.files)
                .all(|f| f.content.is_some()));
        }
    }

    #[test]
    fn every_source_file_of_examples_dir_is_embedded() {
        // examples/ospf/ on disk and SOURCES agree, so a file added there
        // is not forgotten here.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/ospf");
        let mut on_disk = Vec::new();
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    let rel = e
                        .path()
                        .strip_prefix(dir.parent().unwrap())
                        .unwrap()
                        .to_owned();
                    on_disk.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        on_disk.sort();
        let mut embedded: Vec<String> = SOURCES.iter().map(|(p, _)| p.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }
}
