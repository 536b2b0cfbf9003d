//! `--watch`: follow a revision (auto-sync), syncing each new commit as it appears. Ctrl-C
//! between syncs stops it (exit 0); during one it stops that sync as it stops any other
//! (the record says how far it got, the lock is given up, exit 130).

use anyhow::Result;
use gitops::release::record::ReleaseRecord;
use gitops_cli::Outcome;
use gitops_cli::interrupt::{self, is_interrupted};
use gitops_cli::watch::{fetch, now};

use crate::once::{print_record, sync_once};
use crate::session::Session;
use crate::{Args, job};

pub async fn run(args: &Args, session: &Session) -> Result<Outcome> {
    let stop = &session.cancel;
    log(&format!(
        "watching {} every {}; Ctrl-C stops",
        args.source.revision.as_deref().unwrap_or("HEAD"),
        humantime::format_duration(args.repeat.interval)
    ));
    let mut last_synced: Option<String> = None;
    while !stop.is_cancelled() {
        match check_once(args, session, &mut last_synced).await {
            Ok(()) => {}
            Err(error) if is_interrupted(&error) => return Err(error),
            Err(error) => log(&format!(
                "sync failed: {error:#} (retrying at the next commit or interval)"
            )),
        }
        if stop.is_cancelled() {
            break;
        }
        interrupt::sleep(stop, args.repeat.interval).await;
    }
    log("stopped");
    Ok(Outcome::Clean)
}

/// Fetches, and syncs the revision if its commit is not the one last synced. The release
/// names every commit since the deployed release's (all of them when several came in one
/// interval); a commit whose objects are the deployed release's records none (the
/// release is marked current and moved on to it).
async fn check_once(
    args: &Args,
    session: &Session,
    last_synced: &mut Option<String>,
) -> Result<()> {
    if let Err(problem) = fetch(args.source.repo.location.as_deref()) {
        log(&problem);
    }
    let source = job::Source::read(args)?;
    let job = job::from_git(args, session, &source)?;
    let commit = job.sync.options.commit.clone();
    let id = commit.as_ref().map(|c| c.id.clone());
    if id.is_some() && id == *last_synced {
        return Ok(());
    }
    let what = commit
        .map(|c| format!("{} {}", c.short_id, c.subject))
        .unwrap_or_default();
    log(&format!("new commit {what}: syncing"));
    let mut out = std::io::stdout();
    let done = sync_once(args, session, job, true, &mut out, None, None).await?;
    if let Some(record) = &done.record {
        print_record(args, &mut out, record, done.recorded)?;
    }
    done.result?;
    log(&synced(&what, done.record.as_ref(), done.recorded));
    *last_synced = id;
    Ok(())
}

/// `synced 1f2e3d4 Bump (release 3, commits 1f2e3d4, 9a8b7c6)`, or, for a no-op sync,
/// `synced 1f2e3d4 Bump: nothing changed (release 2 is current)`.
fn synced(what: &str, record: Option<&ReleaseRecord>, recorded: bool) -> String {
    let Some(record) = record else {
        return format!("synced {what}");
    };
    if !recorded {
        return format!(
            "synced {what}: nothing changed (release {} is current)",
            record.revision
        );
    }
    let commits: Vec<&str> = record.commits.iter().map(|c| c.short_id.as_str()).collect();
    match commits.len() {
        0 => format!("synced {what} (release {})", record.revision),
        1 => format!(
            "synced {what} (release {}, commit {})",
            record.revision, commits[0]
        ),
        _ => format!(
            "synced {what} (release {}, commits {}{})",
            record.revision,
            commits.join(", "),
            match record.commits_left_out {
                0 => String::new(),
                more => format!(" and {more} more"),
            }
        ),
    }
}

fn log(line: &str) {
    eprintln!("{} {line}", now());
}
