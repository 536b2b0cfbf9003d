//! The result of a sync: a table and a summary line for people, a JSON document for scripts.

use std::io::{self, Write};

use comfy_table::{ContentArrangement, Table, presets};
use gitops::release::record::ReleaseRecord;
use serde::Serialize;

/// The objects and the summary line; `recorded` false for a no-op sync's (the current
/// release, with what this sync found).
pub fn table(out: &mut dyn Write, record: &ReleaseRecord, recorded: bool) -> io::Result<()> {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["OBJECT", "ACTION", "HEALTH"]);
    for object in &record.objects {
        let health = match (&object.health, &object.message) {
            (_, Some(message)) => message.clone(),
            (Some(health), None) => health.clone(),
            (None, None) => "-".into(),
        };
        table.add_row([object.key.to_string(), object.action.clone(), health]);
    }
    if !record.objects.is_empty() {
        writeln!(out, "{}", gitops_cli::table::text(&table))?;
    }
    for run in &record.hooks {
        let message = run
            .message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        writeln!(
            out,
            "hook {} {} ({}) {}{message}",
            run.stage, run.key, run.events, run.result
        )?;
    }
    writeln!(out, "{}", summary(record, recorded))?;
    out.flush()
}

/// `release 3 of shop: deployed (1 created, 2 configured, 5 unchanged, 1 pruned) in 12s`;
/// for a no-op sync `release 2 of shop: deployed, nothing changed (0 created, 0
/// configured, 3 unchanged, 0 pruned); no new release recorded`; `3 pruned (1 by
/// cascade)` when objects went with a pruned CRD or Namespace.
pub fn summary(record: &ReleaseRecord, recorded: bool) -> String {
    let c = &record.counts;
    // Members the revision dropped that their options keep: `; kept ConfigMap shop/x
    // (Prune=false)`.
    let kept: String = record
        .objects
        .iter()
        .filter(|o| o.action == "kept")
        .map(|o| format!("; kept {} ({})", o.key, o.message.as_deref().unwrap_or("-")))
        .collect();
    if !recorded {
        return format!(
            "release {} of {}: {}, nothing changed ({} created, {} configured, {} unchanged, {} pruned); no new release recorded{kept}",
            record.revision,
            record.app,
            record.status,
            c.created,
            c.configured,
            c.unchanged,
            c.pruned
        );
    }
    let took = record
        .finished
        .and_then(|f| f.since(record.started).ok())
        .and_then(|span| span.total(jiff::Unit::Second).ok())
        .map(|s| format!(" in {s:.1}s"))
        .unwrap_or_default();
    let mut text = format!(
        "release {} of {}: {} ({} created, {} configured, {} unchanged, {} pruned",
        record.revision, record.app, record.status, c.created, c.configured, c.unchanged, c.pruned
    );
    if c.cascaded > 0 {
        text.push_str(&format!(" ({} by cascade)", c.cascaded));
    }
    if c.failed > 0 {
        text.push_str(&format!(", {} failed", c.failed));
    }
    text.push(')');
    text.push_str(&took);
    text.push_str(&kept);
    text
}

/// The stable document for scripts.
pub fn json(out: &mut dyn Write, record: &ReleaseRecord, recorded: bool) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &document(record, recorded))?;
    writeln!(out)?;
    out.flush()
}

/// What `-o json` prints for one release, as a value (several destinations print one per
/// item). `recorded` false: a no-op sync recorded nothing, `release` is the current one.
pub fn document(record: &ReleaseRecord, recorded: bool) -> serde_json::Value {
    #[derive(Serialize)]
    struct Document<'a> {
        app: &'a str,
        namespace: &'a str,
        release: u32,
        status: String,
        operation: &'a gitops::release::record::Operation,
        rollback_of: Option<u32>,
        /// The object release-history and drift print for a commit.
        commit: Option<&'a gitops::source::CommitInfo>,
        /// Every commit the release covers, newest first.
        commits: &'a [gitops::source::CommitInfo],
        recorded: bool,
        last_synced: Option<jiff::Timestamp>,
        counts: &'a gitops::release::record::Counts,
        objects: &'a [gitops::release::record::ObjectResult],
        /// The hooks the release ran (absent when none ran).
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        hooks: &'a [gitops::release::record::HookRun],
        error: Option<&'a str>,
    }
    let document = Document {
        app: &record.app,
        namespace: &record.namespace,
        release: record.revision,
        status: record.status.to_string(),
        operation: &record.operation,
        rollback_of: record.rollback_of,
        commit: record.commit.as_ref(),
        commits: &record.commits,
        recorded,
        last_synced: record.last_synced,
        counts: &record.counts,
        objects: &record.objects,
        hooks: &record.hooks,
        error: record.error.as_deref(),
    };
    serde_json::to_value(&document).unwrap_or_default()
}
