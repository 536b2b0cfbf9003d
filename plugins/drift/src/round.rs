//! Which apps to check, and one round of checking (and healing) them.

use std::io::Write;

use anyhow::Result;
use gitops::drift::{self, AppDrift, Checked, DriftError, Repos};
use gitops::release::store::{Read, ReleaseStore, list_all};

use anyhow::bail;
use gitops::sync::SyncEvent;
use gitops_cli::Outcome;
use gitops_cli::interrupt::{self, is_interrupted};

use crate::Args;
use crate::session::{Session, heal_options, request};

/// An app that was not checked, and why.
pub struct Skipped {
    pub namespace: String,
    pub app: String,
    pub reason: String,
}

/// An app whose check or heal failed.
pub struct Failed {
    pub namespace: String,
    pub app: String,
    pub error: anyhow::Error,
}

/// One round over the apps.
#[derive(Default)]
pub struct Round {
    pub checked: Vec<Checked>,
    /// Apps without a deployed release (only when listing apps; a named app is an error).
    pub skipped: Vec<Skipped>,
    pub failed: Vec<Failed>,
}

/// (namespace, app) pairs: the named app, or every app with records in the namespace
/// (`-A`: in every namespace), sorted.
pub async fn targets(args: &Args, session: &Session) -> Result<Vec<(String, String)>> {
    let namespace = &session.connection.namespace;
    if !session.listed.is_empty() {
        return Ok(session
            .listed
            .iter()
            .map(|spec| {
                let namespace = args
                    .connection
                    .namespace
                    .clone()
                    .or_else(|| spec.namespace.clone())
                    .unwrap_or_else(|| namespace.clone());
                (namespace, spec.name.clone())
            })
            .collect());
    }
    if let Some(app) = &args.app {
        return Ok(vec![(namespace.clone(), app.clone())]);
    }
    let client = session.cluster.client().clone();
    if args.namespaces.all {
        let apps = list_all(client, None, Read::Whole).await?;
        return Ok(apps.into_iter().map(|a| (a.namespace, a.app)).collect());
    }
    let apps = ReleaseStore::new(client, namespace).apps().await?;
    Ok(apps
        .into_iter()
        .map(|app| (namespace.clone(), app))
        .collect())
}

/// Checks every target, healing the drifted ones with `--heal`. A named app's failure
/// is the caller's error; with several apps, each failure is kept and the round goes on.
pub async fn check_round(args: &Args, session: &Session) -> Result<Round> {
    let mut round = Round::default();
    // Fresh each round, so a watch sees new commits of URL repositories.
    let mut repos = Repos::default();
    for (namespace, app) in targets(args, session).await? {
        let request = request(args, session, &namespace, &app);
        match drift::check_app(&session.cluster, &mut repos, &request).await {
            Ok(checked) => round.checked.push(checked),
            Err(DriftError::NoDeployedRelease { newest, .. }) if args.app.is_none() => {
                round.skipped.push(Skipped {
                    namespace,
                    app,
                    reason: newest,
                });
            }
            Err(error) => {
                let error = anyhow::Error::new(error);
                if args.app.is_some() {
                    return Err(error);
                }
                round.failed.push(Failed {
                    namespace,
                    app,
                    error,
                });
            }
        }
    }
    if args.heal {
        let cancel = gitops_cli::interrupt::install();
        for checked in &mut round.checked {
            if cancel.is_cancelled() {
                break;
            }
            if let Err(error) = heal(args, session, checked).await {
                round.failed.push(Failed {
                    namespace: checked.report.namespace.clone(),
                    app: checked.report.app.clone(),
                    error: error.context(format!("healing app {} failed", checked.report.app)),
                });
            }
        }
    }
    Ok(round)
}

/// Heals one checked app if it needs it, saying so on stderr (stdout is the report's).
pub async fn heal(args: &Args, session: &Session, checked: &mut Checked) -> Result<()> {
    if !drift::needs_heal(&checked.report, args.prune_strays) {
        return Ok(());
    }
    if args.output.format.is_none() && !args.repeat.watch {
        let _ = writeln!(
            std::io::stderr(),
            "healing app {} in namespace {} (release {})...",
            checked.report.app,
            checked.report.namespace,
            checked.release.revision
        );
    }
    let options = heal_options(args, session, &checked.report.app);
    let mut events = |event: SyncEvent<'_>| {
        if let SyncEvent::LockTakenOver { taken_over } = event {
            eprintln!(
                "took over the lock of app {} from {}, which is no longer running",
                taken_over.app, taken_over.holder
            );
        }
    };
    drift::heal(
        &session.cluster,
        &mut checked.report,
        &checked.release,
        &options,
        &mut events,
    )
    .await
    .map_err(interrupt::drift_error)?;
    Ok(())
}

/// Whether `report` leaves something to do: drift or undeployed changes, or after a heal
/// what it did not fix (strays it kept, the branch ahead).
pub fn outstanding(args: &Args, report: &AppDrift) -> bool {
    if report.healed.is_some() {
        report.behind() || (!args.prune_strays && report.summary.stray > 0)
    } else {
        report.drifted() || report.behind()
    }
}

/// Apps that could not be checked or healed make the run an error (exit 2), after the
/// report of the others: one app's failure is the error itself; several are listed.
pub fn failures(args: &Args, round: &mut Round) -> Result<()> {
    if round.failed.is_empty() {
        return Ok(());
    }
    // An interrupted heal ends the run as interrupted, whatever else failed.
    if let Some(at) = round.failed.iter().position(|f| is_interrupted(&f.error)) {
        return Err(round.failed.remove(at).error);
    }
    if args.app.is_some() || round.failed.len() == 1 && round.checked.is_empty() {
        return Err(round.failed.remove(0).error);
    }
    for failed in &round.failed {
        eprintln!(
            "error: app {} in namespace {}: {:#}",
            failed.app, failed.namespace, failed.error
        );
    }
    let total = round.checked.len() + round.skipped.len() + round.failed.len();
    bail!(
        "{} of {total} apps could not be checked or healed",
        round.failed.len()
    )
}

/// 1 when drift is left (after healing: what healing did not fix), else 0.
pub fn outcome(args: &Args, round: &Round) -> Outcome {
    if round
        .checked
        .iter()
        .any(|checked| outstanding(args, &checked.report))
    {
        Outcome::Differences
    } else {
        Outcome::Clean
    }
}
