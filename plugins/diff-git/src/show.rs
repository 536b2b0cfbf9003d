//! Printing a destination's comparison: alone, or as a section of several.

use std::io::Write;

use anyhow::Result;
use gitops_cli::destinations::{AppOnContext, Place, Row, Section};
use gitops_cli::targets::{self, Target};
use gitops_cli::{Outcome, diff_view};

use crate::compute::Computed;
use crate::{Args, Format, external};

impl Computed {
    /// What stderr gets before the diff: the comparison's warnings, the namespaces that do
    /// not exist, the fields another manager owns, the objects another owner holds.
    fn warn(&self, err: &mut dyn Write, adopt: bool) -> std::io::Result<()> {
        for warning in &self.warnings {
            writeln!(err, "{warning}")?;
        }
        diff_view::missing_namespace_warnings(err, &self.missing_namespaces);
        diff_view::conflict_warnings(err, &self.conflicts);
        diff_view::ownership_lines(err, &self.owners, &self.unowned, adopt);
        diff_view::hook_lines(err, "hooks a sync would run (not run now):", &self.hooks)?;
        Ok(())
    }

    fn view<'a>(&'a self, args: &Args) -> diff_view::View<'a> {
        diff_view::View {
            changes: &self.changes,
            before: &self.before,
            after: &self.after,
            conflicts: &self.conflicts,
            owners: &self.owners,
            hooks: &self.hooks,
            context: args.unified.lines,
            color: args.output.color.enabled(),
        }
    }

    /// Differences when anything differs, or when a sync would take objects over from
    /// another owner (which the diff of a new app, without ApplySet labels, cannot show).
    fn outcome(&self) -> Outcome {
        match self.changes.has_differences() || !self.owners.is_empty() {
            true => Outcome::Differences,
            false => Outcome::Clean,
        }
    }
}

/// One destination's comparison, alone on the command line: no heading, no summary, and
/// its error is the run's.
pub fn alone(args: &Args, computed: &Computed) -> Result<Outcome> {
    computed.warn(&mut std::io::stderr(), args.adopt.adopt)?;
    show(args, computed, &mut std::io::stdout().lock())?;
    Ok(computed.outcome())
}

/// The diff in the format asked for; without -o, `KUBECTL_EXTERNAL_DIFF` (as kubectl
/// diff) or the colored unified diff.
fn show(args: &Args, computed: &Computed, out: &mut dyn Write) -> Result<()> {
    let view = computed.view(args);
    match args.output.format {
        Some(Format::Json) => diff_view::json(out, &view)?,
        Some(Format::Name) => diff_view::names(out, &view)?,
        Some(Format::Markdown) => diff_view::markdown(out, &view)?,
        None => match std::env::var("KUBECTL_EXTERNAL_DIFF")
            .ok()
            .filter(|v| !v.trim().is_empty())
        {
            Some(command) => external::run(&command, &view)?,
            None => diff_view::unified(out, &view)?,
        },
    }
    Ok(())
}

/// One destination of several: where it is, and what differs there or why that is unknown.
pub struct Compared<'a> {
    args: &'a Args,
    place: AppOnContext,
    pub computed: Result<Computed>,
}

impl<'a> Compared<'a> {
    pub fn new(
        args: &'a Args,
        target: &Target,
        context: String,
        namespace: String,
        computed: Result<Computed>,
    ) -> Compared<'a> {
        let place = AppOnContext {
            app: target.app.clone(),
            context,
            namespace,
        };
        Compared {
            args,
            place,
            computed,
        }
    }
}

impl Section for Compared<'_> {
    fn place(&self) -> Place<'_> {
        Place::App(&self.place)
    }

    fn error(&self) -> Option<String> {
        self.computed.as_ref().err().map(targets::one_line)
    }

    fn warn(&self, err: &mut dyn Write) -> std::io::Result<()> {
        match &self.computed {
            Ok(computed) => computed.warn(err, self.args.adopt.adopt),
            Err(_) => Ok(()),
        }
    }

    fn print(&self, out: &mut dyn Write) -> Result<()> {
        match &self.computed {
            Ok(computed) => show(self.args, computed, out),
            Err(_) => Ok(()),
        }
    }

    /// The destination, then the document `-o json` prints for one.
    fn item(&self) -> serde_json::Value {
        let AppOnContext {
            app,
            context,
            namespace,
        } = &self.place;
        let mut item = serde_json::json!({
            "app": app, "context": context, "namespace": namespace, "error": self.error(),
        });
        if let (Some(item), Ok(computed)) = (item.as_object_mut(), &self.computed)
            && let serde_json::Value::Object(doc) = diff_view::document(&computed.view(self.args))
        {
            item.extend(doc);
        }
        item
    }

    fn rows(&self) -> Vec<Row> {
        let result = match &self.computed {
            Ok(computed) if computed.changes.has_differences() => {
                Ok(gitops::diff::summary_line(&computed.changes.summary()))
            }
            Ok(computed) if !computed.owners.is_empty() => Ok(format!(
                "{} object(s) owned by another app or Helm",
                computed.owners.len()
            )),
            Ok(_) => Ok("no differences".to_string()),
            Err(error) => Err(targets::one_line(error)),
        };
        vec![self.place.row(result)]
    }

    fn outcome(&self) -> Outcome {
        match &self.computed {
            Ok(computed) => computed.outcome(),
            Err(_) => Outcome::Clean,
        }
    }
}
