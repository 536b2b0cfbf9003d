//! Shell completion: `PLUGIN completion bash|zsh|fish` prints a script, and
//! `PLUGIN __complete ARGS… WORD` answers kubectl's plugin completion (kubectl 1.26+ runs
//! `kubectl_complete-<plugin> ARGS… WORD`, which execs this) in cobra's format: one
//! candidate per line, then `:<directive>`.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::CommandFactory;
use clap_complete::Shell;
use gitops::app_file::{APP_FILE, AppFile};
use gitops::kubeconfig::{self, ConnectOptions, Environment};
use gitops::source::{Repo, TreeSpec, read_tree};

/// cobra's ShellCompDirectiveNoFileComp: do not fall back to file names.
const NO_FILES: u8 = 4;
/// cobra's ShellCompDirectiveDefault: the shell may complete file names.
const DEFAULT: u8 = 0;

/// What a plugin's first positional argument is, for completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstPositional {
    /// A revision or a path: let the shell complete file names.
    RevisionOrPath,
    /// An app name: complete the apps recorded in the namespace.
    App,
}

/// Handles `completion SHELL` and `__complete …` before the plugin parses its flags.
/// Returns the exit code when it did.
pub fn intercept<C: CommandFactory>(bin_name: &str, first: FirstPositional) -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("completion") => Some(print_script::<C>(bin_name, args.get(1).map(String::as_str))),
        Some("__complete") => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let (candidates, directive) = runtime.block_on(complete::<C>(&args[1..], first));
            let mut out = std::io::stdout().lock();
            for candidate in candidates {
                let _ = writeln!(out, "{candidate}");
            }
            let _ = writeln!(out, ":{directive}");
            Some(ExitCode::SUCCESS)
        }
        _ => None,
    }
}

fn print_script<C: CommandFactory>(bin_name: &str, shell: Option<&str>) -> ExitCode {
    let shell = match shell.map(str::parse::<Shell>) {
        Some(Ok(shell)) => shell,
        _ => {
            eprintln!("error: name a shell: {bin_name} completion bash|zsh|fish|powershell|elvish");
            return ExitCode::from(2);
        }
    };
    let mut command = C::command();
    // Into memory first: clap_complete panics on a failed write, and a closed stdout
    // (`completion bash | head -1`) ends the run quietly, as for every other output.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, bin_name, &mut script);
    match std::io::stdout().lock().write_all(&script) {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: cannot write the completion script: {error}");
            ExitCode::from(2)
        }
        _ => ExitCode::SUCCESS,
    }
}

/// The connection flags found among the words typed so far.
fn connection_flags(words: &[String]) -> ConnectOptions {
    let mut options = ConnectOptions::default();
    let mut iter = words.iter().peekable();
    while let Some(word) = iter.next() {
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (word.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| iter.peek().map(|v| v.to_string()))
        };
        match flag {
            "--kubeconfig" => options.kubeconfig = value().map(Into::into),
            "--context" => options.context = value(),
            "-n" | "--namespace" => options.namespace = value(),
            _ => {}
        }
    }
    // Completion must answer quickly, whatever the cluster does.
    options.request_timeout = Some("3s".into());
    options
}

async fn complete<C: CommandFactory>(
    words: &[String],
    first: FirstPositional,
) -> (Vec<String>, u8) {
    let Some((current, before)) = words.split_last() else {
        return (Vec::new(), NO_FILES);
    };
    let options = connection_flags(before);
    // `--flag=partial` completes the value after the `=`.
    if let Some((flag, partial)) = current.split_once('=')
        && flag.starts_with("--")
    {
        let values = flag_values::<C>(flag, &options).await;
        return (
            filter(values, partial)
                .into_iter()
                .map(|v| format!("{flag}={v}"))
                .collect(),
            NO_FILES,
        );
    }
    if let Some(previous) = before.last()
        && takes_value::<C>(previous)
    {
        return match flag_values::<C>(previous, &options).await {
            values if !values.is_empty() => (filter(values, current), NO_FILES),
            _ => (Vec::new(), DEFAULT),
        };
    }
    if current.starts_with('-') {
        return (filter(flag_names::<C>(), current), NO_FILES);
    }
    let positionals_before = count_positionals::<C>(before);
    match (first, positionals_before) {
        (FirstPositional::App, 0) => (filter(apps(&options).await, current), NO_FILES),
        _ => (Vec::new(), DEFAULT),
    }
}

async fn flag_values<C: CommandFactory>(flag: &str, options: &ConnectOptions) -> Vec<String> {
    match flag {
        "--context" => contexts(options),
        "--cluster" => kubeconfig_names(options, |k| {
            k.clusters.iter().map(|c| c.name.clone()).collect()
        }),
        "--user" => kubeconfig_names(options, |k| {
            k.auth_infos.iter().map(|u| u.name.clone()).collect()
        }),
        "-n" | "--namespace" => namespaces(options).await,
        "--app" => apps(options).await,
        _ => possible_values::<C>(flag),
    }
}

/// The values the plugin's own definition of `flag` accepts (`-o`: that plugin's
/// formats; `--color`: auto, always, never), so completion offers what parsing takes.
fn possible_values<C: CommandFactory>(flag: &str) -> Vec<String> {
    let command = C::command();
    command
        .get_arguments()
        .find(|a| names(a, flag))
        .map(|a| {
            a.get_possible_values()
                .iter()
                .filter(|v| !v.is_hide_set())
                .map(|v| v.get_name().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `word` is `arg`'s long or short name.
fn names(arg: &clap::Arg, word: &str) -> bool {
    arg.get_long().is_some_and(|l| word == format!("--{l}"))
        || arg.get_short().is_some_and(|s| word == format!("-{s}"))
}

fn kubeconfig_names(
    options: &ConnectOptions,
    names: impl Fn(&kube::config::Kubeconfig) -> Vec<String>,
) -> Vec<String> {
    match kubeconfig::load(options, &Environment::from_process()) {
        Ok(Some(loaded)) => names(&loaded.merged),
        _ => Vec::new(),
    }
}

fn contexts(options: &ConnectOptions) -> Vec<String> {
    kubeconfig_names(options, |k| {
        k.contexts.iter().map(|c| c.name.clone()).collect()
    })
}

async fn namespaces(options: &ConnectOptions) -> Vec<String> {
    let work = async {
        let connection = kubeconfig::connect(options, &Environment::from_process())
            .await
            .ok()?;
        let api: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(connection.client().ok()?);
        let list = api.list(&Default::default()).await.ok()?;
        Some(
            list.items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .collect(),
        )
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The apps of the app list in the repository the user stands in, at HEAD, and those
/// recorded in the namespace.
async fn apps(options: &ConnectOptions) -> Vec<String> {
    let mut names = listed_apps();
    names.extend(recorded_apps(options).await);
    names
}

/// The names in `.kubectl-gitops.yaml`'s `apps:` at HEAD of the current directory's
/// repository; none when there is no repository or list.
fn listed_apps() -> Vec<String> {
    let listed = || -> Option<Vec<String>> {
        let repo = Repo::discover(&std::env::current_dir().ok()?).ok()?;
        let tree = read_tree(&repo, &TreeSpec::Revision("HEAD".into()), "").ok()?;
        let list = AppFile::from_snapshot(&tree.snapshot, APP_FILE).ok()??;
        Some(list.apps.into_iter().map(|app| app.name).collect())
    };
    listed().unwrap_or_default()
}

async fn recorded_apps(options: &ConnectOptions) -> Vec<String> {
    let work = async {
        let connection = kubeconfig::connect(options, &Environment::from_process())
            .await
            .ok()?;
        let store = gitops::release::store::ReleaseStore::new(
            connection.client().ok()?,
            &connection.namespace,
        );
        store.apps().await.ok()
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

fn filter(values: Vec<String>, prefix: &str) -> Vec<String> {
    let mut values: Vec<String> = values
        .into_iter()
        .filter(|v| v.starts_with(prefix))
        .collect();
    values.sort();
    values.dedup();
    values
}

fn flag_names<C: CommandFactory>() -> Vec<String> {
    let command = C::command();
    let mut names: Vec<String> = command
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
        .collect();
    names.push("--help".into());
    names
}

/// Whether `word` is a flag that takes a value (so the next word is that value).
fn takes_value<C: CommandFactory>(word: &str) -> bool {
    let command = C::command();
    command.get_arguments().any(|a| {
        names(a, word)
            && a.get_action().takes_values()
            && a.get_num_args().is_none_or(|n| n.min_values() > 0)
    })
}

fn count_positionals<C: CommandFactory>(words: &[String]) -> usize {
    let mut count = 0;
    let mut skip_next = false;
    for word in words {
        if skip_next {
            skip_next = false;
        } else if word.starts_with('-') {
            skip_next = !word.contains('=') && takes_value::<C>(word);
        } else {
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use clap::{Parser, ValueEnum};

    use super::*;
    use crate::OutputArgs;

    #[derive(Debug, Clone, Copy, ValueEnum)]
    enum Format {
        Json,
        Tree,
    }

    #[derive(Debug, Parser)]
    struct Plugin {
        #[command(flatten)]
        output: OutputArgs<Format>,
    }

    fn words(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    /// What completion offers after the words typed (the last one being completed).
    async fn offered(typed: &[&str]) -> (Vec<String>, u8) {
        complete::<Plugin>(&words(typed), FirstPositional::App).await
    }

    #[tokio::test]
    async fn completion_offers_the_plugins_own_output_formats() {
        assert_eq!(
            offered(&["-o", ""]).await,
            (words(&["json", "tree"]), NO_FILES)
        );
        assert_eq!(
            offered(&["--output", "t"]).await,
            (words(&["tree"]), NO_FILES)
        );
        assert_eq!(
            offered(&["--output=j"]).await,
            (words(&["--output=json"]), NO_FILES)
        );
        assert_eq!(
            offered(&["--color", ""]).await,
            (words(&["always", "auto", "never"]), NO_FILES)
        );
    }
}
