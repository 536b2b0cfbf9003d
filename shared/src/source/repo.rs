//! [`Repo`]: opening a repository, resolving revisions, reading a revision or the working tree.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::{ErrorCode, ObjectType, Oid, Repository, Sort};

use super::integrity::{self, Corrupt, LooseBlobs};
use super::walk::{self, RawTree, TreeError};
use super::{CommitInfo, Snapshot, SourceError, has_path, normalize_root};

/// An opened git repository.
pub struct Repo {
    repo: Repository,
    workdir: Option<PathBuf>,
    /// How messages name the repository: its working directory, git directory or remote URL.
    label: String,
    /// The loose objects, checked before libgit2 first reads any (see integrity.rs), and
    /// the small blobs among them.
    loose_objects: std::cell::OnceCell<Result<LooseBlobs, Corrupt>>,
}

impl fmt::Debug for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Repo")
            .field("label", &self.label)
            .field("workdir", &self.workdir)
            .finish()
    }
}

impl Repo {
    /// Open the repository containing `dir` (discover upwards, like git does).
    pub fn discover(dir: &Path) -> Result<Repo, SourceError> {
        match Repository::discover(dir) {
            Ok(repo) => Ok(Repo::from_git2(repo, None)),
            Err(e) if e.code() == ErrorCode::NotFound => Err(SourceError::NotARepository {
                path: dir.to_path_buf(),
            }),
            Err(e) => Err(SourceError::Open {
                path: dir.display().to_string(),
                message: e.message().to_owned(),
            }),
        }
    }

    pub(super) fn from_git2(repo: Repository, label: Option<String>) -> Repo {
        let workdir = repo.workdir().map(Path::to_path_buf);
        let label = label.unwrap_or_else(|| {
            let path = workdir.as_deref().unwrap_or_else(|| repo.path());
            // Drop the trailing '/' that libgit2 puts on directories.
            path.components().collect::<PathBuf>().display().to_string()
        });
        Repo {
            repo,
            workdir,
            label,
            loose_objects: std::cell::OnceCell::new(),
        }
    }

    /// Fails on a loose object libgit2 would hang on; checked once, before the first read.
    pub(super) fn check_objects(&self) -> Result<(), SourceError> {
        self.loose_blobs().map(|_| ())
    }

    /// Frees the small loose blobs kept from the check (each tree read copies what it
    /// needs): for a caller that has read its last tree, as they are as large as the
    /// revision's files. The objects stay checked; a later read takes them from git.
    pub fn forget_checked_blobs(&mut self) {
        if let Some(Ok(_)) = self.loose_objects.get() {
            self.loose_objects = std::cell::OnceCell::from(Ok(LooseBlobs::default()));
        }
    }

    /// The small loose blobs [`Repo::check_objects`] read, checked.
    fn loose_blobs(&self) -> Result<&LooseBlobs, SourceError> {
        self.loose_objects
            .get_or_init(|| integrity::check_loose_objects(&integrity::objects_dir(&self.repo)))
            .as_ref()
            .map_err(|corrupt| self.corrupt(corrupt.clone()))
    }

    fn corrupt(&self, corrupt: Corrupt) -> SourceError {
        SourceError::CorruptObject {
            id: corrupt.id,
            repo: self.label.clone(),
            message: corrupt.message,
        }
    }

    /// How messages name this repository (its directory, or the URL for a remote).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The repository's working directory (None for bare).
    pub fn workdir(&self) -> Option<&Path> {
        self.workdir.as_deref()
    }

    /// Resolve any revision git understands (branch, tag, sha, short sha, HEAD~2,
    /// origin/main) to a commit. In a bare cache of a remote, `origin/X` also finds branch `X`,
    /// since that is what people type out of habit.
    pub fn resolve(&self, rev: &str) -> Result<CommitInfo, SourceError> {
        let commit = self.find_commit(rev)?;
        Ok(commit_info(&commit))
    }

    /// One file at `rev`, or None if the revision has no file at `path`. A branch, a tag,
    /// `HEAD` or a full commit id is followed through the objects on the way only (the
    /// commit, the trees of the path, the blob), each checked as it is reached, rather
    /// than checking every loose object first: a command that needs only the app list (or
    /// an app's config file) of a large repository reads a few objects instead of all of
    /// them. Other revisions, and a file that is a symlink, are read as
    /// [`Repo::snapshot`] reads them.
    pub fn file_at(&self, rev: &str, path: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let objects = integrity::objects_dir(&self.repo);
        let checked =
            |id: Oid| integrity::check_one_loose_object(&objects, id).map_err(|c| self.corrupt(c));
        let full_id = || {
            (rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| Oid::from_str(rev).ok())
                .flatten()
        };
        let direct = self
            .repo
            .resolve_reference_from_short_name(rev)
            .ok()
            .and_then(|reference| reference.resolve().ok()?.target())
            .or_else(full_id);
        let Some(commit_id) = direct else {
            return self.file_in_snapshot(rev, path);
        };
        checked(commit_id)?;
        // An annotated tag's target is a tag object: peeled by the general way.
        let Ok(commit) = self.repo.find_commit(commit_id) else {
            return self.file_in_snapshot(rev, path);
        };
        let git = |e: git2::Error| self.git_error(format!("reading {path} at {rev}"), &e);
        checked(commit.tree_id())?;
        let mut tree = commit.tree().map_err(git)?;
        let mut parts = path.split('/').filter(|p| !p.is_empty()).peekable();
        while let Some(part) = parts.next() {
            let Some((id, kind, mode)) = tree
                .get_name(part)
                .map(|entry| (entry.id(), entry.kind(), entry.filemode()))
            else {
                return Ok(None);
            };
            if parts.peek().is_some() {
                if kind != Some(ObjectType::Tree) {
                    return Ok(None);
                }
                checked(id)?;
                tree = self.repo.find_tree(id).map_err(git)?;
            } else if kind != Some(ObjectType::Blob) {
                return Ok(None);
            } else if mode == walk::GIT_SYMLINK_MODE {
                return self.file_in_snapshot(rev, path);
            } else {
                checked(id)?;
                return Ok(Some(
                    self.repo.find_blob(id).map_err(git)?.content().to_vec(),
                ));
            }
        }
        Ok(None)
    }

    /// [`Repo::file_at`] through the whole tree.
    fn file_in_snapshot(&self, rev: &str, path: &str) -> Result<Option<Vec<u8>>, SourceError> {
        let commit = self.resolve(rev)?;
        Ok(self.snapshot(&commit, "")?.files.get(path).cloned())
    }

    fn find_commit(&self, rev: &str) -> Result<git2::Commit<'_>, SourceError> {
        self.check_objects()?;
        let mut found = self.repo.revparse_single(rev);
        if let (Err(_), Some(branch)) = (&found, rev.strip_prefix("origin/"))
            && self.repo.is_bare()
        {
            found = self.repo.revparse_single(branch);
        }
        let object = found.map_err(|e| match e.code() {
            ErrorCode::Ambiguous => SourceError::AmbiguousRevision {
                rev: rev.to_owned(),
                repo: self.label.clone(),
            },
            _ => SourceError::UnknownRevision {
                rev: rev.to_owned(),
                repo: self.label.clone(),
            },
        })?;
        let kind = object.kind().map_or("object", |k| k.str()).to_owned();
        object
            .peel_to_commit()
            .map_err(|_| SourceError::NotACommit {
                rev: rev.to_owned(),
                repo: self.label.clone(),
                kind,
            })
    }

    /// Read the tree at `commit` straight from the object database (no checkout, no temp
    /// files). Error if `root` does not exist at that commit.
    pub fn snapshot(&self, commit: &CommitInfo, root: &str) -> Result<Snapshot, SourceError> {
        let root = normalize_root(root, &self.label)?;
        let found = self.find_commit(&commit.id)?;
        let tree = found
            .tree()
            .map_err(|e| self.git_error(format!("reading the tree of {}", commit.short_id), &e))?;
        let raw =
            walk::read_git_tree(&self.repo, &tree, self.loose_blobs()?).map_err(|e| match e {
                TreeError::Git(e) => {
                    self.git_error(format!("reading revision {}", commit.short_id), &e)
                }
                TreeError::Corrupt(corrupt) => self.corrupt(corrupt),
            })?;
        let files = raw.resolve_links(&self.label)?;
        let exists = has_path(&files, &root) || tree.get_path(Path::new(&root)).is_ok();
        if !exists {
            return Err(SourceError::PathNotFound {
                path: root,
                rev: commit.short_id.clone(),
                repo: self.label.clone(),
            });
        }
        Ok(Snapshot {
            files: Arc::new(files),
            root,
            commit: Some(commit_info(&found)),
        })
    }

    /// The working tree's files as they are on disk (uncommitted changes included), skipping
    /// `.git` and files git ignores (tracked files stay, as in git); commit = None.
    pub fn working_tree(&self, root: &str) -> Result<Snapshot, SourceError> {
        let Some(workdir) = self.workdir.as_deref() else {
            return Err(SourceError::BareRepository {
                repo: self.label.clone(),
            });
        };
        let root = normalize_root(root, &self.label)?;
        self.check_objects()?;
        let mut options = git2::StatusOptions::new();
        options
            .include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(false)
            .include_unmodified(true)
            .exclude_submodules(true);
        let statuses = self
            .repo
            .statuses(Some(&mut options))
            .map_err(|e| self.git_error("listing the working tree".to_owned(), &e))?;
        // Git decides what is ignored; the disk decides what the files hold.
        let paths = statuses
            .iter()
            .filter_map(|entry| entry.path().ok().map(str::to_owned));
        let raw: RawTree = walk::read_listed_files(workdir, paths)?;
        let files = raw.resolve_links(&self.label)?;
        if !has_path(&files, &root) && std::fs::symlink_metadata(workdir.join(&root)).is_err() {
            return Err(SourceError::PathNotOnDisk {
                path: root,
                dir: self.label.clone(),
            });
        }
        Ok(Snapshot {
            files: Arc::new(files),
            root,
            commit: None,
        })
    }

    /// Commits reachable from `to` but not from `from` (is the branch ahead of what is
    /// deployed?), newest first.
    pub fn commits_between(&self, from: &str, to: &str) -> Result<Vec<CommitInfo>, SourceError> {
        let from_id = self.find_commit(from)?.id();
        let to_id = self.find_commit(to)?.id();
        let context = || format!("listing the commits {from}..{to}");
        let walk_err = |e: git2::Error| self.git_error(context(), &e);
        let mut revwalk = self.repo.revwalk().map_err(walk_err)?;
        revwalk
            .set_sorting(Sort::TOPOLOGICAL | Sort::TIME)
            .map_err(walk_err)?;
        revwalk.push(to_id).map_err(walk_err)?;
        revwalk.hide(from_id).map_err(walk_err)?;
        let mut commits = Vec::new();
        for id in revwalk {
            let commit = id
                .and_then(|id| self.repo.find_commit(id))
                .map_err(walk_err)?;
            commits.push(commit_info(&commit));
        }
        Ok(commits)
    }

    /// Turn a path the user typed (relative to `cwd`, or absolute) into the repo-relative
    /// form [`Repo::snapshot`] takes. In a bare repository the path is already repo-relative.
    pub fn repo_path(&self, cwd: &Path, path: &str) -> Result<String, SourceError> {
        let Some(workdir) = self.workdir.as_deref() else {
            return normalize_root(path, &self.label);
        };
        let outside = || SourceError::PathOutsideRepo {
            path: path.to_owned(),
            repo: self.label.clone(),
        };
        let read_err = |p: &Path, e: std::io::Error| SourceError::Read {
            path: p.to_path_buf(),
            message: e.to_string(),
        };
        let workdir = workdir.canonicalize().map_err(|e| read_err(workdir, e))?;
        // The path may exist only at an old revision, so resolve it lexically against the
        // real (symlink-free) cwd rather than canonicalizing the path itself.
        let joined = if Path::new(path).is_absolute() {
            PathBuf::from(path)
        } else {
            cwd.canonicalize().map_err(|e| read_err(cwd, e))?.join(path)
        };
        let mut clean = PathBuf::new();
        for component in joined.components() {
            match component {
                std::path::Component::ParentDir => {
                    clean.pop();
                }
                std::path::Component::CurDir => {}
                other => clean.push(other),
            }
        }
        let relative = clean.strip_prefix(&workdir).map_err(|_| outside())?;
        let parts: Option<Vec<&str>> = relative
            .components()
            .map(|c| c.as_os_str().to_str())
            .collect();
        Ok(parts.ok_or_else(outside)?.join("/"))
    }

    /// Whether `path` (repo-relative) names something in the tree of HEAD; false when HEAD
    /// is unborn.
    pub(super) fn head_has_path(&self, path: &str) -> bool {
        // A corrupt object is reported by the read that follows.
        if self.check_objects().is_err() {
            return false;
        }
        let Ok(root) = normalize_root(path, &self.label) else {
            return false;
        };
        let Ok(tree) = self.repo.head().and_then(|h| h.peel_to_tree()) else {
            return false;
        };
        root.is_empty() || tree.get_path(Path::new(&root)).is_ok()
    }

    fn git_error(&self, context: String, error: &git2::Error) -> SourceError {
        SourceError::Git {
            context,
            repo: self.label.clone(),
            message: error.message().to_owned(),
        }
    }
}

fn commit_info(commit: &git2::Commit<'_>) -> CommitInfo {
    let id = commit.id().to_string();
    let short_id = id.chars().take(7).collect();
    let author = commit.author();
    let lossy = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    CommitInfo {
        id,
        short_id,
        subject: lossy(commit.summary_bytes().unwrap_or_default()),
        author_name: lossy(author.name_bytes()),
        author_email: lossy(author.email_bytes()),
        time: author.when().seconds(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::super::test_support::TestRepo;
    use super::super::{Positional, classify_positional};
    use super::*;

    /// Three commits: c1 (tagged v1.0), c2 (branch `feature`), c3.
    fn history() -> (TestRepo, [String; 3]) {
        let t = TestRepo::new();
        t.write("apps/web/deploy.yaml", "image: web:v1\n");
        t.write("base/kustomization.yaml", "resources: []\n");
        let c1 = t.commit("First commit\n\nWith a body.");
        t.git(&["tag", "-a", "v1.0", "-m", "release 1.0"]);
        t.write("apps/web/deploy.yaml", "image: web:v2\n");
        let c2 = t.commit("Second");
        t.git(&["branch", "feature"]);
        t.write("apps/new.yaml", "kind: New\n");
        let c3 = t.commit("Third");
        (t, [c1, c2, c3])
    }

    #[test]
    fn resolve_understands_what_git_understands() {
        let (t, [c1, c2, c3]) = history();
        let repo = Repo::discover(&t.dir.join("apps/web")).unwrap();
        assert_eq!(
            repo.workdir().unwrap().canonicalize().unwrap(),
            t.dir.canonicalize().unwrap()
        );
        for (rev, want) in [
            ("main", &c3),
            ("HEAD", &c3),
            ("v1.0", &c1),
            ("feature", &c2),
            ("HEAD~1", &c2),
        ] {
            assert_eq!(&repo.resolve(rev).unwrap().id, want, "{rev}");
        }
        assert_eq!(repo.resolve(&c2).unwrap().id, c2);
        assert_eq!(repo.resolve(&c1[..8]).unwrap().id, c1);

        let info = repo.resolve("HEAD~2").unwrap();
        assert_eq!(info.short_id, c1[..7]);
        assert_eq!(info.subject, "First commit");
        assert_eq!(
            (info.author_name.as_str(), info.author_email.as_str()),
            ("Ada Author", "ada@example.com")
        );
        assert!(info.time > 1_600_000_000);

        let err = repo.resolve("nope").unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("unknown revision \"nope\" in {}", repo.label())
        );
        assert!(matches!(
            repo.resolve("HEAD:apps").unwrap_err(),
            SourceError::NotACommit { .. }
        ));
    }

    #[test]
    fn snapshot_reads_the_whole_tree_at_an_old_revision() {
        let (t, [c1, ..]) = history();
        let repo = Repo::discover(&t.dir).unwrap();
        let old = repo.resolve("v1.0").unwrap();
        let snap = repo.snapshot(&old, "./apps/web/").unwrap();
        assert_eq!(snap.root, "apps/web");
        assert_eq!(snap.commit.as_ref().unwrap().id, c1);
        assert_eq!(snap.files["apps/web/deploy.yaml"], b"image: web:v1\n");
        assert!(
            snap.files.contains_key("base/kustomization.yaml"),
            "the whole tree is read"
        );
        assert!(!snap.files.contains_key("apps/new.yaml"));
        let under: Vec<&str> = snap.files_under_root().map(|(p, _)| p).collect();
        assert_eq!(under, ["apps/web/deploy.yaml"]);

        let whole = repo.snapshot(&repo.resolve("HEAD").unwrap(), "").unwrap();
        assert_eq!(whole.files.len(), 3);
        assert_eq!(whole.files["apps/web/deploy.yaml"], b"image: web:v2\n");
    }

    #[test]
    fn one_file_reads_as_in_the_whole_tree() {
        let (t, [c1, c2, _]) = history();
        let repo = Repo::discover(&t.dir).unwrap();
        let file = |rev: &str, path: &str| repo.file_at(rev, path).unwrap();
        assert_eq!(
            file("main", "apps/web/deploy.yaml").unwrap(),
            b"image: web:v2\n"
        );
        assert_eq!(file("HEAD", "apps/new.yaml").unwrap(), b"kind: New\n");
        // An annotated tag, a commit id, an expression: the general way, same answer.
        assert_eq!(
            file("v1.0", "apps/web/deploy.yaml").unwrap(),
            b"image: web:v1\n"
        );
        assert_eq!(
            file(&c1, "apps/web/deploy.yaml").unwrap(),
            b"image: web:v1\n"
        );
        assert_eq!(
            file("HEAD~1", "apps/web/deploy.yaml").unwrap(),
            b"image: web:v2\n"
        );
        assert_eq!(file("feature", "apps/new.yaml"), None);
        assert_eq!(file(&c2, "apps/new.yaml"), None);
        for missing in [
            "nothing.yaml",
            "apps/web",
            "apps/web/deploy.yaml/x",
            "base/no/x",
        ] {
            assert_eq!(file("main", missing), None, "{missing}");
        }
        let err = repo.file_at("no-such-branch", "apps/new.yaml").unwrap_err();
        assert!(matches!(err, SourceError::UnknownRevision { .. }), "{err}");
    }

    #[test]
    fn one_file_is_read_past_a_damaged_object_elsewhere_but_not_through_one() {
        let t = TestRepo::new();
        t.write("apps.yaml", "apps: []\n");
        t.write("web/cm.yaml", "kind: ConfigMap\n");
        t.commit("one");
        let truncate = |spec: &str| {
            let id = t.git(&["rev-parse", spec]).trim().to_string();
            let path = t.dir.join(".git/objects").join(&id[..2]).join(&id[2..]);
            let bytes = std::fs::read(&path).unwrap();
            let mut perms = std::fs::metadata(&path).unwrap().permissions();
            #[allow(clippy::permissions_set_readonly_false)] // a test fixture
            perms.set_readonly(false);
            std::fs::set_permissions(&path, perms).unwrap();
            std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
            id
        };
        let commit = t.git(&["rev-parse", "HEAD"]).trim().to_string();
        truncate("HEAD:web/cm.yaml");
        let repo = Repo::discover(&t.dir).unwrap();
        assert_eq!(
            repo.file_at("HEAD", "apps.yaml").unwrap().unwrap(),
            b"apps: []\n"
        );
        // A full commit id (as a release records it) goes the same direct way.
        assert_eq!(
            repo.file_at(&commit, "apps.yaml").unwrap().unwrap(),
            b"apps: []\n"
        );
        // The whole tree's read still refuses it.
        assert!(repo.resolve("HEAD").is_err());
        let id = truncate("HEAD:apps.yaml");
        let repo = Repo::discover(&t.dir).unwrap();
        let err = repo.file_at("HEAD", "apps.yaml").unwrap_err();
        assert!(matches!(err, SourceError::CorruptObject { .. }), "{err}");
        assert!(err.to_string().contains(&id[..7]), "{err}");
    }

    #[test]
    fn trees_read_after_the_checked_blobs_are_freed_are_the_same() {
        let (t, _) = history();
        let mut repo = Repo::discover(&t.dir).unwrap();
        let head = repo.resolve("main").unwrap();
        let first = repo.snapshot(&head, "").unwrap();
        assert!(
            !repo.loose_blobs().unwrap().is_empty(),
            "kept while reading"
        );
        repo.forget_checked_blobs();
        assert!(repo.loose_blobs().unwrap().is_empty(), "freed");
        assert_eq!(repo.snapshot(&head, "").unwrap(), first);
        let old = repo.snapshot(&repo.resolve("v1.0").unwrap(), "").unwrap();
        assert_eq!(old.files["apps/web/deploy.yaml"], b"image: web:v1\n");
    }

    #[test]
    fn snapshot_of_a_missing_path_names_path_and_revision() {
        let (t, [c1, ..]) = history();
        let repo = Repo::discover(&t.dir).unwrap();
        let err = repo
            .snapshot(&repo.resolve("v1.0").unwrap(), "apps/new.yaml")
            .unwrap_err();
        let want = format!(
            "path \"apps/new.yaml\" does not exist at revision {}",
            &c1[..7]
        );
        assert!(err.to_string().starts_with(&want), "{err}");
        assert!(matches!(
            repo.snapshot(&repo.resolve("HEAD").unwrap(), "../x"),
            Err(SourceError::PathOutsideRepo { .. })
        ));
    }

    #[test]
    fn commits_between_lists_newest_first() {
        let (t, [c1, c2, c3]) = history();
        let repo = Repo::discover(&t.dir).unwrap();
        let ids: Vec<String> = repo
            .commits_between("v1.0", "main")
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, [c3, c2.clone()]);
        assert!(repo.commits_between("main", "feature").unwrap().is_empty());
        assert_eq!(repo.commits_between(&c1, "feature").unwrap()[0].id, c2);
        assert!(matches!(
            repo.commits_between("nope", "main"),
            Err(SourceError::UnknownRevision { .. })
        ));
    }

    #[test]
    fn working_tree_sees_uncommitted_edits_and_skips_ignored_files() {
        let (t, _) = history();
        t.write(".gitignore", "*.secret\nbuild/\n");
        t.write("apps/web/deploy.yaml", "image: web:dirty\n");
        t.write("apps/web/token.secret", "hunter2");
        t.write("build/out.yaml", "generated");
        t.write("apps/untracked.yaml", "kind: Untracked\n");
        std::fs::remove_file(t.dir.join("base/kustomization.yaml")).unwrap();
        let repo = Repo::discover(&t.dir).unwrap();
        let snap = repo.working_tree("apps").unwrap();
        assert_eq!(snap.commit, None);
        assert_eq!(snap.files["apps/web/deploy.yaml"], b"image: web:dirty\n");
        assert_eq!(snap.files["apps/untracked.yaml"], b"kind: Untracked\n");
        let paths: Vec<&str> = snap.files.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                ".gitignore",
                "apps/new.yaml",
                "apps/untracked.yaml",
                "apps/web/deploy.yaml"
            ]
        );
        assert!(matches!(
            repo.working_tree("nope"),
            Err(SourceError::PathNotOnDisk { .. })
        ));
    }

    #[test]
    fn discover_outside_a_repository_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let err = Repo::discover(tmp.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "not a git repository: {} (or any parent)",
                tmp.path().display()
            )
        );
    }

    #[test]
    fn repo_path_is_relative_to_cwd_and_stays_inside() {
        let (t, _) = history();
        let repo = Repo::discover(&t.dir).unwrap();
        let cwd = t.dir.join("apps");
        assert_eq!(repo.repo_path(&cwd, "web").unwrap(), "apps/web");
        assert_eq!(repo.repo_path(&cwd, ".").unwrap(), "apps");
        assert_eq!(repo.repo_path(&cwd, "../base/").unwrap(), "base");
        assert_eq!(
            repo.repo_path(&cwd, "gone/only-in-history").unwrap(),
            "apps/gone/only-in-history"
        );
        assert!(matches!(
            repo.repo_path(&cwd, "../.."),
            Err(SourceError::PathOutsideRepo { .. })
        ));
    }

    #[test]
    fn positional_argument_is_a_revision_a_path_or_ambiguous() {
        let (t, _) = history();
        let repo = Repo::discover(&t.dir).unwrap();
        let at = |arg: &str| classify_positional(&repo, arg, &t.dir);
        assert_eq!(at("HEAD~1").unwrap(), Positional::Revision("HEAD~1".into()));
        assert_eq!(
            at("v1.0..main").unwrap(),
            Positional::Range("v1.0".into(), "main".into())
        );
        assert_eq!(at("apps/web").unwrap(), Positional::Path("apps/web".into()));
        assert_eq!(
            at("apps/../base").unwrap(),
            Positional::Path("apps/../base".into())
        );
        assert!(matches!(
            at("nope"),
            Err(SourceError::UnknownArgument { .. })
        ));
        t.write("feature", "a file named like the branch");
        let err = at("feature").unwrap_err();
        assert!(err.to_string().contains("put paths after \"--\""), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_resolve_inside_the_tree_and_never_read_outside() {
        use std::os::unix::fs::symlink;
        let t = TestRepo::new();
        let outside = t.tmp.path().join("outside.yaml");
        std::fs::write(&outside, "TOP SECRET").unwrap();
        t.write("apps/web/deploy.yaml", "image: web\n");
        t.write("base/kustomization.yaml", "resources: []\n");
        symlink(&outside, t.dir.join("leak-absolute.yaml")).unwrap();
        symlink("../outside.yaml", t.dir.join("leak-relative.yaml")).unwrap();
        symlink("..", t.dir.join("parent")).unwrap();
        symlink("apps/web/deploy.yaml", t.dir.join("alias.yaml")).unwrap();
        std::fs::create_dir_all(t.dir.join("overlay")).unwrap();
        symlink("../base", t.dir.join("overlay/base")).unwrap();
        t.commit("links");
        let repo = Repo::discover(&t.dir).unwrap();

        let committed = repo.snapshot(&repo.resolve("HEAD").unwrap(), "").unwrap();
        let on_disk = repo.working_tree("overlay/base").unwrap();
        let plain = super::super::read_directory(&t.dir).unwrap();
        for snap in [&committed, &on_disk, &plain] {
            assert_eq!(snap.files["alias.yaml"], b"image: web\n");
            assert_eq!(
                snap.files["overlay/base/kustomization.yaml"],
                b"resources: []\n"
            );
            assert!(snap.files.values().all(|data| data != b"TOP SECRET"));
            assert!(!snap.files.keys().any(|k| k.starts_with("leak")
                || k.starts_with("parent")
                || k.starts_with(".git/")));
        }
        assert_eq!(on_disk.files_under_root().count(), 1);

        // A tracked directory replaced on disk by a symlink to the outside is not entered.
        std::fs::remove_dir_all(t.dir.join("apps/web")).unwrap();
        std::fs::create_dir_all(t.tmp.path().join("elsewhere")).unwrap();
        std::fs::write(t.tmp.path().join("elsewhere/deploy.yaml"), "TOP SECRET").unwrap();
        symlink(t.tmp.path().join("elsewhere"), t.dir.join("apps/web")).unwrap();
        let swapped = repo.working_tree("").unwrap();
        assert!(swapped.files.values().all(|data| data != b"TOP SECRET"));
        assert!(!swapped.files.contains_key("apps/web/deploy.yaml"));
    }
}
