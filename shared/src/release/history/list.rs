//! Reading the releases of both sources side by side: every app, one app's history, one
//! release.

use kube::Client;

use super::{AppHistory, AppSummary, HistoryError, Release, Source, Unreadable};
use crate::app_identity::validate_app_name;
use crate::release::elsewhere::{self, Records};
use crate::release::helm;
use crate::release::store::{self, Read, ReleaseStore};

/// Every app with releases in `namespace` or (None) all namespaces, with its newest
/// release, sorted by namespace, app and source. `only` keeps one source; `read` says
/// whether our newest records are read whole (their manifests and objects) or, where
/// they can be, only their heads (what a list shows).
pub async fn apps(
    client: &Client,
    namespace: Option<&str>,
    only: Option<Source>,
    read: Read,
) -> Result<Vec<AppSummary>, HistoryError> {
    let gitops = async {
        if !Source::Gitops.wanted(only) {
            return Ok(Vec::new());
        }
        Ok::<_, HistoryError>(store::list_all(client.clone(), namespace, read).await?)
    };
    let helm = async {
        if !Source::Helm.wanted(only) {
            return Ok(Vec::new());
        }
        Ok::<_, HistoryError>(helm::list_all(client, namespace).await?)
    };
    let (gitops, helm) = futures::try_join!(gitops, helm)?;
    let mut apps: Vec<AppSummary> = gitops
        .into_iter()
        .map(|app| AppSummary {
            source: Source::Gitops,
            releases: app.records,
            latest: app
                .newest
                .map(Release::from_record)
                .map_err(|u| Unreadable::new(Source::Gitops, u)),
            app: app.app,
            namespace: app.namespace,
        })
        .chain(helm.into_iter().map(|release| {
            AppSummary {
                source: Source::Helm,
                releases: release.records,
                latest: release
                    .newest
                    .map(Release::from_helm)
                    .map_err(|u| Unreadable::new(Source::Helm, u)),
                app: release.name,
                namespace: release.namespace,
            }
        }))
        .collect();
    apps.sort_by(|a, b| (&a.namespace, &a.app, a.source).cmp(&(&b.namespace, &b.app, b.source)));
    Ok(apps)
}

/// The releases of `app` in `namespace`, newest first, at most `max` (unreadable records
/// included, in their place). An app that both sources know needs `only`.
pub async fn history(
    client: &Client,
    namespace: &str,
    app: &str,
    only: Option<Source>,
    max: Option<usize>,
) -> Result<AppHistory, HistoryError> {
    let gitops = async {
        // A name we could never have written (Helm allows dots) has no records of ours.
        if !Source::Gitops.wanted(only) || validate_app_name(app).is_err() {
            return Ok(Vec::new());
        }
        let store = ReleaseStore::new(client.clone(), namespace);
        Ok::<_, HistoryError>(store.list(app).await?)
    };
    let helm = async {
        if !Source::Helm.wanted(only) {
            return Ok(Vec::new());
        }
        // At least one, so an app exists even under `max` 0.
        let fetch = max.map(|m| m.max(1));
        Ok::<_, HistoryError>(helm::list(client, namespace, app, fetch).await?)
    };
    let (gitops, helm) = futures::try_join!(gitops, helm)?;
    let limit = max.unwrap_or(usize::MAX);
    let (source, entries): (Source, Vec<Result<Release, Unreadable>>) =
        match (gitops.is_empty(), helm.is_empty()) {
            (false, false) => {
                return Err(HistoryError::Ambiguous {
                    app: app.to_string(),
                    namespace: namespace.to_string(),
                });
            }
            (false, true) => (
                Source::Gitops,
                gitops
                    .into_iter()
                    .take(limit)
                    .map(|r| {
                        r.map(Release::from_record)
                            .map_err(|u| Unreadable::new(Source::Gitops, u))
                    })
                    .collect(),
            ),
            (true, false) => (
                Source::Helm,
                helm.into_iter()
                    .take(limit)
                    .map(|r| {
                        r.map(Release::from_helm)
                            .map_err(|u| Unreadable::new(Source::Helm, u))
                    })
                    .collect(),
            ),
            (true, true) => {
                // Name the apps that do exist, and where this one is; if even that fails,
                // the error stands alone.
                let records = match only {
                    Some(Source::Gitops) => Records::Ours,
                    Some(Source::Helm) => Records::Helm,
                    None => Records::Both,
                };
                let (known, elsewhere) = futures::join!(
                    apps(client, Some(namespace), only, Read::Head),
                    elsewhere::namespaces_of(client, app, records, namespace)
                );
                let known = known
                    .map(|apps| apps.into_iter().map(|a| a.app).collect())
                    .unwrap_or_default();
                return Err(HistoryError::NoSuchApp {
                    app: app.to_string(),
                    namespace: namespace.to_string(),
                    known: dedup(known),
                    elsewhere,
                });
            }
        };
    Ok(AppHistory {
        source,
        app: app.to_string(),
        namespace: namespace.to_string(),
        entries,
    })
}

fn dedup(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names.dedup();
    names
}

/// Release `revision` of `app`; an unreadable record is an error saying why.
pub async fn release(
    client: &Client,
    namespace: &str,
    app: &str,
    only: Option<Source>,
    revision: u32,
) -> Result<Release, HistoryError> {
    let gitops = async {
        if !Source::Gitops.wanted(only) || validate_app_name(app).is_err() {
            return Ok(None);
        }
        let store = ReleaseStore::new(client.clone(), namespace);
        Ok::<_, HistoryError>(store.get(app, revision).await?)
    };
    let helm = async {
        if !Source::Helm.wanted(only) {
            return Ok(None);
        }
        Ok::<_, HistoryError>(helm::get(client, namespace, app, revision).await?)
    };
    match futures::try_join!(gitops, helm)? {
        (Some(record), None) => Ok(Release::from_record(record)),
        (None, Some(release)) => Ok(Release::from_helm(release)),
        (Some(_), Some(_)) => Err(HistoryError::Ambiguous {
            app: app.to_string(),
            namespace: namespace.to_string(),
        }),
        (None, None) => {
            // Says which revisions there are, or that the app has none at all.
            let history = history(client, namespace, app, only, None).await?;
            Err(HistoryError::NoSuchRelease {
                app: app.to_string(),
                namespace: namespace.to_string(),
                revision,
                available: history
                    .entries
                    .iter()
                    .filter_map(|entry| match entry {
                        Ok(release) => Some(release.revision),
                        Err(unreadable) => unreadable.revision,
                    })
                    .collect(),
            })
        }
    }
}

/// The newest deployed release of `app` (ours or Helm's), or an error saying what its
/// newest release is instead.
pub async fn last_deployed(
    client: &Client,
    namespace: &str,
    app: &str,
    only: Option<Source>,
) -> Result<Release, HistoryError> {
    let found = history(client, namespace, app, only, None).await?;
    let newest = match found.entries.first() {
        Some(Ok(release)) => format!(
            "its newest, release {}, is {}",
            release.revision, release.status
        ),
        Some(Err(unreadable)) => format!(
            "its newest record, {}, cannot be read: {}",
            unreadable.secret, unreadable.reason
        ),
        None => "it has no releases".into(),
    };
    found
        .entries
        .into_iter()
        .flatten()
        .find(|release| release.status == "deployed")
        .ok_or_else(|| HistoryError::NoDeployedRelease {
            app: app.to_string(),
            namespace: namespace.to_string(),
            newest,
        })
}
