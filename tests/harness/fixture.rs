//! Git repositories built for a test with the real git CLI.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A throwaway git repository with a working tree.
pub struct GitFixture {
    dir: tempfile::TempDir,
}

impl Default for GitFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl GitFixture {
    pub fn new() -> GitFixture {
        let dir = tempfile::Builder::new()
            .prefix("kubectl-gitops-repo")
            .tempdir()
            .unwrap();
        let fixture = GitFixture { dir };
        fixture.git(&["init", "-q", "-b", "main"]);
        fixture
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git in the repository with a fixed identity and no user or system config.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.path())
            .env("HOME", self.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Ada Author")
            .env("GIT_AUTHOR_EMAIL", "ada@example.com")
            .env("GIT_COMMITTER_NAME", "Ada Author")
            .env("GIT_COMMITTER_EMAIL", "ada@example.com")
            .output()
            .unwrap();
        crate::assert_success(&format!("git {}", args.join(" ")), &out);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Writes a file (creating directories) in the working tree.
    pub fn write(&self, path: &str, text: &str) -> &Self {
        let full: PathBuf = self.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
        self
    }

    pub fn remove(&self, path: &str) -> &Self {
        std::fs::remove_file(self.path().join(path)).unwrap();
        self
    }

    /// Stages everything and commits; returns the full commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }
}
