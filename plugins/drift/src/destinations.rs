//! Which clusters to check, and which apps on each: the flags alone, or the repository's
//! app list (`--all`, or an APP it lists); and each cluster's part of the report when there
//! are several.

use std::io::Write;

use anyhow::Result;
use gitops::app_file::{AppFile, AppSpec};
use gitops::source::{self, Repo, TreeSpec, read_tree};
use gitops_cli::destinations::{Layout, Place, Row, Section};
use gitops_cli::targets;
use gitops_cli::{Outcome, Target};

use crate::Format;
use gitops::drift::IgnoreRules;

use crate::round::{self, Round};
use crate::session::Session;
use crate::{Args, report};

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
    // A named app comes from the list only when the list has it (--all without a list is
    // select's error): its file alone says so, without reading the whole tree.
    if !args.apps.all {
        let file = &args.apps.app_file;
        let list = match repo.file_at(&revision, file)? {
            Some(bytes) => AppFile::from_bytes(file, &bytes)?,
            None => None,
        };
        match list {
            Some(list) if list.app(args.app.as_deref().unwrap_or_default()).is_ok() => {}
            _ => return Ok(None),
        }
    }
    let tree = read_tree(&repo, &TreeSpec::Revision(revision.clone()), "")?;
    let request = targets::Request {
        list: &args.apps,
        app: args.app.as_deref(),
        path_given: false,
        root: "",
        default_app: String::new(),
        contexts: &args.connection.contexts,
        chart: None,
    };
    Ok(Some(targets::select(
        &request,
        &tree.snapshot,
        (repo.label(), &revision),
    )?))
}

fn open_repo(args: &Args) -> Result<Repo> {
    Ok(match &args.repo.location {
        Some(spec) => source::open_repo(spec)?,
        None => Repo::discover(&std::env::current_dir()?)?,
    })
}

/// One cluster's round, or why it could not be checked: a section of its own (its apps as
/// one cluster's report shows them) and a summary row per app.
pub struct ContextRound<'a> {
    pub args: &'a Args,
    pub context: String,
    pub namespace: String,
    pub round: Result<Round>,
}

impl Section for ContextRound<'_> {
    const COUNTED: &'static str = "checks";

    fn place(&self) -> Place<'_> {
        Place::Context(&self.context)
    }

    fn error(&self) -> Option<String> {
        self.round.as_ref().err().map(targets::one_line)
    }

    fn print(&self, out: &mut dyn Write) -> Result<()> {
        if let Ok(round) = &self.round {
            report::print(out, self.args, &self.namespace, round)?;
        }
        Ok(())
    }

    fn item(&self) -> serde_json::Value {
        let mut item = serde_json::json!({ "context": self.context, "error": self.error() });
        if let (Some(item), Ok(round)) = (item.as_object_mut(), &self.round)
            && let Some(report) = report::json(self.args, round)
        {
            item.insert("report".into(), report);
        }
        item
    }

    fn rows(&self) -> Vec<Row> {
        let round = match &self.round {
            Ok(round) => round,
            Err(error) => {
                return vec![self.row(
                    self.args.app.clone().unwrap_or_else(|| "-".into()),
                    self.namespace.clone(),
                    Err(targets::one_line(error)),
                )];
            }
        };
        let checked = round.checked.iter().map(|checked| {
            let report = &checked.report;
            let result = Ok(report::summary(report, false));
            self.row(report.app.clone(), report.namespace.clone(), result)
        });
        let skipped = round.skipped.iter().map(|skipped| {
            let result = Ok(format!("not checked: {}", skipped.reason));
            self.row(skipped.app.clone(), skipped.namespace.clone(), result)
        });
        let failed = round.failed.iter().map(|failed| {
            let result = Err(targets::one_line(&failed.error));
            self.row(failed.app.clone(), failed.namespace.clone(), result)
        });
        checked.chain(skipped).chain(failed).collect()
    }

    /// Differences when anything drifted (exit 1, unless a check failed).
    fn outcome(&self) -> Outcome {
        let outstanding = self.round.as_ref().is_ok_and(|round| {
            round
                .checked
                .iter()
                .any(|checked| crate::round::outstanding(self.args, &checked.report))
        });
        match outstanding {
            true => Outcome::Differences,
            false => Outcome::Clean,
        }
    }
}

impl ContextRound<'_> {
    fn row(
        &self,
        app: String,
        namespace: String,
        result: std::result::Result<String, String>,
    ) -> Row {
        Row {
            app,
            context: self.context.clone(),
            namespace,
            result,
        }
    }
}

/// Checks every context's apps at once, each context a section of the one report.
pub async fn run(
    args: &Args,
    groups: Vec<(Option<String>, Vec<AppSpec>)>,
    rules: IgnoreRules,
) -> Result<Outcome> {
    let work = groups.into_iter().map(|(context, listed)| {
        let rules = rules.clone();
        async move {
            let label = context.clone().unwrap_or_else(|| "-".into());
            let (context, namespace, round) =
                match Session::connect(args, context.as_deref(), listed, rules).await {
                    Ok(session) => {
                        let label = session.connection.context.clone().unwrap_or(label);
                        let namespace = session.connection.namespace.clone();
                        (label, namespace, round::check_round(args, &session).await)
                    }
                    Err(error) => (label, "-".to_string(), Err(error)),
                };
            ContextRound {
                args,
                context,
                namespace,
                round,
            }
        }
    });
    gitops_cli::destinations::run(
        work,
        Layout::json_or_sections(args.output.format == Some(Format::Json)),
    )
    .await
}
