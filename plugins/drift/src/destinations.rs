//! Which clusters to check, and which apps on each: the flags alone, or the repository's
//! app list (`--all`, or an APP it lists); and the report when there are several clusters.

use std::io::Write;

use anyhow::{Result, bail};
use gitops::app_file::{AppFile, AppSpec};
use gitops::source::{self, Repo, TreeSpec, read_tree};
use gitops_cli::targets::{self, Row};
use gitops_cli::{Outcome, Target};

use crate::apps::Round;
use crate::{Args, Format, report};

/// (context, apps of the list to check there) pairs in the order given; None is the
/// kubeconfig's current context, and no apps means "as the flags say".
pub fn by_context(args: &Args) -> Result<Vec<(Option<String>, Vec<AppSpec>)>> {
    let flag_contexts: Vec<Option<String>> = match args.connection.contexts.as_slice() {
        [] => vec![None],
        many => many.iter().cloned().map(Some).collect(),
    };
    let Some(listed) = listed_targets(args)? else {
        return Ok(flag_contexts.into_iter().map(|c| (c, Vec::new())).collect());
    };
    let mut groups: Vec<(Option<String>, Vec<AppSpec>)> = Vec::new();
    for target in listed {
        let Some(spec) = target.spec else { continue };
        match groups.iter_mut().find(|(c, _)| *c == target.context) {
            Some((_, apps)) => apps.push(spec),
            None => groups.push((target.context, vec![spec])),
        }
    }
    Ok(groups)
}

/// The app list's destinations, when `--all` asks for the list or the APP is in it.
fn listed_targets(args: &Args) -> Result<Option<Vec<Target>>> {
    if !args.apps.all && args.app.is_none() {
        return Ok(None);
    }
    let revision = args
        .against
        .clone()
        .or_else(|| args.git.clone())
        .unwrap_or_else(|| "HEAD".into());
    let repo = match open_repo(args) {
        Ok(repo) => repo,
        // Without --all, a named app needs no repository: its release says everything.
        Err(_) if !args.apps.all => return Ok(None),
        Err(error) => return Err(error.context("--all reads the app list from the repository")),
    };
    let tree = read_tree(&repo, &TreeSpec::Revision(revision.clone()), "")?;
    let request = targets::Request {
        list: &args.apps,
        app: args.app.as_deref(),
        path_given: false,
        root: "",
        default_app: String::new(),
        contexts: &args.connection.contexts,
    };
    // A named app comes from the list only when the list has it; --all without a list
    // is select's error.
    if !args.apps.all {
        match AppFile::from_snapshot(&tree.snapshot, &args.apps.app_file)? {
            Some(list) if list.app(args.app.as_deref().unwrap_or_default()).is_ok() => {}
            _ => return Ok(None),
        }
    }
    Ok(Some(targets::select(
        &request,
        &tree.snapshot,
        (repo.label(), &revision),
    )?))
}

fn open_repo(args: &Args) -> Result<Repo> {
    Ok(match &args.repo {
        Some(spec) => source::open_repo(spec)?,
        None => Repo::discover(&std::env::current_dir()?)?,
    })
}

/// A section per cluster (its apps as one cluster's report shows them), then a row per
/// app and cluster. Exit: 2 if any check failed, else 1 if anything drifted.
pub fn report(args: &Args, rounds: Vec<(String, String, Result<Round>)>) -> Result<Outcome> {
    let mut out = std::io::stdout().lock();
    let mut rows = Vec::new();
    let mut items = Vec::new();
    let mut outcome = Outcome::Clean;
    let json = args.output == Some(Format::Json);
    for (context, namespace, round) in rounds {
        if !json {
            writeln!(out, "==> context {context} <==")?;
        }
        let round = match round {
            Ok(round) => round,
            Err(error) => {
                let line = targets::one_line(&error);
                writeln!(std::io::stderr(), "error: context {context}: {line}")?;
                if json {
                    items.push(serde_json::json!({ "context": context, "error": line }));
                }
                rows.push(Row {
                    app: args.app.clone().unwrap_or_else(|| "-".into()),
                    context,
                    namespace,
                    result: Err(line),
                });
                continue;
            }
        };
        if json {
            let mut item = serde_json::json!({ "context": context, "error": null });
            if let (Some(item), Some(report)) = (item.as_object_mut(), report::json(args, &round)) {
                item.insert("report".into(), report);
            }
            items.push(item);
        } else {
            report::print(&mut out, args, &namespace, &round)?;
        }
        for checked in &round.checked {
            if crate::apps::outstanding(args, &checked.report) {
                outcome = Outcome::Differences;
            }
            rows.push(Row {
                app: checked.report.app.clone(),
                context: context.clone(),
                namespace: checked.report.namespace.clone(),
                result: Ok(report::summary(&checked.report, false)),
            });
        }
        for skipped in &round.skipped {
            rows.push(Row {
                app: skipped.app.clone(),
                context: context.clone(),
                namespace: skipped.namespace.clone(),
                result: Ok(format!("not checked: {}", skipped.reason)),
            });
        }
        for failed in &round.failed {
            rows.push(Row {
                app: failed.app.clone(),
                context: context.clone(),
                namespace: failed.namespace.clone(),
                result: Err(targets::one_line(&failed.error)),
            });
        }
    }
    if json {
        serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "items": items }))?;
        writeln!(out)?;
    } else {
        writeln!(out)?;
        targets::summary(&mut out, &rows)?;
    }
    if rows.iter().any(|r| r.result.is_err()) {
        bail!(
            "{} of {} checks failed",
            rows.iter().filter(|r| r.result.is_err()).count(),
            rows.len()
        );
    }
    Ok(outcome)
}
