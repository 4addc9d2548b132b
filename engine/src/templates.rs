//! The user's lab templates: files under `<state>/templates/NAME.yaml`
//! (format in `topology::templates`), beside the built-in ones. Listing,
//! instantiating, saving a lab as a template (atomically) and removing one.

use std::fs;
use std::path::{Path, PathBuf};

use topology::templates::{self as tpl, Info, TemplateFile};
use topology::{Problem, Topology};

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("invalid template name {name:?}: {reason}")]
    BadName {
        name: String,
        reason: topology::names::NameError,
    },
    #[error("{name:?} is a built-in template; save under another name")]
    Builtin { name: String },
    #[error("no template named {0:?}")]
    NotFound(String),
    #[error("template file {} is not a template: {reason}", path.display())]
    BadFile { path: PathBuf, reason: String },
    #[error("the template does not make a valid lab:\n{}", problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { problems: Vec<Problem> },
    #[error("cannot {action} {}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes `bytes` to `path` in `dir` (made if missing), atomically.
fn write_in(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), TemplateError> {
    fs::create_dir_all(dir).map_err(|source| TemplateError::Io {
        action: "create",
        path: dir.to_path_buf(),
        source,
    })?;
    crate::fsutil::write_atomic(path, bytes).map_err(|source| TemplateError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// Removes template file `path` of template `name`.
fn remove_file(name: &str, path: &Path) -> Result<(), TemplateError> {
    fs::remove_file(path).map_err(|source| match source.kind() {
        std::io::ErrorKind::NotFound => TemplateError::NotFound(name.into()),
        _ => TemplateError::Io {
            action: "remove",
            path: path.to_path_buf(),
            source,
        },
    })
}

pub struct TemplateStore {
    dir: PathBuf,
}

impl TemplateStore {
    pub fn open(state_dir: &Path) -> TemplateStore {
        TemplateStore {
            dir: state_dir.join("templates"),
        }
    }

    fn path(&self, name: &str) -> Result<PathBuf, TemplateError> {
        topology::names::check_name(name).map_err(|reason| TemplateError::BadName {
            name: name.into(),
            reason,
        })?;
        Ok(self.dir.join(format!("{name}.yaml")))
    }

    fn read(&self, name: &str) -> Result<TemplateFile, TemplateError> {
        let path = self.path(name)?;
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(TemplateError::NotFound(name.into()))
            }
            Err(source) => {
                return Err(TemplateError::Io {
                    action: "read",
                    path,
                    source,
                })
            }
        };
        tpl::parse_file(&text).map_err(|reason| TemplateError::BadFile { path, reason })
    }

    /// Built-in templates first, then the user's (unreadable files are
    /// skipped with a warning).
    pub fn list(&self) -> Vec<Info> {
        let mut out = tpl::builtins();
        let mut mine = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let file = e.file_name().to_string_lossy().into_owned();
                let Some(name) = file.strip_suffix(".yaml") else {
                    continue;
                };
                match self.read(name) {
                    Ok(f) => mine.push(tpl::info_of_file(name, &f)),
                    Err(e) => tracing::warn!(error = %e, "template skipped"),
                }
            }
        }
        mine.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(mine);
        out
    }

    /// Lab `lab` from template `name` with `sets` applied, valid.
    pub fn instantiate(
        &self,
        name: &str,
        lab: &str,
        sets: &[(String, String)],
    ) -> Result<Topology, TemplateError> {
        let invalid = |problems| TemplateError::Invalid { problems };
        if tpl::builtins().iter().any(|b| b.name == name) {
            return tpl::instantiate_builtin(name, lab, sets).map_err(invalid);
        }
        match self.read(name) {
            Ok(f) => tpl::instantiate_file(name, &f, lab, sets).map_err(invalid),
            Err(TemplateError::NotFound(_)) => Err(invalid(
                tpl::instantiate_builtin(name, lab, sets).unwrap_err(),
            )),
            Err(e) => Err(e),
        }
    }

    /// Saves `t` as template `name` (atomically); a built-in name is
    /// refused, a user's template of that name replaced.
    pub fn save(
        &self,
        name: &str,
        t: &Topology,
        description: &str,
    ) -> Result<PathBuf, TemplateError> {
        let path = self.path(name)?;
        if tpl::builtins().iter().any(|b| b.name == name) {
            return Err(TemplateError::Builtin { name: name.into() });
        }
        let desc = if description.trim().is_empty() {
            format!("Saved from lab {}", t.name)
        } else {
            description.trim().to_string()
        };
        let text = tpl::to_text(&tpl::from_lab(t, &desc));
        write_in(&self.dir, &path, text.as_bytes())?;
        Ok(path)
    }

    /// Adds a template from a file's text (shared by someone), checked
    /// first: it must make a valid lab with its defaults.
    pub fn import(&self, name: &str, text: &str) -> Result<PathBuf, TemplateError> {
        let path = self.path(name)?;
        if tpl::builtins().iter().any(|b| b.name == name) {
            return Err(TemplateError::Builtin { name: name.into() });
        }
        let f: TemplateFile = tpl::parse_file(text).map_err(|reason| TemplateError::BadFile {
            path: PathBuf::from("(import)"),
            reason,
        })?;
        tpl::instantiate_file(name, &f, "check", &[])
            .map_err(|problems| TemplateError::Invalid { problems })?;
        write_in(&self.dir, &path, text.as_bytes())?;
        Ok(path)
    }

    /// Removes a user's template.
    pub fn remove(&self, name: &str) -> Result<(), TemplateError> {
        let path = self.path(name)?;
        if tpl::builtins().iter().any(|b| b.name == name) {
            return Err(TemplateError::Builtin { name: name.into() });
        }
        remove_file(name, &path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_templates_list_instantiate_and_go() {
        let d = tempfile::tempdir().unwrap();
        let store = TemplateStore::open(d.path());
        let t = store.instantiate("lan", "base", &[]).unwrap();
        assert!(matches!(
            store.save("lan", &t, ""),
            Err(TemplateError::Builtin { .. })
        ));
        assert!(matches!(
            store.save("../x", &t, ""),
            Err(TemplateError::BadName { .. })
        ));
        store.save("my-lan", &t, "mine").unwrap();
        let names: Vec<_> = store
            .list()
            .into_iter()
            .map(|i| (i.name, i.builtin))
            .collect();
        assert!(names.contains(&("my-lan".into(), false)));
        assert!(names.contains(&("star".into(), true)));
        let copy = store.instantiate("my-lan", "copy", &[]).unwrap();
        assert_eq!(copy.nodes, t.nodes);
        assert!(matches!(
            store.instantiate("nope", "x", &[]),
            Err(TemplateError::Invalid { .. })
        ));
        assert!(matches!(
            store.import(
                "broken",
                "description: x\ntopology: {version: 1, name: a, nodes: [{name: Bad}]}"
            ),
            Err(TemplateError::Invalid { .. })
        ));
        store.remove("my-lan").unwrap();
        assert!(matches!(
            store.remove("my-lan"),
            Err(TemplateError::NotFound(_))
        ));
    }
}

/// The user's node templates: `<state>/node-templates/NAME.json`, beside
/// the built-in presets.
pub struct NodeTemplateStore {
    dir: PathBuf,
}

impl NodeTemplateStore {
    pub fn open(state_dir: &Path) -> NodeTemplateStore {
        NodeTemplateStore {
            dir: state_dir.join("node-templates"),
        }
    }

    fn path(&self, name: &str) -> Result<PathBuf, TemplateError> {
        topology::names::check_name(name).map_err(|reason| TemplateError::BadName {
            name: name.into(),
            reason,
        })?;
        if topology::nodetpl::builtins().iter().any(|b| b.name == name) {
            return Err(TemplateError::Builtin { name: name.into() });
        }
        Ok(self.dir.join(format!("{name}.json")))
    }

    /// Built-in presets first, then the user's by name (unreadable files
    /// skipped with a warning).
    pub fn list(&self) -> Vec<topology::nodetpl::NodeTemplate> {
        let mut out = topology::nodetpl::builtins();
        let mut mine = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let Ok(text) = fs::read_to_string(e.path()) else {
                    continue;
                };
                match topology::nodetpl::parse(&text) {
                    Ok(t) => mine.push(t),
                    Err(p) => {
                        tracing::warn!(file = %e.path().display(), problems = ?p, "node template skipped")
                    }
                }
            }
        }
        mine.sort_by(|a, b| a.name.cmp(&b.name));
        out.extend(mine);
        out
    }

    /// Saves (or replaces) one of the user's, checked first.
    pub fn save(&self, tpl: &topology::nodetpl::NodeTemplate) -> Result<(), TemplateError> {
        let path = self.path(&tpl.name)?;
        let problems = topology::nodetpl::problems(tpl);
        if !problems.is_empty() {
            return Err(TemplateError::Invalid { problems });
        }
        let mut tpl = tpl.clone();
        tpl.builtin = false;
        let text = serde_json::to_string_pretty(&tpl).expect("serializes");
        write_in(&self.dir, &path, text.as_bytes())
    }

    /// Adds one exported as JSON by someone.
    pub fn import(&self, text: &str) -> Result<String, TemplateError> {
        let tpl = topology::nodetpl::parse(text)
            .map_err(|problems| TemplateError::Invalid { problems })?;
        self.save(&tpl)?;
        Ok(tpl.name)
    }

    /// Renames one of the user's (refused onto an existing name).
    pub fn rename(&self, from: &str, to: &str) -> Result<(), TemplateError> {
        let (old, new) = (self.path(from)?, self.path(to)?);
        if new.exists() {
            return Err(TemplateError::Invalid {
                problems: vec![Problem::new("name", format!("{to:?} exists already"))],
            });
        }
        let mut tpl = self
            .list()
            .into_iter()
            .find(|t| t.name == from && !t.builtin)
            .ok_or_else(|| TemplateError::NotFound(from.into()))?;
        tpl.name = to.to_string();
        self.save(&tpl)?;
        remove_file(from, &old)
    }

    pub fn remove(&self, name: &str) -> Result<(), TemplateError> {
        remove_file(name, &self.path(name)?)
    }
}

#[cfg(test)]
mod node_tests {
    use super::*;

    #[test]
    fn node_templates_save_rename_import_and_go() {
        let d = tempfile::tempdir().unwrap();
        let store = NodeTemplateStore::open(d.path());
        let mut tpl = topology::nodetpl::builtins()[1].clone();
        assert!(matches!(
            store.save(&tpl),
            Err(TemplateError::Builtin { .. })
        ));
        tpl.name = "edge".into();
        store.save(&tpl).unwrap();
        store.rename("edge", "core").unwrap();
        let names: Vec<_> = store.list().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["host", "frr-router", "core"]);
        let exported = serde_json::to_string(&store.list()[2]).unwrap();
        store.remove("core").unwrap();
        assert_eq!(store.import(&exported).unwrap(), "core");
        assert!(matches!(
            store.import(r#"{"name": "x", "kind": "host", "memory_mib": 1}"#),
            Err(TemplateError::Invalid { .. })
        ));
        assert!(matches!(
            store.remove("gone"),
            Err(TemplateError::NotFound(_))
        ));
    }
}
