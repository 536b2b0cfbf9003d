//! Live updates: one watch per kind the apps hold, label-selected (ApplySet members, and
//! release records; a kind of a Helm release's objects, which carry no label to select,
//! unselected and placed by Helm's annotations), telling open pages that something
//! changed; the pages then read themselves again (server-sent events, [`events_body`]).
//! Never a watch per object, never polling per app.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use kube::api::{Api, DynamicObject, ListParams, WatchEvent, WatchParams};
use tokio::sync::broadcast;

use super::data::Cluster;
use crate::app_identity::APP_LABEL;
use crate::apply::applyset::PART_OF_LABEL;
use crate::release::history::{self, Source};
use crate::release::store::{Read, STATUS_LABEL};

/// Helm labels its release Secrets `owner=helm` and `name=<release>`.
const HELM_OWNER_LABEL: &str = "owner=helm";
const HELM_NAME_LABEL: &str = "name";
/// Helm annotates each object of a release with the release's name and namespace.
const HELM_RELEASE_NAME: &str = "meta.helm.sh/release-name";
const HELM_RELEASE_NAMESPACE: &str = "meta.helm.sh/release-namespace";

/// What a watch saw change, so that only what it touches is read again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A member of the ApplySet with this id.
    Member { cluster: usize, applyset: String },
    /// A release record of `app` in `namespace` (ours or Helm's).
    Release {
        cluster: usize,
        namespace: String,
        app: String,
    },
    /// Something that cannot be placed: everything may have changed.
    Unknown,
    /// Not a change in the cluster: an app's state, not known when a page was drawn, has
    /// been read since, so open pages read themselves again to show it.
    Checked,
}

impl Change {
    /// What the object `labels` (in `namespace`) is, as seen by a watch of `cluster`.
    fn of(cluster: usize, namespace: Option<&str>, labels: &BTreeMap<String, String>) -> Change {
        if let Some(applyset) = labels.get(PART_OF_LABEL) {
            return Change::Member {
                cluster,
                applyset: applyset.clone(),
            };
        }
        let app = labels
            .get(APP_LABEL)
            .or_else(|| labels.get(HELM_NAME_LABEL));
        match (namespace, app) {
            (Some(namespace), Some(app)) => Change::Release {
                cluster,
                namespace: namespace.to_string(),
                app: app.clone(),
            },
            _ => Change::Unknown,
        }
    }

    /// What an object seen by an unselected watch (of a kind Helm releases hold) is: an
    /// object of a Helm release changes that release; a member of ours, its ApplySet; any
    /// other object is none of the dashboard's business (None).
    fn of_unselected(
        cluster: usize,
        labels: &BTreeMap<String, String>,
        annotations: &BTreeMap<String, String>,
    ) -> Option<Change> {
        if let (Some(app), Some(namespace)) = (
            annotations.get(HELM_RELEASE_NAME),
            annotations.get(HELM_RELEASE_NAMESPACE),
        ) {
            return Some(Change::Release {
                cluster,
                namespace: namespace.clone(),
                app: app.clone(),
            });
        }
        labels.get(PART_OF_LABEL).map(|applyset| Change::Member {
            cluster,
            applyset: applyset.clone(),
        })
    }
}

/// How long a page waits for more changes before it is told: a rollout's many writes
/// make one refresh.
const SETTLE: Duration = Duration::from_millis(300);

/// What one watch follows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Watched {
    pub cluster: usize,
    pub group: String,
    pub kind: String,
    /// A label selector; empty: every object of the kind (a kind of Helm's objects).
    pub selector: String,
}

/// The watches for `clusters`: one per kind their apps' last releases hold, selecting
/// ApplySet members (ours) or every object (Helm's, which carry no label to select); and
/// the release records of both tools (Secrets), so a new release shows too.
pub async fn watched(clusters: &[Cluster]) -> Vec<Watched> {
    let mut out = BTreeSet::new();
    for (index, cluster) in clusters.iter().enumerate() {
        for selector in [STATUS_LABEL, HELM_OWNER_LABEL] {
            out.insert(Watched {
                cluster: index,
                group: String::new(),
                kind: "Secret".into(),
                selector: selector.into(),
            });
        }
        let Ok(apps) = history::apps(
            cluster.live.client(),
            cluster.scope.as_deref(),
            None,
            Read::Whole,
        )
        .await
        else {
            continue;
        };
        for app in &apps {
            let Ok(release) = &app.latest else {
                continue;
            };
            let Ok(keys) = history::member_keys(release, &cluster.live) else {
                continue;
            };
            let selector = match app.source {
                Source::Gitops => PART_OF_LABEL,
                Source::Helm => "",
            };
            for key in keys {
                out.insert(Watched {
                    cluster: index,
                    group: key.group,
                    kind: key.kind,
                    selector: selector.into(),
                });
            }
        }
    }
    out.into_iter().collect()
}

/// Starts every watch; each sends on `changes` when an object it follows changes.
pub fn start(clusters: &[Cluster], watched: Vec<Watched>, changes: &broadcast::Sender<Change>) {
    for watch in watched {
        let Some(cluster) = clusters.get(watch.cluster) else {
            continue;
        };
        let Some((resource, _)) = cluster.live.resolve_kind(&watch.group, &watch.kind) else {
            continue;
        };
        let api: Api<DynamicObject> = match &cluster.scope {
            Some(ns) => Api::namespaced_with(cluster.live.client().clone(), ns, &resource),
            None => Api::all_with(cluster.live.client().clone(), &resource),
        };
        tokio::spawn(follow(api, watch.cluster, watch.selector, changes.clone()));
    }
}

/// A LIST of the objects `selector` selects (empty: every object).
fn list_params(selector: &str) -> ListParams {
    match selector {
        "" => ListParams::default(),
        selector => ListParams::default().labels(selector),
    }
}

/// Follows one kind for as long as the dashboard runs: a LIST for the version to start
/// from, then watches from it, listing again when the server says the version is gone.
async fn follow(
    api: Api<DynamicObject>,
    cluster: usize,
    selector: String,
    changes: broadcast::Sender<Change>,
) {
    let mut version: Option<String> = None;
    loop {
        let from = match version.take() {
            Some(v) => v,
            None => match api.list_metadata(&list_params(&selector).limit(1)).await {
                Ok(list) => list.metadata.resource_version.unwrap_or_default(),
                Err(_) => {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            },
        };
        let mut params = WatchParams::default().timeout(290);
        if !selector.is_empty() {
            params = params.labels(&selector);
        }
        let Ok(stream) = api.watch_metadata(&params, &from).await else {
            tokio::time::sleep(Duration::from_secs(5)).await;
            continue;
        };
        let mut stream = std::pin::pin!(stream);
        let mut last = Some(from);
        while let Some(event) = stream.next().await {
            match event {
                Ok(WatchEvent::Added(o) | WatchEvent::Modified(o) | WatchEvent::Deleted(o)) => {
                    last = o.metadata.resource_version.clone().or(last);
                    let labels = o.metadata.labels.unwrap_or_default();
                    let change = if selector.is_empty() {
                        let annotations = o.metadata.annotations.unwrap_or_default();
                        match Change::of_unselected(cluster, &labels, &annotations) {
                            Some(change) => change,
                            None => continue,
                        }
                    } else {
                        Change::of(cluster, o.metadata.namespace.as_deref(), &labels)
                    };
                    // No page open: nobody to tell, which is fine.
                    let _ = changes.send(change);
                }
                Ok(WatchEvent::Bookmark(b)) => last = Some(b.metadata.resource_version),
                // Most often 410 Gone: the version is too old; list again.
                Ok(WatchEvent::Error(_)) => {
                    last = None;
                    break;
                }
                Err(_) => break,
            }
        }
        version = last;
    }
}

/// The body of `/events`: a comment at once (so the page knows it is live), then an
/// event `change` after each settled burst of changes, and a comment every 20 s so that
/// idle connections stay open.
pub fn events_body(changes: broadcast::Receiver<Change>) -> impl Stream<Item = Bytes> + Send {
    let opening = futures::stream::once(async { Bytes::from_static(b"retry: 1000\n: live\n\n") });
    let rest = futures::stream::unfold(changes, |mut receiver| async move {
        let message = tokio::select! {
            got = receiver.recv() => match got {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    tokio::time::sleep(SETTLE).await;
                    while receiver.try_recv().is_ok() {}
                    Bytes::from_static(b"event: change\ndata: 1\n\n")
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            () = tokio::time::sleep(Duration::from_secs(20)) => Bytes::from_static(b": idle\n\n"),
        };
        Some((message, receiver))
    });
    opening.chain(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_change_names_the_app_it_touches() {
        let member = labels(&[(PART_OF_LABEL, "applyset-x-v1")]);
        assert_eq!(
            Change::of(1, Some("shop"), &member),
            Change::Member {
                cluster: 1,
                applyset: "applyset-x-v1".into()
            }
        );
        let ours = labels(&[(APP_LABEL, "web"), (STATUS_LABEL, "deployed")]);
        let helm = labels(&[("owner", "helm"), ("name", "web")]);
        for record in [ours, helm] {
            assert_eq!(
                Change::of(0, Some("shop"), &record),
                Change::Release {
                    cluster: 0,
                    namespace: "shop".into(),
                    app: "web".into()
                }
            );
        }
        assert_eq!(Change::of(0, Some("shop"), &labels(&[])), Change::Unknown);
    }

    #[test]
    fn an_unselected_watch_places_helms_objects_by_their_annotations_and_ignores_others() {
        let helm = labels(&[(HELM_RELEASE_NAME, "web"), (HELM_RELEASE_NAMESPACE, "shop")]);
        assert_eq!(
            Change::of_unselected(0, &labels(&[]), &helm),
            Some(Change::Release {
                cluster: 0,
                namespace: "shop".into(),
                app: "web".into()
            })
        );
        let member = labels(&[(PART_OF_LABEL, "applyset-x-v1")]);
        assert_eq!(
            Change::of_unselected(0, &member, &labels(&[])),
            Some(Change::Member {
                cluster: 0,
                applyset: "applyset-x-v1".into()
            })
        );
        let other = labels(&[("app", "web")]);
        assert_eq!(Change::of_unselected(0, &other, &labels(&[])), None);
    }
}
