//! The git side of a drift check: the app's config file, and whether the branch has
//! commits the cluster does not run yet (Argo CD's OutOfSync).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use super::DriftError;
use super::ignore::{CONFIG_FILE, IgnoreRules};
use crate::apply::applyset::{self, ApplySetId};
use crate::desired::desired_set;
use crate::diff::Action;
use crate::diff::normalise::normalise;
use crate::live::LiveError;
use crate::objects::{DesiredSet, ObjectKey, ScopeResolver};
use crate::release::record::ReleaseRecord;
use crate::render::{self, Capabilities, ChartSource, Renderer, render_options};
use crate::source::{CommitInfo, Repo, Snapshot, SourceError, is_url, normalize_root, open_repo};

/// Repositories opened during one round of checks, by how they were named, so apps from
/// one repository open (and, for a URL, fetch) it once; and what was read at a commit,
/// which never changes, for the rounds of a watch.
#[derive(Default)]
pub struct Repos {
    opened: BTreeMap<String, Repo>,
    /// (repository, commit, path and chart values, app namespace, app) -> what was read there.
    read: BTreeMap<(String, String, String, String, String), AtCommit>,
}

/// What was read at one commit.
#[derive(Clone)]
struct AtCommit {
    rules: IgnoreRules,
    /// The rendered objects, when a revision was asked for.
    desired: Option<DesiredSet>,
}

impl Repos {
    /// Starts a new round: repositories are opened (and URLs fetched) again, so branches
    /// move; what was read at a commit is kept.
    pub fn new_round(&mut self) {
        self.opened.clear();
    }
}

fn open<'a>(opened: &'a mut BTreeMap<String, Repo>, spec: &str) -> Result<&'a Repo, SourceError> {
    if !opened.contains_key(spec) {
        opened.insert(spec.to_string(), open_repo(spec)?);
    }
    opened
        .get(spec)
        .ok_or_else(|| SourceError::NotARepository { path: spec.into() })
}

/// What a revision would change compared with the deployed release, object by object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GitChange {
    pub key: ObjectKey,
    /// `added`, `changed` or `removed`.
    pub action: Action,
}

/// The branch against the deployed release.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GitStatus {
    /// The revision as given (`HEAD`, `origin/main`, a tag).
    pub revision: String,
    /// The commit it names.
    pub commit: CommitInfo,
    /// The deployed release's commit id, if it was synced from a commit.
    pub deployed_commit: Option<String>,
    /// Whether the revision changes the app's objects: what Argo CD calls OutOfSync.
    pub behind: bool,
    /// Commits in the revision that the deployed commit does not have, newest first
    /// (they may touch other paths than the app's).
    pub commits: Vec<CommitInfo>,
    /// The objects the revision would add, change or remove.
    pub changes: Vec<GitChange>,
}

/// What to read from git for one app.
pub struct GitRequest<'a> {
    /// `--repo`: else the repository the release was synced from, else the current directory.
    pub repo: Option<&'a str>,
    /// `--path`: else the release's path.
    pub path: Option<&'a str>,
    /// The revision to compare with (`--against` or `--git`), if any.
    pub revision: Option<&'a str>,
}

/// What git said about one app.
#[derive(Default)]
pub struct GitSide {
    /// Rules from the app's config file.
    pub rules: IgnoreRules,
    /// The revision's objects, labelled as the app's members.
    pub desired: Option<DesiredSet>,
    pub status: Option<GitStatus>,
    pub warnings: Vec<String>,
}

/// Reads the config file and, with a revision, renders it and compares it with the
/// release. Without a revision (and without `--repo`) a repository that is not at hand is
/// no error: the config file is then not read.
pub fn read(
    repos: &mut Repos,
    request: &GitRequest<'_>,
    release: &ReleaseRecord,
    release_desired: &DesiredSet,
    scopes: &dyn ScopeResolver,
    capabilities: &dyn Fn() -> Result<Capabilities, LiveError>,
) -> Result<GitSide, DriftError> {
    let path = request.path.unwrap_or(&release.path);
    let mut side = GitSide::default();
    let Some((spec, warning)) = repository_spec(request, release) else {
        return Ok(side);
    };
    side.warnings.extend(warning);
    let git_error = |source| DriftError::Git {
        app: release.app.clone(),
        cause: Box::new(source),
    };
    let repo = match open(&mut repos.opened, &spec) {
        Ok(repo) => repo,
        Err(e) if request.revision.is_some() || request.repo.is_some() => {
            return Err(git_error(e));
        }
        Err(_) => return Ok(side),
    };
    let Some(revision) = request.revision else {
        // The config as deployed: at the release's commit (or the working tree it came from).
        let Some(commit) = &release.commit else {
            match repo.working_tree(path) {
                Ok(snapshot) => side.rules = config_rules(&snapshot)?,
                Err(e) => side.warnings.push(not_read(repo, &e)),
            }
            return Ok(side);
        };
        let key = (
            spec,
            commit.id.clone(),
            path.to_string(),
            String::new(),
            String::new(),
        );
        if let Some(read) = repos.read.get(&key) {
            side.rules = read.rules.clone();
            return Ok(side);
        }
        // Only the config file is read, not the app's tree (10,000 files in a large app).
        let file = normalize_root(path, repo.label())
            .map(|root| config_path(&root))
            .and_then(|file| Ok((repo.file_at(&commit.id, &file)?, file)));
        match file {
            Ok((bytes, file)) => {
                side.rules = rules_from(&file, bytes.as_deref())?;
                let read = AtCommit {
                    rules: side.rules.clone(),
                    desired: None,
                };
                repos.read.insert(key, read);
            }
            Err(e) => side.warnings.push(not_read(repo, &e)),
        }
        return Ok(side);
    };
    let commit = repo.resolve(revision).map_err(git_error)?;
    // A chart renders with the values the release was synced with, which a later
    // release may change at the same commit: they are part of what was read.
    let chart = release.chart().unwrap_or_default();
    let jsonnet = release.jsonnet().unwrap_or_default();
    let key = (
        spec,
        commit.id.clone(),
        format!(
            "{path}\0{:?}\0{:?}\0{jsonnet:?}\0{:?}",
            chart.values_files, chart.set, chart.source
        ),
        release.namespace.clone(),
        release.app.clone(),
    );
    let read = match repos.read.get(&key) {
        Some(read) => read.clone(),
        None => {
            let snapshot = repo.snapshot(&commit, path).map_err(git_error)?;
            let rules = config_rules(&snapshot)?;
            let mut options = render_options(
                &release.app,
                &release.namespace,
                &chart.values_files,
                &chart.set,
            );
            options.jsonnet = jsonnet;
            // A chart from outside git: the very version the release was synced with.
            options.helm.remote = chart.source.as_ref().map(ChartSource::pinned);
            // A chart sees the cluster it is checked on, as a sync there would render it.
            if render::renderer_for(&snapshot, &options) == Renderer::Helm {
                let cluster = capabilities().map_err(|e| DriftError::Live(Box::new(e)))?;
                options.helm.add_cluster(&cluster);
            }
            let (_, mut desired) = desired_set(&snapshot, &options, &release.namespace, scopes)
                .map_err(|source| DriftError::Render {
                    app: release.app.clone(),
                    revision: revision.to_string(),
                    cause: Box::new(source),
                })?;
            let id =
                ApplySetId::for_secret(&applyset::parent_name(&release.app), &release.namespace);
            applyset::label_members(&mut desired, &id);
            let read = AtCommit {
                rules,
                desired: Some(desired),
            };
            repos.read.insert(key, read.clone());
            read
        }
    };
    let desired = read.desired.unwrap_or_default();
    side.rules = read.rules;
    let commits = match &release.commit {
        Some(deployed) => match repo.commits_between(&deployed.id, &commit.id) {
            Ok(commits) => commits,
            Err(e) => {
                side.warnings.push(format!(
                    "cannot list the commits since the deployed commit {}: {e}",
                    deployed.short_id
                ));
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let changes = changes(release_desired, &desired);
    side.status = Some(GitStatus {
        revision: revision.to_string(),
        commit,
        deployed_commit: release.commit.as_ref().map(|c| c.id.clone()),
        behind: !changes.is_empty(),
        commits,
        changes,
    });
    side.desired = Some(desired);
    Ok(side)
}

fn not_read(repo: &Repo, error: &SourceError) -> String {
    format!("{CONFIG_FILE} was not read from {}: {error}", repo.label())
}

/// `--repo`, else the release's repository when it is at hand (a directory here, or a URL
/// when git must be read anyway), else the current directory when git must be read (a CI
/// job's fresh clone is elsewhere than the checkout that synced), with a warning then.
fn repository_spec(
    request: &GitRequest<'_>,
    release: &ReleaseRecord,
) -> Option<(String, Option<String>)> {
    if let Some(repo) = request.repo {
        return Some((repo.to_string(), None));
    }
    let wanted = request.revision.is_some();
    match release.repo.as_deref() {
        Some(repo) if Path::new(repo).is_dir() => Some((repo.to_string(), None)),
        Some(repo) if is_url(repo) && wanted => Some((repo.to_string(), None)),
        Some(repo) if wanted => Some((
            ".".to_string(),
            Some(format!(
                "release {} of app {} was synced from {repo}, which is not here; reading the repository of the current directory (--repo names another)",
                release.revision, release.app
            )),
        )),
        _ if wanted => Some((".".to_string(), None)),
        _ => None,
    }
}

/// The ignore rules of the app's config file in `snapshot`, if it has one.
fn config_rules(snapshot: &Snapshot) -> Result<IgnoreRules, DriftError> {
    let file = config_path(&snapshot.root);
    rules_from(&file, snapshot.files.get(&file).map(Vec::as_slice))
}

/// Where an app at `root` keeps its config file.
fn config_path(root: &str) -> String {
    let root = root.trim_matches('/');
    if root.is_empty() {
        CONFIG_FILE.to_string()
    } else {
        format!("{root}/{CONFIG_FILE}")
    }
}

/// The rules of the config file `file` holding `bytes` (none without the file).
fn rules_from(file: &str, bytes: Option<&[u8]>) -> Result<IgnoreRules, DriftError> {
    let Some(bytes) = bytes else {
        return Ok(IgnoreRules::default());
    };
    let text = String::from_utf8_lossy(bytes);
    Ok(IgnoreRules::from_config(file, &text)?)
}

/// The objects `after` adds, changes or removes compared with `before`, in key order.
pub fn changes(before: &DesiredSet, after: &DesiredSet) -> Vec<GitChange> {
    let normalised = |value: &Value| {
        let mut value = value.clone();
        normalise(&mut value);
        value
    };
    let keys: BTreeSet<&ObjectKey> = before.keys().chain(after.keys()).collect();
    keys.into_iter()
        .filter_map(|key| {
            let action = match (before.get(key), after.get(key)) {
                (Some(_), None) => Action::Removed,
                (None, Some(_)) => Action::Added,
                (Some(a), Some(b)) if normalised(&a.object) != normalised(&b.object) => {
                    Action::Changed
                }
                _ => return None,
            };
            Some(GitChange {
                key: key.clone(),
                action,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::objects::BuiltinScopes;
    use crate::render::parse_documents;

    fn set(text: &str) -> DesiredSet {
        DesiredSet::build(
            parse_documents("t.yaml", text).unwrap(),
            "shop",
            &BuiltinScopes,
        )
        .unwrap()
    }

    #[test]
    fn changes_are_objects_added_changed_and_removed() {
        let before = set(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: '1'}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: same}\n",
        );
        let after = set(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: '2'}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: same, labels: {}}\n",
        );
        let found = changes(&before, &after);
        let got: Vec<(&str, Action)> = found
            .iter()
            .map(|c| (c.key.name.as_str(), c.action))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Action::Changed),
                ("b", Action::Removed),
                ("c", Action::Added)
            ]
        );
    }

    #[test]
    fn config_is_read_from_the_apps_root() {
        let mut snapshot = Snapshot {
            root: "apps/web".into(),
            ..Snapshot::default()
        };
        assert!(config_rules(&snapshot).unwrap().rules.is_empty());
        std::sync::Arc::make_mut(&mut snapshot.files).insert(
            "apps/web/.kubectl-gitops.yaml".into(),
            b"ignore:\n- managers: [hpa]\n".to_vec(),
        );
        assert_eq!(config_rules(&snapshot).unwrap().rules[0].managers, ["hpa"]);
        std::sync::Arc::make_mut(&mut snapshot.files).insert(
            "apps/web/.kubectl-gitops.yaml".into(),
            b"ignore: 3\n".to_vec(),
        );
        let err = config_rules(&snapshot).unwrap_err().to_string();
        assert!(err.starts_with("apps/web/.kubectl-gitops.yaml:1"), "{err}");
    }
}
