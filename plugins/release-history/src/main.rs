//! `kubectl release-history`: every release of every app, ours and Helm's, side by side.
//! A thin command line over `gitops::release::history`: the flags here, what they ask for
//! in [`request`], each view read and printed in [`show`].

mod document;
mod human;
mod request;
mod show;
mod web;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, ValueEnum};
use gitops::release::history::Source;
use gitops_cli::completion::FirstPositional;
use gitops_cli::{AllNamespacesArgs, ConnectionArgs, Outcome, OutputArgs, UnifiedArgs, WebArgs};

use crate::request::Request;

/// List and inspect releases, ours (kubectl sync) and Helm's, side by side.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl release-history",
    bin_name = "kubectl release-history",
    version = gitops_cli::VERSION,
    after_help = "Examples:
  # Every app in the namespace with its latest release (-A: every namespace)
  kubectl release-history -n shop

  # The releases of one app, newest first
  kubectl release-history web -n shop --max 5

  # One release: its fields and objects; --manifest prints what it applied
  kubectl release-history web 3 -n shop
  kubectl release-history web 3 -n shop --manifest

  # What changed between two releases, object by object (Helm releases too)
  kubectl release-history web 2..3 -n shop

  # The deployed release's objects as they are now, and what they own, with health
  kubectl release-history web -n shop -o tree

  # One app's releases and what each changed, as a page for a CI artifact or a PR
  kubectl release-history web -n shop -o html > report.html

  # A dashboard of every app in the browser (health, drift, trees, history), until Ctrl-C
  kubectl release-history --web -A --open

Exit status: 0 success, 2 an error."
)]
pub struct Args {
    /// The app (for Helm, the release name). Without it, every app is listed.
    #[arg(value_name = "APP")]
    pub app: Option<String>,
    /// One release (REV), or two to compare (REV_A REV_B, or REV_A..REV_B).
    #[arg(value_name = "REV", num_args = 0..=2)]
    pub revisions: Vec<String>,
    #[command(flatten)]
    pub namespaces: AllNamespacesArgs,
    /// List at most N releases of the app, newest first.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max: Option<u32>,
    /// Print the manifest stored in the release (Secrets masked).
    #[arg(long)]
    pub manifest: bool,
    /// Only releases written by this tool (needed when an app name is used by both).
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub source: Option<SourceArg>,
    #[command(flatten)]
    pub output: OutputArgs<Format>,
    #[command(flatten)]
    pub unified: UnifiedArgs,
    #[command(flatten)]
    pub web: WebArgs,
    #[command(flatten)]
    pub connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    KubectlGitops,
    Helm,
}

impl From<SourceArg> for Source {
    fn from(source: SourceArg) -> Source {
        match source {
            SourceArg::KubectlGitops => Source::Gitops,
            SourceArg::Helm => Source::Helm,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Json,
    Yaml,
    // The release's objects as the cluster has them now and what they own, with health.
    // (No doc comment: it would give -o a long help unlike the other plugins'.)
    Tree,
    // One app's releases and what each changed, as one self-contained HTML page.
    Html,
}

fn main() -> ExitCode {
    gitops_cli::main::<Args, _, _>("kubectl-release_history", FirstPositional::App, run)
}

async fn run(args: Args) -> Result<Outcome> {
    let request = Request::from_args(&args)?;
    if args.web.web {
        return web::run(&args).await;
    }
    let connection = args.connection.connect().await?;
    let view = show::View {
        args: &args,
        connection: &connection,
        client: connection.client()?,
        namespace: connection.namespace.as_str(),
        only: args.source.map(Source::from),
    };
    match request {
        Request::Apps => view.apps().await?,
        Request::History { app } => view.history(&app).await?,
        Request::One { app, revision } => view.one(&app, revision).await?,
        Request::Diff { app, before, after } => view.diff(&app, before, after).await?,
    }
    Ok(Outcome::Clean)
}
