//! Checking one app: its deployed release (or a revision) against the live cluster.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

use super::DriftError;
use super::fields::{IgnoredField, compare_object};
use super::git::{self, GitRequest, Repos};
use super::ignore::IgnoreRules;
use super::model::{Against, AppDrift, LatestRelease, ObjectDrift, ObjectState};
use super::untouched;
use crate::apply::applyset;
use crate::apply::object_options;
use crate::apply::ownership::{Ownership, ownership};
use crate::fingerprint::Fingerprints;
use crate::live::{Glance, ListedObject, LiveCluster, LiveError};
use crate::objects::{DesiredObject, DesiredSet, ObjectKey, ScopeResolver};
use crate::release::elsewhere::{self, Records};
use crate::release::record::{ReleaseRecord, ReleaseStatus};
use crate::release::store::ReleaseStore;
use crate::render::{Manifest, RenderError, parse_documents};

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
    /// The keys of the release's objects (its hooks are not among them), as the check
    /// read them from its manifest.
    pub release_keys: BTreeSet<ObjectKey>,
}

/// Checks one app. `repos` keeps repositories open across the apps of one round.
pub async fn check_app(
    cluster: &LiveCluster,
    repos: &mut Repos,
    request: &CheckRequest,
) -> Result<Checked, DriftError> {
    let store = ReleaseStore::new(cluster.client().clone(), &request.namespace);
    let release = deployed_release(&store, &request.app).await?;
    // The release's objects are listed by kind (the record names every object), kept
    // for the comparison below. Against a revision, or for a release without
    // fingerprints, its manifest is read meanwhile on another thread: at 10,000 objects
    // each takes most of a second, and neither needs the other.
    let _reads = cluster.shared_reads();
    let ours = applyset::ApplySetId::for_app(&request.app, &request.namespace);
    let members = ours.member_selector();
    let known = Fingerprints::from_record(&release);
    // Checked against the release itself, the objects nobody wrote since it need not be
    // read from its manifest at all: which they are is known once the LISTs are in.
    let after_lists = request.against.is_none() && request.git.is_none() && !known.is_empty();
    let (latest, release_desired, ()) = futures::join!(
        unfinished_after(&store, &request.app, release.revision),
        async {
            if after_lists {
                return Ok(None);
            }
            release_objects_apart(&release, cluster, None)
                .await
                .map(Some)
        },
        cluster.prefetch(release.objects.iter().map(|o| &o.key), Some(&members)),
    );
    let needed = match release_desired? {
        Some(desired) => Needed {
            desired,
            untouched: BTreeSet::new(),
            listed: None,
        },
        None => release_objects_needed(&release, cluster, &known, &ours).await?,
    };
    let Needed {
        desired: release_desired,
        untouched,
        listed,
    } = needed;

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
    // What the release remembers of each object: those nobody has written since (or whose
    // fields we own nobody has) are in sync without a dry run. Against a revision, only
    // the objects the revision wants as the release applied them.
    let mut live = compare_live(
        cluster,
        request,
        (&desired, &untouched, listed),
        release_keys.as_ref(),
        &rules,
        &known,
    )
    .await?;
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
    // Taken from the set compared (the release's, unless against a revision): its objects
    // are dropped as their keys are moved out.
    let release_keys = release_keys.unwrap_or_else(|| {
        desired
            .into_iter()
            .map(|object| object.key)
            .chain(untouched)
            .collect()
    });
    Ok(Checked {
        report,
        release,
        release_keys,
    })
}

/// The objects a release recorded. Keyed with the cluster's scopes, not only the
/// built-in ones, so a cluster-scoped custom kind gets no namespace.
pub(crate) fn release_objects(
    release: &ReleaseRecord,
    scopes: &dyn ScopeResolver,
) -> Result<DesiredSet, DriftError> {
    let parsed = parse_documents(&manifest_file(release), &release.manifest.text());
    keyed(release, parsed, scopes)
}

/// [`release_objects`], the manifest parsed on a blocking thread so that the caller's
/// requests go on meanwhile.
/// `text`: the manifest's text when the caller has it already (else it is read here).
async fn release_objects_apart(
    release: &ReleaseRecord,
    scopes: &dyn ScopeResolver,
    text: Option<String>,
) -> Result<DesiredSet, DriftError> {
    let (file, manifest) = (manifest_file(release), release.manifest.clone());
    let parsed = tokio::task::spawn_blocking(move || {
        let text = text.unwrap_or_else(|| manifest.text());
        parse_documents(&file, &text)
    })
    .await
    .map_err(|e| unreadable(release, e.to_string()))?;
    keyed(release, parsed, scopes)
}

/// What of a release a check compares.
struct Needed {
    desired: DesiredSet,
    /// Objects proven in sync without being read (see [`untouched`]).
    untouched: BTreeSet<ObjectKey>,
    /// The live objects of the release's objects, as listed, when they were fetched to
    /// find the untouched ones.
    listed: Option<BTreeMap<ObjectKey, ListedObject>>,
}

/// The objects of `release` a check against it must compare, parsed from its manifest,
/// and those proven in sync without being read. The LISTs of the release's kinds are made
/// (or are being made) by the caller.
async fn release_objects_needed(
    release: &ReleaseRecord,
    cluster: &LiveCluster,
    known: &Fingerprints,
    ours: &applyset::ApplySetId,
) -> Result<Needed, DriftError> {
    // The objects the sync applied and saw (pruned and kept ones have no version).
    let applied: BTreeSet<ObjectKey> = release
        .objects
        .iter()
        .filter(|o| o.resource_version.is_some())
        .map(|o| o.key.clone())
        .collect();
    let listed = cluster.fetch_listed(&applied).await?;
    let text = release.manifest.text();
    let file = manifest_file(release);
    let (desired, untouched) =
        match untouched::needed(&applied, &text, |key| listed.get(key), known, ours, &file) {
            Some(needed) => (
                keyed(release, Ok(needed.manifests), cluster)?,
                needed.untouched,
            ),
            // Most of it is needed after all: parsed whole, off the async threads.
            None => (
                release_objects_apart(release, cluster, Some(text)).await?,
                BTreeSet::new(),
            ),
        };
    Ok(Needed {
        desired,
        untouched,
        listed: Some(listed),
    })
}

/// The name a release's manifest goes by in errors.
fn manifest_file(release: &ReleaseRecord) -> String {
    format!("release {}.r{}", release.app, release.revision)
}

fn keyed(
    release: &ReleaseRecord,
    parsed: Result<Vec<Manifest>, RenderError>,
    scopes: &dyn ScopeResolver,
) -> Result<DesiredSet, DriftError> {
    let manifests = parsed.map_err(|e| unreadable(release, e.to_string()))?;
    DesiredSet::build(manifests, &release.namespace, scopes)
        .map_err(|e| unreadable(release, e.to_string()))
}

fn unreadable(release: &ReleaseRecord, message: String) -> DriftError {
    DriftError::StoredManifest {
        app: release.app.clone(),
        revision: release.revision,
        message,
    }
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
/// Objects `fingerprints` proves unchanged are in sync without a dry run.
async fn compare_live(
    cluster: &LiveCluster,
    request: &CheckRequest,
    (desired, untouched, listed): (
        &DesiredSet,
        &BTreeSet<ObjectKey>,
        Option<BTreeMap<ObjectKey, ListedObject>>,
    ),
    release_keys: Option<&BTreeSet<ObjectKey>>,
    rules: &IgnoreRules,
    fingerprints: &Fingerprints,
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
    let members_of = applyset::ApplySetId::for_app(&request.app, &request.namespace);
    let members = members_of.member_selector();
    // Those fetched already, to find the untouched objects, are not fetched again: a
    // fetch takes them out of the member LISTs, which the stray lookup reads next.
    let rest: BTreeSet<ObjectKey> = match &listed {
        Some(live) => known
            .iter()
            .filter(|key| !live.contains_key(*key))
            .cloned()
            .collect(),
        None => known.clone(),
    };
    let (parent, ()) = futures::join!(
        applyset::read(cluster, &request.namespace, &request.app),
        cluster.prefetch(&rest, Some(&members)),
    );
    let parent = parent?;
    let mut live = cluster.fetch_listed(&rest).await?;
    if let Some(listed) = listed {
        live.extend(listed.into_iter().filter(|(key, _)| known.contains(key)));
    }
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

    let Present { proven, to_compare } = present(
        desired,
        &live,
        fingerprints,
        &members_of,
        ListedObject::value,
    )?;
    drop(live);
    let compared = stream::iter(to_compare)
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
    let mut in_sync = proven + untouched.len();
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
                && !untouched.contains(&key)
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

/// The desired objects that exist, split by whether a dry run must compare them.
#[derive(Debug)]
struct Present<'a> {
    /// How many the release's fingerprints prove unchanged: applying them again would
    /// change nothing, so they are in sync without a dry run (and have no differing field,
    /// ignored or not).
    proven: usize,
    /// The others, with their live object as listed.
    to_compare: Vec<(&'a DesiredObject, Value)>,
}

/// Splits the desired objects found in `live` into those `known` proves unchanged and
/// those to dry-run. Only the listed object's resourceVersion, uid and managedFields are
/// read for the proof, so no object is copied or read again in the manifest's version.
fn present<'a, L: Glance>(
    desired: &'a DesiredSet,
    live: &BTreeMap<ObjectKey, L>,
    known: &Fingerprints,
    ours: &applyset::ApplySetId,
    read: impl Fn(&L) -> Result<Value, LiveError>,
) -> Result<Present<'a>, LiveError> {
    let mut proven = 0;
    let mut to_compare = Vec::new();
    for object in desired.iter() {
        let Some(listed) = live.get(&object.key) else {
            continue;
        };
        // Where the release left it: no need to read it whole.
        if known.untouched(object, listed, ours).is_some() {
            proven += 1;
            continue;
        }
        // Read one at a time: a proven object's value is dropped at once.
        let listed = read(listed)?;
        // Only a member of this app is proven by its fingerprint: another app writes with
        // the same field manager, and its apply within the same second as ours leaves our
        // managedFields entry as it was.
        let member = ownership(&listed, ours) == Ownership::Ours;
        if member && known.unchanged(object, &listed) {
            proven += 1;
        } else {
            to_compare.push((object, listed));
        }
    }
    Ok(Present { proven, to_compare })
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
    listed: Value,
) -> Result<Value, DriftError> {
    let wanted = api_version(&object.object);
    if api_version(&listed) == wanted {
        return Ok(listed);
    }
    let fetched = match cluster.resolve(wanted, &object.key.kind) {
        Some((resource, _)) => {
            cluster
                .get(&resource, object.key.namespace.as_deref(), &object.key.name)
                .await?
        }
        None => None,
    };
    Ok(fetched.unwrap_or(listed))
}

impl From<LiveError> for DriftError {
    fn from(source: LiveError) -> Self {
        DriftError::Live(Box::new(source))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;
    use crate::apply::applyset::{ApplySetId, label_members};
    use crate::diff::to_yaml;
    use crate::fingerprint::{applied_hash, owned_hash};
    use crate::live::FIELD_MANAGER;
    use crate::objects::BuiltinScopes;
    use crate::release::record::{ObjectResult, Operation};

    /// Objects whose values YAML could read back as something else.
    const SOURCE: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: tricky
  annotations: {note: 'yes', empty: ''}
data:
  on: 'on'
  number: '0123'
  float: '1.0'
  multi: |
    line one
    line two
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: nginx:1.26
        resources: {limits: {cpu: 0.5}}
";

    /// The desired set as a sync applies it: rendered, then labelled as the app's members.
    fn synced() -> DesiredSet {
        let mut desired = DesiredSet::build(
            parse_documents("app.yaml", SOURCE).unwrap(),
            "shop",
            &BuiltinScopes,
        )
        .unwrap();
        label_members(&mut desired, &shop());
        desired
    }

    fn shop() -> ApplySetId {
        ApplySetId::for_app("shop", "shop")
    }

    #[test]
    fn an_object_another_app_took_over_is_dry_run_even_if_our_entry_looks_unchanged() {
        // Every app applies with the same field manager: another app's apply within the
        // same second as ours leaves the entry's fields and time as they were.
        let desired = synced();
        let mut live = listed(&desired);
        let known = Fingerprints::from_record(&release_of(&desired, &live));
        let web = live
            .iter_mut()
            .find(|(k, _)| k.name == "web")
            .map(|(_, v)| v)
            .unwrap();
        let other = ApplySetId::for_app("other", "shop");
        web["metadata"]["labels"]["applyset.kubernetes.io/part-of"] = json!(other.as_str());
        web["metadata"]["resourceVersion"] = json!("77");
        let found = present(&desired, &live, &known, &shop(), same).unwrap();
        assert_eq!(names(&found), ["web"]);
    }

    /// The live object as a LIST returns it after the sync applied `object`.
    fn live_after_sync(object: &Value, uid: &str, version: &str) -> Value {
        let mut live = object.clone();
        live["metadata"]["uid"] = json!(uid);
        live["metadata"]["resourceVersion"] = json!(version);
        live["metadata"]["managedFields"] = json!([{
            "manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": "v1",
            "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {"f:on": {}}, "f:spec": {"f:replicas": {}}}
        }]);
        live
    }

    /// The release a sync of `desired` writes: its manifest as text, and per object what
    /// it applied and where the object was left.
    fn release_of(desired: &DesiredSet, live: &BTreeMap<ObjectKey, Value>) -> ReleaseRecord {
        let manifest: String = desired
            .iter()
            .map(|o| format!("---\n{}", to_yaml(&o.object)))
            .collect();
        let mut record =
            ReleaseRecord::start("shop", "shop", Operation::Sync, "me", manifest.into());
        record.revision = 1;
        for object in desired.iter() {
            let live = &live[&object.key];
            record.objects.push(ObjectResult {
                key: object.key.clone(),
                action: "created".into(),
                health: None,
                message: None,
                resource_version: crate::fingerprint::resource_version(live).map(String::from),
                applied_hash: Some(applied_hash(&object.object)),
                owned_hash: owned_hash(live),
            });
        }
        record
    }

    /// The test's listed objects are values already: read as a copy.
    fn same(listed: &Value) -> Result<Value, LiveError> {
        Ok(listed.clone())
    }

    fn listed(desired: &DesiredSet) -> BTreeMap<ObjectKey, Value> {
        desired
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let live = live_after_sync(&o.object, &format!("u{i}"), &format!("{}", 10 + i));
                (o.key.clone(), live)
            })
            .collect()
    }

    fn names<'a>(present: &Present<'a>) -> Vec<&'a str> {
        present
            .to_compare
            .iter()
            .map(|(o, _)| o.key.name.as_str())
            .collect()
    }

    #[test]
    fn the_release_manifest_read_back_is_what_the_sync_applied() {
        // Drift reads the desired objects from the release's manifest text; the sync
        // hashed them before writing it. Were the hashes to differ, every object would be
        // dry-run again.
        let desired = synced();
        let live = listed(&desired);
        let release = release_of(&desired, &live);
        let read_back = release_objects(&release, &BuiltinScopes).unwrap();
        assert_eq!(read_back.len(), 2);
        for object in read_back.iter() {
            assert_eq!(
                Some(applied_hash(&object.object)),
                release
                    .objects
                    .iter()
                    .find(|o| o.key == object.key)
                    .and_then(|o| o.applied_hash.clone()),
                "{}",
                object.key
            );
        }
        let known = Fingerprints::from_record(&release);
        let present = present(&read_back, &live, &known, &shop(), same).unwrap();
        assert_eq!(present.proven, 2);
        assert!(present.to_compare.is_empty());
    }

    #[test]
    fn only_objects_the_release_proves_unchanged_skip_the_dry_run() {
        let desired = synced();
        let mut live = listed(&desired);
        let known = Fingerprints::from_record(&release_of(&desired, &live));
        let key = |name: &str| desired.keys().find(|k| k.name == name).unwrap().clone();

        // A controller writes what it owns (the status): the version moves, our fields
        // do not. Still proven.
        let web = live.get_mut(&key("web")).unwrap();
        web["metadata"]["resourceVersion"] = json!("50");
        web["status"] = json!({"replicas": 2});
        web["metadata"]["managedFields"]
            .as_array_mut()
            .unwrap()
            .push(
                json!({"manager": "kube-controller-manager", "operation": "Update",
                         "apiVersion": "apps/v1", "time": "2026-01-01T00:00:05Z",
                         "subresource": "status", "fieldsType": "FieldsV1",
                         "fieldsV1": {"f:status": {"f:replicas": {}}}}),
            );
        let found = present(&desired, &live, &known, &shop(), same).unwrap();
        assert_eq!((found.proven, names(&found)), (2, vec![]));

        // Someone edits a field we apply: the server moves it out of our entry.
        let tricky = live.get_mut(&key("tricky")).unwrap();
        tricky["data"]["on"] = json!("off");
        tricky["metadata"]["resourceVersion"] = json!("51");
        tricky["metadata"]["managedFields"] = json!([
            {"manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": "v1",
             "time": "2026-01-01T00:00:00Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:spec": {"f:replicas": {}}}},
            {"manager": "kubectl-edit", "operation": "Update", "apiVersion": "v1",
             "time": "2026-01-01T00:00:09Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:data": {"f:on": {}}}}
        ]);
        let found = present(&desired, &live, &known, &shop(), same).unwrap();
        assert_eq!((found.proven, names(&found)), (1, vec!["tricky"]));

        // Deleted and created again by another tool with our entry restored as it was
        // (a backup's copy): another uid, so another object.
        let mut restored =
            live_after_sync(&desired.get(&key("tricky")).unwrap().object, "new", "60");
        restored["data"]["on"] = json!("off");
        live.insert(key("tricky"), restored);
        let found = present(&desired, &live, &known, &shop(), same).unwrap();
        assert_eq!((found.proven, names(&found)), (1, vec!["tricky"]));

        // Gone: neither proven nor compared (the caller reports it deleted).
        live.remove(&key("tricky"));
        let found = present(&desired, &live, &known, &shop(), same).unwrap();
        assert_eq!((found.proven, names(&found)), (1, vec![]));
    }

    #[test]
    fn a_revision_that_wants_something_else_or_a_release_without_fingerprints_is_dry_run() {
        let desired = synced();
        let live = listed(&desired);
        let known = Fingerprints::from_record(&release_of(&desired, &live));
        // `--against REV`: REV changes the Deployment, not the ConfigMap.
        let revision = DesiredSet::build(
            parse_documents("app.yaml", &SOURCE.replace("replicas: 2", "replicas: 3")).unwrap(),
            "shop",
            &BuiltinScopes,
        )
        .map(|mut set| {
            label_members(&mut set, &ApplySetId::for_app("shop", "shop"));
            set
        })
        .unwrap();
        let found = present(&revision, &live, &known, &shop(), same).unwrap();
        assert_eq!((found.proven, names(&found)), (1, vec!["web"]));
        // A release written before fingerprints existed proves nothing.
        let found = present(&desired, &live, &Fingerprints::default(), &shop(), same).unwrap();
        assert_eq!((found.proven, names(&found)), (0, vec!["tricky", "web"]));
    }
}
