//! All apps with records, in one namespace or all of them: what `release-history`
//! shows first. Lists metadata only, then reads one record per app.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::{RELEASE_TYPE, StoreError, UnreadableRecord, api_failure, read_secret, revision_of};
use crate::app_identity::{APP_LABEL, MANAGED_BY, MANAGED_BY_LABEL};
use crate::release::record::ReleaseRecord;

/// How many records `list_all` reads at once.
const CONCURRENCY: usize = 8;

/// What one app's releases look like from afar: for `release-history` across namespaces.
#[derive(Debug, Clone)]
pub struct AppReleases {
    pub namespace: String,
    pub app: String,
    /// How many record Secrets the app has.
    pub records: usize,
    /// The record with the highest revision.
    pub newest: Result<ReleaseRecord, UnreadableRecord>,
}

/// Every app with records, in one namespace or (None) all of them, sorted by namespace
/// and app, each with its newest record. Lists metadata only, then reads one record per app.
pub async fn list_all(
    client: Client,
    namespace: Option<&str>,
) -> Result<Vec<AppReleases>, StoreError> {
    let api: Api<Secret> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let params = ListParams::default()
        .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY},{APP_LABEL}"))
        .fields(&format!("type={RELEASE_TYPE}"));
    let list = api
        .list_metadata(&params)
        .await
        .map_err(|e| api_failure(e, "list", "release records", namespace))?;
    /// What the listing says about one app: how many records, and its newest.
    #[derive(Default)]
    struct Tally {
        records: usize,
        newest: Option<(u32, String)>,
    }
    let mut apps: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for meta in &list.items {
        let (Some(ns), Some(app)) = (meta.namespace(), meta.labels().get(APP_LABEL)) else {
            continue;
        };
        let name = meta.name_any();
        let tally = apps.entry((ns, app.clone())).or_default();
        tally.records += 1;
        if let Some(revision) = revision_of(&name, app, meta.labels())
            && tally
                .newest
                .as_ref()
                .is_none_or(|(newest, _)| revision > *newest)
        {
            tally.newest = Some((revision, name));
        }
    }
    stream::iter(apps)
        .filter_map(|((ns, app), Tally { records, newest })| {
            let client = client.clone();
            async move {
                let (revision, name) = newest?;
                Some(async move {
                    let api: Api<Secret> = Api::namespaced(client, &ns);
                    let found = api
                        .get_opt(&name)
                        .await
                        .map_err(|e| api_failure(e, "get", &format!("Secret {name}"), Some(&ns)))?;
                    let newest = match found {
                        Some(secret) => read_secret(secret, &ns, &app).record,
                        // Trimmed since the listing: say so rather than fail the listing.
                        None => Err(UnreadableRecord {
                            namespace: ns.clone(),
                            secret: name,
                            revision: Some(revision),
                            reason: "it was deleted while being listed".into(),
                        }),
                    };
                    Ok::<_, StoreError>(AppReleases {
                        namespace: ns,
                        app,
                        records,
                        newest,
                    })
                })
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}
