//! Several destinations (apps of the app list, clusters): each synced without a question,
//! its output kept for its section of the one report.

use std::io::{IsTerminal, Write};

use anyhow::{Result, bail};
use gitops::release::record::ReleaseRecord;
use gitops_cli::JsonFormat;
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
    let work = targets
        .iter()
        .map(|target| sync_destination(args, source, target));
    let reported = destinations::run(
        work,
        Layout::json_or_sections(args.output.format == Some(JsonFormat::Json)),
    )
    .await;
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

/// One destination of several: its output kept for its section, the release it left.
struct Destination {
    place: AppOnContext,
    output: Vec<u8>,
    record: Option<ReleaseRecord>,
    /// Whether `record` is a new release (not for a no-op sync).
    recorded: bool,
    /// What a --dry-run found.
    result: Result<Option<DryRun>>,
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
        }
    }
}

async fn sync_destination(args: &Args, source: &job::Source, target: &Target) -> Destination {
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

    /// What the sync printed, then its release's table.
    fn print(&self, out: &mut dyn Write) -> Result<()> {
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
