//! Checking one app: its deployed release (or a revision) against the live cluster.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

use super::DriftError;
use super::fields::{IgnoredField, compare_object};
use super::git::{self, GitRequest, Repos};
use super::ignore::IgnoreRules;
use super::model::{Against, AppDrift, LatestRelease, ObjectDrift, ObjectState};
use crate::apply::applyset;
use crate::apply::object_options;
use crate::live::{LiveCluster, LiveError};
use crate::objects::{DesiredObject, DesiredSet, ObjectKey, ScopeResolver};
use crate::release::elsewhere::{self, Records};
use crate::release::record::{ReleaseRecord, ReleaseStatus};
use crate::release::store::ReleaseStore;
use crate::render::parse_documents;

/// What to check for one app.
#[derive(Debug, Clone, Default)]
pub struct CheckRequest {
    pub app: String,
    /// The app's namespace: where its records, lock and ApplySet parent live.
    pub namespace: String,
    /// Rules from flags and `--config`; the app's config file and annotations add theirs.
    pub rules: IgnoreRules,
    /// `--against REV`: compare the cluster with this revision instead of the release.
    pub against: Option<String>,
    /// `--git[=REV]`: also say whether this revision has undeployed changes.
    pub git: Option<String>,
    /// `--repo`: the repository to read (default: the one the release came from).
    pub repo: Option<String>,
    /// `--path`: the app's path in it (default: the release's).
    pub path: Option<String>,
    pub show_secrets: bool,
}

/// A checked app, with the release it was checked against.
#[derive(Debug, Clone)]
pub struct Checked {
    pub report: AppDrift,
    pub release: ReleaseRecord,
}

/// Checks one app. `repos` keeps repositories open across the apps of one round.
pub async fn check_app(
    cluster: &LiveCluster,
    repos: &mut Repos,
    request: &CheckRequest,
) -> Result<Checked, DriftError> {
    let store = ReleaseStore::new(cluster.client().clone(), &request.namespace);
    let release = deployed_release(&store, &request.app).await?;
    let latest = unfinished_after(&store, &request.app, release.revision).await;
    let release_desired = release_objects(&release, cluster)?;

    let revision = request.against.as_deref().or(request.git.as_deref());
    let git_request = GitRequest {
        repo: request.repo.as_deref(),
        path: request.path.as_deref(),
        revision,
    };
    let side = git::read(
        repos,
        &git_request,
        &release,
        &release_desired,
        cluster,
        &|| cluster.capabilities(false),
    )?;
    let mut rules = request.rules.clone();
    rules.extend(side.rules);

    let (desired, release_keys, against) = match (&request.against, side.desired) {
        (Some(revision), Some(desired)) => (
            desired,
            Some(release_desired.keys().cloned().collect::<BTreeSet<_>>()),
            Against {
                kind: "revision",
                name: revision.clone(),
                commit: side.status.as_ref().map(|s| s.commit.id.clone()),
            },
        ),
        _ => (
            release_desired,
            None,
            Against {
                kind: "release",
                name: release.revision.to_string(),
                commit: release.commit.as_ref().map(|c| c.id.clone()),
            },
        ),
    };
    let mut live = compare_live(cluster, request, &desired, release_keys.as_ref(), &rules).await?;
    let mut report = AppDrift::new(&request.app, &request.namespace, release.revision, against);
    report.latest_release = latest;
    report.summary.in_sync = live.in_sync;
    report.objects = live.objects;
    report.ignored = live.ignored;
    report.git = side.status;
    report.warnings = side.warnings;
    report.warnings.append(&mut live.warnings);
    report.applied = live.applied;
    report.settle();
    Ok(Checked { report, release })
}

/// The objects a release recorded. Keyed with the cluster's scopes, not only the
/// built-in ones, so a cluster-scoped custom kind gets no namespace.
pub(crate) fn release_objects(
    release: &ReleaseRecord,
    scopes: &dyn ScopeResolver,
) -> Result<DesiredSet, DriftError> {
    let unreadable = |message: String| DriftError::StoredManifest {
        app: release.app.clone(),
        revision: release.revision,
        message,
    };
    let file = format!("release {}.r{}", release.app, release.revision);
    let manifests =
        parse_documents(&file, &release.manifest).map_err(|e| unreadable(e.to_string()))?;
    DesiredSet::build(manifests, &release.namespace, scopes).map_err(|e| unreadable(e.to_string()))
}

/// The newest deployed release, or an error that says what the app has instead.
async fn deployed_release(store: &ReleaseStore, app: &str) -> Result<ReleaseRecord, DriftError> {
    // Only the deployed records are sent and decoded (each holds a whole manifest); the
    // others are read only to say why there is none.
    if let Some(release) = store.latest_deployed(app).await? {
        return Ok(release);
    }
    let records = store.list(app).await?;
    if let Some(release) = records
        .iter()
        .flatten()
        .find(|r| r.status == ReleaseStatus::Deployed)
    {
        return Ok(release.clone());
    }
    let newest = records.first().map(|r| match r {
        Ok(r) => format!("its newest, release {}, is {}", r.revision, r.status),
        Err(e) => format!(
            "its newest record, {}, cannot be read: {}",
            e.secret, e.reason
        ),
    });
    Err(match newest {
        None => DriftError::NoRelease {
            app: app.to_string(),
            namespace: store.namespace().to_string(),
            elsewhere: elsewhere::namespaces_of(
                store.client(),
                app,
                Records::Ours,
                store.namespace(),
            )
            .await,
        },
        Some(newest) => DriftError::NoDeployedRelease {
            app: app.to_string(),
            namespace: store.namespace().to_string(),
            newest,
        },
    })
}

/// How many releases after the deployed one [`unfinished_after`] reads at most.
const NEWER_READ: u32 = 10;

/// The app's newest record if it is newer than `deployed` and pending or failed: what a
/// sync left half-done (see [`LatestRelease`]). Records are numbered one after another, so
/// the ones after `deployed` are read by name until one is missing: in the usual case one
/// GET that finds nothing, and no LIST of records that hold whole manifests. Best effort:
/// a read that fails only leaves the notice out.
async fn unfinished_after(store: &ReleaseStore, app: &str, deployed: u32) -> Option<LatestRelease> {
    let mut newest = None;
    for revision in deployed.saturating_add(1)..=deployed.saturating_add(NEWER_READ) {
        match store.get(app, revision).await {
            Ok(Some(record)) => newest = Some(record),
            _ => break,
        }
    }
    let record = newest?;
    matches!(
        record.status,
        ReleaseStatus::Pending | ReleaseStatus::Failed
    )
    .then(|| LatestRelease {
        release: record.revision,
        status: record.status.to_string(),
        who: record.who.clone(),
        started: record.started,
        error: record.error.clone(),
    })
}

/// The live side of a check.
struct LiveDrift {
    objects: Vec<ObjectDrift>,
    ignored: Vec<IgnoredField>,
    in_sync: usize,
    applied: BTreeMap<ObjectKey, Value>,
    warnings: Vec<String>,
}

/// Compares every desired object with the cluster and lists the strays. With
/// `release_keys` (checking a revision), objects the release does not have are not
/// "deleted" and members it has are not "stray": they are what the revision changes.
async fn compare_live(
    cluster: &LiveCluster,
    request: &CheckRequest,
    desired: &DesiredSet,
    release_keys: Option<&BTreeSet<ObjectKey>>,
    rules: &IgnoreRules,
) -> Result<LiveDrift, DriftError> {
    let in_release = |key: &ObjectKey| release_keys.is_none_or(|keys| keys.contains(key));
    let mut objects = Vec::new();
    let mut known = BTreeSet::new();
    for object in desired.iter() {
        if cluster
            .resolve(api_version(&object.object), &object.key.kind)
            .is_some()
        {
            known.insert(object.key.clone());
        } else if in_release(&object.key) {
            objects.push(ObjectDrift {
                key: object.key.clone(),
                state: ObjectState::Deleted,
                fields: Vec::new(),
                message: Some(format!(
                    "{} {} is not served by the API server any more",
                    api_version(&object.object),
                    object.key.kind
                )),
            });
        }
    }
    // The stray lookup below reads the same kinds: one LIST serves both. The app's
    // members come in one LIST per kind across its namespaces, made while the ApplySet
    // parent is read.
    let _reads = cluster.shared_reads();
    let members = applyset::ApplySetId::for_app(&request.app, &request.namespace).member_selector();
    let (parent, ()) = futures::join!(
        applyset::read(cluster, &request.namespace, &request.app),
        cluster.prefetch(&known, Some(&members)),
    );
    let parent = parent?;
    let live = cluster.fetch(&known).await?;
    for key in &known {
        if !live.contains_key(key) && in_release(key) {
            objects.push(ObjectDrift {
                key: key.clone(),
                state: ObjectState::Deleted,
                fields: Vec::new(),
                message: None,
            });
        }
    }

    let present: Vec<(&DesiredObject, &Value)> = desired
        .iter()
        .filter_map(|o| live.get(&o.key).map(|l| (o, l)))
        .collect();
    let compared = stream::iter(present)
        .map(|(object, listed)| async move {
            let live = same_version(cluster, object, listed).await?;
            let applied = cluster
                .dry_run_apply(&object.object, true)
                .await
                .map_err(|source| DriftError::DryRun {
                    key: object.key.clone(),
                    cause: Box::new(source),
                })?;
            let fields = compare_object(
                &object.key,
                &object.object,
                &applied,
                &live,
                rules,
                request.show_secrets,
            );
            Ok::<_, DriftError>((object.key.clone(), fields, applied))
        })
        .buffer_unordered(cluster.concurrency())
        .try_collect::<Vec<_>>()
        .await?;
    let mut in_sync = 0;
    let mut ignored = Vec::new();
    let mut applied_objects = BTreeMap::new();
    for (key, fields, applied) in compared {
        if !fields.ignored.is_empty() {
            applied_objects.insert(key.clone(), applied);
        }
        ignored.extend(fields.ignored);
        // IgnoreExtraneous (Argo CD's compare option): whatever changed is not drift.
        let extraneous = desired
            .get(&key)
            .is_some_and(|o| object_options::ignores_extraneous(&o.object));
        if fields.drift.is_empty() || extraneous {
            in_sync += 1;
        } else {
            objects.push(ObjectDrift {
                key,
                state: ObjectState::Modified,
                fields: fields.drift,
                message: None,
            });
        }
    }

    let mut warnings = Vec::new();
    if parent.is_none() {
        warnings.push(format!(
            "the ApplySet parent Secret {}/{} is gone, so strays cannot be looked for (kubectl sync or --heal writes it again)",
            request.namespace,
            applyset::parent_name(&request.app)
        ));
    }
    if let Some(set) = parent {
        set.check_tooling()?;
        let members = applyset::list_members(cluster, &set).await?;
        for (key, member) in members {
            let stray = !desired.contains(&key)
                && release_keys.is_none_or(|k| !k.contains(&key))
                && !object_options::ignores_extraneous(&member);
            if stray {
                objects.push(ObjectDrift {
                    key,
                    state: ObjectState::Stray,
                    fields: Vec::new(),
                    message: None,
                });
            }
        }
    }
    objects.sort_by(|a, b| a.key.cmp(&b.key).then(a.state.cmp(&b.state)));
    ignored.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(LiveDrift {
        objects,
        ignored,
        in_sync,
        applied: applied_objects,
        warnings,
    })
}

fn api_version(object: &Value) -> &str {
    object
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The live object in the manifest's API version: a LIST returns the preferred version,
/// and fields of two versions must not be compared with each other.
async fn same_version(
    cluster: &LiveCluster,
    object: &DesiredObject,
    listed: &Value,
) -> Result<Value, DriftError> {
    let wanted = api_version(&object.object);
    if api_version(listed) == wanted {
        return Ok(listed.clone());
    }
    let fetched = match cluster.resolve(wanted, &object.key.kind) {
        Some((resource, _)) => {
            cluster
                .get(&resource, object.key.namespace.as_deref(), &object.key.name)
                .await?
        }
        None => None,
    };
    Ok(fetched.unwrap_or_else(|| listed.clone()))
}

impl From<LiveError> for DriftError {
    fn from(source: LiveError) -> Self {
        DriftError::Live(Box::new(source))
    }
}
