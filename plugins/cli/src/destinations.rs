//! A run over several destinations, reported alike by every plugin: a headed section per
//! destination (as `tail` heads each file), a line on stderr for each that failed, then a
//! summary table with a row each; or one `{"items": [...]}` document with `-o json`; or,
//! for output meant for `xargs` (`-o name`), each section's lines and nothing else. The
//! run fails (exit 2) when any destination did, after the others were reported.
//!
//! A plugin says what its destinations are through [`Section`]; [`run`] works them out at
//! once and [`report`] prints them.

use std::future::Future;
use std::io::{self, Write};

use anyhow::{Result, bail};
use comfy_table::{ContentArrangement, Table, presets};
use serde_json::Value;

use crate::Outcome;

/// One destination's result, as a plugin shows it.
pub trait Section {
    /// What the failure message counts: "N of M {COUNTED} failed", M being the summary's rows.
    const COUNTED: &'static str = "destinations";
    /// Where it is: what its heading and its error line name.
    fn place(&self) -> Place<'_>;
    /// The error that failed it, on one line; None when it did not fail.
    fn error(&self) -> Option<String>;
    /// What it says on stderr whatever the output format (warnings), before its section.
    fn warn(&self, _err: &mut dyn Write) -> io::Result<()> {
        Ok(())
    }
    /// Its section of the text output, under its heading.
    fn print(&self, out: &mut dyn Write) -> Result<()>;
    /// Its entry of `-o json`'s items.
    fn item(&self) -> Value;
    /// Its rows of the summary: one, or one per app it holds.
    fn rows(&self) -> Vec<Row>;
    /// Whether it found differences (exit 1 when nothing failed).
    fn outcome(&self) -> Outcome {
        Outcome::Clean
    }
}

/// How the destinations are reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A headed section each, then the summary table.
    Sections,
    /// One `{"items": [...]}` document.
    Items,
    /// Each section's lines, without headings or summary: one list for a pipe.
    Lines,
}

impl Layout {
    /// `-o json` gives items; anything else the sections.
    pub fn json_or_sections(json: bool) -> Layout {
        match json {
            true => Layout::Items,
            false => Layout::Sections,
        }
    }
}

/// Works out every destination at once, then reports them in the order given.
pub async fn run<S, W>(work: W, layout: Layout) -> Result<Outcome>
where
    S: Section,
    W: IntoIterator,
    W::Item: Future<Output = S>,
{
    let sections = futures::future::join_all(work).await;
    report(&sections, layout)
}

/// Prints each section (text) or collects its item (`json`), then the summary table or
/// the items; the outcome is the worst of them, or the error saying how many failed.
pub fn report<S: Section>(sections: &[S], layout: Layout) -> Result<Outcome> {
    let json = layout == Layout::Items;
    let mut out = io::stdout().lock();
    let mut err = io::stderr();
    let mut rows = Vec::new();
    let mut items = Vec::new();
    let mut outcome = Outcome::Clean;
    for section in sections {
        let place = section.place();
        if layout == Layout::Sections {
            writeln!(out, "==> {} <==", place.heading())?;
        }
        section.warn(&mut err)?;
        if json {
            items.push(section.item());
        } else {
            section.print(&mut out)?;
        }
        if let Some(line) = section.error() {
            // Best effort: the summary says it again.
            let _ = writeln!(err, "error: {}: {line}", place.who());
        }
        if section.outcome() == Outcome::Differences {
            outcome = Outcome::Differences;
        }
        rows.extend(section.rows());
    }
    match layout {
        Layout::Items => {
            serde_json::to_writer_pretty(&mut out, &serde_json::json!({ "items": items }))?;
            writeln!(out)?;
        }
        Layout::Sections => {
            writeln!(out)?;
            summary(&mut out, &rows)?;
        }
        Layout::Lines => out.flush()?,
    }
    failed(&rows, S::COUNTED)?;
    Ok(outcome)
}

/// Where a section's destination is.
#[derive(Debug, Clone, Copy)]
pub enum Place<'a> {
    /// An app on a cluster (diff-git, sync).
    App(&'a AppOnContext),
    /// A cluster and the apps checked there (drift).
    Context(&'a str),
}

impl Place<'_> {
    /// Its heading, between `==> ` and ` <==`.
    pub fn heading(&self) -> String {
        match self {
            Place::App(app) => app.heading(),
            Place::Context(_) => self.who(),
        }
    }

    /// Who failed, for the line on stderr: `error: {who}: {error}`.
    pub fn who(&self) -> String {
        match self {
            Place::App(app) => app.who(),
            Place::Context(context) => format!("context {context}"),
        }
    }
}

/// One app on one cluster, as diff-git's and sync's sections name it.
#[derive(Debug, Clone)]
pub struct AppOnContext {
    pub app: String,
    pub context: String,
    pub namespace: String,
}

impl AppOnContext {
    /// `app A · context C · namespace N`.
    pub fn heading(&self) -> String {
        format!(
            "app {} · context {} · namespace {}",
            self.app, self.context, self.namespace
        )
    }

    /// `app A on context C`.
    pub fn who(&self) -> String {
        format!("app {} on context {}", self.app, self.context)
    }

    /// Its summary row.
    pub fn row(&self, result: std::result::Result<String, String>) -> Row {
        Row {
            app: self.app.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            result,
        }
    }
}

/// How one destination (or one app of it) ended, for the summary.
pub struct Row {
    pub app: String,
    pub context: String,
    pub namespace: String,
    /// `Ok(result)` or the error, in one line.
    pub result: std::result::Result<String, String>,
}

/// One row per destination, after the sections.
fn summary(out: &mut dyn Write, rows: &[Row]) -> io::Result<()> {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(["APP", "CONTEXT", "NAMESPACE", "RESULT"]);
    for row in rows {
        let result = match &row.result {
            Ok(text) => text.clone(),
            Err(error) => format!("error: {error}"),
        };
        table.add_row([&row.app, &row.context, &row.namespace, &result]);
    }
    writeln!(out, "{}", crate::table::text(&table))?;
    out.flush()
}

/// The error that ends a run in which some rows failed (exit 2).
fn failed(rows: &[Row], counted: &str) -> Result<()> {
    let failed = rows.iter().filter(|r| r.result.is_err()).count();
    if failed > 0 {
        bail!("{failed} of {} {counted} failed", rows.len());
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn row(result: std::result::Result<&str, &str>) -> Row {
        AppOnContext {
            app: "a".into(),
            context: "c".into(),
            namespace: "n".into(),
        }
        .row(result.map(str::to_string).map_err(str::to_string))
    }

    #[test]
    fn failures_are_counted_in_the_plugins_words() {
        assert!(failed(&[row(Ok("fine"))], "destinations").is_ok());
        let error = failed(&[row(Ok("fine")), row(Err("down"))], "checks").unwrap_err();
        assert_eq!(error.to_string(), "1 of 2 checks failed");
    }

    #[test]
    fn an_app_on_a_context_is_named_alike_everywhere() {
        let place = AppOnContext {
            app: "shop".into(),
            context: "eu".into(),
            namespace: "web".into(),
        };
        assert_eq!(place.heading(), "app shop · context eu · namespace web");
        assert_eq!(place.who(), "app shop on context eu");
        assert_eq!(Place::App(&place).heading(), place.heading());
        assert_eq!(Place::Context("eu").heading(), "context eu");
        assert_eq!(Place::Context("eu").who(), "context eu");
    }
}
