//! Showing a round: one app in detail, several as a table, or JSON for scripts.

use std::io::{self, Write};

use crate::Format;
use comfy_table::{ContentArrangement, Table, presets};
use gitops::drift::{AppDrift, AppStatus, FieldDrift, ObjectState};
use serde::Serialize;
use serde_json::Value;

use crate::Args;
use crate::round::Round;

/// Longest value shown in text before it is cut short (`-o json` has it whole).
const MAX_VALUE_CHARS: usize = 120;

/// `namespace` is the one apps were listed in (without `-A`).
pub fn print(out: &mut dyn Write, args: &Args, namespace: &str, round: &Round) -> io::Result<()> {
    match (args.output.format, &args.app) {
        (Some(Format::Json), _) => {
            if let Some(value) = json(args, round) {
                serde_json::to_writer_pretty(&mut *out, &value)?;
                writeln!(out)?;
            }
        }
        // -o tree is printed by `tree`, after the tree is read; this is its text fallback.
        (Some(Format::Tree), _) | (None, Some(_)) => {
            if let Some(checked) = round.checked.first() {
                out.write_all(detail(&checked.report, args.output.color.enabled()).as_bytes())?;
            }
        }
        (None, None) => out.write_all(table(args, namespace, round).as_bytes())?,
    }
    out.flush()
}

/// What `-o json` prints: a named app's report, else the round's document.
pub fn json(args: &Args, round: &Round) -> Option<Value> {
    match &args.app {
        Some(_) => round
            .checked
            .first()
            .and_then(|checked| serde_json::to_value(&checked.report).ok()),
        None => Some(document(round)),
    }
}

/// `{"apps": [...], "skipped": [...], "errors": [...], "summary": {...}}`.
fn document(round: &Round) -> Value {
    #[derive(Serialize)]
    struct Skipped<'a> {
        namespace: &'a str,
        app: &'a str,
        reason: &'a str,
    }
    #[derive(Serialize)]
    struct Failed<'a> {
        namespace: &'a str,
        app: &'a str,
        error: String,
    }
    #[derive(Serialize)]
    struct Summary {
        apps: usize,
        in_sync: usize,
        drifted: usize,
        behind: usize,
        healed: usize,
        skipped: usize,
        errors: usize,
    }
    #[derive(Serialize)]
    struct Document<'a> {
        apps: Vec<&'a AppDrift>,
        skipped: Vec<Skipped<'a>>,
        errors: Vec<Failed<'a>>,
        summary: Summary,
    }
    let reports: Vec<&AppDrift> = round.checked.iter().map(|c| &c.report).collect();
    let count = |status| reports.iter().filter(|r| r.status == status).count();
    let document = Document {
        summary: Summary {
            apps: reports.len() + round.skipped.len() + round.failed.len(),
            in_sync: count(AppStatus::InSync),
            drifted: count(AppStatus::Drifted),
            behind: count(AppStatus::Behind),
            healed: reports.iter().filter(|r| r.healed.is_some()).count(),
            skipped: round.skipped.len(),
            errors: round.failed.len(),
        },
        skipped: round
            .skipped
            .iter()
            .map(|s| Skipped {
                namespace: &s.namespace,
                app: &s.app,
                reason: &s.reason,
            })
            .collect(),
        errors: round
            .failed
            .iter()
            .map(|f| Failed {
                namespace: &f.namespace,
                app: &f.app,
                error: format!("{:#}", f.error),
            })
            .collect(),
        apps: reports,
    };
    serde_json::to_value(&document).unwrap_or_default()
}

/// One row per app, then a summary line.
fn table(args: &Args, namespace: &str, round: &Round) -> String {
    let mut out = String::new();
    let every = args.namespaces.all || args.apps.all;
    if round.checked.is_empty() && round.skipped.is_empty() && round.failed.is_empty() {
        if every {
            out.push_str("no apps with releases in any namespace\n");
        } else {
            out.push_str(&format!("no apps with releases in namespace {namespace}\n"));
        }
        return out;
    }
    let columns = Columns {
        namespace: every,
        git: args.git.is_some() || args.against.is_some(),
        heal: args.heal,
    };
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(columns.header());
    for (namespace, _, mut row) in rows(&columns, round) {
        if columns.namespace {
            row.insert(0, namespace);
        }
        table.add_row(row);
    }
    out.push_str(&format!("{}\n", gitops_cli::table::text(&table)));
    for checked in &round.checked {
        if let Some(line) = latest_release_line(&checked.report, "its drift") {
            out.push_str(&format!("note: {line}\n"));
        }
    }
    out.push_str(&summary_line(round));
    out
}

/// `app shop's latest release 7 is pending (a sync is running or died; started 2m ago by
/// alice): the drift below may be its half-applied change`, when the app's newest release
/// did not deploy.
/// `drift` names the drift where the line stands (`the drift below`, `its drift`).
pub fn latest_release_line(report: &AppDrift, drift: &str) -> Option<String> {
    let latest = report.latest_release.as_ref()?;
    let started = format!(
        "started {} ago by {}",
        humantime::format_duration(std::time::Duration::from_secs(
            u64::try_from(
                jiff::Timestamp::now()
                    .duration_since(latest.started)
                    .as_secs()
            )
            .unwrap_or(0)
        )),
        latest.who
    );
    let state = match latest.error.as_deref() {
        None if latest.status == "pending" => {
            format!("is pending (a sync is running or died; {started})")
        }
        error => format!(
            "{} ({started}): {}",
            latest.status,
            error.unwrap_or("no reason recorded")
        ),
    };
    let mut line = format!(
        "app {}'s latest release {} {state}",
        report.app, latest.release
    );
    if report.drifted() {
        line.push_str(&format!(
            ": {drift} may be its half-applied change (release {} is the deployed one)",
            report.release
        ));
    }
    Some(line)
}

/// Which optional columns the table has.
struct Columns {
    /// NAMESPACE first, when apps come from several namespaces.
    namespace: bool,
    /// BEHIND, when git is compared.
    git: bool,
    /// HEALED, with --heal.
    heal: bool,
}

impl Columns {
    fn header(&self) -> Vec<&'static str> {
        let mut header = vec!["APP", "RELEASE", "STATUS", "MODIFIED", "DELETED", "STRAY"];
        if self.namespace {
            header.insert(0, "NAMESPACE");
        }
        if self.git {
            header.push("BEHIND");
        }
        if self.heal {
            header.push("HEALED");
        }
        header
    }

    /// A checked app's cells, NAMESPACE left out.
    fn checked(&self, r: &AppDrift) -> Vec<String> {
        let mut row = vec![
            r.app.clone(),
            r.release.to_string(),
            r.status.as_str().to_string(),
            r.summary.modified.to_string(),
            r.summary.deleted.to_string(),
            r.summary.stray.to_string(),
        ];
        if self.git {
            row.push(match &r.git {
                Some(g) if g.behind => format!(
                    "{} object{}",
                    g.changes.len(),
                    if g.changes.len() == 1 { "" } else { "s" }
                ),
                Some(_) => "no".into(),
                None => "-".into(),
            });
        }
        if self.heal {
            row.push(
                r.healed
                    .as_ref()
                    .map(|h| format!("release {}", h.release))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        row
    }

    /// An app that was not checked: its name, and `status` where the release's would be.
    fn unchecked(&self, app: &str, status: &str) -> Vec<String> {
        let mut row = vec![app.to_string(), "-".into(), status.to_string()];
        row.resize(
            6 + usize::from(self.git) + usize::from(self.heal),
            "-".into(),
        );
        row
    }
}

/// (namespace, app, cells) of every app of the round, sorted; an app whose heal failed
/// keeps its checked row.
fn rows(columns: &Columns, round: &Round) -> Vec<(String, String, Vec<String>)> {
    let mut rows: Vec<(String, String, Vec<String>)> = Vec::new();
    for checked in &round.checked {
        let r = &checked.report;
        rows.push((r.namespace.clone(), r.app.clone(), columns.checked(r)));
    }
    for s in &round.skipped {
        let row = columns.unchecked(&s.app, "no deployed release");
        rows.push((s.namespace.clone(), s.app.clone(), row));
    }
    for f in &round.failed {
        if rows
            .iter()
            .any(|(ns, app, _)| *ns == f.namespace && *app == f.app)
        {
            continue;
        }
        let row = columns.unchecked(&f.app, "error");
        rows.push((f.namespace.clone(), f.app.clone(), row));
    }
    rows.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    rows
}

/// `3 apps: 1 in sync, 1 drifted, 1 behind, 1 healed, 1 error`.
fn summary_line(round: &Round) -> String {
    let reports: Vec<&AppDrift> = round.checked.iter().map(|c| &c.report).collect();
    let count = |status| reports.iter().filter(|r| r.status == status).count();
    let total = reports.len() + round.skipped.len() + round.failed.len();
    let mut parts = vec![
        format!("{} in sync", count(AppStatus::InSync)),
        format!("{} drifted", count(AppStatus::Drifted)),
    ];
    let behind = count(AppStatus::Behind);
    if behind > 0 {
        parts.push(format!("{behind} behind"));
    }
    let healed = reports.iter().filter(|r| r.healed.is_some()).count();
    if healed > 0 {
        parts.push(format!("{healed} healed"));
    }
    if !round.skipped.is_empty() {
        parts.push(format!(
            "{} without a deployed release",
            round.skipped.len()
        ));
    }
    if !round.failed.is_empty() {
        parts.push(format!("{} failed", round.failed.len()));
    }
    format!(
        "{total} app{}: {}\n",
        if total == 1 { "" } else { "s" },
        parts.join(", ")
    )
}

/// One app in detail: each object and field, git, warnings, then a summary line.
pub fn detail(report: &AppDrift, color: bool) -> String {
    let mut out = String::new();
    // First: what a half-done sync left is not someone else's change.
    if let Some(line) = latest_release_line(report, "the drift below") {
        out.push_str(&line);
        out.push_str("\n\n");
    }
    for line in object_lines(report, color) {
        out.push_str(&line);
        out.push('\n');
    }
    if let Some(git) = &report.git {
        if !report.objects.is_empty() {
            out.push('\n');
        }
        out.push_str(&git_lines(report, git));
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&summary(report, color));
    out.push('\n');
    if let Some(healed) = &report.healed {
        let c = &healed.counts;
        out.push_str(&format!(
            "healed: release {} of {} {} ({} created, {} configured, {} unchanged, {} pruned)\n",
            healed.release,
            report.app,
            healed.status,
            c.created,
            c.configured,
            c.unchanged,
            c.pruned
        ));
    }
    out
}

/// `app shop: drifted against release 3 (1 modified, 1 deleted, 0 stray, 4 in sync; 1 field ignored)`.
pub fn summary(report: &AppDrift, color: bool) -> String {
    let s = &report.summary;
    let against = match report.against.kind {
        "release" => format!("release {}", report.against.name),
        _ => format!("revision {}", report.against.name),
    };
    let status = paint(
        report.status.as_str(),
        match report.status {
            AppStatus::InSync => GREEN,
            AppStatus::Drifted => YELLOW,
            AppStatus::Behind => CYAN,
        },
        color,
    );
    let mut text = format!(
        "app {}: {status} against {against} ({} modified, {} deleted, {} stray, {} in sync",
        report.app, s.modified, s.deleted, s.stray, s.in_sync
    );
    if s.ignored_fields > 0 {
        text.push_str(&format!(
            "; {} field{} ignored",
            s.ignored_fields,
            if s.ignored_fields == 1 { "" } else { "s" }
        ));
    }
    text.push(')');
    text
}

/// A line per drifted object, and under a modified one a line per field.
pub fn object_lines(report: &AppDrift, color: bool) -> Vec<String> {
    let mut lines = Vec::new();
    for object in &report.objects {
        let (word, code) = match object.state {
            ObjectState::Modified => ("modified", YELLOW),
            ObjectState::Deleted => ("deleted", RED),
            ObjectState::Stray => ("stray", MAGENTA),
        };
        let mut line = format!("{}: {}", object.key, paint(word, code, color));
        match (&object.message, object.state) {
            (Some(message), _) => line.push_str(&format!(" ({message})")),
            (None, ObjectState::Stray) => line.push_str(&format!(
                " (labelled as a member of app {}, not in {} {})",
                report.app, report.against.kind, report.against.name
            )),
            _ => {}
        }
        lines.push(line);
        for field in &object.fields {
            lines.push(format!("  {}", field_line(field)));
        }
    }
    lines
}

/// `/spec/replicas: 2 -> 5 (by kubectl, Update via scale)`.
pub fn field_line(field: &FieldDrift) -> String {
    let who = match &field.manager {
        Some(manager) => {
            let mut who = format!("by {manager}");
            if let Some(op) = &field.operation {
                who.push_str(&format!(", {op}"));
            }
            if let Some(sub) = &field.subresource {
                who.push_str(&format!(" via {sub}"));
            }
            if let Some(ago) = field.time.as_deref().and_then(ago) {
                who.push_str(&format!(", {ago}"));
            }
            who
        }
        None if field.live.is_none() => "removed; no field manager owns it now".to_string(),
        None => "no field manager owns it".to_string(),
    };
    format!(
        "{}: {} -> {} ({who})",
        field.path,
        value_text(field.desired.as_ref()),
        value_text(field.live.as_ref())
    )
}

/// `2026-01-01T10:00:00Z (3m 12s ago)`.
fn ago(time: &str) -> Option<String> {
    let then: jiff::Timestamp = time.parse().ok()?;
    let elapsed = jiff::Timestamp::now().duration_since(then);
    let seconds = u64::try_from(elapsed.as_secs()).unwrap_or(0);
    Some(format!(
        "{time} ({} ago)",
        humantime::format_duration(std::time::Duration::from_secs(seconds))
    ))
}

fn git_lines(report: &AppDrift, git: &gitops::drift::GitStatus) -> String {
    let mut out = format!(
        "git: {} is {} {:?}",
        git.revision, git.commit.short_id, git.commit.subject
    );
    let deployed = git.deployed_commit.as_deref();
    match (deployed, git.commits.len()) {
        (Some(d), _) if d == git.commit.id => out.push_str(", the deployed commit"),
        (Some(d), 0) => out.push_str(&format!("; deployed is {}", short(d))),
        (Some(d), n) => out.push_str(&format!(
            "; {n} commit{} since the deployed {}",
            if n == 1 { "" } else { "s" },
            short(d)
        )),
        (None, _) => out.push_str("; the deployed release has no commit"),
    }
    out.push('\n');
    if git.changes.is_empty() {
        out.push_str("  it changes none of the app's objects\n");
    } else {
        out.push_str(&format!(
            "  not deployed yet (app {} is behind); it changes:\n",
            report.app
        ));
        for change in &git.changes {
            out.push_str(&format!("  {:<8} {}\n", change.action.as_str(), change.key));
        }
    }
    out
}

fn short(commit: &str) -> String {
    commit.chars().take(7).collect()
}

/// A value as JSON, shortened; `(none)` when absent.
fn value_text(value: Option<&Value>) -> String {
    let Some(value) = value else {
        return "(none)".into();
    };
    let text = value.to_string();
    if text.chars().count() <= MAX_VALUE_CHARS {
        return text;
    }
    let cut: String = text.chars().take(MAX_VALUE_CHARS - 3).collect();
    format!("{cut}...")
}

const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const MAGENTA: &str = "35";
const CYAN: &str = "36";

fn paint(text: &str, code: &str, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitops::drift::{Against, GitChange, GitStatus, Healed, ObjectDrift};
    use gitops::objects::ObjectKey;
    use gitops::source::CommitInfo;
    use serde_json::json;

    fn key(group: &str, kind: &str, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.into(),
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: name.into(),
        }
    }

    fn field(
        path: &str,
        desired: Option<Value>,
        live: Option<Value>,
        by: Option<&str>,
    ) -> FieldDrift {
        FieldDrift {
            path: path.into(),
            desired,
            live,
            manager: by.map(Into::into),
            operation: by.map(|_| "Update".into()),
            subresource: (by == Some("kubectl")).then(|| "scale".into()),
            time: None,
        }
    }

    fn commit(id: &str, subject: &str) -> CommitInfo {
        CommitInfo {
            id: id.repeat(40 / id.len()),
            short_id: id.repeat(7 / id.len() + 1)[..7].to_string(),
            subject: subject.into(),
            author_name: "Ada".into(),
            author_email: "ada@example.com".into(),
            time: 0,
        }
    }

    fn report() -> AppDrift {
        let against = Against {
            kind: "release",
            name: "3".into(),
            commit: None,
        };
        let mut report = AppDrift::new("shop", "shop", 3, against);
        report.objects = vec![
            ObjectDrift {
                key: key("", "ConfigMap", "extra"),
                state: ObjectState::Stray,
                fields: Vec::new(),
                message: None,
            },
            ObjectDrift {
                key: key("", "ConfigMap", "settings"),
                state: ObjectState::Deleted,
                fields: Vec::new(),
                message: None,
            },
            ObjectDrift {
                key: key("apps", "Deployment", "web"),
                state: ObjectState::Modified,
                fields: vec![
                    field(
                        "/spec/replicas",
                        Some(json!(2)),
                        Some(json!(4)),
                        Some("kubectl"),
                    ),
                    field(
                        "/spec/template/spec/containers/0/image",
                        Some(json!("nginx:1.26")),
                        Some(json!("nginx:1.27")),
                        Some("kubectl-edit"),
                    ),
                    field("/metadata/labels/tier", Some(json!("front")), None, None),
                    field(
                        "/metadata/annotations/a",
                        Some(json!("x".repeat(200))),
                        Some(json!({"k": 1})),
                        None,
                    ),
                ],
                message: None,
            },
        ];
        report.git = Some(GitStatus {
            revision: "main".into(),
            commit: commit("b", "Bump the image"),
            deployed_commit: Some(commit("a", "First").id),
            behind: true,
            commits: vec![commit("b", "Bump the image")],
            changes: vec![GitChange {
                key: key("apps", "Deployment", "web"),
                action: gitops::diff::Action::Changed,
            }],
        });
        report.summary.in_sync = 2;
        report.settle();
        report
    }

    #[test]
    fn one_app_in_detail() {
        let mut report = report();
        report.healed = Some(Healed {
            release: 4,
            status: "deployed".into(),
            description: String::new(),
            counts: Default::default(),
        });
        insta::assert_snapshot!(detail(&report, false));
    }

    #[test]
    fn several_apps_as_a_table() {
        use clap::Parser;
        let checked = |report: AppDrift| gitops::drift::Checked {
            release: gitops::release::record::ReleaseRecord::start(
                &report.app,
                &report.namespace,
                gitops::release::record::Operation::Sync,
                "ada",
                Default::default(),
            ),
            release_keys: Default::default(),
            report,
        };
        let mut calm = AppDrift::new(
            "calm",
            "web",
            7,
            Against {
                kind: "release",
                name: "7".into(),
                commit: None,
            },
        );
        calm.summary.in_sync = 4;
        calm.settle();
        let round = Round {
            checked: vec![checked(report()), checked(calm)],
            skipped: vec![crate::round::Skipped {
                namespace: "web".into(),
                app: "new".into(),
                reason: "its newest, release 1, is failed".into(),
            }],
            failed: Vec::new(),
        };
        let args = crate::Args::parse_from(["kubectl-drift", "-A", "--git"]);
        insta::assert_snapshot!(table(&args, "default", &round));
        let doc = document(&round);
        assert_eq!(
            doc["summary"],
            json!({"apps": 3, "in_sync": 1, "drifted": 1, "behind": 0, "healed": 0, "skipped": 1, "errors": 0})
        );
        assert_eq!(doc["apps"][1]["app"], "calm");
        assert_eq!(
            doc["skipped"][0]["reason"],
            "its newest, release 1, is failed"
        );
        let empty = Round::default();
        assert_eq!(
            table(&crate::Args::parse_from(["kubectl-drift"]), "shop", &empty),
            "no apps with releases in namespace shop\n"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        assert!(!detail(&report(), false).contains('\x1b'));
        assert!(detail(&report(), true).contains("\x1b[33mmodified\x1b[0m"));
    }

    #[test]
    fn times_are_shown_with_how_long_ago() {
        let shown = ago("2020-01-01T00:00:00Z").unwrap_or_default();
        assert!(
            shown.starts_with("2020-01-01T00:00:00Z (") && shown.ends_with(" ago)"),
            "{shown}"
        );
        assert_eq!(ago("yesterday"), None);
    }
}
