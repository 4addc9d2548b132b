//! The compiled site `minivm serve` serves (wasm, JS, CSS, public files),
//! where it is found, and the check that it was built together with this
//! binary. `cargo xtask build` writes the site next to the binary
//! (target/<profile>/site) with a stamp, `build.txt`, naming the binary:
//! its profile, size, modification time and SHA-256. A site stamped for
//! another binary is refused at start: its wasm would not hydrate the pages
//! this binary renders.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

/// The stamp's file name in the site root (written by xtask/src/main.rs).
pub const STAMP: &str = "build.txt";

/// Why a site cannot be served by this binary.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("cannot find the compiled site next to {exe}; build it with `{rebuild}` or pass --site-root")]
    NotFound { exe: PathBuf, rebuild: &'static str },
    #[error("{site} holds no compiled site (pkg/minivm.js is missing); build it with `{rebuild}`")]
    NoBundle {
        site: PathBuf,
        rebuild: &'static str,
    },
    #[error("{site} is a {site_profile} build and this minivm a {profile} build; rebuild the site with `{rebuild}`")]
    OtherProfile {
        site: PathBuf,
        site_profile: String,
        profile: &'static str,
        rebuild: &'static str,
    },
    #[error(
        "{site} was built with another minivm binary than {exe}; rebuild both with `{rebuild}`"
    )]
    OtherBinary {
        site: PathBuf,
        exe: PathBuf,
        rebuild: &'static str,
    },
    #[error("{stamp}: {reason}; rebuild the site with `{rebuild}`")]
    BadStamp {
        stamp: PathBuf,
        reason: String,
        rebuild: &'static str,
    },
    #[error("cannot read {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How this binary was built, as the stamp spells it.
pub const PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

/// What the check found.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Stamped for this binary.
    Matches,
    /// No stamp: a site made by hand (tests' stand-ins) or by another tool.
    Unstamped,
}

/// The site next to the binary: target/<profile>/minivm → target/<profile>/site,
/// or an installed layout <prefix>/bin/minivm → <prefix>/share/minivm/site.
pub fn locate(exe: &Path) -> Result<PathBuf, SiteError> {
    let dir = exe.parent().unwrap_or(Path::new("/"));
    [dir.join("site"), dir.join("../share/minivm/site")]
        .into_iter()
        .find(|c| c.join("pkg/minivm.js").exists())
        .and_then(|c| c.canonicalize().ok())
        .ok_or_else(|| SiteError::NotFound {
            exe: exe.to_path_buf(),
            rebuild: rebuild_for(PROFILE),
        })
}

/// Whether `site` may be served by the binary `exe` built with `profile`.
pub fn check(site: &Path, exe: &Path, profile: &'static str) -> Result<Verdict, SiteError> {
    let rebuild = rebuild_for(profile);
    if !site.join("pkg/minivm.js").exists() {
        return Err(SiteError::NoBundle {
            site: site.to_path_buf(),
            rebuild,
        });
    }
    let stamp_path = site.join(STAMP);
    let text = match std::fs::read_to_string(&stamp_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Verdict::Unstamped),
        Err(source) => {
            return Err(SiteError::Io {
                path: stamp_path,
                source,
            })
        }
    };
    let stamp = Stamp::parse(&text).map_err(|reason| SiteError::BadStamp {
        stamp: stamp_path.clone(),
        reason,
        rebuild,
    })?;
    if stamp.profile != profile {
        return Err(SiteError::OtherProfile {
            site: site.to_path_buf(),
            site_profile: stamp.profile,
            profile,
            rebuild,
        });
    }
    let io = |source| SiteError::Io {
        path: exe.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(exe).map_err(io)?;
    let mtime_ns = meta
        .modified()
        .map_err(io)?
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // The same file as when the site was built: no need to hash it.
    if meta.len() == stamp.size && mtime_ns == stamp.mtime_ns {
        return Ok(Verdict::Matches);
    }
    // A copy (installed elsewhere, mtime lost) is the same binary if its
    // bytes are; anything else was built apart from the site.
    if meta.len() == stamp.size && engine::image::sha256_file(exe).ok() == Some(stamp.sha256) {
        return Ok(Verdict::Matches);
    }
    Err(SiteError::OtherBinary {
        site: site.to_path_buf(),
        exe: exe.to_path_buf(),
        rebuild,
    })
}

/// The command that rebuilds the site of a binary of this profile.
fn rebuild_for(profile: &str) -> &'static str {
    if profile == "release" {
        "cargo xtask build --release"
    } else {
        "cargo xtask build"
    }
}

/// The stamp's fields: one `key value` per line.
struct Stamp {
    profile: String,
    size: u64,
    mtime_ns: u128,
    sha256: String,
}

impl Stamp {
    fn parse(text: &str) -> Result<Stamp, String> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
                .map(str::trim)
                .ok_or_else(|| format!("no {key} line"))
        };
        let number = |key: &str| {
            field(key)?
                .parse::<u128>()
                .map_err(|_| format!("{key} is not a number"))
        };
        Ok(Stamp {
            profile: field("profile")?.to_string(),
            size: u64::try_from(number("server-size")?).map_err(|_| "server-size is too large")?,
            mtime_ns: number("server-mtime-ns")?,
            sha256: field("server-sha256")?.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        _dir: tempfile::TempDir,
        site: PathBuf,
        exe: PathBuf,
    }

    /// A site with a bundle, and a "binary" with known bytes.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path().join("site");
        std::fs::create_dir_all(site.join("pkg")).unwrap();
        std::fs::write(site.join("pkg/minivm.js"), "").unwrap();
        let exe = dir.path().join("minivm");
        std::fs::write(&exe, b"the binary").unwrap();
        Fixture {
            _dir: dir,
            site,
            exe,
        }
    }

    fn stamp_for(f: &Fixture, profile: &str, mtime_ns: u128, sha256: &str) {
        let size = std::fs::metadata(&f.exe).unwrap().len();
        std::fs::write(
            f.site.join(STAMP),
            format!("profile {profile}\nserver-size {size}\nserver-mtime-ns {mtime_ns}\nserver-sha256 {sha256}\n"),
        )
        .unwrap();
    }

    fn mtime_ns(p: &Path) -> u128 {
        std::fs::metadata(p)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    }

    #[test]
    fn a_site_stamped_for_this_very_file_is_served() {
        let f = fixture();
        stamp_for(&f, "release", mtime_ns(&f.exe), "not-read");
        assert_eq!(check(&f.site, &f.exe, "release").unwrap(), Verdict::Matches);
    }

    #[test]
    fn a_copy_of_the_binary_is_recognised_by_its_bytes() {
        let f = fixture();
        let sha = engine::image::sha256_file(&f.exe).unwrap();
        stamp_for(&f, "debug", 1, &sha);
        assert_eq!(check(&f.site, &f.exe, "debug").unwrap(), Verdict::Matches);
    }

    #[test]
    fn a_site_of_another_profile_is_refused_with_the_command_that_rebuilds_it() {
        let f = fixture();
        stamp_for(&f, "debug", mtime_ns(&f.exe), "x");
        let e = check(&f.site, &f.exe, "release").unwrap_err().to_string();
        assert!(
            e.contains("is a debug build and this minivm a release build"),
            "{e}"
        );
        assert!(e.contains("`cargo xtask build --release`"), "{e}");
    }

    #[test]
    fn a_site_built_with_another_binary_is_refused() {
        let f = fixture();
        stamp_for(&f, "debug", 1, "0000");
        let e = check(&f.site, &f.exe, "debug").unwrap_err().to_string();
        assert!(e.contains("was built with another minivm binary"), "{e}");
        assert!(e.contains("`cargo xtask build`"), "{e}");
    }

    #[test]
    fn an_unstamped_site_is_served_and_said_to_be_unstamped() {
        let f = fixture();
        assert_eq!(check(&f.site, &f.exe, "debug").unwrap(), Verdict::Unstamped);
    }

    #[test]
    fn a_torn_stamp_names_the_missing_line() {
        let f = fixture();
        std::fs::write(f.site.join(STAMP), "profile debug\n").unwrap();
        let e = check(&f.site, &f.exe, "debug").unwrap_err().to_string();
        assert!(e.contains("no server-size line"), "{e}");
    }

    #[test]
    fn a_directory_without_a_bundle_is_not_a_site() {
        let f = fixture();
        std::fs::remove_file(f.site.join("pkg/minivm.js")).unwrap();
        let e = check(&f.site, &f.exe, "debug").unwrap_err().to_string();
        assert!(e.contains("holds no compiled site"), "{e}");
    }
}
