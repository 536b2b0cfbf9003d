//! `--watch`: check every interval and print only what changed since the last check,
//! healing each time with `--heal` (a self-healing loop). Ctrl-C stops it between
//! checks (exit 0); during a heal, it stops the heal as it stops a sync (exit 130).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Write};

use crate::Format;
use anyhow::Result;
use gitops::drift::{self, AppDrift, DriftError, ObjectState, Repos};
use gitops_cli::Outcome;
use gitops_cli::interrupt::{self, is_interrupted};
use gitops_cli::watch::{fetch, now};

use crate::report::{field_line, latest_release_line, summary};
use crate::session::{Session, request};
use crate::{Args, round};

/// What was last printed about an app: its drift lines, or its error.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Drift(BTreeSet<String>),
    Error(String),
}

pub async fn run(args: &Args, session: &Session) -> Result<Outcome> {
    let stop = interrupt::install();
    let what = match &args.app {
        Some(app) => format!("app {app}"),
        None if args.namespaces.all => "every app in every namespace".to_string(),
        None => format!("every app in namespace {}", session.connection.namespace),
    };
    eprintln!(
        "{} watching {what} every {}{}; Ctrl-C stops",
        now(),
        humantime::format_duration(args.repeat.interval),
        if args.heal { ", healing drift" } else { "" }
    );
    let mut seen: BTreeMap<(String, String), Seen> = BTreeMap::new();
    let mut repos = Repos::default();
    while !stop.is_cancelled() {
        if (args.git.is_some() || args.against.is_some())
            && let Err(problem) = fetch(args.repo.location.as_deref())
        {
            eprintln!("{} {problem}", now());
        }
        repos.new_round();
        if let Err(error) = round(args, session, &mut repos, &mut seen).await {
            if is_interrupted(&error) {
                return Err(error);
            }
            // `kubectl drift --watch | head`: the reader is gone, so is the point.
            if broken_pipe(&error)
                || emit(&format!(
                    "error: {error:#} (trying again in the next round)"
                ))
                .is_err()
            {
                break;
            }
        }
        if stop.is_cancelled() {
            break;
        }
        interrupt::sleep(&stop, args.repeat.interval).await;
    }
    eprintln!("{} stopped", now());
    Ok(Outcome::Clean)
}

/// One check of every target, printing what changed, healing what drifted.
async fn round(
    args: &Args,
    session: &Session,
    repos: &mut Repos,
    seen: &mut BTreeMap<(String, String), Seen>,
) -> Result<()> {
    let targets = round::targets(args, session).await?;
    seen.retain(|key, _| targets.contains(key));
    for (namespace, app) in targets {
        let request = request(args, session, &namespace, &app);
        let key = (namespace.clone(), app.clone());
        let mut checked = match drift::check_app(&session.cluster, repos, &request).await {
            Ok(checked) => checked,
            Err(DriftError::NoDeployedRelease { .. }) if args.app.is_none() => continue,
            Err(error) => {
                let message = format!("{:#}", anyhow::Error::new(error));
                if seen.get(&key) != Some(&Seen::Error(message.clone())) {
                    emit(&format!("{app}: error: {message}"))?;
                    seen.insert(key, Seen::Error(message));
                }
                continue;
            }
        };
        let lines = drift_lines(&checked.report);
        let fingerprint: BTreeSet<String> = lines.iter().map(|(f, _)| f.clone()).collect();
        let before = seen.get(&key).cloned();
        let changed = before.as_ref() != Some(&Seen::Drift(fingerprint.clone()));
        if args.output.format == Some(Format::Json) {
            if changed {
                json_line(&checked.report)?;
            }
        } else {
            let old = match &before {
                Some(Seen::Drift(old)) => old.clone(),
                _ => BTreeSet::new(),
            };
            for (fingerprint, line) in &lines {
                if !old.contains(fingerprint) {
                    emit(&format!("{app}: {line}"))?;
                }
            }
            let was_clean = matches!(&before, Some(Seen::Drift(old)) if old.is_empty());
            if fingerprint.is_empty() && !was_clean {
                emit(&summary(&checked.report, false))?;
            }
        }
        seen.insert(key.clone(), Seen::Drift(fingerprint));
        if args.heal && drift::needs_heal(&checked.report, args.prune_strays) {
            match round::heal(args, session, &mut checked).await {
                Ok(()) => {
                    if args.output.format == Some(Format::Json) {
                        json_line(&checked.report)?;
                    } else if let Some(healed) = &checked.report.healed {
                        let c = &healed.counts;
                        emit(&format!(
                            "{app}: healed: release {} {} ({} created, {} configured, {} pruned)",
                            healed.release, healed.status, c.created, c.configured, c.pruned
                        ))?;
                    }
                    // Drift that comes back after a heal is news again.
                    seen.insert(key, Seen::Drift(BTreeSet::new()));
                }
                Err(error) if is_interrupted(&error) => return Err(error),
                Err(error) => emit(&format!("{app}: heal failed: {error:#}"))?,
            }
        }
    }
    Ok(())
}

/// (what identifies a line across rounds, what to print): first, when the app's newest
/// release did not deploy, a note saying so (identified by the release and its status, not
/// by how long ago it started); then a line per field of a modified object, per deleted or
/// stray object, and one for undeployed git changes.
fn drift_lines(report: &AppDrift) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    if let (Some(latest), Some(line)) = (
        report.latest_release.as_ref(),
        latest_release_line(report, "its drift"),
    ) {
        lines.push((
            format!("latest release {} {}", latest.release, latest.status),
            format!("note: {line}"),
        ));
    }
    for object in &report.objects {
        match object.state {
            ObjectState::Modified => {
                for field in &object.fields {
                    let live = field.live.as_ref().map(ToString::to_string);
                    lines.push((
                        format!("{} {} {live:?} {:?}", object.key, field.path, field.manager),
                        format!("{} {}", object.key, field_line(field)),
                    ));
                }
            }
            state => lines.push((
                format!("{} {}", object.key, state.as_str()),
                format!("{} {}", object.key, state.as_str()),
            )),
        }
    }
    if let Some(git) = report.git.as_ref().filter(|g| g.behind) {
        lines.push((
            format!("git {}", git.commit.id),
            format!(
                "behind git: {} ({} {}) changes {} object(s) not deployed yet",
                git.revision,
                git.commit.short_id,
                git.commit.subject,
                git.changes.len()
            ),
        ));
    }
    lines
}

/// One report as one line of JSON (JSON Lines).
fn json_line(report: &AppDrift) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, report)?;
    writeln!(out)?;
    out.flush()
}

/// A timestamped line on stdout: the watch's report.
fn emit(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{} {line}", now())?;
    out.flush()
}

fn broken_pipe(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}
