//! What each page shows, read from the clusters with the library's own readers: the
//! release history (ours and Helm's), the drift check and the resource tree. Nothing here
//! knows HTML; the pages module draws what these return.

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ListParams};
use serde_json::Value;

use crate::apply::health::Health;
use crate::diff::mask::mask_secret;
use crate::diff::{self, ChangeSet, TextOptions};
use crate::drift::{AppDrift, CheckRequest, Checked, FieldDrift, Repos, check_app};
use crate::live::LiveCluster;
use crate::objects::ObjectKey;
use crate::release::history::{self, AppHistory, HistoryError, Release, Source};
use crate::tree::{self, ResourceTree};

/// One cluster the dashboard shows: a kubeconfig context and where to look in it.
pub struct Cluster {
    /// The context's name, as the pages show it.
    pub context: String,
    pub live: LiveCluster,
    /// The namespace whose apps are shown; None: every namespace (`-A`).
    pub scope: Option<String>,
    /// Who acts, as a release records it (the kubeconfig user, or `--as`).
    pub who: String,
}

/// Which app a page is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppRef {
    /// Index into the dashboard's clusters.
    pub cluster: usize,
    pub namespace: String,
    pub app: String,
    pub source: Source,
}

/// An app's health now, from its resource tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppHealth {
    Healthy,
    Progressing,
    /// Some object failed or a member is missing.
    Degraded,
    /// Not read (no deployed release, or the tree could not be read).
    Unknown,
    /// Being read now: the page is told when it is known.
    Checking,
}

impl AppHealth {
    pub fn as_str(self) -> &'static str {
        match self {
            AppHealth::Healthy => "healthy",
            AppHealth::Progressing => "progressing",
            AppHealth::Degraded => "degraded",
            AppHealth::Unknown => "unknown",
            AppHealth::Checking => "checking",
        }
    }

    /// The worst state of the tree's objects.
    pub fn of(tree: &ResourceTree) -> AppHealth {
        let summary = tree.summary();
        if summary.failed > 0 || summary.missing > 0 {
            AppHealth::Degraded
        } else if summary.progressing > 0 {
            AppHealth::Progressing
        } else {
            AppHealth::Healthy
        }
    }
}

/// An app's drift now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriftState {
    InSync,
    /// How many objects are modified, deleted or stray.
    Drifted(usize),
    /// Why it is not known (a Helm release, no deployed release, an error).
    Unknown(String),
    /// Being checked now: the page is told when it is known.
    Checking,
}

/// One row of the overview.
#[derive(Debug, Clone)]
pub struct OverviewRow {
    pub app: AppRef,
    pub context: String,
    /// The newest release, or why its record cannot be read.
    pub latest: Result<Release, String>,
    pub health: AppHealth,
    pub drift: DriftState,
}

/// The overview of one cluster, or why its apps cannot be listed.
pub struct ClusterOverview {
    pub context: String,
    pub rows: Vec<OverviewRow>,
    pub error: Option<String>,
}

impl ClusterOverview {
    /// The apps whose state is not known yet: their rows say `checking`.
    pub fn checking(&self) -> impl Iterator<Item = &AppRef> {
        self.rows
            .iter()
            .filter(|row| row.drift == DriftState::Checking)
            .map(|row| &row.app)
    }
}

/// An app as it is now: its deployed release, its resource tree and (ours) its drift.
pub struct AppState {
    pub release: Release,
    pub tree: ResourceTree,
    /// None for a Helm release, which the drift check does not cover.
    pub drift: Option<AppDrift>,
}

impl AppState {
    pub fn drift_state(&self) -> DriftState {
        match &self.drift {
            None => DriftState::Unknown("Helm releases are not checked for drift".into()),
            Some(report) if report.objects.is_empty() => DriftState::InSync,
            Some(report) => DriftState::Drifted(report.objects.len()),
        }
    }

    /// The drifted fields of one object, each with the manager that owns it now.
    pub fn fields_of(&self, key: &ObjectKey) -> &[FieldDrift] {
        self.drift
            .as_ref()
            .and_then(|report| report.objects.iter().find(|o| &o.key == key))
            .map_or(&[], |object| object.fields.as_slice())
    }
}

/// Reads `app`'s state: ours through a drift check (whose tree marks each member), Helm's
/// through its last deployed release's tree.
pub async fn app_state(cluster: &Cluster, app: &AppRef) -> Result<AppState, String> {
    match app.source {
        Source::Gitops => {
            let request = CheckRequest {
                app: app.app.clone(),
                namespace: app.namespace.clone(),
                ..CheckRequest::default()
            };
            let checked: Checked = check_app(&cluster.live, &mut Repos::default(), &request)
                .await
                .map_err(|e| e.to_string())?;
            let tree = tree::for_drift(&cluster.live, &checked)
                .await
                .map_err(|e| e.to_string())?;
            Ok(AppState {
                release: Release::from_record(checked.release),
                tree,
                drift: Some(checked.report),
            })
        }
        Source::Helm => {
            let release = history::last_deployed(
                cluster.live.client(),
                &app.namespace,
                &app.app,
                Some(Source::Helm),
            )
            .await
            .map_err(|e| e.to_string())?;
            let tree = tree::for_release(&cluster.live, &release)
                .await
                .map_err(|e| e.to_string())?;
            Ok(AppState {
                release,
                tree,
                drift: None,
            })
        }
    }
}

/// One object of an app's tree, opened.
pub struct ObjectDetail {
    pub key: ObjectKey,
    /// Its live YAML, Secret values masked as the CLI masks them; None if it is gone.
    pub yaml: Option<String>,
    /// Its drifted fields (a member of ours), each with the manager that changed it.
    pub fields: Vec<FieldDrift>,
    pub events: Vec<EventLine>,
}

/// One event about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLine {
    pub kind: String,
    pub reason: String,
    pub message: String,
    pub count: i32,
    pub last: String,
}

/// The live object `key`, its drift in `state` and its events.
pub async fn object_detail(
    cluster: &Cluster,
    state: &AppState,
    key: &ObjectKey,
) -> Result<ObjectDetail, String> {
    let live = cluster
        .live
        .get_key(key)
        .await
        .map_err(|e| format!("cannot read {key}: {e}"))?;
    let events = match &live {
        Some(object) => events_of(cluster, key, object).await?,
        None => Vec::new(),
    };
    Ok(ObjectDetail {
        key: key.clone(),
        yaml: live.map(shown_yaml),
        fields: state.fields_of(key).to_vec(),
        events,
    })
}

/// The object as the page shows it: managedFields left out (the drift table names the
/// managers), a Secret's values masked.
pub fn shown_yaml(mut object: Value) -> String {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("managedFields");
    }
    mask_secret(&mut object);
    diff::to_yaml(&object)
}

async fn events_of(
    cluster: &Cluster,
    key: &ObjectKey,
    object: &Value,
) -> Result<Vec<EventLine>, String> {
    let Some(uid) = object.pointer("/metadata/uid").and_then(Value::as_str) else {
        return Ok(Vec::new());
    };
    let namespace = key.namespace.as_deref().unwrap_or("default");
    let api: Api<Event> = Api::namespaced(cluster.live.client().clone(), namespace);
    let params = ListParams::default().fields(&format!("involvedObject.uid={uid}"));
    let listed = api
        .list(&params)
        .await
        .map_err(|e| format!("cannot list the events of {key}: {e}"))?;
    let mut lines: Vec<EventLine> = listed
        .items
        .into_iter()
        .map(|event| EventLine {
            kind: event.type_.unwrap_or_default(),
            reason: event.reason.unwrap_or_default(),
            message: event.message.unwrap_or_default(),
            count: event.count.unwrap_or(1),
            last: event
                .last_timestamp
                .map(|t| t.0.to_string())
                .or_else(|| event.event_time.map(|t| t.0.to_string()))
                .unwrap_or_default(),
        })
        .collect();
    lines.sort_by(|a, b| b.last.cmp(&a.last));
    Ok(lines)
}

/// An app's releases, newest first.
pub async fn releases(cluster: &Cluster, app: &AppRef) -> Result<AppHistory, String> {
    history::history(
        cluster.live.client(),
        &app.namespace,
        &app.app,
        Some(app.source),
        None,
    )
    .await
    .map_err(|e| e.to_string())
}

/// What changed from release `before` to release `after`, Secrets masked, as diff-git
/// draws it: one unified diff per changed object, then the summary line.
pub struct ReleaseDiff {
    pub before: u32,
    pub after: u32,
    pub text: String,
    pub summary: String,
}

pub async fn release_diff(
    cluster: &Cluster,
    app: &AppRef,
    before: u32,
    after: u32,
) -> Result<ReleaseDiff, String> {
    let client = cluster.live.client();
    let read =
        |revision| history::release(client, &app.namespace, &app.app, Some(app.source), revision);
    let (old, new) = futures::try_join!(read(before), read(after)).map_err(|e| e.to_string())?;
    diff_of(&old, &new).map_err(|e| e.to_string())
}

/// What changed from `old` to `new`, Secrets masked.
pub fn diff_of(old: &Release, new: &Release) -> Result<ReleaseDiff, HistoryError> {
    let mut changes: ChangeSet = history::diff(old, new)?;
    changes.mask_secrets();
    let options = TextOptions {
        context: 3,
        color: false,
    };
    let (a, b) = (
        format!("release-{}", old.revision),
        format!("release-{}", new.revision),
    );
    let text = changes
        .differences()
        .map(|change| diff::unified(change, &a, &b, &options))
        .collect();
    Ok(ReleaseDiff {
        before: old.revision,
        after: new.revision,
        text,
        summary: diff::summary_line(&changes.summary()),
    })
}

/// The health word of one tree node: `healthy`, `progressing`, `failed`, or `missing`.
pub fn health_word(health: Option<&Health>) -> &'static str {
    match health {
        Some(Health::Healthy) => "healthy",
        Some(Health::Progressing(_)) => "progressing",
        Some(Health::Failed(_)) => "failed",
        None => "missing",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_shown_masked_and_without_managed_fields() {
        let secret = serde_json::json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "creds", "managedFields": [{"manager": "x"}]},
            "data": {"password": "c2VjcmV0"}, "stringData": {"token": "plain"}
        });
        let text = shown_yaml(secret);
        assert!(!text.contains("c2VjcmV0"), "{text}");
        assert!(!text.contains("plain"), "{text}");
        assert!(!text.contains("managedFields"), "{text}");
        assert!(text.contains("password"), "{text}");
        let config = serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c"}, "data": {"greeting": "hello"}});
        assert!(shown_yaml(config).contains("greeting: hello"));
    }
}
