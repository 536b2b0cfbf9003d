//! What the `--watch` loops share: timestamps for log lines; fetching the repository
//! before each round. Ctrl-C is [`crate::interrupt`]'s: it stops the loop between rounds,
//! and a round's sync or heal as it stops any other.

/// `2026-11-25T01:02:03Z`, for log lines.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// `git fetch --all` in a checkout with remotes, so `origin/main` moves. A `--repo URL` is
/// fetched whenever it is opened, so nothing is done for it. Returns what went wrong, for
/// the caller to log; the local state is used then.
pub fn fetch(repo: Option<&str>) -> Result<(), String> {
    let dir = match repo {
        Some(repo) if repo.contains("://") => return Ok(()),
        Some(repo) => repo,
        None => ".",
    };
    let remotes = std::process::Command::new("git")
        .args(["-C", dir, "remote"])
        .output();
    if !remotes.is_ok_and(|o| o.status.success() && !o.stdout.is_empty()) {
        return Ok(());
    }
    match std::process::Command::new("git")
        .args(["-C", dir, "fetch", "--quiet", "--all"])
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "git fetch failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(error) => Err(format!("git fetch failed: {error}")),
    }
}
