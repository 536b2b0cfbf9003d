//! `kubectl release-history`: every release of every app, ours and Helm's, side by side.
//! A thin command line over `gitops::release::history`.

mod document;
mod human;

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use gitops::release::history::{self, Source};
use gitops_cli::completion::FirstPositional;
use gitops_cli::diff_view::{self, View};
use gitops_cli::{ColorWhen, ConnectionArgs, Outcome};

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

Exit status: 0 success, 2 an error."
)]
struct Args {
    /// The app (for Helm, the release name). Without it, every app is listed.
    #[arg(value_name = "APP")]
    app: Option<String>,
    /// One release (REV), or two to compare (REV_A REV_B, or REV_A..REV_B).
    #[arg(value_name = "REV", num_args = 0..=2)]
    revisions: Vec<String>,
    /// List the apps of every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// List at most N releases of the app, newest first.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max: Option<u32>,
    /// Print the manifest stored in the release (Secrets masked).
    #[arg(long)]
    manifest: bool,
    /// Show Secret values in --manifest and in diffs, and a chart's values, instead of
    /// hiding them.
    #[arg(long)]
    show_secrets: bool,
    /// Only releases written by this tool (needed when an app name is used by both).
    #[arg(long, value_enum, value_name = "SOURCE")]
    source: Option<SourceArg>,
    /// Output format for scripts.
    #[arg(short = 'o', long, value_enum, value_name = "FORMAT")]
    output: Option<Format>,
    /// When to color the output.
    #[arg(long, value_enum, default_value_t = ColorWhen::Auto, value_name = "WHEN")]
    color: ColorWhen,
    /// Lines of context around each change in a diff.
    #[arg(short = 'U', long = "unified", default_value_t = 3, value_name = "N")]
    unified: usize,
    #[command(flatten)]
    connection: ConnectionArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum SourceArg {
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
}

/// What the positional arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Apps,
    History {
        app: String,
    },
    One {
        app: String,
        revision: u32,
    },
    Diff {
        app: String,
        before: u32,
        after: u32,
    },
}

impl Request {
    /// Checks the arguments before anything connects, so a typo fails fast.
    fn from_args(args: &Args) -> Result<Request> {
        let request = match (&args.app, args.revisions.as_slice()) {
            (None, _) => Request::Apps,
            (Some(app), []) => Request::History { app: app.clone() },
            (Some(app), [one]) => match one.split_once("..") {
                Some((a, b)) => Request::Diff {
                    app: app.clone(),
                    before: revision(a)?,
                    after: revision(b)?,
                },
                None => Request::One {
                    app: app.clone(),
                    revision: revision(one)?,
                },
            },
            (Some(app), [a, b]) => Request::Diff {
                app: app.clone(),
                before: revision(a)?,
                after: revision(b)?,
            },
            (Some(_), _) => bail!("give at most two revisions: REV, REV_A REV_B or REV_A..REV_B"),
        };
        if args.all_namespaces && request != Request::Apps {
            bail!(
                "-A lists the apps of every namespace; for one app's releases, name its namespace with -n"
            );
        }
        if args.max.is_some() && !matches!(request, Request::History { .. }) {
            bail!(
                "--max limits the list of one app's releases: kubectl release-history APP --max N"
            );
        }
        if args.manifest && !matches!(request, Request::One { .. }) {
            bail!(
                "--manifest prints the manifest of one release: kubectl release-history APP REV --manifest"
            );
        }
        Ok(request)
    }
}

/// A release number: a positive integer.
fn revision(text: &str) -> Result<u32> {
    match text.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => bail!(
            "\"{text}\" is not a release number: give a revision such as 3 (see the REVISION column)"
        ),
    }
}

fn main() -> ExitCode {
    gitops_cli::main::<Args, _, _>("kubectl-release_history", FirstPositional::App, run)
}

async fn run(args: Args) -> Result<Outcome> {
    let request = Request::from_args(&args)?;
    let connection = args.connection.connect().await?;
    let client = connection.client()?;
    let namespace = connection.namespace.as_str();
    let only = args.source.map(Source::from);
    let color = args.color.enabled();
    match request {
        Request::Apps => {
            let scope = (!args.all_namespaces).then_some(namespace);
            let apps = history::apps(&client, scope, only).await?;
            match args.output {
                Some(format) => document::apps(&apps, format)?,
                None => human::apps(&apps, scope, color)?,
            }
        }
        Request::History { app } => {
            let max = args.max.map(|m| m as usize);
            let found = history::history(&client, namespace, &app, only, max).await?;
            match args.output {
                Some(format) => document::history(&found, format)?,
                None => human::history(&found, color)?,
            }
        }
        Request::One { app, revision } => {
            let release = history::release(&client, namespace, &app, only, revision).await?;
            let manifest = args.manifest.then(|| {
                if args.show_secrets {
                    release.manifest.clone()
                } else {
                    history::masked_manifest(&release.manifest)
                }
            });
            let objects = history::objects(&release).unwrap_or_else(|err| {
                eprintln!("warning: {err}; its objects are not listed");
                Vec::new()
            });
            match (args.output, manifest) {
                (Some(format), manifest) => document::release(
                    &release,
                    &objects,
                    manifest.as_deref(),
                    args.show_secrets,
                    format,
                )?,
                (None, Some(manifest)) => human::manifest(&manifest)?,
                (None, None) => human::release(&release, &objects, args.show_secrets, color)?,
            }
        }
        Request::Diff { app, before, after } => {
            // One after the other: the second lookup knows the source the first found.
            let old = history::release(&client, namespace, &app, only, before).await?;
            let new = history::release(&client, namespace, &app, Some(old.source), after)
                .await
                .with_context(|| format!("comparing release {before} with release {after}"))?;
            let mut changes = history::diff(&old, &new)?;
            if !args.show_secrets {
                changes.mask_secrets();
            }
            let (before_label, after_label) = (label(before), label(after));
            match args.output {
                Some(format) => {
                    document::diff(&old, &changes, &before_label, &after_label, format)?
                }
                None => diff_view::unified(
                    &mut std::io::stdout(),
                    &View {
                        changes: &changes,
                        before: &before_label,
                        after: &after_label,
                        conflicts: &[],
                        context: args.unified,
                        color,
                    },
                )?,
            }
        }
    }
    Ok(Outcome::Clean)
}

/// How a release is named in a diff's headers: `--- release-2/apps/Deployment/shop/web`.
fn label(revision: u32) -> String {
    format!("release-{revision}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn request(words: &[&str]) -> Result<Request> {
        let args = Args::try_parse_from(
            std::iter::once("kubectl-release_history").chain(words.iter().copied()),
        )?;
        Request::from_args(&args)
    }

    #[test]
    fn positionals_choose_the_view() {
        assert_eq!(request(&[]).unwrap(), Request::Apps);
        assert_eq!(request(&["-A"]).unwrap(), Request::Apps);
        assert_eq!(
            request(&["web", "--max", "3"]).unwrap(),
            Request::History { app: "web".into() }
        );
        assert_eq!(
            request(&["web", "3", "--manifest"]).unwrap(),
            Request::One {
                app: "web".into(),
                revision: 3
            }
        );
        let diff = Request::Diff {
            app: "web".into(),
            before: 2,
            after: 5,
        };
        assert_eq!(request(&["web", "2", "5"]).unwrap(), diff);
        assert_eq!(request(&["web", "2..5"]).unwrap(), diff);
    }

    #[test]
    fn misuse_is_refused_with_the_right_usage() {
        let err = |words: &[&str]| request(words).unwrap_err().to_string();
        assert!(err(&["web", "x"]).contains("\"x\" is not a release number"));
        assert!(err(&["web", "0"]).contains("\"0\" is not a release number"));
        assert!(err(&["web", "2.."]).contains("\"\" is not a release number"));
        assert!(err(&["web", "-A"]).contains("name its namespace with -n"));
        assert!(err(&["web", "3", "--max", "2"]).contains("--max limits"));
        assert!(err(&["web", "--manifest"]).contains("--manifest prints"));
        assert!(err(&["--max", "0"]).contains("0"));
        assert!(err(&["web", "1", "2", "3"]).contains("unexpected value"));
    }
}
