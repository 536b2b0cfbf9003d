//! The repository's list of apps: the `apps:` key of `.kubectl-gitops.yaml` at the root of
//! the repository, read at the same revision as the manifests, so the list of what is
//! deployed where is versioned with them.
//!
//! ```yaml
//! apps:
//! - name: shop                  # required: the app (its ApplySet and release records)
//!   path: deploy/shop           # repo-relative path of its manifests (required without chart:)
//!   chart:                      # a chart that is not in git; values: still come from git
//!     repository: oci://registry.example.com/charts   # or https://… (a chart repository)
//!     name: shop
//!     version: 1.4.2            # or a semver range (default: the newest)
//!   namespace: shop             # default: -n, else the context's namespace
//!   contexts: [prod-eu, prod-us] # kubeconfig contexts to deploy to (default: the current one)
//!   values: [deploy/shop/values-prod.yaml]  # Helm values files, repo-relative
//!   set: [image.tag=1.4.2]      # Helm --set
//!   jsonnet:                    # for .jsonnet files (Argo CD's tlas, extVars, libs)
//!     tlas: {env: prod}         # top-level arguments, strings
//!     ext_vars: {team: shop}    # std.extVar values, strings
//!     libs: [deploy/lib]        # repo-relative import directories
//!   prune: true                 # default false
//!   prune_crds: true            # prune CRDs git no longer has (default false: kept)
//!   allow_empty: true           # sync a path that renders no objects (default false)
//!   wait: true                  # default true
//!   timeout: 5m                 # health wait (default 5m)
//!   create_namespace: true      # sync creates the namespace when missing (default false)
//!   depends_on: [db]            # apps `--all` syncs (and finds healthy) before this one
//!   self_heal: true             # the reconciler heals its drift
//!   service_account: shop-deployer  # syncs act as this ServiceAccount of the namespace
//!   ignore: [...]               # drift ignore rules, as in the app's own config file
//! ```
//!
//! Other top-level keys (`ignore:` for an app at the repository root) are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::Deserialize;

use crate::app_identity::validate_app_name;
use crate::drift::{IgnoreRule, IgnoreRules};
use crate::render::{JsonnetOptions, RemoteChart};
use crate::source::Snapshot;

/// Where the app list lives, repo-relative.
pub const APP_FILE: &str = ".kubectl-gitops.yaml";

/// One app of the list, validated.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    pub name: String,
    /// Empty only for an app whose chart is not in git.
    #[serde(default)]
    pub path: String,
    /// A chart from a chart repository or an OCI registry, rendered with the `values` from
    /// git (Argo CD's multi-source apps).
    #[serde(default)]
    pub chart: Option<RemoteChart>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub contexts: Vec<String>,
    #[serde(default)]
    pub values: Vec<String>,
    #[serde(default)]
    pub set: Vec<String>,
    /// What `.jsonnet` files are given.
    #[serde(default)]
    pub jsonnet: JsonnetOptions,
    #[serde(default)]
    pub prune: Option<bool>,
    /// Prune CustomResourceDefinitions the revision no longer has (`--prune-crds`).
    #[serde(default)]
    pub prune_crds: Option<bool>,
    /// Sync a revision that renders no objects (`--allow-empty`).
    #[serde(default)]
    pub allow_empty: Option<bool>,
    #[serde(default)]
    pub wait: Option<bool>,
    #[serde(default, rename = "timeout")]
    timeout_text: Option<String>,
    #[serde(skip)]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub ignore: Vec<IgnoreRule>,
    /// Create the app's namespace when it does not exist (`--create-namespace`).
    #[serde(default)]
    pub create_namespace: Option<bool>,
    /// Apps of the list that `--all` syncs first, and finds deployed and healthy, before
    /// this one.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// The reconciler (`kubectl sync --reconcile`) heals the app's drift as it finds it,
    /// as `kubectl drift --heal` does (Argo CD's `selfHeal`).
    #[serde(default)]
    pub self_heal: bool,
    /// A ServiceAccount of the app's namespace that its syncs, heals and drift checks act
    /// as (impersonated), so the app can do only what that account's RBAC allows (Argo
    /// CD's project destinations, Flux's `serviceAccountName`).
    #[serde(default)]
    pub service_account: Option<String>,
}

impl AppSpec {
    /// The drift ignore rules the entry carries.
    pub fn ignore_rules(&self) -> IgnoreRules {
        IgnoreRules {
            rules: self.ignore.clone(),
        }
    }
}

/// The list, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AppFile {
    /// Repo-relative path it was read from.
    pub file: String,
    pub apps: Vec<AppSpec>,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    apps: Option<Vec<AppSpec>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AppFileError {
    /// Unreadable YAML, or a field of the wrong type or name (serde names it).
    #[error("{at}: {message}")]
    Syntax { at: String, message: String },

    /// A field whose value is not usable.
    #[error("{file}: {field}: {message}")]
    Invalid {
        file: String,
        field: String,
        message: String,
    },

    #[error("{file} lists no apps (an `apps:` list is needed for --all or an app by name)")]
    NoApps { file: String },

    #[error("there is no {file} at the root of {repo} at {revision}, so there is no app list")]
    Missing {
        file: String,
        repo: String,
        revision: String,
    },

    #[error("{file} has no app named {name} (it has {known})")]
    UnknownApp {
        file: String,
        name: String,
        known: String,
    },
}

impl AppFile {
    /// The app list in `snapshot` (a whole-repository tree): `None` when the file is absent
    /// or has no `apps:` key, so a repository without one works as before.
    pub fn from_snapshot(snapshot: &Snapshot, file: &str) -> Result<Option<AppFile>, AppFileError> {
        match snapshot.files.get(file) {
            None => Ok(None),
            Some(bytes) => AppFile::from_bytes(file, bytes),
        }
    }

    /// The app list in the bytes of `file` (see [`AppFile::from_snapshot`]).
    pub fn from_bytes(file: &str, bytes: &[u8]) -> Result<Option<AppFile>, AppFileError> {
        AppFile::parse(file, &String::from_utf8_lossy(bytes))
    }

    /// Parses and checks the text of `file`.
    pub fn parse(file: &str, text: &str) -> Result<Option<AppFile>, AppFileError> {
        let raw: Option<RawFile> = serde_yaml_ng::from_str(text).map_err(|error| {
            let at = match error.location() {
                Some(at) => format!("{file}:{}", at.line()),
                None => file.to_string(),
            };
            AppFileError::Syntax {
                at,
                message: crate::error_text::one_line(&error.to_string()),
            }
        })?;
        let Some(apps) = raw.and_then(|raw| raw.apps) else {
            return Ok(None);
        };
        if apps.is_empty() {
            return Err(AppFileError::NoApps { file: file.into() });
        }
        let mut seen = BTreeSet::new();
        let mut checked = Vec::with_capacity(apps.len());
        for (index, mut app) in apps.into_iter().enumerate() {
            let field = |name: &str| match app.name.is_empty() {
                true => format!("apps[{index}].{name}"),
                false => format!("apps[{index}] ({}).{name}", app.name),
            };
            let invalid = |field: String, message: String| AppFileError::Invalid {
                file: file.into(),
                field,
                message,
            };
            if let Err(error) = validate_app_name(&app.name) {
                return Err(invalid(field("name"), error.to_string()));
            }
            if !seen.insert(app.name.clone()) {
                return Err(invalid(
                    field("name"),
                    format!("app {} is listed twice", app.name),
                ));
            }
            if let Some(chart) = &app.chart {
                check_chart(chart)
                    .map_err(|(name, m)| invalid(field(&format!("chart.{name}")), m))?;
            }
            if app.chart.is_none() || !app.path.trim().is_empty() {
                app.path = check_path(&app.path).map_err(|m| invalid(field("path"), m))?;
            }
            for (i, values) in app.values.iter_mut().enumerate() {
                *values =
                    check_path(values).map_err(|m| invalid(field(&format!("values[{i}]")), m))?;
            }
            if let Some(namespace) = &app.namespace {
                check_dns_label(namespace).map_err(|m| invalid(field("namespace"), m))?;
            }
            if let Some(account) = &app.service_account {
                check_dns_subdomain(account).map_err(|m| invalid(field("service_account"), m))?;
            }
            for (i, context) in app.contexts.iter().enumerate() {
                if context.trim().is_empty() {
                    return Err(invalid(field(&format!("contexts[{i}]")), "is empty".into()));
                }
            }
            let mut contexts = BTreeSet::new();
            if let Some(twice) = app.contexts.iter().find(|c| !contexts.insert(*c)) {
                return Err(invalid(
                    field("contexts"),
                    format!("context {twice} is listed twice"),
                ));
            }
            for (i, set) in app.set.iter().enumerate() {
                if !set.contains('=') || set.starts_with('=') {
                    return Err(invalid(
                        field(&format!("set[{i}]")),
                        format!("\"{set}\" is not KEY=VALUE"),
                    ));
                }
            }
            if let Some(text) = &app.timeout_text {
                let timeout = humantime::parse_duration(text).map_err(|_| {
                    invalid(
                        field("timeout"),
                        format!("\"{text}\" is not a duration (e.g. 90s, 5m, 1h)"),
                    )
                })?;
                if timeout.is_zero() {
                    return Err(invalid(field("timeout"), "must be longer than 0s".into()));
                }
                app.timeout = Some(timeout);
            }
            for (i, rule) in app.ignore.iter().enumerate() {
                for pointer in &rule.paths {
                    if !pointer.starts_with('/') {
                        return Err(invalid(
                            field(&format!("ignore[{i}].paths")),
                            format!("\"{pointer}\" is not a JSON pointer (it starts with /)"),
                        ));
                    }
                }
            }
            checked.push(app);
        }
        check_dependencies(file, &checked)?;
        Ok(Some(AppFile {
            file: file.into(),
            apps: checked,
        }))
    }

    /// The app called `name`.
    pub fn app(&self, name: &str) -> Result<&AppSpec, AppFileError> {
        self.apps
            .iter()
            .find(|a| a.name == name)
            .ok_or_else(|| AppFileError::UnknownApp {
                file: self.file.clone(),
                name: name.into(),
                known: self
                    .apps
                    .iter()
                    .map(|a| a.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// Every `depends_on` names an app of the list, and no app depends on itself, directly or
/// through others: checked before anything runs, so `--all` never starts a cycle.
fn check_dependencies(file: &str, apps: &[AppSpec]) -> Result<(), AppFileError> {
    let index: BTreeMap<&str, usize> = apps
        .iter()
        .enumerate()
        .map(|(i, app)| (app.name.as_str(), i))
        .collect();
    for (i, app) in apps.iter().enumerate() {
        for (d, name) in app.depends_on.iter().enumerate() {
            if !index.contains_key(name.as_str()) {
                return Err(AppFileError::Invalid {
                    file: file.into(),
                    field: format!("apps[{i}] ({}).depends_on[{d}]", app.name),
                    message: format!(
                        "there is no app named {name} (the list has {})",
                        apps.iter()
                            .map(|a| a.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
        }
    }
    // Depth-first from each app; an app met again while still on the path closes a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit<'a>(
        at: usize,
        apps: &'a [AppSpec],
        index: &BTreeMap<&str, usize>,
        marks: &mut [Mark],
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        marks[at] = Mark::OnPath;
        path.push(&apps[at].name);
        for name in &apps[at].depends_on {
            let next = index[name.as_str()];
            match marks[next] {
                Mark::Done => {}
                Mark::OnPath => {
                    let from = path.iter().position(|n| *n == name.as_str()).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path[from..].iter().map(|n| n.to_string()).collect();
                    cycle.push(name.clone());
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(cycle) = visit(next, apps, index, marks, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        marks[at] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; apps.len()];
    for start in 0..apps.len() {
        if marks[start] != Mark::New {
            continue;
        }
        if let Some(cycle) = visit(start, apps, &index, &mut marks, &mut Vec::new()) {
            let first = index[cycle[0].as_str()];
            return Err(AppFileError::Invalid {
                file: file.into(),
                field: format!("apps[{first}] ({}).depends_on", cycle[0]),
                message: format!(
                    "the apps depend on each other in a cycle: {}",
                    cycle.join(" -> ")
                ),
            });
        }
    }
    Ok(())
}

/// A repo-relative path without `./`, `..`, or a leading `/`.
/// A chart from outside git names its repository by a URL helm can fetch from, and a name.
fn check_chart(chart: &RemoteChart) -> Result<(), (&'static str, String)> {
    let repository = chart.repository.trim();
    if !(repository.starts_with("https://")
        || repository.starts_with("http://")
        || repository.starts_with("oci://"))
    {
        return Err((
            "repository",
            format!(
                "\"{repository}\" is not a chart repository (https://…) or an OCI registry (oci://…)"
            ),
        ));
    }
    if chart.name.trim().is_empty() || chart.name.contains('/') {
        return Err(("name", format!("\"{}\" is not a chart's name", chart.name)));
    }
    Ok(())
}

fn check_path(path: &str) -> Result<String, String> {
    let trimmed = path.trim();
    if trimmed.is_empty() {
        return Err("is empty (use . for the repository root)".into());
    }
    if trimmed.starts_with('/') {
        return Err(format!(
            "\"{path}\" must be relative to the repository root"
        ));
    }
    let mut parts = Vec::new();
    for part in trimmed.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("\"{path}\" leaves the repository")),
            other => parts.push(other),
        }
    }
    Ok(parts.join("/"))
}

fn check_dns_label(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a namespace name (lowercase letters, digits and '-', at most 63)"
        ))
    }
}

/// A ServiceAccount's name (a DNS subdomain): the API server would refuse any other.
fn check_dns_subdomain(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "\"{name}\" is not a ServiceAccount name (lowercase letters, digits, '-' and '.')"
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<AppFile>, AppFileError> {
        AppFile::parse(APP_FILE, text)
    }

    #[test]
    fn an_app_may_take_its_chart_from_outside_git_without_a_path() {
        let file = parse(
            "apps:\n\
             - name: podinfo\n  chart:\n    repository: oci://127.0.0.1:5000/charts\n    \
             name: podinfo\n    version: ^6.5\n  values: [envs/prod/podinfo.yaml]\n",
        )
        .unwrap()
        .unwrap();
        let app = file.app("podinfo").unwrap();
        assert_eq!(app.path, "");
        let chart = app.chart.as_ref().unwrap();
        assert_eq!(
            (
                chart.repository.as_str(),
                chart.name.as_str(),
                chart.version.as_str()
            ),
            ("oci://127.0.0.1:5000/charts", "podinfo", "^6.5")
        );

        let err = parse("apps:\n- name: a\n  chart: {repository: ftp://x, name: a}\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("apps[0] (a).chart.repository: \"ftp://x\" is not a chart repository"),
            "{err}"
        );
        let err = parse("apps:\n- name: a\n").unwrap_err();
        assert!(
            err.to_string().contains("apps[0] (a).path: is empty"),
            "{err}"
        );
    }

    #[test]
    fn reads_every_field() {
        let file = parse(
            "apps:\n\
             - name: shop\n  path: ./deploy/shop/\n  namespace: shop\n  contexts: [eu, us]\n  \
             values: [deploy/values.yaml]\n  set: [image.tag=1.2]\n  prune: true\n  prune_crds: true\n  \
             allow_empty: true\n  wait: false\n  \
             timeout: 90s\n  ignore:\n  - kind: Deployment\n    paths: [/spec/replicas]\n\
             - name: web\n  path: .\n",
        )
        .unwrap()
        .unwrap();
        let shop = file.app("shop").unwrap();
        assert_eq!(shop.path, "deploy/shop");
        assert_eq!(shop.namespace.as_deref(), Some("shop"));
        assert_eq!(shop.contexts, ["eu", "us"]);
        assert_eq!(shop.values, ["deploy/values.yaml"]);
        assert_eq!(shop.set, ["image.tag=1.2"]);
        assert_eq!(shop.prune, Some(true));
        assert_eq!(
            (shop.prune_crds, shop.allow_empty),
            (Some(true), Some(true))
        );
        assert_eq!(shop.wait, Some(false));
        assert_eq!(shop.timeout, Some(Duration::from_secs(90)));
        assert_eq!(shop.ignore_rules().rules.len(), 1);
        let web = file.app("web").unwrap();
        assert_eq!(web.path, "");
        assert_eq!(web.prune, None);
        assert_eq!(file.apps.len(), 2);
    }

    #[test]
    fn reads_jsonnet_options_in_either_spelling() {
        let file = parse(
            "apps:\n\
             - name: a\n  path: a\n  jsonnet: {tlas: {env: prod}, ext_vars: {t: x}, libs: [lib]}\n\
             - name: b\n  path: b\n  jsonnet: {extVars: {t: y}}\n",
        )
        .unwrap()
        .unwrap();
        let a = &file.app("a").unwrap().jsonnet;
        assert_eq!(a.tlas["env"], "prod");
        assert_eq!(a.ext_vars["t"], "x");
        assert_eq!(a.libs, ["lib"]);
        assert_eq!(file.app("b").unwrap().jsonnet.ext_vars["t"], "y");
        let err = parse("apps:\n- name: c\n  path: c\n  jsonnet: {tla: {}}\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `tla`"), "{err}");
    }

    #[test]
    fn a_file_without_apps_is_no_list() {
        assert_eq!(parse("ignore:\n- paths: [/spec/replicas]\n").unwrap(), None);
        assert_eq!(parse("").unwrap(), None);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                "apps:\n- name: shop\n  path: a\n  timout: 5m\n",
                "unknown field `timout`",
            ),
            ("apps:\n- name: Shop\n  path: a\n", "apps[0] (Shop).name"),
            ("apps:\n- path: a\n", "missing field `name`"),
            (
                "apps:\n- name: a\n  path: ../x\n",
                "apps[0] (a).path: \"../x\" leaves the repository",
            ),
            ("apps:\n- name: a\n  path: /x\n", "apps[0] (a).path"),
            (
                "apps:\n- name: a\n  path: x\n- name: a\n  path: y\n",
                "app a is listed twice",
            ),
            (
                "apps:\n- name: a\n  path: x\n  timeout: soon\n",
                "apps[0] (a).timeout: \"soon\" is not a duration",
            ),
            (
                "apps:\n- name: a\n  path: x\n  set: [novalue]\n",
                "apps[0] (a).set[0]",
            ),
            (
                "apps:\n- name: a\n  path: x\n  namespace: Prod\n",
                "apps[0] (a).namespace",
            ),
            (
                "apps:\n- name: a\n  path: x\n  contexts: [c, c]\n",
                "context c is listed twice",
            ),
            ("apps:\n- name: a\n  path: x\n  prune: maybe\n", "prune"),
            (
                "apps:\n- name: a\n  path: x\n  values: [../v.yaml]\n",
                "apps[0] (a).values[0]",
            ),
            (
                "apps:\n- name: a\n  path: x\n  ignore:\n  - paths: [spec]\n",
                "apps[0] (a).ignore[0].paths",
            ),
            ("apps: []\n", "lists no apps"),
            ("apps: {name: a}\n", "apps"),
        ];
        for (text, expected) in cases {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.starts_with(APP_FILE), "{text:?}: {error}");
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn syntax_errors_carry_the_line() {
        let error = parse("apps:\n- name: a\n  path: x\n  prune: [\n").unwrap_err();
        assert!(
            error.to_string().starts_with(".kubectl-gitops.yaml:"),
            "{error}"
        );
        let error = parse("apps:\n- name: a\n  path: x\n  timout: 5m\n").unwrap_err();
        assert!(
            error.to_string().starts_with(".kubectl-gitops.yaml:4"),
            "{error}"
        );
    }

    #[test]
    fn dependencies_must_name_apps_of_the_list_without_a_cycle() {
        let file = parse(
            "apps:\n- name: a\n  path: x\n  create_namespace: true\n\
             - name: b\n  path: y\n  depends_on: [a]\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(file.app("b").unwrap().depends_on, ["a"]);
        assert_eq!(file.app("a").unwrap().create_namespace, Some(true));
        let unknown = parse("apps:\n- name: a\n  path: x\n  depends_on: [db]\n").unwrap_err();
        assert_eq!(
            unknown.to_string(),
            ".kubectl-gitops.yaml: apps[0] (a).depends_on[0]: there is no app named db (the list has a)"
        );
        let cycle = parse(
            "apps:\n- name: a\n  path: x\n  depends_on: [c]\n\
             - name: b\n  path: y\n  depends_on: [a]\n\
             - name: c\n  path: z\n  depends_on: [b]\n\
             - name: d\n  path: w\n",
        )
        .unwrap_err();
        assert_eq!(
            cycle.to_string(),
            ".kubectl-gitops.yaml: apps[0] (a).depends_on: the apps depend on each other in a cycle: a -> c -> b -> a"
        );
        let itself = parse("apps:\n- name: a\n  path: x\n  depends_on: [a]\n").unwrap_err();
        assert!(itself.to_string().ends_with("cycle: a -> a"), "{itself}");
    }

    #[test]
    fn a_service_account_is_a_name_the_api_server_would_take() {
        let file = parse("apps:\n- name: a\n  path: x\n  service_account: team-a.deployer\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            file.app("a").unwrap().service_account.as_deref(),
            Some("team-a.deployer")
        );
        for bad in [
            "Deployer",
            "team a",
            "-x",
            "a..b",
            "system:serviceaccount:a:b",
        ] {
            let text = format!("apps:\n- name: a\n  path: x\n  service_account: {bad:?}\n");
            let error = parse(&text).unwrap_err().to_string();
            assert!(
                error.starts_with(".kubectl-gitops.yaml: apps[0] (a).service_account: ")
                    && error.contains("is not a ServiceAccount name"),
                "{bad}: {error}"
            );
        }
    }

    #[test]
    fn unknown_app_lists_the_known_ones() {
        let file = parse("apps:\n- name: a\n  path: x\n- name: b\n  path: y\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            file.app("c").unwrap_err().to_string(),
            ".kubectl-gitops.yaml has no app named c (it has a, b)"
        );
    }
}
