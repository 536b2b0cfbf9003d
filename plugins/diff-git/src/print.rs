//! Printing a change set in each output format. Write errors (a closed pipe) are returned,
//! so `kubectl diff-git | head` ends quietly.

use std::io::{self, Write};

use gitops::diff::{self, ChangeSet, TextOptions};
use serde::Serialize;

pub struct View<'a> {
    pub changes: &'a ChangeSet,
    pub before: &'a str,
    pub after: &'a str,
    pub context: usize,
    pub color: bool,
}

/// The colored unified diff, then the one-line summary.
pub fn unified(view: &View) -> io::Result<()> {
    let options = TextOptions { context: view.context, color: view.color };
    let mut out = io::stdout().lock();
    for change in view.changes.differences() {
        out.write_all(diff::unified(change, view.before, view.after, &options).as_bytes())?;
    }
    writeln!(out, "{}", diff::summary_line(&view.changes.summary()))?;
    out.flush()
}

/// The stable document for scripts.
pub fn json(view: &View) -> io::Result<()> {
    #[derive(Serialize)]
    struct Document<'a> {
        before: &'a str,
        after: &'a str,
        #[serde(flatten)]
        report: diff::DiffReport,
    }
    let document = Document { before: view.before, after: view.after, report: view.changes.report(false) };
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &document)?;
    writeln!(out)?;
    out.flush()
}

pub fn names(view: &View) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(diff::names(view.changes).as_bytes())?;
    out.flush()
}

pub fn markdown(view: &View) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(diff::markdown(view.changes, view.before, view.after).as_bytes())?;
    out.flush()
}
