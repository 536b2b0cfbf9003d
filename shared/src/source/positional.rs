//! The positional arguments `[REV] [PATH]` of the plugins: ranges and the revision-or-path
//! question.

use std::path::Path;

use super::{Repo, SourceError};

/// What the first positional argument turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Positional {
    /// A single revision, as typed.
    Revision(String),
    /// `A..B`, as typed on each side (an empty side already replaced by `HEAD`).
    Range(String, String),
    /// A path, as typed (turn it into a repo path with [`Repo::repo_path`]).
    Path(String),
}

/// Split an "A..B" argument into (A, B); None when there is no "..". As in git, an empty
/// side means HEAD ("main.." is "main..HEAD"). "A...B" (symmetric difference) is an error.
///
/// Something that only looks like a path ("../base", "apps/../x") is not a range: a side
/// touching the dots with a '/' cannot be a revision.
pub fn parse_range(arg: &str) -> Result<Option<(String, String)>, SourceError> {
    let dots = if arg.contains("...") { "..." } else { ".." };
    let Some((left, right)) = arg.split_once(dots) else {
        return Ok(None);
    };
    if left.ends_with('/') || right.starts_with('/') {
        return Ok(None);
    }
    if dots == "..." {
        return Err(SourceError::SymmetricRange {
            arg: arg.to_owned(),
        });
    }
    if right.contains("..") {
        return Err(SourceError::InvalidRange {
            arg: arg.to_owned(),
            reason: "more than one \"..\"",
        });
    }
    if left.is_empty() && right.is_empty() {
        return Err(SourceError::InvalidRange {
            arg: arg.to_owned(),
            reason: "name at least one side, as in main..HEAD",
        });
    }
    let side = |s: &str| {
        if s.is_empty() {
            "HEAD".to_owned()
        } else {
            s.to_owned()
        }
    };
    Ok(Some((side(left), side(right))))
}

/// Decide whether the first positional argument is a revision (or range) of `repo` or a
/// path. The rule, as kubectl and git apply it:
///
/// - it is a revision if it resolves as one (a range if both sides resolve);
/// - it is a path if it exists: on disk relative to `cwd` when the repository has a working
///   tree, in the tree of HEAD when it is bare (a `--repo` cache);
/// - both is an error that suggests `--` (the caller treats everything after `--` as paths);
/// - neither is an error too, since a typo should not silently become an empty path.
pub fn classify_positional(repo: &Repo, arg: &str, cwd: &Path) -> Result<Positional, SourceError> {
    // Otherwise a corrupt repository would only make `HEAD` look unknown.
    repo.check_objects()?;
    let is_path = match repo.workdir() {
        Some(_) => std::fs::symlink_metadata(cwd.join(arg)).is_ok(),
        None => repo.head_has_path(arg),
    };
    let revision = match parse_range(arg) {
        Ok(Some((from, to))) => (repo.resolve(&from).is_ok() && repo.resolve(&to).is_ok())
            .then_some(Positional::Range(from, to)),
        Ok(None) => repo
            .resolve(arg)
            .is_ok()
            .then(|| Positional::Revision(arg.to_owned())),
        Err(_) if is_path => None,
        Err(e) => return Err(e),
    };
    match (revision, is_path) {
        (Some(_), true) => Err(SourceError::AmbiguousArgument {
            arg: arg.to_owned(),
            repo: repo.label().to_owned(),
        }),
        (Some(revision), false) => Ok(revision),
        (None, true) => Ok(Positional::Path(arg.to_owned())),
        (None, false) => Err(SourceError::UnknownArgument {
            arg: arg.to_owned(),
            repo: repo.label().to_owned(),
        }),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn range(a: &str, b: &str) -> Option<(String, String)> {
        Some((a.to_owned(), b.to_owned()))
    }

    #[test]
    fn parse_range_cases() {
        assert_eq!(
            parse_range("main..feature").unwrap(),
            range("main", "feature")
        );
        assert_eq!(
            parse_range("HEAD~3..HEAD").unwrap(),
            range("HEAD~3", "HEAD")
        );
        assert_eq!(parse_range("v1.0..v1.1").unwrap(), range("v1.0", "v1.1"));
        assert_eq!(parse_range("main..").unwrap(), range("main", "HEAD"));
        assert_eq!(parse_range("..main").unwrap(), range("HEAD", "main"));
        assert_eq!(parse_range("main").unwrap(), None);
        assert_eq!(parse_range("v1.0").unwrap(), None);
        assert_eq!(parse_range("../base").unwrap(), None);
        assert_eq!(parse_range("apps/../x").unwrap(), None);
        assert_eq!(parse_range("apps/.../x").unwrap(), None);

        let err = parse_range("main...feature").unwrap_err();
        assert!(matches!(err, SourceError::SymmetricRange { .. }));
        assert!(err.to_string().contains("use A..B"), "{err}");
        assert!(matches!(
            parse_range("a..b..c").unwrap_err(),
            SourceError::InvalidRange { .. }
        ));
        assert!(matches!(
            parse_range("..").unwrap_err(),
            SourceError::InvalidRange { .. }
        ));
        assert!(matches!(
            parse_range("...").unwrap_err(),
            SourceError::SymmetricRange { .. }
        ));
    }
}
