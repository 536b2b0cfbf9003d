//! All apps with records, in one namespace or all of them: what `release-history`
//! shows first. Lists metadata only, then reads one record per app, or only its head.

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};

use super::{
    HEAD_ANNOTATION, RELEASE_TYPE, StoreError, UnreadableRecord, api_failure, decode_named,
    read_secret, revision_of,
};
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
    /// The record with the highest revision: whole, or under [`Read::Head`] possibly
    /// only its head.
    pub newest: Result<ReleaseRecord, UnreadableRecord>,
}

/// How much of each app's newest record [`list_all`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The whole record: its manifest and objects too.
    Whole,
    /// Its head ([`ReleaseRecord::head`]) from the listing, where the Secret has one;
    /// else the whole record. What a list of apps shows, without reading a manifest.
    Head,
}

/// Every app with records, in one namespace or (None) all of them, sorted by namespace
/// and app, each with its newest record. Lists metadata only, then reads one record per app
/// (under [`Read::Head`], only those whose Secret has no head).
pub async fn list_all(
    client: Client,
    namespace: Option<&str>,
    read: Read,
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
    struct Tally<'a> {
        records: usize,
        newest: Option<(u32, String, Option<&'a String>)>,
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
                .is_none_or(|(newest, _, _)| revision > *newest)
        {
            let head = meta.annotations().get(HEAD_ANNOTATION);
            tally.newest = Some((revision, name, head));
        }
    }
    stream::iter(apps)
        .filter_map(|((ns, app), Tally { records, newest })| {
            let client = client.clone();
            async move {
                let (revision, name, head) = newest?;
                // A head this version cannot read is read whole instead.
                let head = head
                    .filter(|_| read == Read::Head)
                    .and_then(|head| decode_named(head.as_bytes(), &app, Some(revision)).ok());
                Some(async move {
                    if let Some(head) = head {
                        return Ok(AppReleases {
                            namespace: ns,
                            app,
                            records,
                            newest: Ok(head),
                        });
                    }
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
