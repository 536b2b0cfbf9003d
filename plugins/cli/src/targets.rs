//! Which apps on which clusters one command acts on.
//!
//! A destination ([`Target`]) is one app on one kubeconfig context. The app is the one the
//! flags name, or an entry of the repository's app list (`--all`, or `--app NAME` when the
//! list has it); the contexts are the repeated `--context` flags, else the app's
//! `contexts:`, else the kubeconfig's current context. Plugins work out every destination
//! concurrently, then report them together ([`crate::destinations`]).

use anyhow::{Result, bail};
use clap::Args;
use gitops::app_file::{APP_FILE, AppFile, AppFileError, AppSpec};
use gitops::kubeconfig::ConnectOptions;
use gitops::render::{JsonnetOptions, RemoteChart};
use gitops::source::Snapshot;

use crate::ConnectionArgs;

/// `--all` and `--app-file`.
#[derive(Debug, Clone, Default, Args)]
pub struct AppListArgs {
    /// Act on every app of the repository's app list (the `apps:` of .kubectl-gitops.yaml
    /// at the repository root, read at the revision).
    #[arg(long)]
    pub all: bool,
    /// The app list: a repo-relative file read at the revision.
    #[arg(long, value_name = "FILE", default_value = APP_FILE)]
    pub app_file: String,
}

/// One app on one cluster.
#[derive(Debug, Clone)]
pub struct Target {
    pub app: String,
    /// The app list's entry, when the app comes from it.
    pub spec: Option<AppSpec>,
    /// The kubeconfig context; None for the current one.
    pub context: Option<String>,
    /// The app's repo-relative path.
    pub root: String,
    /// The chart it renders when that is not in git: the flags', else the app list's.
    pub chart: Option<RemoteChart>,
    /// The kubeconfig file that defines `context`, when not the flags' (the reconciler's
    /// cluster Secrets).
    pub kubeconfig: Option<std::path::PathBuf>,
}

impl Target {
    /// The connection options for this destination: the flags, with this context, and the
    /// app list's namespace when -n does not give one.
    pub fn options(&self, connection: &ConnectionArgs) -> ConnectOptions {
        let namespace = self.spec.as_ref().and_then(|s| s.namespace.as_deref());
        let mut options = connection.options_for(self.context.as_deref(), namespace);
        if let Some(file) = &self.kubeconfig {
            options.kubeconfig = Some(file.clone());
        }
        options.service_account = self.spec.as_ref().and_then(|s| s.service_account.clone());
        options
    }

    /// The namespace asked for: -n, else the app list's; None means the context's own.
    pub fn namespace(&self, connection: &ConnectionArgs) -> Option<String> {
        connection
            .namespace
            .clone()
            .or_else(|| self.spec.as_ref().and_then(|s| s.namespace.clone()))
    }

    /// The tree to render for this app: the revision's tree, rooted at the app's path.
    pub fn snapshot(&self, whole: &Snapshot) -> Snapshot {
        Snapshot {
            files: whole.files.clone(),
            root: self.root.clone(),
            commit: whole.commit.clone(),
        }
    }

    /// Values files: `--values` when given, else the app list's.
    pub fn values<'a>(&'a self, flags: &'a [String]) -> &'a [String] {
        match &self.spec {
            Some(spec) if flags.is_empty() => &spec.values,
            _ => flags,
        }
    }

    /// Jsonnet options: the app list's, with the flags' on top.
    pub fn jsonnet(&self, flags: &JsonnetOptions) -> JsonnetOptions {
        match &self.spec {
            Some(spec) => spec.jsonnet.overlaid(flags),
            None => flags.clone(),
        }
    }

    /// `--set`: the app list's, then the flags' (later ones win, as in helm).
    pub fn set(&self, flags: &[String]) -> Vec<String> {
        let mut set = self
            .spec
            .as_ref()
            .map(|s| s.set.clone())
            .unwrap_or_default();
        set.extend(flags.iter().cloned());
        set
    }
}

/// What the app-selecting flags said.
pub struct Request<'a> {
    pub list: &'a AppListArgs,
    /// `--app NAME`.
    pub app: Option<&'a str>,
    /// Whether a PATH was given on the command line (it wins over the app list's path).
    pub path_given: bool,
    /// The path the command line resolved to (the current directory by default).
    pub root: &'a str,
    /// The app name the path alone would give.
    pub default_app: String,
    pub contexts: &'a [String],
    /// The chart the flags name from outside git (`--chart`).
    pub chart: Option<RemoteChart>,
}

/// The destinations `request` asks for, reading the app list in `whole` (a revision's
/// whole tree) when needed. `where_` names the repository and revision for errors.
pub fn select(
    request: &Request<'_>,
    whole: &Snapshot,
    where_: (&str, &str),
) -> Result<Vec<Target>> {
    let list = AppFile::from_snapshot(whole, &request.list.app_file)?;
    if request.list.all {
        if request.app.is_some() {
            bail!("give --app NAME or --all, not both");
        }
        if request.path_given {
            bail!(
                "--all takes every app's path from {}; leave out PATH",
                request.list.app_file
            );
        }
        let Some(list) = list else {
            return Err(AppFileError::Missing {
                file: request.list.app_file.clone(),
                repo: where_.0.to_string(),
                revision: where_.1.to_string(),
            }
            .into());
        };
        return Ok(list
            .apps
            .iter()
            .flat_map(|spec| expand(spec, request))
            .collect());
    }
    // A named app of the list, unless a path on the command line says otherwise. A name
    // the list lacks is more likely a typo than a new app at the current directory.
    // With --chart, a name the list lacks is a new app of that chart.
    if let (Some(name), Some(list), false) = (request.app, &list, request.path_given) {
        match list.app(name) {
            Ok(spec) => return Ok(expand(spec, request)),
            Err(_) if request.chart.is_some() => {}
            Err(error) => bail!("{error}; give a PATH to use the app {name} outside the list"),
        }
    }
    // A chart from outside git names its app, as a release's chart does in helm.
    let app = request
        .app
        .map(str::to_string)
        .or_else(|| request.chart.as_ref().map(|c| c.name.clone()))
        .unwrap_or_else(|| request.default_app.clone());
    let contexts: Vec<Option<String>> = match request.contexts {
        [] => vec![None],
        many => many.iter().cloned().map(Some).collect(),
    };
    Ok(contexts
        .into_iter()
        .map(|context| Target {
            app: app.clone(),
            spec: None,
            context,
            root: request.root.to_string(),
            chart: request.chart.clone(),
            kubeconfig: None,
        })
        .collect())
}

/// An app of the list on each of its destinations: `--context` flags win over `contexts:`.
fn expand(spec: &AppSpec, request: &Request<'_>) -> Vec<Target> {
    let contexts: Vec<Option<String>> = match (request.contexts, spec.contexts.as_slice()) {
        ([], []) => vec![None],
        ([], listed) => listed.iter().cloned().map(Some).collect(),
        (flags, _) => flags.iter().cloned().map(Some).collect(),
    };
    contexts
        .into_iter()
        .map(|context| Target {
            app: spec.name.clone(),
            spec: Some(spec.clone()),
            context,
            root: spec.path.clone(),
            chart: request.chart.clone().or_else(|| spec.chart.clone()),
            kubeconfig: None,
        })
        .collect()
}

/// An error on one line: its message and causes, joined.
pub fn one_line(error: &anyhow::Error) -> String {
    crate::exit::messages(error).join(": ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn whole(list: Option<&str>) -> Snapshot {
        let mut files = BTreeMap::new();
        if let Some(text) = list {
            files.insert(APP_FILE.to_string(), text.as_bytes().to_vec());
        }
        Snapshot {
            files: files.into(),
            root: String::new(),
            commit: None,
        }
    }

    const LIST: &str =
        "apps:\n- name: a\n  path: deploy/a\n  contexts: [eu, us]\n- name: b\n  path: deploy/b\n";

    fn request<'a>(
        list: &'a AppListArgs,
        app: Option<&'a str>,
        contexts: &'a [String],
    ) -> Request<'a> {
        Request {
            list,
            app,
            path_given: false,
            root: "here",
            default_app: "here".into(),
            contexts,
            chart: None,
        }
    }

    fn names(targets: &[Target]) -> Vec<String> {
        targets
            .iter()
            .map(|t| {
                format!(
                    "{}@{}:{}",
                    t.app,
                    t.context.as_deref().unwrap_or("-"),
                    t.root
                )
            })
            .collect()
    }

    #[test]
    fn all_expands_apps_by_their_contexts() {
        let list = AppListArgs {
            all: true,
            app_file: APP_FILE.into(),
        };
        let targets = select(
            &request(&list, None, &[]),
            &whole(Some(LIST)),
            ("r", "HEAD"),
        )
        .unwrap();
        assert_eq!(
            names(&targets),
            ["a@eu:deploy/a", "a@us:deploy/a", "b@-:deploy/b"]
        );
        // --context replaces every app's own list.
        let flags = ["x".to_string()];
        let targets = select(
            &request(&list, None, &flags),
            &whole(Some(LIST)),
            ("r", "HEAD"),
        )
        .unwrap();
        assert_eq!(names(&targets), ["a@x:deploy/a", "b@x:deploy/b"]);
    }

    #[test]
    fn a_named_app_comes_from_the_list_when_it_is_there() {
        let list = AppListArgs::default_file();
        let targets = select(
            &request(&list, Some("b"), &[]),
            &whole(Some(LIST)),
            ("r", "HEAD"),
        )
        .unwrap();
        assert_eq!(names(&targets), ["b@-:deploy/b"]);
        let error = select(
            &request(&list, Some("c"), &[]),
            &whole(Some(LIST)),
            ("r", "HEAD"),
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            ".kubectl-gitops.yaml has no app named c (it has a, b); give a PATH to use the app c outside the list"
        );
        // Without a list, a name is just a name for the current directory.
        let targets = select(&request(&list, Some("c"), &[]), &whole(None), ("r", "HEAD")).unwrap();
        assert_eq!(names(&targets), ["c@-:here"]);
        let flags = ["p".to_string(), "q".to_string()];
        let targets = select(&request(&list, None, &flags), &whole(None), ("r", "HEAD")).unwrap();
        assert_eq!(names(&targets), ["here@p:here", "here@q:here"]);
    }

    #[test]
    fn all_needs_a_list() {
        let list = AppListArgs {
            all: true,
            app_file: APP_FILE.into(),
        };
        let error =
            select(&request(&list, None, &[]), &whole(None), ("/repo", "HEAD")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "there is no .kubectl-gitops.yaml at the root of /repo at HEAD, so there is no app list"
        );
        let error = select(
            &request(&list, None, &[]),
            &whole(Some("apps:\n- name: A\n  path: x\n")),
            ("/repo", "HEAD"),
        )
        .unwrap_err();
        assert!(error.to_string().contains("apps[0] (A).name"), "{error}");
    }

    impl AppListArgs {
        fn default_file() -> AppListArgs {
            AppListArgs {
                all: false,
                app_file: APP_FILE.into(),
            }
        }
    }
}
