//! Stamps the git commit the plugins are built from into `--version`.

use std::process::Command;

fn main() {
    // Builds from a release archive have no .git: say so instead of failing.
    let commit = std::env::var("KUBECTL_GITOPS_COMMIT").ok().or_else(|| {
        let out = Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    });
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
    let commit = match commit {
        Some(c) if dirty => format!("{c}-dirty"),
        Some(c) => c,
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=KUBECTL_GITOPS_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=KUBECTL_GITOPS_COMMIT");
    // Rebuild when HEAD moves (a commit, a checkout) or the index changes.
    for path in ["../../.git/HEAD", "../../.git/index"] {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
