//! Reading the source trees of manifests: a git revision, the working tree or a plain directory.
//!
//! A [`Snapshot`] holds the whole repository tree in memory, because renderers such as
//! kustomize reach outside the requested path (`../base`). Revisions are read straight from
//! the object database with `git2` (no checkout, no temporary files, no process per file);
//! only [`Repo::open_remote`] runs the `git` command line, so that the user's credential
//! helpers, ssh-agent and configuration apply to the network.
//!
//! Hostile repositories exist, so: symlinks are never followed on disk or in a tree; a
//! symlink whose target stays inside the tree is resolved from the files already read, and
//! any other symlink is skipped. Submodules, names that are not UTF-8 and names with control
//! characters are skipped too.

pub mod credentials;
mod integrity;
mod open;
mod positional;
mod remote;
mod repo;
mod tree;
mod walk;

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test helpers fail the test on any error
mod test_support;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Component, Path};
use std::sync::Arc;

pub use open::{is_url, open_repo, repo_cache_dir};
pub use positional::{Positional, classify_positional, parse_range};
pub use repo::Repo;
pub use tree::{LoadedTree, TreeSpec, read_tree};
pub use walk::read_directory;

/// Where a path's files come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Every file of the tree (the whole repository tree at that revision, not only under
    /// `root`), keyed by repo-relative path with '/' separators. Shared: each app of an app
    /// list renders from the same tree, and a plain revision's objects point back into it.
    pub files: Arc<BTreeMap<String, Vec<u8>>>,
    /// The path inside the repository the user asked for ("" = whole repo), normalised: no
    /// leading/trailing '/', no "./", no "..".
    pub root: String,
    /// The commit it was read from; None for a working tree / plain directory.
    pub commit: Option<CommitInfo>,
}

/// The facts about a commit that release records and messages show.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq, Hash)]
pub struct CommitInfo {
    /// Full hex id.
    pub id: String,
    /// The first 7 characters of `id`.
    pub short_id: String,
    /// The subject line (first paragraph of the message, as `git log --format=%s`).
    pub subject: String,
    pub author_name: String,
    pub author_email: String,
    /// Author time, unix seconds.
    pub time: i64,
}

/// What can go wrong while reading sources. Each message is one sentence a user can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("not a git repository: {} (or any parent)", .path.display())]
    NotARepository { path: std::path::PathBuf },
    #[error("cannot open the git repository at {path}: {message}")]
    Open { path: String, message: String },
    #[error("unknown revision \"{rev}\" in {repo}")]
    UnknownRevision { rev: String, repo: String },
    #[error("revision \"{rev}\" is ambiguous in {repo}: give more characters of the commit id")]
    AmbiguousRevision { rev: String, repo: String },
    #[error("revision \"{rev}\" in {repo} names a {kind}, not a commit")]
    NotACommit {
        rev: String,
        repo: String,
        kind: String,
    },
    #[error("path \"{path}\" does not exist at revision {rev} in {repo}")]
    PathNotFound {
        path: String,
        rev: String,
        repo: String,
    },
    #[error("path \"{path}\" does not exist in {dir}")]
    PathNotOnDisk { path: String, dir: String },
    #[error("path \"{path}\" is outside the repository {repo}")]
    PathOutsideRepo { path: String, repo: String },
    #[error("{repo} is a bare repository and has no working tree; name a revision instead")]
    BareRepository { repo: String },
    #[error(
        "\"{arg}\" is both a revision and a path in {repo}; put paths after \"--\" (e.g. \"-- {arg}\")"
    )]
    AmbiguousArgument { arg: String, repo: String },
    #[error("\"{arg}\" is neither a revision of {repo} nor an existing path")]
    UnknownArgument { arg: String, repo: String },
    #[error(
        "\"{arg}\": the symmetric range A...B is not supported; use A..B (commits in B that are not in A)"
    )]
    SymmetricRange { arg: String },
    #[error("invalid revision range \"{arg}\": {reason}")]
    InvalidRange { arg: String, reason: &'static str },
    #[error("git {action} of {url} failed: {stderr}")]
    GitCommand {
        action: &'static str,
        url: String,
        stderr: String,
    },
    #[error("cannot run `git` for {url}: {message}; is git installed and on PATH?")]
    GitNotRunnable { url: String, message: String },
    #[error("{context} in {repo} failed: {message}")]
    Git {
        context: String,
        repo: String,
        message: String,
    },
    #[error(
        "the git object {id} in {repo} is corrupt: {message}; `git fsck` in the repository tells more"
    )]
    CorruptObject {
        id: String,
        repo: String,
        message: String,
    },
    #[error("symlinks in {repo} expand to more than {limit} files; refusing to read them")]
    TooManyLinkedFiles { repo: String, limit: usize },
    #[error("refusing to write \"{path}\": it would land outside {}", .dest.display())]
    UnsafePath {
        path: String,
        dest: std::path::PathBuf,
    },
    #[error("not a directory: {}", .path.display())]
    NotADirectory { path: std::path::PathBuf },
    #[error("cannot read {}: {message}", .path.display())]
    Read {
        path: std::path::PathBuf,
        message: String,
    },
    #[error("cannot write {}: {message}", .path.display())]
    Write {
        path: std::path::PathBuf,
        message: String,
    },
}

impl Snapshot {
    /// Files under `root` (relative to the repo), in path order. A `root` naming a file
    /// yields that file.
    pub fn files_under_root(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let root = self.root.as_str();
        let prefix = if root.is_empty() {
            String::new()
        } else {
            format!("{root}/")
        };
        let exact = if root.is_empty() {
            None
        } else {
            self.files.get_key_value(root)
        };
        // "root" sorts before "root/...", so chaining keeps path order.
        exact
            .into_iter()
            .chain(
                self.files
                    .range::<str, _>((
                        std::ops::Bound::Included(prefix.as_str()),
                        std::ops::Bound::Unbounded,
                    ))
                    .take_while(move |(path, _)| path.starts_with(&prefix)),
            )
            .map(|(path, data)| (path.as_str(), data.as_slice()))
    }

    /// Write every file into `dest` (for tools such as `kubectl kustomize` or `helm` that need
    /// files on disk). `dest` should be a fresh, empty directory. Every path is checked before
    /// anything is written, so a hostile path (`..`, absolute) leaves `dest` untouched.
    pub fn materialize(&self, dest: &Path) -> Result<(), SourceError> {
        if let Some(bad) = self.files.keys().find(|path| !is_safe_relative(path)) {
            return Err(SourceError::UnsafePath {
                path: bad.clone(),
                dest: dest.to_path_buf(),
            });
        }
        for (path, data) in self.files.iter() {
            let target = dest.join(path);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| SourceError::Write {
                    path: parent.to_path_buf(),
                    message: e.to_string(),
                })?;
            }
            fs::write(&target, data).map_err(|e| SourceError::Write {
                path: target.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(())
    }
}

/// A path that joins below a directory and cannot leave it.
fn is_safe_relative(path: &str) -> bool {
    // On Windows '\\' and drive letters ("C:") are path syntax too; elsewhere they are
    // ordinary (if odd) file-name characters that real repositories use.
    let special: &[char] = if cfg!(windows) {
        &['\\', '\0', ':']
    } else {
        &['\0']
    };
    !path.is_empty()
        && path
            .split('/')
            .all(|part| !matches!(part, "" | "." | "..") && !part.contains(special))
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Normalise a repo-relative path: drop empty and "." parts, apply "..", trim slashes.
/// A leading "/" means the repository root. Going above the root is an error.
pub(crate) fn normalize_root(root: &str, repo: &str) -> Result<String, SourceError> {
    let mut parts: Vec<&str> = Vec::new();
    for part in root.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(SourceError::PathOutsideRepo {
                        path: root.to_owned(),
                        repo: repo.to_owned(),
                    });
                }
            }
            name => parts.push(name),
        }
    }
    Ok(parts.join("/"))
}

/// True when `files` holds `path` itself or anything below it.
fn has_path(files: &BTreeMap<String, Vec<u8>>, path: &str) -> bool {
    if path.is_empty() || files.contains_key(path) {
        return true;
    }
    let prefix = format!("{path}/");
    files
        .range::<str, _>((
            std::ops::Bound::Included(prefix.as_str()),
            std::ops::Bound::Unbounded,
        ))
        .next()
        .is_some_and(|(key, _)| key.starts_with(&prefix))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn snapshot(paths: &[&str], root: &str) -> Snapshot {
        Snapshot {
            files: paths
                .iter()
                .map(|p| (p.to_string(), p.as_bytes().to_vec()))
                .collect::<BTreeMap<_, _>>()
                .into(),
            root: root.to_owned(),
            commit: None,
        }
    }

    #[test]
    fn files_under_root_keeps_only_the_subtree_in_order() {
        let snap = snapshot(
            &["apps-x/a", "apps/b/c", "apps/a", "apps", "base/k"],
            "apps",
        );
        let got: Vec<&str> = snap.files_under_root().map(|(p, _)| p).collect();
        assert_eq!(got, ["apps", "apps/a", "apps/b/c"]);
        let all = snapshot(&["b", "a/x"], "");
        assert_eq!(all.files_under_root().count(), 2);
    }

    #[test]
    fn normalize_root_cleans_paths_and_refuses_to_leave_the_repo() {
        assert_eq!(normalize_root("./apps//x/", "r").unwrap(), "apps/x");
        assert_eq!(normalize_root("/apps/../base", "r").unwrap(), "base");
        assert_eq!(normalize_root(".", "r").unwrap(), "");
        let err = normalize_root("apps/../../etc", "/repo").unwrap_err();
        assert_eq!(
            err.to_string(),
            "path \"apps/../../etc\" is outside the repository /repo"
        );
    }

    #[test]
    fn materialize_writes_files_and_refuses_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        let good = snapshot(&["a/b.yaml", "c.yaml"], "");
        good.materialize(dir.path()).unwrap();
        assert_eq!(fs::read(dir.path().join("a/b.yaml")).unwrap(), b"a/b.yaml");

        for bad in [
            "../evil",
            "/etc/evil",
            "a/../../evil",
            "a//b",
            "./a",
            "a/\0b",
            "",
        ] {
            let out = tempfile::tempdir().unwrap();
            let snap = snapshot(&["ok.yaml", bad], "");
            let err = snap.materialize(out.path()).unwrap_err();
            assert!(
                matches!(err, SourceError::UnsafePath { .. }),
                "{bad}: {err}"
            );
            // Nothing was written, not even the good file.
            assert_eq!(fs::read_dir(out.path()).unwrap().count(), 0, "{bad}");
        }
    }
}
