//! The table of bad topology files, shared by the topology tests and the
//! `minivm validate` CLI tests.

use std::fs;
use std::path::{Path, PathBuf};

pub struct Fixture {
    pub file: PathBuf,
    pub path: String,
    pub reason: String,
}

pub fn bad_fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../topology/tests/fixtures/bad");
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
        out.push(Fixture {
            path: field("# expect-path:"),
            reason: field("# expect-reason:"),
            file,
        });
    }
    out.sort_by(|a, b| a.file.cmp(&b.file));
    out
}
