//! What to sync: a git revision, or the manifest of a recorded release.

use anyhow::{Context, Result, bail};
use gitops::load::{self, TreeSpec};
use gitops::objects::DesiredSet;
use gitops::release::record::{CHART_KEY, Operation, ReleaseStatus};
use gitops::sync::{self, SyncOptions, app_name_for_path};
use gitops_cli::Selection;

use crate::{Args, Session, base_options};

/// One sync's input: the app, its desired objects, and what to record.
pub struct Job {
    pub app: String,
    pub desired: DesiredSet,
    pub options: SyncOptions,
    /// The after side's label in the diff.
    pub label: String,
}

/// The app name: `--app`, else derived from the path (which needs the repository).
pub fn app_name(args: &Args) -> Result<String> {
    if let Some(app) = &args.app {
        return Ok(app.clone());
    }
    let source = args
        .source
        .resolve(false)
        .context("give the app's name with --app")?;
    Ok(app_name_for_path(&source.root, &source.repo_name()))
}

/// A revision of the repository.
pub fn from_git(args: &Args, session: &Session) -> Result<Job> {
    let source = args.source.resolve(false)?;
    let spec = match &source.selection {
        Selection::One(spec) => spec.clone(),
        Selection::Range(a, b) => {
            bail!("sync applies one revision; {a}..{b} is a range (diff-git compares ranges)")
        }
    };
    let tree = load::read_tree(&source.repo, &spec, &source.root)?;
    let app = match &args.app {
        Some(app) => app.clone(),
        None => app_name_for_path(&source.root, &source.repo_name()),
    };
    let options = args
        .source
        .render_options(&app, &session.connection.namespace);
    let (renderer, desired) = load::desired_set(
        &tree.snapshot,
        &options,
        &session.connection.namespace,
        &session.cluster,
    )?;
    let chart = load::chart_info(&tree.snapshot, &options)?;
    let commit = tree.commit().cloned();
    let description = match (&spec, &commit) {
        (TreeSpec::Revision(rev), Some(c)) => {
            format!("sync of {rev} ({} {})", c.short_id, c.subject)
        }
        _ => "sync".to_string(),
    };
    let mut sync_options = base_options(args, session);
    sync_options.description = description;
    sync_options.repo = Some(source.repo_label());
    sync_options.path = source.root.clone();
    sync_options.renderer = renderer.to_string();
    sync_options.commit = commit;
    if let Some(chart) = chart {
        sync_options
            .extra
            .insert(CHART_KEY.to_string(), serde_json::to_value(chart)?);
    }
    Ok(Job {
        app,
        desired,
        options: sync_options,
        label: tree.label,
    })
}

/// The manifest stored in a release: `revision`, or the previous deployed one.
pub async fn from_release(args: &Args, session: &Session, revision: Option<u32>) -> Result<Job> {
    let app = app_name(args)?;
    let mut records = Vec::new();
    let mut unreadable = Vec::new();
    for entry in session.store.list(&app).await? {
        match entry {
            Ok(record) => records.push(record),
            Err(bad) => unreadable.push(bad),
        }
    }
    // Asked for by number, an unreadable record says why, rather than seeming absent.
    if let Some(bad) = revision.and_then(|n| unreadable.iter().find(|u| u.revision == Some(n))) {
        bail!("{bad}");
    }
    if records.is_empty() {
        bail!(
            "app {app} has no releases in namespace {}",
            session.connection.namespace
        );
    }
    let target = match revision {
        Some(n) => records.iter().find(|r| r.revision == n).with_context(|| {
            format!(
                "app {app} has no release {n} (it has {})",
                list_revisions(&records)
            )
        })?,
        // Newest first: skip the current deployed release, take the one deployed before it.
        None => records
            .iter()
            .filter(|r| {
                matches!(
                    r.status,
                    ReleaseStatus::Deployed | ReleaseStatus::Superseded
                )
            })
            .nth(1)
            .with_context(|| {
                format!("app {app} has no earlier deployed release to roll back to")
            })?,
    };
    let desired = sync::desired_from_record(target)?;
    let mut options = base_options(args, session);
    options.operation = Operation::Rollback;
    options.rollback_of = Some(target.revision);
    options.description = format!("rollback to release {}", target.revision);
    options.repo = target.repo.clone();
    options.path = target.path.clone();
    options.renderer = target.renderer.clone();
    options.commit = target.commit.clone();
    options.extra = target.extra.clone();
    Ok(Job {
        app,
        desired,
        options,
        label: format!("release-{}", target.revision),
    })
}

fn list_revisions(records: &[gitops::release::record::ReleaseRecord]) -> String {
    records
        .iter()
        .map(|r| r.revision.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
