//! Output for people: tables like `kubectl get` and `helm history`, fitted to the terminal,
//! and a `describe`-like page for one release. Write errors are returned, so
//! `kubectl release-history | head` ends quietly.

use std::fmt::Write as _;
use std::io::{self, Write};

use comfy_table::{Cell, Color, ColumnConstraint, ContentArrangement, Table, Width, presets};
use gitops::release::history::{
    AppHistory, AppSummary, Release, ReleaseObject, Source, Unreadable,
};
use gitops::release::record::Counts;
use jiff::Timestamp;
use jiff::tz::TimeZone;

/// What a cell shows when the source has no such value.
const NONE: &str = "-";
/// The least width of a time column: its absolute part, `(2025-11-25 10:04:05 CEST)`,
/// stays on one line.
const WHEN_WIDTH: u16 = 26;
/// Spaces between columns, as kubectl puts them.
const PADDING: u16 = 3;
/// The least width of a free-text column.
const TEXT_WIDTH: u16 = 20;

pub fn apps(apps: &[AppSummary], namespace: Option<&str>, color: bool) -> io::Result<()> {
    if apps.is_empty() {
        // As kubectl does: nothing on stdout, a note on stderr, success.
        match namespace {
            Some(ns) => eprintln!("No releases found in namespace {ns}."),
            None => eprintln!("No releases found in any namespace."),
        }
        return Ok(());
    }
    print(&apps_text(apps, Timestamp::now(), color))
}

pub fn history(history: &AppHistory, color: bool) -> io::Result<()> {
    print(&history_text(history, Timestamp::now(), color))
}

pub fn release(
    release: &Release,
    objects: &[ReleaseObject],
    show_values: bool,
    color: bool,
) -> io::Result<()> {
    print(&release_text(
        release,
        objects,
        show_values,
        Timestamp::now(),
        color,
    ))
}

pub fn manifest(manifest: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(manifest.as_bytes())?;
    if !manifest.is_empty() && !manifest.ends_with('\n') {
        writeln!(out)?;
    }
    out.flush()
}

fn print(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()
}

/// The overview: one row per app with its newest release.
pub fn apps_text(apps: &[AppSummary], now: Timestamp, color: bool) -> String {
    let mut table = new_table(color);
    table.set_header([
        "APP",
        "NAMESPACE",
        "REVISION",
        "STATUS",
        "COMMIT",
        "SUBJECT",
        "DEPLOYED",
        "BY",
        "SOURCE",
    ]);
    for app in apps {
        let cells: Vec<Cell> = match &app.latest {
            Ok(r) => {
                let (commit, subject) = match r.source {
                    Source::Gitops => (r.commit.as_ref().map(|c| c.short_id.clone()), subject(r)),
                    // Helm records no commit: its chart and description say what it was.
                    Source::Helm => (chart(r), r.description.clone()),
                };
                vec![
                    Cell::new(&app.app),
                    Cell::new(&app.namespace),
                    Cell::new(r.revision),
                    status_cell(&r.status, color),
                    Cell::new(commit.as_deref().unwrap_or(NONE)),
                    Cell::new(or_none(&subject)),
                    Cell::new(when(r.updated, now)),
                    Cell::new(r.who.as_deref().unwrap_or(NONE)),
                    Cell::new(r.source),
                ]
            }
            Err(u) => {
                let mut cells = unreadable_cells(u, color, &OVERVIEW);
                cells[0] = Cell::new(&app.app);
                cells[1] = Cell::new(&app.namespace);
                cells[8] = Cell::new(u.source);
                cells
            }
        };
        table.add_row(cells);
    }
    render(&mut table, &[(5, TEXT_WIDTH), (6, WHEN_WIDTH), (7, 8)])
}

/// One app's releases, newest first: our columns, or `helm history`'s for a Helm release.
pub fn history_text(history: &AppHistory, now: Timestamp, color: bool) -> String {
    let mut table = new_table(color);
    // The free-text columns wrap on a narrow terminal.
    let wrap = match history.source {
        Source::Gitops => our_history(&mut table, history, now, color),
        Source::Helm => helm_history(&mut table, history, now, color),
    };
    render(&mut table, &wrap)
}

/// Our releases' rows into `table`; returns the columns that wrap.
fn our_history(
    table: &mut Table,
    history: &AppHistory,
    now: Timestamp,
    color: bool,
) -> Vec<(usize, u16)> {
    // A CHART column only for an app with chart releases, as `helm history` has.
    let charts = history
        .entries
        .iter()
        .any(|e| e.as_ref().is_ok_and(|r| r.chart.is_some()));
    let mut header = vec![
        "REVISION", "UPDATED", "STATUS", "COMMIT", "SUBJECT", "AUTHOR", "BY", "CHANGES", "DURATION",
    ];
    let layout = if charts {
        header.insert(CHART_COLUMN, "CHART");
        &OURS_WITH_CHART
    } else {
        &OURS
    };
    table.set_header(header);
    for entry in &history.entries {
        let cells = match entry {
            Ok(r) => our_cells(r, charts, now, color),
            Err(u) => unreadable_cells(u, color, layout),
        };
        table.add_row(cells);
    }
    [(1, WHEN_WIDTH), (4, TEXT_WIDTH), (5, 10), (7, 12)]
        .into_iter()
        .map(|(i, w)| match charts && i >= CHART_COLUMN {
            true => (i + 1, w),
            false => (i, w),
        })
        .collect()
}

/// One of our releases as a history row, with a CHART cell when the table has one.
fn our_cells(r: &Release, charts: bool, now: Timestamp, color: bool) -> Vec<Cell> {
    let mut cells = vec![
        Cell::new(r.revision),
        Cell::new(when(r.updated, now)),
        status_cell(&r.status, color),
        Cell::new(r.commit.as_ref().map_or(NONE, |c| c.short_id.as_str())),
        Cell::new(or_none(&subject(r))),
        Cell::new(r.commit.as_ref().map_or(NONE, |c| c.author_name.as_str())),
        Cell::new(r.who.as_deref().unwrap_or(NONE)),
        Cell::new(r.counts.as_ref().map_or(NONE.into(), changes)),
        Cell::new(r.duration_seconds.map_or(NONE.into(), duration)),
    ];
    if charts {
        let chart = chart(r);
        cells.insert(CHART_COLUMN, Cell::new(chart.as_deref().unwrap_or(NONE)));
    }
    cells
}

/// A Helm release's rows into `table`, with `helm history`'s columns; returns the
/// columns that wrap.
fn helm_history(
    table: &mut Table,
    history: &AppHistory,
    now: Timestamp,
    color: bool,
) -> Vec<(usize, u16)> {
    table.set_header([
        "REVISION",
        "UPDATED",
        "STATUS",
        "CHART",
        "APP VERSION",
        "DESCRIPTION",
    ]);
    for entry in &history.entries {
        let cells = match entry {
            Ok(r) => vec![
                Cell::new(r.revision),
                Cell::new(when(r.updated, now)),
                status_cell(&r.status, color),
                Cell::new(chart(r).as_deref().unwrap_or(NONE)),
                Cell::new(r.app_version.as_deref().unwrap_or(NONE)),
                Cell::new(or_none(&r.description)),
            ],
            Err(u) => unreadable_cells(u, color, &HELM),
        };
        table.add_row(cells);
    }
    vec![(1, WHEN_WIDTH), (5, TEXT_WIDTH)]
}

/// One release, field by field as `kubectl describe` shows an object, then its objects.
/// A chart's values are shown only with `show_values`: they can hold credentials.
pub fn release_text(
    release: &Release,
    objects: &[ReleaseObject],
    show_values: bool,
    now: Timestamp,
    color: bool,
) -> String {
    let fields = release_fields(release, show_values, now);
    let width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0) + 2;
    let mut text = String::new();
    for (name, value) in &fields {
        // Continuation lines of a multi-line value line up under its first line.
        let indent = format!("\n{:width$}", "");
        let value = value.trim_end().replace('\n', &indent);
        let label = format!("{name}:");
        let _ = writeln!(text, "{label:width$}{value}");
    }
    if !release.hooks.is_empty() {
        text.push('\n');
        text.push_str(&hooks_text(&release.hooks));
    }
    if objects.is_empty() {
        return text;
    }
    text.push('\n');
    text.push_str(&objects_text(objects, color));
    text
}

/// The hooks a release ran: stage, hook as created, result, when, how long, why.
fn hooks_text(hooks: &[gitops::release::record::HookRun]) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header([
        "STAGE", "HOOK", "EVENTS", "RESULT", "STARTED", "DURATION", "MESSAGE",
    ]);
    for run in hooks {
        let result = if run.deleted {
            format!("{} (deleted)", run.result)
        } else {
            run.result.clone()
        };
        table.add_row([
            run.stage.clone(),
            run.key.to_string(),
            run.events.clone(),
            result,
            run.started.strftime("%Y-%m-%d %H:%M:%S").to_string(),
            format!("{:.1}s", run.duration_ms as f64 / 1000.0),
            run.message.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    format!("Hooks:\n{}\n", gitops_cli::table::text(&table))
}

/// The release's fields in the order shown, leaving out those it has no value for.
fn release_fields(
    release: &Release,
    show_values: bool,
    now: Timestamp,
) -> Vec<(&'static str, String)> {
    let mut fields: Vec<(&'static str, String)> = vec![
        ("App", release.app.clone()),
        ("Namespace", release.namespace.clone()),
        ("Source", release.source.to_string()),
        ("Revision", release.revision.to_string()),
        ("Status", release.status.clone()),
    ];
    let mut add = |name: &'static str, value: Option<String>| {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            fields.push((name, value));
        }
    };
    add(
        "Operation",
        release
            .operation
            .as_ref()
            .map(|op| match release.rollback_of {
                Some(of) => format!("{op} to release {of}"),
                None => op.clone(),
            }),
    );
    add("Description", Some(release.description.clone()));
    add("Chart", chart(release));
    add("Chart source", chart_source(release));
    add("App version", release.app_version.clone());
    add(
        "First deployed",
        release.first_deployed.map(|t| when(Some(t), now)),
    );
    add("Started", release.started.map(|t| when(Some(t), now)));
    add("Finished", release.finished.map(|t| when(Some(t), now)));
    if release.source == Source::Helm {
        add("Last deployed", release.updated.map(|t| when(Some(t), now)));
    }
    add("Deleted", release.deleted.map(|t| when(Some(t), now)));
    add("Duration", release.duration_seconds.map(duration));
    if let Some(commit) = &release.commit {
        add("Commit", Some(commit.id.clone()));
        add("Subject", Some(commit.subject.clone()));
        add(
            "Author",
            Some(format!("{} <{}>", commit.author_name, commit.author_email)),
        );
    }
    add("Commits", covered(release));
    add(
        "Last synced",
        release.last_synced.map(|t| when(Some(t), now)),
    );
    add("By", release.who.clone());
    add("Repository", release.repo.clone());
    add("Path", release.path.clone());
    add("Renderer", release.renderer.clone());
    add(
        "Values files",
        release.values_files.as_ref().map(|files| files.join(", ")),
    );
    add(
        "Set",
        release
            .set_keys
            .as_ref()
            .filter(|keys| !keys.is_empty())
            .map(|keys| format!("{} (values hidden)", keys.join(", "))),
    );
    add("Values", values_text(release.values.as_ref(), show_values));
    add("Changes", release.counts.as_ref().map(all_counts));
    add("Error", release.error.clone());
    add("Notes", release.notes.clone());

    fields
}

/// The objects a release holds: with what it did to each and their health, when known.
fn objects_text(objects: &[ReleaseObject], color: bool) -> String {
    let mut table = new_table(color);
    if objects.iter().any(|o| o.action.is_some()) {
        table.set_header(["OBJECT", "ACTION", "HEALTH"]);
        for object in objects {
            let health = object
                .message
                .as_ref()
                .or(object.health.as_ref())
                .map_or(NONE, String::as_str);
            table.add_row([
                object.key.to_string(),
                object.action.clone().unwrap_or_else(|| NONE.into()),
                health.to_string(),
            ]);
        }
    } else {
        table.set_header(["OBJECT"]);
        for object in objects {
            table.add_row([object.key.to_string()]);
        }
    }
    render(&mut table, &[(0, TEXT_WIDTH), (2, TEXT_WIDTH)])
}

/// A table drawn like `kubectl get`: no borders, three spaces between columns, wrapped
/// to the terminal's width when there is one.
fn new_table(color: bool) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    // A pseudo-terminal may report a width of 0 (script, some CI runners): wrapping to
    // that would put one letter per line, so only a real width is fitted to.
    if table.width().is_some_and(|width| width > 0) {
        table.set_content_arrangement(ContentArrangement::Dynamic);
    }
    if color {
        // --color=always colours a pipe too; only the words, not the padding after them.
        table.enforce_styling();
        table.style_text_only();
    }
    table
}

/// The table's text: columns three spaces apart, as kubectl spaces them, no trailing
/// blanks. On a narrow terminal only the columns in `wrap` (index, least width) are
/// wrapped; the others (revisions, statuses, shas, names) stay whole.
fn render(table: &mut Table, wrap: &[(usize, u16)]) -> String {
    let fitted = !matches!(table.content_arrangement(), ContentArrangement::Disabled);
    let widths = table.column_max_content_widths();
    for (index, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, PADDING));
        if !fitted {
            continue;
        }
        let content = widths.get(index).copied().unwrap_or(0);
        let constraint = match wrap.iter().find(|(i, _)| *i == index) {
            // The boundary counts the padding too; a column narrower than it needs none.
            Some((_, least)) if content > *least => {
                ColumnConstraint::LowerBoundary(Width::Fixed(least + PADDING))
            }
            _ => ColumnConstraint::ContentWidth,
        };
        column.set_constraint(constraint);
    }
    let mut text = String::new();
    for line in table.lines() {
        let _ = writeln!(text, "{}", line.trim_end());
    }
    text
}

/// Where a table puts what an unreadable record's row shows.
struct Layout {
    columns: usize,
    revision: usize,
    status: usize,
    /// The wide text column that takes the Secret's name and the reason.
    reason: usize,
}

const OVERVIEW: Layout = Layout {
    columns: 9,
    revision: 2,
    status: 3,
    reason: 5,
};
const OURS: Layout = Layout {
    columns: 9,
    revision: 0,
    status: 2,
    reason: 4,
};
/// Where the CHART column goes in our history when an app has chart releases.
const CHART_COLUMN: usize = 3;
const OURS_WITH_CHART: Layout = Layout {
    columns: 10,
    revision: 0,
    status: 2,
    reason: 5,
};
const HELM: Layout = Layout {
    columns: 6,
    revision: 0,
    status: 2,
    reason: 5,
};

/// A row for a record that cannot be read: its revision, `unreadable`, and why.
fn unreadable_cells(u: &Unreadable, color: bool, layout: &Layout) -> Vec<Cell> {
    let mut cells: Vec<Cell> = (0..layout.columns).map(|_| Cell::new(NONE)).collect();
    cells[layout.revision] = Cell::new(u.revision.map_or("?".to_string(), |r| r.to_string()));
    cells[layout.status] = status_cell("unreadable", color);
    cells[layout.reason] = Cell::new(format!("{}: {}", u.secret, u.reason));
    cells
}

fn status_cell(status: &str, color: bool) -> Cell {
    let cell = Cell::new(status);
    if !color {
        return cell;
    }
    match status {
        "deployed" => cell.fg(Color::Green),
        "failed" | "unreadable" => cell.fg(Color::Red),
        s if s.starts_with("pending") || s == "uninstalling" => cell.fg(Color::Yellow),
        _ => cell,
    }
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { NONE } else { text }
}

/// The commits a release covers when they are more than its one commit:
/// `3: 1f2e3d4 Bump, 9a8b7c6 Fix the port, 5d6e7f8 Add a Service`.
fn covered(release: &Release) -> Option<String> {
    let commits = release.commits.as_ref().filter(|c| c.len() > 1)?;
    let left_out = release.commits_left_out.unwrap_or_default();
    let listed: Vec<String> = commits
        .iter()
        .map(|c| format!("{} {}", c.short_id, c.subject))
        .collect();
    let more = match left_out {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    Some(format!(
        "{}: {}{more}",
        commits.len() + left_out,
        listed.join(", ")
    ))
}

/// The commit subject; a rollback or heal says so first.
fn subject(release: &Release) -> String {
    let subject = release
        .commit
        .as_ref()
        .map(|c| c.subject.clone())
        .unwrap_or_default();
    match (release.operation.as_deref(), release.rollback_of) {
        (Some("rollback"), Some(of)) if subject.is_empty() => format!("rollback to {of}"),
        (Some("rollback"), Some(of)) => format!("rollback to {of}: {subject}"),
        (Some("heal"), _) if subject.is_empty() => "heal".into(),
        (Some("heal"), _) => format!("heal: {subject}"),
        _ => subject,
    }
}

/// The user-supplied values as YAML, or a note that they are hidden; nothing when there
/// are none.
fn values_text(values: Option<&serde_json::Value>, show: bool) -> Option<String> {
    let values = values.filter(|v| v.as_object().is_none_or(|m| !m.is_empty()))?;
    if !show {
        return Some("(hidden: they can hold credentials; --show-secrets shows them)".into());
    }
    // Every JSON value has a YAML form.
    Some(serde_yaml_ng::to_string(values).unwrap_or_else(|_| values.to_string()))
}

/// `oci://registry.example.com/charts (sha256:4f2a…)` for a chart that is not in git.
fn chart_source(release: &Release) -> Option<String> {
    let chart = release.chart.as_ref()?;
    let repository = chart.repository.as_ref()?;
    Some(match &chart.digest {
        Some(digest) => format!("{repository} ({digest})"),
        None => repository.clone(),
    })
}

/// `nginx-15.1.0`, as Helm names a chart.
fn chart(release: &Release) -> Option<String> {
    release.chart.as_ref().map(|c| {
        if c.version.is_empty() {
            c.name.clone()
        } else {
            format!("{}-{}", c.name, c.version)
        }
    })
}

/// `3m ago (2025-11-25 10:04:05 UTC)`: relative for a glance, absolute in the local zone.
pub fn when(time: Option<Timestamp>, now: Timestamp) -> String {
    let Some(time) = time else {
        return NONE.into();
    };
    let absolute = time
        .to_zoned(TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string();
    format!("{} ({absolute})", ago(time, now))
}

/// `45s ago`, `3m ago`, `5h ago`, `12d ago`, `2y ago`.
pub fn ago(time: Timestamp, now: Timestamp) -> String {
    let seconds = now.duration_since(time).as_secs();
    if seconds < -60 {
        return "in the future".into();
    }
    let seconds = seconds.max(0);
    match seconds {
        s if s < 60 => format!("{s}s ago"),
        s if s < 3600 => format!("{}m ago", s / 60),
        s if s < 2 * 86_400 => format!("{}h ago", s / 3600),
        s if s < 365 * 86_400 => format!("{}d ago", s / 86_400),
        s => format!("{}y ago", s / (365 * 86_400)),
    }
}

/// `0.4s`, `12.3s`, `2m05s`, `1h02m`.
pub fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let whole = seconds.round() as u64;
    if whole < 3600 {
        format!("{}m{:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60)
    }
}

/// What changed: `1 created, 2 configured, 1 pruned` (zeros left out), `no changes`.
fn changes(counts: &Counts) -> String {
    let parts: Vec<String> = [
        (counts.created, "created"),
        (counts.configured, "configured"),
        (counts.pruned, "pruned"),
        (counts.failed, "failed"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, word)| format!("{n} {word}"))
    .collect();
    match (parts.is_empty(), counts.unchanged) {
        (false, _) => parts.join(", "),
        (true, 0) => NONE.into(),
        (true, _) => "no changes".into(),
    }
}

/// Every count, for the page of one release.
fn all_counts(c: &Counts) -> String {
    let mut text = format!(
        "{} created, {} configured, {} unchanged, {} pruned",
        c.created, c.configured, c.unchanged, c.pruned
    );
    if c.failed > 0 {
        let _ = write!(text, ", {} failed", c.failed);
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use gitops::release::record::{Operation, ReleaseRecord, ReleaseStatus};
    use gitops::source::CommitInfo;

    use super::*;

    fn now() -> Timestamp {
        "2025-06-01T12:00:00Z".parse().unwrap()
    }

    fn ours(revision: u32, status: ReleaseStatus) -> Release {
        let mut record =
            ReleaseRecord::start("shop", "apps", Operation::Sync, "admin", Default::default());
        record.revision = revision;
        record.status = status;
        record.started = "2025-06-01T11:57:00Z".parse().unwrap();
        record.finished = Some("2025-06-01T11:57:01.5Z".parse().unwrap());
        record.commit = Some(CommitInfo {
            id: "0123456789abcdef0123456789abcdef01234567".into(),
            short_id: "0123456".into(),
            subject: "Bump the image".into(),
            author_name: "Ada Author".into(),
            author_email: "ada@example.com".into(),
            time: 0,
        });
        record.counts = Counts {
            created: 1,
            configured: 2,
            unchanged: 3,
            pruned: 0,
            failed: 0,
            cascaded: 0,
        };
        Release::from_record(record)
    }

    #[test]
    fn times_read_at_a_glance() {
        let now = now();
        let at = |text: &str| -> Timestamp { text.parse().unwrap() };
        assert_eq!(ago(at("2025-06-01T11:59:15Z"), now), "45s ago");
        assert_eq!(ago(at("2025-06-01T11:57:00Z"), now), "3m ago");
        assert_eq!(ago(at("2025-05-31T07:00:00Z"), now), "29h ago");
        assert_eq!(ago(at("2025-05-20T12:00:00Z"), now), "12d ago");
        assert_eq!(ago(at("2023-05-20T12:00:00Z"), now), "2y ago");
        assert_eq!(ago(at("2025-06-01T12:00:30Z"), now), "0s ago");
        assert_eq!(ago(at("2025-06-02T12:00:00Z"), now), "in the future");
        assert_eq!(when(None, now), "-");
        assert_eq!(duration(0.42), "0.4s");
        assert_eq!(duration(125.0), "2m05s");
        assert_eq!(duration(3725.0), "1h02m");
    }

    #[test]
    fn changes_leave_zeros_out() {
        let mut counts = Counts::default();
        assert_eq!(changes(&counts), "-");
        counts.unchanged = 4;
        assert_eq!(changes(&counts), "no changes");
        counts.created = 1;
        counts.pruned = 2;
        assert_eq!(changes(&counts), "1 created, 2 pruned");
    }

    #[test]
    fn history_table_has_our_columns_and_unreadable_rows() {
        let history = AppHistory {
            source: Source::Gitops,
            app: "shop".into(),
            namespace: "apps".into(),
            entries: vec![
                Err(Unreadable {
                    source: Source::Gitops,
                    namespace: "apps".into(),
                    secret: "shop.r3".into(),
                    revision: Some(3),
                    reason: "the release record is not valid JSON".into(),
                }),
                Ok(ours(2, ReleaseStatus::Deployed)),
            ],
        };
        let text = history_text(&history, now(), false);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("REVISION   UPDATED"), "{text}");
        assert!(lines[1].starts_with("3 "), "{text}");
        assert!(
            lines[1].contains("unreadable")
                && lines[1].contains("shop.r3: the release record is not valid JSON"),
            "{text}"
        );
        assert!(
            lines[2].contains("2m ago (2025-06-01 11:57:01 UTC)"),
            "{text}"
        );
        assert!(lines[2].contains("1 created, 2 configured"), "{text}");
        assert!(lines[2].ends_with("1.5s"), "{text}");
        assert!(!text.contains('\x1b'), "no colour unless asked: {text}");
        assert!(history_text(&history, now(), true).contains('\x1b'));
    }

    fn from_chart(revision: u32) -> Release {
        let mut release = ours(revision, ReleaseStatus::Deployed);
        release.chart = Some(gitops::release::history::ChartRef {
            name: "web".into(),
            version: "1.4.0".into(),
            repository: Some("oci://registry.example.com/charts".into()),
            digest: Some("sha256:4f2a".into()),
        });
        release.values_files = Some(vec!["env/prod.yaml".into(), "chart/more.yaml".into()]);
        release.set_keys = Some(vec!["image.tag".into()]);
        release.values = Some(serde_json::json!({"token": "s3cret", "replicas": 2}));
        release
    }

    #[test]
    fn chart_releases_have_a_chart_column_and_hide_their_values() {
        let history = AppHistory {
            source: Source::Gitops,
            app: "shop".into(),
            namespace: "apps".into(),
            entries: vec![
                Ok(from_chart(2)),
                Err(Unreadable {
                    source: Source::Gitops,
                    namespace: "apps".into(),
                    secret: "shop.r1".into(),
                    revision: Some(1),
                    reason: "corrupt".into(),
                }),
            ],
        };
        let text = history_text(&history, now(), false);
        let lines: Vec<&str> = text.lines().collect();
        let header: Vec<&str> = lines[0].split_whitespace().collect();
        assert_eq!(
            header[..5],
            ["REVISION", "UPDATED", "STATUS", "CHART", "COMMIT"]
        );
        assert!(
            lines[1].contains("deployed     web-1.4.0   0123456"),
            "{text}"
        );
        assert!(
            lines[2].contains("unreadable") && lines[2].contains("shop.r1: corrupt"),
            "{text}"
        );

        let page = release_text(&from_chart(2), &[], false, now(), false);
        assert!(page.contains("Chart:        web-1.4.0\n"), "{page}");
        assert!(
            page.contains("Chart source: oci://registry.example.com/charts (sha256:4f2a)\n"),
            "{page}"
        );
        assert!(
            page.contains("Values files: env/prod.yaml, chart/more.yaml\n"),
            "{page}"
        );
        assert!(
            page.contains("Set:          image.tag (values hidden)\n"),
            "{page}"
        );
        assert!(page.contains("Values:       (hidden"), "{page}");
        assert!(!page.contains("s3cret"), "{page}");
        let shown = release_text(&from_chart(2), &[], true, now(), false);
        assert!(
            shown.contains("Values:       token: s3cret\n              replicas: 2\n"),
            "{shown}"
        );
    }

    #[test]
    fn release_page_lists_fields_and_objects() {
        let mut release = ours(4, ReleaseStatus::Deployed);
        release.operation = Some("rollback".into());
        release.rollback_of = Some(2);
        release.error = Some("line one\nline two".into());
        let text = release_text(&release, &[], false, now(), false);
        assert!(text.starts_with("App:       shop\n"), "{text}");
        assert!(
            text.contains("Operation: rollback to release 2\n"),
            "{text}"
        );
        assert!(
            text.contains("Author:    Ada Author <ada@example.com>\n"),
            "{text}"
        );
        assert!(
            text.contains("Error:     line one\n           line two\n"),
            "{text}"
        );
        assert!(!text.contains("Chart:"), "{text}");
    }
}
