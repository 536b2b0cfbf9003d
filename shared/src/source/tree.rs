//! Which tree a command reads (a revision or the working tree), read and labelled for
//! diff headers.

use super::{CommitInfo, Repo, Snapshot, SourceError};

/// Which tree to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeSpec {
    /// A revision, read from the object database.
    Revision(String),
    /// The files on disk, uncommitted changes included.
    WorkingTree,
}

/// A revision's tree, read and described.
pub struct LoadedTree {
    pub snapshot: Snapshot,
    /// A short name for diff headers: the short commit id, or `working-tree`.
    pub label: String,
}

impl LoadedTree {
    pub fn commit(&self) -> Option<&CommitInfo> {
        self.snapshot.commit.as_ref()
    }
}

/// Reads the tree `spec` names at `root` (repo-relative).
pub fn read_tree(repo: &Repo, spec: &TreeSpec, root: &str) -> Result<LoadedTree, SourceError> {
    Ok(match spec {
        TreeSpec::Revision(rev) => {
            let commit = repo.resolve(rev)?;
            let label = commit.short_id.clone();
            LoadedTree {
                snapshot: repo.snapshot(&commit, root)?,
                label,
            }
        }
        TreeSpec::WorkingTree => LoadedTree {
            snapshot: repo.working_tree(root)?,
            label: "working-tree".into(),
        },
    })
}
