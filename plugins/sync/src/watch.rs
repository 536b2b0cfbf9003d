//! `--watch`: follow a revision (auto-sync), syncing each new commit as it appears. Ctrl-C
//! stops it between syncs, never in the middle of one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Result;
use gitops_cli::Outcome;
use tokio::sync::Notify;

use crate::{Args, Session, job, sync_once};

pub async fn run(args: &Args, session: &Session) -> Result<Outcome> {
    let stop = Arc::new(AtomicBool::new(false));
    let wake = Arc::new(Notify::new());
    {
        let (stop, wake) = (stop.clone(), wake.clone());
        tokio::spawn(async move {
            // Owning the signal here is what keeps Ctrl-C from killing a sync half-way.
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
                wake.notify_one();
            }
        });
    }
    log(&format!(
        "watching {} every {}; Ctrl-C stops",
        args.source.revision.as_deref().unwrap_or("HEAD"),
        humantime::format_duration(args.interval)
    ));
    let mut last_synced: Option<String> = None;
    while !stop.load(Ordering::SeqCst) {
        if let Err(error) = check_once(args, session, &mut last_synced).await {
            log(&format!(
                "sync failed: {error:#} (retrying at the next commit or interval)"
            ));
        }
        if stop.load(Ordering::SeqCst) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(args.interval) => {}
            _ = wake.notified() => {}
        }
    }
    log("stopped");
    Ok(Outcome::Clean)
}

/// Fetches, and syncs the revision if its commit is not the one last synced.
async fn check_once(
    args: &Args,
    session: &Session,
    last_synced: &mut Option<String>,
) -> Result<()> {
    fetch(args);
    let job = job::from_git(args, session)?;
    let commit = job.options.commit.clone();
    let id = commit.as_ref().map(|c| c.id.clone());
    if id.is_some() && id == *last_synced {
        return Ok(());
    }
    let what = commit
        .map(|c| format!("{} {}", c.short_id, c.subject))
        .unwrap_or_default();
    log(&format!("new commit {what}: syncing"));
    sync_once(args, session, job, true).await?;
    log(&format!("synced {what}"));
    *last_synced = id;
    Ok(())
}

/// `git fetch` in a checkout that has remotes, so `origin/main` moves; a `--repo URL` is
/// fetched when it is opened. A failed fetch is logged and the local state used.
fn fetch(args: &Args) {
    if args
        .source
        .repo
        .as_deref()
        .is_some_and(|r| r.contains("://"))
    {
        return;
    }
    let dir = args.source.repo.clone().unwrap_or_else(|| ".".into());
    let remotes = std::process::Command::new("git")
        .args(["-C", &dir, "remote"])
        .output();
    if !remotes.is_ok_and(|o| o.status.success() && !o.stdout.is_empty()) {
        return;
    }
    match std::process::Command::new("git")
        .args(["-C", &dir, "fetch", "--quiet", "--all"])
        .output()
    {
        Ok(out) if out.status.success() => {}
        Ok(out) => log(&format!(
            "git fetch failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(error) => log(&format!("git fetch failed: {error}")),
    }
}

fn log(line: &str) {
    let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
    eprintln!("{now} {line}");
}
