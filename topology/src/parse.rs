//! Reading and writing topology text (YAML or JSON, the same schema).
//!
//! Hostile input is refused before it is parsed where that is cheap: files
//! over [`MAX_FILE_BYTES`] and nesting deeper than [`MAX_NESTING`]. The YAML
//! parser's own alias-expansion and recursion limits cover the rest.

use serde::Deserialize;

use crate::model::Topology;
use crate::validate::{validate, Problem};

/// Largest topology file accepted: a 1000-node lab is far below this.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// Deepest nesting accepted; a v1 topology needs 6.
pub const MAX_NESTING: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// From a file name: `.json` is JSON, everything else YAML (YAML is a
    /// superset of JSON, but JSON errors are clearer from the JSON parser).
    pub fn from_file_name(name: &str) -> Format {
        if name.to_ascii_lowercase().ends_with(".json") {
            Format::Json
        } else {
            Format::Yaml
        }
    }

    /// From the text itself: a document that starts with `{` is JSON.
    pub fn sniff(text: &str) -> Format {
        if text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('{')
        {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

/// Why text could not be turned into a valid topology.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LoadError {
    #[error("the file is {0} bytes; at most {MAX_FILE_BYTES} are accepted")]
    TooLarge(usize),
    #[error("the file nests deeper than {MAX_NESTING} levels")]
    TooDeep,
    #[error("{}", join(.0))]
    Invalid(Vec<Problem>),
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl LoadError {
    /// Every problem, each with its path (the size and depth refusals have
    /// the empty path: they concern the whole file).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            LoadError::Invalid(p) => p.clone(),
            other => vec![Problem::new("", other.to_string())],
        }
    }
}

#[derive(Deserialize)]
struct VersionProbe {
    #[serde(default)]
    version: Option<u64>,
}

/// Parses text into a topology without validating it. Type errors, unknown
/// fields and syntax errors come back with their path.
pub fn parse(text: &str, format: Format) -> Result<Topology, LoadError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge(text.len()));
    }
    if nesting_depth(text, format) > MAX_NESTING {
        return Err(LoadError::TooDeep);
    }
    // A newer file may have fields this build does not know: say that it is
    // newer rather than listing them as unknown.
    if let Ok(VersionProbe { version: Some(v) }) = deserialize::<VersionProbe>(text, format) {
        if v > u64::from(crate::FORMAT_VERSION) {
            let t = Topology {
                version: u32::try_from(v).unwrap_or(u32::MAX),
                ..empty()
            };
            return Err(LoadError::Invalid(
                validate(&t)
                    .into_iter()
                    .filter(|p| p.path == "version")
                    .collect(),
            ));
        }
    }
    deserialize::<Topology>(text, format).map_err(|p| LoadError::Invalid(vec![p]))
}

/// Parses and validates: the one entry point for text from users.
pub fn parse_and_validate(text: &str, format: Format) -> Result<Topology, LoadError> {
    parse_read_and_validate(text, format, &mut |src| {
        Err(format!("{src:?}: no directory to read it from"))
    })
}

/// Parses, reads each file's `source` with `read` (given the source path
/// as written; the caller reads it relative to the topology file and
/// limits its size), stores it as `content`, then validates. A source that
/// cannot be read is a problem at its field.
pub fn parse_read_and_validate(
    text: &str,
    format: Format,
    read: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Topology, LoadError> {
    let mut t = parse(text, format)?;
    let mut problems = Vec::new();
    for (i, node) in t.nodes.iter_mut().enumerate() {
        for (k, f) in node.files.iter_mut().enumerate() {
            let (None, Some(src)) = (&f.content, &f.source) else {
                continue;
            };
            if crate::validate::source_problem(src).is_some() {
                continue; // said by validate
            }
            match read(src) {
                Ok(text) => {
                    f.content = Some(text);
                    f.source = None;
                }
                Err(why) => problems.push(crate::Problem::new(
                    format!("nodes[{i}].files[{k}].source"),
                    format!("cannot read {src:?}: {why}"),
                )),
            }
        }
    }
    if !problems.is_empty() {
        return Err(LoadError::Invalid(problems));
    }
    let problems = validate(&t);
    if problems.is_empty() {
        Ok(t)
    } else {
        Err(LoadError::Invalid(problems))
    }
}

fn empty() -> Topology {
    Topology {
        version: crate::FORMAT_VERSION,
        name: String::new(),
        defaults: None,
        networks: Vec::new(),
        nodes: Vec::new(),
        network_mode: Default::default(),
        mgmt: None,
        tests: Vec::new(),
    }
}

fn deserialize<T: for<'de> Deserialize<'de>>(text: &str, format: Format) -> Result<T, Problem> {
    fn path_of(p: &serde_path_to_error::Path) -> String {
        let s = p.to_string();
        if s == "." || s == "?" {
            String::new()
        } else {
            s
        }
    }
    match format {
        Format::Json => {
            let de = &mut serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de)
                .map_err(|e| Problem::new(path_of(e.path()), e.inner().to_string()))
        }
        Format::Yaml => {
            if text.trim().is_empty() {
                return Err(Problem::new("", "the file is empty"));
            }
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| {
                let msg = e.inner().to_string();
                // serde_yaml_ng prefixes some messages with its own path; ours is better.
                let msg = match msg.split_once(": ") {
                    Some((prefix, rest))
                        if !prefix.contains(' ')
                            && !prefix.is_empty()
                            && path_of(e.path()).starts_with(prefix) =>
                    {
                        rest.to_string()
                    }
                    _ => msg,
                };
                Problem::new(path_of(e.path()), msg)
            })
        }
    }
}

/// How deep the text nests, measured cheaply without parsing: brackets
/// outside quoted strings, plus (for YAML) block indentation levels and
/// sequence dashes. Over-counts rather than under-counts.
pub fn nesting_depth(text: &str, format: Format) -> usize {
    let mut max = 0usize;
    let mut flow = 0usize;
    let mut indents: Vec<usize> = Vec::new();
    for line in text.lines() {
        let mut block = 0;
        if format == Format::Yaml {
            let trimmed = line.trim_start_matches(' ');
            if !(trimmed.is_empty() || trimmed.starts_with('#')) && flow == 0 {
                let base = line.len() - trimmed.len();
                let mut rest = trimmed;
                // "- - - x": each dash opens a level.
                let mut dashes = 0;
                while let Some(r) =
                    rest.strip_prefix("- ")
                        .or(if rest == "-" { Some("") } else { None })
                {
                    dashes += 1;
                    rest = r.trim_start_matches(' ');
                }
                while indents.last().is_some_and(|&i| i > base) {
                    indents.pop();
                }
                if indents.last() != Some(&base) {
                    indents.push(base);
                }
                block = indents.len() + dashes;
            }
        }
        let (mut in_str, mut quote, mut escaped) = (false, '"', false);
        for c in line.chars() {
            if in_str {
                if escaped {
                    escaped = false;
                } else if c == '\\' && quote == '"' {
                    escaped = true;
                } else if c == quote {
                    in_str = false;
                }
                continue;
            }
            match c {
                '"' | '\'' => {
                    in_str = true;
                    quote = c;
                }
                '#' if format == Format::Yaml => break,
                '[' | '{' => {
                    flow += 1;
                    max = max.max(block + flow);
                }
                ']' | '}' => flow = flow.saturating_sub(1),
                _ => {}
            }
        }
        max = max.max(block + flow);
    }
    max
}

/// The topology as pretty JSON, the export format.
pub fn to_json(t: &Topology) -> String {
    serde_json::to_string_pretty(t).expect("a topology always serializes") + "\n"
}

/// The topology as YAML.
pub fn to_yaml(t: &Topology) -> String {
    serde_yaml_ng::to_string(t).expect("a topology always serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_format() {
        assert_eq!(Format::sniff("  {\"version\":1}"), Format::Json);
        assert_eq!(Format::sniff("version: 1"), Format::Yaml);
        assert_eq!(Format::from_file_name("LAB.JSON"), Format::Json);
        assert_eq!(Format::from_file_name("lab.yml"), Format::Yaml);
    }

    #[test]
    fn depth_of_ordinary_files_is_small() {
        let y = "version: 1\nname: a\nnodes:\n  - name: vm1\n    nics:\n      - network: lan\n        mac: \"52:54:00:00:00:01\"\n";
        assert!(
            nesting_depth(y, Format::Yaml) <= 6,
            "{}",
            nesting_depth(y, Format::Yaml)
        );
        let j = r#"{"version":1,"nodes":[{"name":"a","nics":[{"network":"x"}],"position":{"x":1,"y":2}}]}"#;
        assert_eq!(nesting_depth(j, Format::Json), 5);
        assert_eq!(nesting_depth(r#"{"name":"[[[[{{{{"}"#, Format::Json), 1);
    }

    #[test]
    fn deep_files_are_refused_before_parsing() {
        let j = "[".repeat(10_000);
        assert_eq!(parse(&j, Format::Json), Err(LoadError::TooDeep));
        let y: String = (0..100)
            .map(|i| format!("{}a{i}:\n", " ".repeat(i)))
            .collect();
        assert_eq!(parse(&y, Format::Yaml), Err(LoadError::TooDeep));
        let dashes = format!("{}1\n", "- ".repeat(100));
        assert_eq!(parse(&dashes, Format::Yaml), Err(LoadError::TooDeep));
    }

    #[test]
    fn large_files_are_refused() {
        let big = format!("# {}\nversion: 1\n", "x".repeat(MAX_FILE_BYTES));
        assert!(matches!(
            parse(&big, Format::Yaml),
            Err(LoadError::TooLarge(_))
        ));
    }
}
