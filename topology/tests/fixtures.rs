//! The table of bad topology files: each must be refused with an error that
//! names the expected field. Each fixture states its expectation in two
//! header lines (`# expect-path:` and `# expect-reason:`), in the file itself
//! for YAML and in a `.expect` companion for JSON.

#[path = "common/mod.rs"]
mod common;

use std::fs;

use common::bad_fixtures;
use topology::{parse_and_validate, Format};

#[test]
fn every_bad_fixture_is_refused_naming_its_field() {
    let fixtures = bad_fixtures();
    assert!(fixtures.len() >= 40, "only {} fixtures", fixtures.len());
    let mut failures = Vec::new();
    for f in &fixtures {
        let text = fs::read_to_string(&f.file).unwrap();
        let name = f.file.file_name().unwrap().to_string_lossy().into_owned();
        match parse_and_validate(&text, Format::from_file_name(&name)) {
            Ok(_) => failures.push(format!("{name}: accepted")),
            Err(e) => {
                let problems = e.problems();
                if !problems
                    .iter()
                    .any(|p| p.path == f.path && p.message.contains(&f.reason))
                {
                    failures.push(format!(
                        "{name}: wanted {:?} containing {:?}, got {problems:?}",
                        f.path, f.reason
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
