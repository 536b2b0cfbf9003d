//! Printing a change set in each output format (diff-git's outputs, and sync's preview). Write errors (a closed pipe) are returned,
//! so `kubectl diff-git | head` ends quietly.

use std::borrow::Cow;
use std::io::{self, Write};

use gitops::apply::ownership::ForeignOwner;
use gitops::compare::Conflict;
use gitops::diff::{self, ChangeSet, ObjectChange, TextOptions};
use gitops::hooks::{PlannedHook, preview_lines};
use gitops::objects::ObjectKey;
use serde::Serialize;

pub struct View<'a> {
    pub changes: &'a ChangeSet,
    pub before: &'a str,
    pub after: &'a str,
    pub conflicts: &'a [Conflict],
    /// Existing objects another owner holds (`-o json` lists them).
    pub owners: &'a [ForeignOwner],
    /// The hooks a sync would run (`-o json` lists them; they are no difference).
    pub hooks: &'a [PlannedHook],
    pub context: usize,
    pub color: bool,
}

/// The colored unified diff, then the one-line summary.
pub fn unified(out: &mut dyn Write, view: &View) -> io::Result<()> {
    unified_shown(out, view, &|change| Cow::Borrowed(change))
}

/// [`unified`], each change passed through `shown` just before it is printed (a sync fills
/// in the objects it creates from their manifests one at a time).
pub fn unified_shown(
    out: &mut dyn Write,
    view: &View,
    shown: &dyn for<'c> Fn(&'c ObjectChange) -> Cow<'c, ObjectChange>,
) -> io::Result<()> {
    let options = TextOptions {
        context: view.context,
        color: view.color,
    };
    for change in view.changes.differences() {
        let change = shown(change);
        out.write_all(diff::unified(&change, view.before, view.after, &options).as_bytes())?;
    }
    writeln!(out, "{}", diff::summary_line(&view.changes.summary()))?;
    out.flush()
}

/// The stable document for scripts.
pub fn json(out: &mut dyn Write, view: &View) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &document(view))?;
    writeln!(out)?;
    out.flush()
}

/// What `-o json` prints, as a value (several destinations print one per item).
pub fn document(view: &View) -> serde_json::Value {
    #[derive(Serialize)]
    struct Document<'a> {
        before: &'a str,
        after: &'a str,
        #[serde(flatten)]
        report: diff::DiffReport,
        conflicts: &'a [Conflict],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        owners: &'a [ForeignOwner],
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        hooks: &'a [PlannedHook],
    }
    let document = Document {
        before: view.before,
        after: view.after,
        report: view.changes.report(false),
        conflicts: view.conflicts,
        owners: view.owners,
        hooks: view.hooks,
    };
    serde_json::to_value(&document).unwrap_or_default()
}

pub fn names(out: &mut dyn Write, view: &View) -> io::Result<()> {
    out.write_all(diff::names(view.changes).as_bytes())?;
    out.flush()
}

pub fn markdown(out: &mut dyn Write, view: &View) -> io::Result<()> {
    out.write_all(diff::markdown(view.changes, view.before, view.after).as_bytes())?;
    out.flush()
}

/// Fields another manager owns: the diff shows them taken over, and says so on stderr,
/// since `kubectl sync` will need `--force-conflicts` to do it.
pub fn conflict_warnings(err: &mut dyn Write, conflicts: &[Conflict]) {
    for conflict in conflicts {
        let _ = writeln!(
            err,
            "warning: {}: {} (the diff shows them taken over; sync needs --force-conflicts)",
            conflict.key, conflict.message
        );
    }
}

/// Who the revision's existing objects belong to, as a sync would treat them: another
/// owner's are a conflict `--adopt` resolves (or, with `adopt`, what it takes from whom);
/// those nobody owns are adopted, and the preview says so.
pub fn ownership_lines(
    err: &mut dyn Write,
    owners: &[ForeignOwner],
    unowned: &[ObjectKey],
    adopt: bool,
) {
    for owned in owners {
        let _ = if adopt {
            writeln!(err, "adopting {} from {}", owned.key, owned.owner)
        } else {
            writeln!(
                err,
                "conflict: {} belongs to {}; sync --adopt takes it over",
                owned.key, owned.owner
            )
        };
    }
    for key in unowned {
        let _ = writeln!(err, "note: {key} exists without an owner: adopted");
    }
}

/// Objects in a namespace that does not exist are shown as added; applying them will fail
/// until someone creates it, so say so.
pub fn missing_namespace_warnings(err: &mut dyn Write, namespaces: &[String]) {
    for ns in namespaces {
        let _ = writeln!(
            err,
            "warning: namespace \"{ns}\" does not exist and the revision does not create it; its objects are shown as added"
        );
    }
}

/// The hooks a sync would run, one line each on `err` under `heading` (`hooks a sync
/// would run (not run now):`): `  PreSync: Job.batch shop/migrate-* (pre-install, weight -1)`.
pub fn hook_lines(err: &mut dyn Write, heading: &str, hooks: &[PlannedHook]) -> io::Result<()> {
    if hooks.is_empty() {
        return Ok(());
    }
    writeln!(err, "{heading}")?;
    for line in preview_lines(hooks) {
        writeln!(err, "  {line}")?;
    }
    Ok(())
}
