//! The table of bad topology files: each must be refused with an error that
//! names the expected field. Each fixture states its expectation in two
//! header lines (`# expect-path:` and `# expect-reason:`), in the file itself
//! for YAML and in a `.expect` companion for JSON.

use std::fs;
use std::path::{Path, PathBuf};

use topology::{parse_and_validate, Format};

pub struct Fixture {
    pub file: PathBuf,
    pub path: String,
    pub reason: String,
}

pub fn bad_fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bad");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().path();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let header = if name.ends_with(".yaml") {
            fs::read_to_string(&file).unwrap()
        } else if name.ends_with(".json") {
            fs::read_to_string(file.with_extension("json.expect")).unwrap()
        } else {
            continue;
        };
        let field = |key: &str| {
            header
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("{name}: missing {key}"))
                .trim()
                .to_string()
        };
        out.push(Fixture { path: field("# expect-path:"), reason: field("# expect-reason:"), file });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

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
                if !problems.iter().any(|p| p.path == f.path && p.message.contains(&f.reason)) {
                    failures.push(format!("{name}: wanted {:?} containing {:?}, got {problems:?}", f.path, f.reason));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
