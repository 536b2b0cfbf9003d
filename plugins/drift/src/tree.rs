//! `-o tree`: the checked app's resource tree, each member marked with what the check
//! found of it, then the check's summary line.

use std::io::Write;

use anyhow::{Context, Result, bail};
use gitops_cli::{Outcome, tree_view};

use crate::Args;
use crate::report::{latest_release_line, summary};
use crate::round::{Round, failures, outcome};
use crate::session::Session;

/// Prints the tree of the one app the round checked; the exit code is the check's.
pub async fn print(args: &Args, session: &Session, round: &mut Round) -> Result<Outcome> {
    failures(args, round)?;
    let Some(checked) = round.checked.first() else {
        bail!("no app was checked, so there is no tree to show");
    };
    let report = &checked.report;
    let tree = gitops::tree::for_drift(&session.cluster, checked)
        .await
        .with_context(|| {
            format!(
                "cannot show the resource tree of app {} in namespace {}",
                report.app, report.namespace
            )
        })?;
    for warning in &tree.warnings {
        eprintln!("warning: {warning}");
    }
    let color = args.output.color.enabled();
    let mut text = String::new();
    if let Some(line) = latest_release_line(report, "the drift below") {
        text.push_str(&format!("{line}\n\n"));
    }
    text.push_str(&tree_view::text(&tree, true, color));
    text.push('\n');
    for warning in &report.warnings {
        text.push_str(&format!("warning: {warning}\n"));
    }
    text.push_str(&tree_view::summary(&tree));
    text.push('\n');
    text.push_str(&summary(report, color));
    text.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(outcome(args, round))
}
