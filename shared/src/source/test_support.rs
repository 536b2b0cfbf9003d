//! Real repositories for the tests, built with the `git` command line in a temp dir whose
//! HOME keeps the user's own git configuration out.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

pub(super) struct TestRepo {
    pub tmp: TempDir,
    pub dir: PathBuf,
}

/// Run git in `dir` with a clean environment; panic with its stderr on failure.
pub(super) fn git_in(tmp: &Path, dir: &Path, args: &[&str]) -> String {
    let home = tmp.join("home");
    fs::create_dir_all(&home).unwrap();
    let output = Command::new("git")
        .current_dir(dir)
        .env("HOME", &home)
        .env("XDG_CONFIG_HOME", &home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Ada Author")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Author")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .args(["-c", "init.defaultBranch=main", "-c", "core.symlinks=true"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

impl TestRepo {
    pub fn new() -> TestRepo {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("repo");
        fs::create_dir_all(&dir).unwrap();
        let repo = TestRepo { tmp, dir };
        repo.git(&["init", "--quiet"]);
        repo
    }

    pub fn git(&self, args: &[&str]) -> String {
        git_in(self.tmp.path(), &self.dir, args)
    }

    pub fn write(&self, path: &str, content: &str) {
        let full = self.dir.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, content).unwrap();
    }

    /// Commit everything; returns the full commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "--quiet", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}
