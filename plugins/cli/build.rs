//! Stamps the git commit the plugins are built from into `--version`.

use std::process::Command;

fn main() {
    // Builds from a release archive have no .git: say so instead of failing.
    let commit = std::env::var("KUBECTL_GITOPS_COMMIT")
        .ok()
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]));
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|o| !o.is_empty());
    let commit = match commit {
        Some(c) if dirty => format!("{c}-dirty"),
        Some(c) => c,
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=KUBECTL_GITOPS_COMMIT={commit}");
    println!("cargo:rerun-if-env-changed=KUBECTL_GITOPS_COMMIT");
    // Rebuild when HEAD moves: a checkout rewrites HEAD, a commit the branch it names
    // (a loose ref, or packed-refs once packed); staging changes the index.
    let mut watched = vec!["HEAD".to_string(), "index".into(), "packed-refs".into()];
    watched.extend(git(&["symbolic-ref", "-q", "HEAD"]));
    let mut args = vec!["rev-parse"];
    for name in &watched {
        args.extend(["--git-path", name]);
    }
    for path in git(&args).iter().flat_map(|out| out.lines()) {
        if std::path::Path::new(path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}

/// What a successful git command printed, trimmed; None when git failed or is missing.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
