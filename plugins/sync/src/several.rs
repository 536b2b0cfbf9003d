//! Several destinations (apps of the app list, clusters): each synced without a question,
//! its output kept for its section of the one report. Apps that `depends_on` others start
//! once those are deployed and healthy, and are skipped when one of them is not.

use std::io::{IsTerminal, Write};

use anyhow::{Result, bail};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use gitops::release::record::{ReleaseRecord, ReleaseStatus};
use gitops_cli::JsonFormat;
use gitops_cli::depends;
use gitops_cli::destinations::{self, AppOnContext, Layout, Place, Row, Section};
use gitops_cli::interrupt::Interrupted;
use gitops_cli::{Outcome, Target};

use crate::job;
use crate::once::{Done, DryRun, sync_once};
use crate::session::Session;
use crate::{Args, report};

/// Syncs every destination at once and reports them together.
pub async fn run(args: &Args, source: &job::Source, targets: &[Target]) -> Result<Outcome> {
    if !args.yes && !args.dry_run && std::io::stdin().is_terminal() {
        bail!(
            "{} destinations would be synced without a question each: add --yes (--dry-run previews them)",
            targets.len()
        );
    }
    let layout = Layout::json_or_sections(args.output.format == Some(JsonFormat::Json));
    let dependencies = depends::dependencies(targets);
    // A dry run changes nothing another app could wait for: everything previews at once.
    let reported = if args.dry_run || !depends::any(&dependencies) {
        let work = targets
            .iter()
            .map(|target| sync_destination(args, source, target));
        destinations::run(work, layout).await
    } else {
        let sections = in_order(args, source, targets, &dependencies, usize::MAX).await;
        destinations::report(&sections, layout)
    };
    // Each interrupted sync's section says how far it got; the run ends as interrupted.
    if gitops_cli::interrupt::install().is_cancelled() {
        let how = match &reported {
            Ok(_) => "every destination finished".to_string(),
            Err(error) => gitops_cli::targets::one_line(error),
        };
        return Err(Interrupted::new(format!("interrupted: {how}")).into());
    }
    reported
}

/// Syncs each destination once every one it waits for has ended, independent ones at
/// once (at most `limit` at a time); a destination whose dependency did not deploy is
/// skipped, saying which.
pub async fn in_order(
    args: &Args,
    source: &job::Source,
    targets: &[Target],
    dependencies: &[Vec<usize>],
    limit: usize,
) -> Vec<Destination> {
    let mut ended: Vec<Option<Destination>> = targets.iter().map(|_| None).collect();
    let mut started = vec![false; targets.len()];
    let mut running = FuturesUnordered::new();
    loop {
        // A skip ends a destination at once, which may settle others: until none changes.
        let mut changed = true;
        while changed {
            changed = false;
            for (i, waits) in dependencies.iter().enumerate() {
                if started[i] || waits.iter().any(|&d| ended[d].is_none()) {
                    continue;
                }
                if running.len() >= limit {
                    break;
                }
                started[i] = true;
                changed = true;
                let blocked = waits
                    .iter()
                    .find_map(|&d| ended[d].as_ref().and_then(Destination::blocks));
                match blocked {
                    Some(skip) => {
                        let place = skipped_place(args, targets, &ended, i);
                        ended[i] = Some(Destination::skipped(place, skip));
                    }
                    None => running.push(async move {
                        (i, sync_destination(args, source, &targets[i]).await)
                    }),
                }
            }
        }
        match running.next().await {
            Some((i, destination)) => ended[i] = Some(destination),
            None => break,
        }
    }
    // The app list refuses cycles, so every destination started; should one not have,
    // it is reported, not lost.
    ended
        .into_iter()
        .enumerate()
        .map(|(i, destination)| {
            destination.unwrap_or_else(|| {
                let place = skipped_place(args, targets, &[], i);
                let never = anyhow::anyhow!("not synced: the apps it depends on never ended");
                Destination::new(place, Vec::new(), Err(never))
            })
        })
        .collect()
}

/// Where a destination that is not synced is: its context named as a synced destination
/// on the same context found it (the current context has a name only once connected).
fn skipped_place(
    args: &Args,
    targets: &[Target],
    ended: &[Option<Destination>],
    i: usize,
) -> AppOnContext {
    let target = &targets[i];
    let known = targets
        .iter()
        .zip(ended)
        .filter(|(other, _)| other.context == target.context)
        .find_map(|(_, ended)| ended.as_ref().map(|d| d.place.context.clone()));
    AppOnContext {
        app: target.app.clone(),
        context: known
            .or_else(|| target.context.clone())
            .unwrap_or_else(|| "-".into()),
        namespace: target
            .namespace(&args.connection)
            .unwrap_or_else(|| "-".into()),
    }
}

/// An app on a context, as a skip names it.
#[derive(Debug, Clone)]
struct At {
    app: String,
    context: String,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "app {} on context {}", self.app, self.context)
    }
}

/// Why a destination was not synced: the dependency that did not deploy, and the one
/// whose failure that goes back to (the same one when it failed itself).
#[derive(Debug, Clone)]
struct Skip {
    dependency: At,
    failed: At,
}

impl Skip {
    fn reason(&self) -> String {
        let dependency = &self.dependency;
        match dependency.app == self.failed.app && dependency.context == self.failed.context {
            true => format!("depends on {dependency}, which failed"),
            false => format!(
                "depends on {dependency}, which was skipped ({} failed)",
                self.failed
            ),
        }
    }
}

/// One destination of several: its output kept for its section, the release it left.
pub struct Destination {
    place: AppOnContext,
    output: Vec<u8>,
    pub record: Option<ReleaseRecord>,
    /// Whether `record` is a new release (not for a no-op sync).
    pub recorded: bool,
    /// What a --dry-run found.
    pub result: Result<Option<DryRun>>,
    /// Not synced, because an app it depends on did not deploy.
    skipped: Option<Skip>,
    /// How long its sync took.
    pub took: std::time::Duration,
}

impl Destination {
    fn new(place: AppOnContext, output: Vec<u8>, done: Result<Done>) -> Destination {
        let (record, recorded, result) = match done {
            Ok(done) => (
                done.record,
                done.recorded,
                done.result.map(|()| done.dry_run),
            ),
            Err(error) => (None, false, Err(error)),
        };
        Destination {
            place,
            output,
            record,
            recorded,
            result,
            skipped: None,
            took: std::time::Duration::ZERO,
        }
    }

    /// Why it was not synced, when an app it depends on did not deploy.
    pub fn waiting(&self) -> Option<String> {
        self.skipped.as_ref().map(Skip::reason)
    }

    fn skipped(place: AppOnContext, skip: Skip) -> Destination {
        Destination {
            place,
            output: Vec::new(),
            record: None,
            recorded: false,
            result: Ok(None),
            skipped: Some(skip),
            took: std::time::Duration::ZERO,
        }
    }

    /// Why the apps that depend on this one cannot start: None once it is deployed (and
    /// healthy, when the sync waited for health).
    fn blocks(&self) -> Option<Skip> {
        let here = At {
            app: self.place.app.clone(),
            context: self.place.context.clone(),
        };
        if let Some(skip) = &self.skipped {
            return Some(Skip {
                dependency: here,
                failed: skip.failed.clone(),
            });
        }
        let deployed = self.result.is_ok()
            && self
                .record
                .as_ref()
                .is_some_and(|r| r.status == ReleaseStatus::Deployed);
        (!deployed).then(|| Skip {
            dependency: here.clone(),
            failed: here,
        })
    }
}

/// One destination synced without a question, its output kept.
pub async fn sync_destination(args: &Args, source: &job::Source, target: &Target) -> Destination {
    let started = std::time::Instant::now();
    let mut destination = sync_destination_untimed(args, source, target).await;
    destination.took = started.elapsed();
    destination
}

async fn sync_destination_untimed(
    args: &Args,
    source: &job::Source,
    target: &Target,
) -> Destination {
    let mut output = Vec::new();
    let mut place = AppOnContext {
        app: target.app.clone(),
        context: target.context.clone().unwrap_or_else(|| "-".into()),
        namespace: target
            .namespace(&args.connection)
            .unwrap_or_else(|| "-".into()),
    };
    let session = match Session::connect(
        args,
        &target.options(&args.connection),
        target.spec.as_ref(),
    )
    .await
    {
        Ok(session) => session,
        Err(error) => return Destination::new(place, output, Err(error)),
    };
    place.context = session
        .connection
        .context
        .clone()
        .unwrap_or_else(|| "in-cluster".into());
    place.namespace = session.connection.namespace.clone();
    let prefix = format!("[{} @ {}]", target.app, place.context);
    let done = match job::from_tree(args, &session, source, target) {
        Ok(job) => sync_once(args, &session, job, true, &mut output, Some(&prefix), None).await,
        Err(error) => Err(error),
    };
    Destination::new(place, output, done)
}

impl Section for Destination {
    fn place(&self) -> Place<'_> {
        Place::App(&self.place)
    }

    fn error(&self) -> Option<String> {
        self.result
            .as_ref()
            .err()
            .map(gitops_cli::targets::one_line)
    }

    fn warn(&self, err: &mut dyn Write) -> std::io::Result<()> {
        match &self.skipped {
            Some(skip) => writeln!(err, "skipped: {}: {}", self.place.who(), skip.reason()),
            None => Ok(()),
        }
    }

    /// What the sync printed, then its release's table.
    fn print(&self, out: &mut dyn Write) -> Result<()> {
        if let Some(skip) = &self.skipped {
            writeln!(out, "skipped: {}", skip.reason())?;
        }
        out.write_all(&self.output)?;
        if let Some(record) = &self.record {
            report::table(out, record, self.recorded)?;
        }
        Ok(())
    }

    /// The release's document when there is one (its own `error` says why a failed sync
    /// failed), a dry run's document as one app's `--dry-run -o json` prints it, else what
    /// is known of the destination.
    fn item(&self) -> serde_json::Value {
        if let Some(skip) = &self.skipped {
            let at = |at: &At| serde_json::json!({ "app": at.app, "context": at.context });
            return serde_json::json!({
                "app": self.place.app,
                "namespace": self.place.namespace,
                "context": self.place.context,
                "error": null,
                "skipped": {
                    "dependency": at(&skip.dependency),
                    "failed": at(&skip.failed),
                },
            });
        }
        let mut item = match (&self.record, &self.result) {
            (Some(record), _) => report::document(record, self.recorded),
            (None, Ok(Some(dry_run))) => dry_run.document.clone(),
            (None, _) => serde_json::json!({
                "app": self.place.app,
                "namespace": self.place.namespace,
                "error": self.error(),
            }),
        };
        if let Some(item) = item.as_object_mut() {
            item.insert("context".into(), self.place.context.clone().into());
            item.entry("error").or_insert(serde_json::Value::Null);
        }
        item
    }

    fn outcome(&self) -> Outcome {
        match &self.result {
            Ok(Some(dry_run)) => dry_run.outcome(),
            _ => Outcome::Clean,
        }
    }

    fn rows(&self) -> Vec<Row> {
        if let Some(skip) = &self.skipped {
            return vec![self.place.row(Ok(format!("skipped: {}", skip.reason())))];
        }
        let result = match &self.result {
            Ok(Some(dry_run)) => Ok(format!("dry run: {} change(s)", dry_run.changes)),
            Ok(None) => Ok(self
                .record
                .as_ref()
                .map(|record| report::summary(record, self.recorded))
                .unwrap_or_default()),
            Err(error) => Err(gitops_cli::targets::one_line(error)),
        };
        vec![self.place.row(result)]
    }
}
