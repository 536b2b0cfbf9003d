//! Release records kept in the cluster as Secrets, the way Helm keeps its releases.
//!
//! Record `N` of app `web` is the Secret `web.rN` in the app's namespace, of type
//! [`RELEASE_TYPE`], labelled with the app, revision and status so `kubectl get secrets -l`
//! finds them; its `release` key holds [`record::encode`]'s bytes. Secrets, because a
//! manifest can hold Secrets.
//!
//! The Secret's name is the record's identity: the revision comes from the name, and a
//! record whose body disagrees with its name is reported as unreadable, not trusted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};

use crate::api_error::{ApiError, CallFailure, from_call_failure, scope};
use crate::app_identity::{
    APP_LABEL, AppNameError, MANAGED_BY, MANAGED_BY_LABEL, validate_app_name,
};
use crate::error_text::one_line;
use crate::release::record::{self, FORMAT, RecordError, ReleaseRecord, ReleaseStatus};

/// The Secret type of release records.
pub const RELEASE_TYPE: &str = "kubectl-gitops.io/release.v1";
pub const REVISION_LABEL: &str = "kubectl-gitops.io/revision";
pub const STATUS_LABEL: &str = "kubectl-gitops.io/status";
/// The data key holding the encoded record.
pub const DATA_KEY: &str = "release";
/// The annotation holding the record's head ([`ReleaseRecord::head`]) as JSON, so a listing
/// of apps reads what it shows from the Secrets' metadata, without their records.
pub const HEAD_ANNOTATION: &str = "kubectl-gitops.io/release-head";
/// The error recorded on a record a crashed sync left pending.
pub const INTERRUPTED: &str =
    "interrupted: the sync that wrote this record stopped before finishing";

/// A Secret holds at most 1 MiB of data.
const MAX_SECRET_BYTES: usize = 1024 * 1024;
/// How many revision numbers `create_pending` tries when others keep taking them.
const CREATE_ATTEMPTS: u32 = 20;
/// A pending record younger than this may belong to a sync still running (it renews its
/// lock within this time), so `trim` leaves it alone.
const PENDING_GRACE: Duration = crate::lock::DEFAULT_LEASE_DURATION;

/// The Secret name of revision `revision` of `app`.
pub fn secret_name(app: &str, revision: u32) -> String {
    format!("{app}.r{revision}")
}

/// A record Secret that could not be read, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("release record {namespace}/{secret} cannot be read: {reason}")]
pub struct UnreadableRecord {
    pub namespace: String,
    /// The Secret's name.
    pub secret: String,
    /// The revision its name gives, if it gives one.
    pub revision: Option<u32>,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    AppName(#[from] AppNameError),
    #[error(
        "cannot {verb} Secrets in {}: {message}; release records are Secrets: ask a cluster admin for get, list, create, update and delete on secrets {}",
        scope(namespace.as_deref()),
        grant_scope(namespace.as_deref())
    )]
    Forbidden {
        verb: String,
        /// None when the call spanned all namespaces.
        namespace: Option<String>,
        message: String,
    },
    #[error("cannot {action}: {source}")]
    Api { action: String, source: ApiError },
    #[error(transparent)]
    Unreadable(UnreadableRecord),
    #[error("cannot write release {revision} of app {app}: {source}")]
    Encode {
        app: String,
        revision: u32,
        source: RecordError,
    },
    #[error(
        "release {revision} of app {app} is {size} bytes compressed, more than a Secret holds (1 MiB); the manifest is too large to record"
    )]
    TooLarge {
        app: String,
        revision: u32,
        size: usize,
    },
    #[error("release {revision} of app {app} does not exist in namespace {namespace}")]
    NotFound {
        app: String,
        revision: u32,
        namespace: String,
    },
    #[error(
        "cannot find a free revision number for app {app} in namespace {namespace} after {CREATE_ATTEMPTS} attempts: other syncs keep taking them"
    )]
    NoFreeRevision { app: String, namespace: String },
}

impl StoreError {
    /// The HTTP status the server answered with, if it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            StoreError::Forbidden { .. } => Some(403),
            StoreError::Api { source, .. } => source.code(),
            _ => None,
        }
    }
}

fn grant_scope(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("in namespace {ns}"),
        None => "cluster-wide (or pass a namespace)".into(),
    }
}

/// Turns a kube error into a store error naming what was being done.
fn api_failure(error: kube::Error, verb: &str, what: &str, namespace: Option<&str>) -> StoreError {
    CallFailure::new(error, verb, what, namespace).into()
}

from_call_failure!(StoreError);

fn status_is(error: &kube::Error, code: u16, reason: Option<&str>) -> bool {
    matches!(error, kube::Error::Api(status)
        if status.code == code && reason.is_none_or(|r| status.reason == r))
}

/// A record Secret as listed: its identity and its body.
struct Entry {
    revision: Option<u32>,
    name: String,
    record: Result<ReleaseRecord, UnreadableRecord>,
}

/// A record Secret as listed without its data: enough to number a new record, and to find
/// the ones to fail, supersede or trim, without sending or decoding any manifest.
#[derive(Debug, Clone)]
pub struct RecordMeta {
    pub revision: u32,
    pub name: String,
    /// The status label (what the record says, as of its last write).
    pub status: Option<String>,
    created: Option<jiff::Timestamp>,
    uid: Option<String>,
    resource_version: Option<String>,
}

impl RecordMeta {
    fn has_status(&self, status: ReleaseStatus) -> bool {
        self.status.as_deref() == Some(status.to_string().as_str())
    }

    /// What a listing would say of `record` right after this process wrote it; its uid
    /// and resourceVersion are not known (a delete of it would be unconditional, but trim
    /// never deletes the newest record).
    pub fn written(record: &ReleaseRecord) -> RecordMeta {
        RecordMeta {
            revision: record.revision,
            name: secret_name(&record.app, record.revision),
            status: Some(record.status.to_string()),
            created: Some(record.started),
            uid: None,
            resource_version: None,
        }
    }

    /// This record was rewritten with `status`.
    pub fn rewritten(&mut self, status: ReleaseStatus) {
        self.status = Some(status.to_string());
        // A later delete is conditional on the uid alone.
        self.resource_version = None;
    }
}

/// The revision in a record Secret's name (`<app>.r<N>`), else in its label.
fn revision_of(name: &str, app: &str, labels: &BTreeMap<String, String>) -> Option<u32> {
    name.strip_prefix(app)
        .and_then(|rest| rest.strip_prefix(".r"))
        .and_then(|n| n.parse().ok())
        .or_else(|| labels.get(REVISION_LABEL)?.parse().ok())
}

/// Reads a record Secret; anything wrong with it becomes an [`UnreadableRecord`].
fn read_secret(secret: Secret, namespace: &str, app: &str) -> Entry {
    let name = secret.name_any();
    let revision = revision_of(&name, app, secret.labels());
    let unreadable = |reason: String| UnreadableRecord {
        namespace: namespace.to_string(),
        secret: name.clone(),
        revision,
        reason,
    };
    let record = match (secret.type_.as_deref(), secret.data.as_ref()) {
        (Some(RELEASE_TYPE), Some(data)) => match data.get(DATA_KEY) {
            None => Err(unreadable(format!("it has no \"{DATA_KEY}\" key"))),
            Some(bytes) => decode_named(&bytes.0, app, revision)
                .map(|record| with_head_synced(record, secret.annotations()))
                .map_err(unreadable),
        },
        (Some(RELEASE_TYPE), None) => Err(unreadable("it has no data".into())),
        (other, _) => Err(unreadable(format!(
            "its type is {}, not {RELEASE_TYPE}",
            other.unwrap_or("empty")
        ))),
    };
    Entry {
        revision,
        name,
        record,
    }
}

/// Reads the record (or head) `bytes` of the Secret naming `revision` of `app`: one that
/// holds another app or revision is refused, as its name is the record's identity.
fn decode_named(bytes: &[u8], app: &str, revision: Option<u32>) -> Result<ReleaseRecord, String> {
    let record = record::decode(bytes).map_err(|e| e.to_string())?;
    match revision {
        Some(r) if record.app == app && record.revision == r => Ok(record),
        _ => Err(format!(
            "it holds revision {} of app {}, which does not match its name",
            record.revision,
            one_line(&record.app)
        )),
    }
}

/// `record` with the head's `last_synced` when it is the later: a sync that found the
/// cluster current rewrites only the head ([`ReleaseStore::update_head`]).
fn with_head_synced(
    mut record: ReleaseRecord,
    annotations: &BTreeMap<String, String>,
) -> ReleaseRecord {
    #[derive(serde::Deserialize)]
    struct Synced {
        last_synced: Option<jiff::Timestamp>,
    }
    let synced = annotations
        .get(HEAD_ANNOTATION)
        .and_then(|head| serde_json::from_str::<Synced>(head).ok())
        .and_then(|head| head.last_synced);
    if synced > record.last_synced {
        record.last_synced = synced;
    }
    record
}

/// The labels of a record Secret.
fn labels(record: &ReleaseRecord) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
        (APP_LABEL.to_string(), record.app.clone()),
        (REVISION_LABEL.to_string(), record.revision.to_string()),
        (STATUS_LABEL.to_string(), record.status.to_string()),
    ])
}

/// The release records of the apps in one namespace.
pub struct ReleaseStore {
    client: Client,
    namespace: String,
}

impl ReleaseStore {
    pub fn new(client: Client, namespace: &str) -> Self {
        ReleaseStore {
            client,
            namespace: namespace.to_string(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn api(&self) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    fn fail(&self, verb: &str, what: &str) -> impl FnOnce(kube::Error) -> StoreError {
        let (verb, what, namespace) = (verb.to_string(), what.to_string(), self.namespace.clone());
        move |e| api_failure(e, &verb, &what, Some(&namespace))
    }

    fn selector(app: &str) -> ListParams {
        ListParams::default()
            .labels(&format!("{APP_LABEL}={app}"))
            .fields(&format!("type={RELEASE_TYPE}"))
    }

    /// Every record Secret of `app`, newest first; those without a revision last.
    async fn entries(&self, app: &str) -> Result<Vec<Entry>, StoreError> {
        self.entries_selected(app, None).await
    }

    /// [`ReleaseStore::entries`], only those whose status label is `status` if given: the
    /// server filters, so records of other statuses are neither sent nor decoded (each
    /// holds a whole compressed manifest). Callers still check the decoded status.
    async fn entries_selected(
        &self,
        app: &str,
        status: Option<ReleaseStatus>,
    ) -> Result<Vec<Entry>, StoreError> {
        validate_app_name(app)?;
        let mut params = Self::selector(app);
        if let Some(status) = status {
            // `labels` replaces the selector: repeat the app's.
            params = params.labels(&format!("{APP_LABEL}={app},{STATUS_LABEL}={status}"));
        }
        let list = self
            .api()
            .list(&params)
            .await
            .map_err(self.fail("list", &format!("the release records of app {app}")))?;
        let mut entries: Vec<Entry> = list
            .items
            .into_iter()
            .map(|secret| read_secret(secret, &self.namespace, app))
            .collect();
        entries.sort_by(|a, b| {
            b.revision
                .cmp(&a.revision)
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(entries)
    }

    /// Every record of `app`, newest first; unreadable ones as `Err` entries carrying the
    /// Secret name and the reason (one bad record never fails the whole listing).
    pub async fn list(
        &self,
        app: &str,
    ) -> Result<Vec<Result<ReleaseRecord, UnreadableRecord>>, StoreError> {
        Ok(self
            .entries(app)
            .await?
            .into_iter()
            .map(|e| e.record)
            .collect())
    }

    /// The readable records of `app` with `status`, newest first.
    async fn with_status(
        &self,
        app: &str,
        status: ReleaseStatus,
    ) -> Result<Vec<ReleaseRecord>, StoreError> {
        Ok(self
            .entries_selected(app, Some(status))
            .await?
            .into_iter()
            .filter_map(|e| e.record.ok())
            .filter(|r| r.status == status)
            .collect())
    }

    /// The names of the apps with records in this namespace, sorted.
    pub async fn apps(&self) -> Result<Vec<String>, StoreError> {
        let params = ListParams::default()
            .labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY},{APP_LABEL}"))
            .fields(&format!("type={RELEASE_TYPE}"));
        let list = self
            .api()
            .list_metadata(&params)
            .await
            .map_err(self.fail("list", "release records"))?;
        let apps: BTreeSet<String> = list
            .items
            .iter()
            .filter_map(|meta| meta.labels().get(APP_LABEL).cloned())
            .collect();
        Ok(apps.into_iter().collect())
    }

    /// The newest readable record with status deployed.
    pub async fn latest_deployed(&self, app: &str) -> Result<Option<ReleaseRecord>, StoreError> {
        Ok(self
            .with_status(app, ReleaseStatus::Deployed)
            .await?
            .into_iter()
            .find(|r| r.status == ReleaseStatus::Deployed))
    }

    /// One record; an unreadable one is an error.
    pub async fn get(&self, app: &str, revision: u32) -> Result<Option<ReleaseRecord>, StoreError> {
        validate_app_name(app)?;
        let name = secret_name(app, revision);
        let found = self
            .api()
            .get_opt(&name)
            .await
            .map_err(self.fail("get", &format!("Secret {name}")))?;
        match found {
            None => Ok(None),
            Some(secret) => read_secret(secret, &self.namespace, app)
                .record
                .map(Some)
                .map_err(StoreError::Unreadable),
        }
    }

    /// Every record Secret of `app` by metadata, newest first (unreadable ones included;
    /// those whose name and labels give no revision left out).
    pub async fn metadata(&self, app: &str) -> Result<Vec<RecordMeta>, StoreError> {
        validate_app_name(app)?;
        let list = self
            .api()
            .list_metadata(&Self::selector(app))
            .await
            .map_err(self.fail("list", &format!("the release records of app {app}")))?;
        let mut metas: Vec<RecordMeta> = list
            .items
            .into_iter()
            .filter_map(|meta| {
                Some(RecordMeta {
                    revision: revision_of(&meta.name_any(), app, meta.labels())?,
                    name: meta.name_any(),
                    status: meta.labels().get(STATUS_LABEL).cloned(),
                    created: meta.metadata.creation_timestamp.as_ref().map(|t| t.0),
                    uid: meta.metadata.uid.clone(),
                    resource_version: meta.metadata.resource_version.clone(),
                })
            })
            .collect();
        metas.sort_by_key(|m| std::cmp::Reverse(m.revision));
        Ok(metas)
    }

    /// The Secret holding `record`.
    fn secret(&self, record: &ReleaseRecord) -> Result<Secret, StoreError> {
        let bytes = record::encode_within(record, MAX_SECRET_BYTES).map_err(|source| {
            StoreError::Encode {
                app: record.app.clone(),
                revision: record.revision,
                source,
            }
        })?;
        if bytes.len() > MAX_SECRET_BYTES {
            return Err(StoreError::TooLarge {
                app: record.app.clone(),
                revision: record.revision,
                size: bytes.len(),
            });
        }
        Ok(Secret {
            metadata: ObjectMeta {
                name: Some(secret_name(&record.app, record.revision)),
                namespace: Some(self.namespace.clone()),
                labels: Some(labels(record)),
                annotations: record::encode_head(record)
                    .map(|head| BTreeMap::from([(HEAD_ANNOTATION.to_string(), head)])),
                ..ObjectMeta::default()
            },
            type_: Some(RELEASE_TYPE.to_string()),
            data: Some(BTreeMap::from([(DATA_KEY.to_string(), ByteString(bytes))])),
            ..Secret::default()
        })
    }

    /// Writes `record` as a new pending release: revision = highest existing + 1 (on a
    /// clash with a concurrent writer, the next number), namespace = this store's.
    /// Returns the record as written.
    pub async fn create_pending(
        &self,
        mut record: ReleaseRecord,
    ) -> Result<ReleaseRecord, StoreError> {
        record.status = ReleaseStatus::Pending;
        let listed = self.metadata(&record.app).await?;
        self.create_after(record, &listed).await
    }

    /// Writes `record` as a new release with the status it has (pending before a sync's
    /// first change; deployed or failed for a sync that changed nothing, recorded once
    /// when it ends), numbered after the records `listed` (from
    /// [`ReleaseStore::metadata`]) as [`ReleaseStore::create_pending`] numbers them.
    pub async fn create_after(
        &self,
        mut record: ReleaseRecord,
        listed: &[RecordMeta],
    ) -> Result<ReleaseRecord, StoreError> {
        validate_app_name(&record.app)?;
        record.format = FORMAT;
        record.namespace = self.namespace.clone();
        let highest = listed.iter().map(|m| m.revision).max().unwrap_or(0);
        for revision in (highest + 1..).take(CREATE_ATTEMPTS as usize) {
            record.revision = revision;
            let secret = self.secret(&record)?;
            match self.api().create(&PostParams::default(), &secret).await {
                Ok(_) => return Ok(record),
                Err(e) if status_is(&e, 409, Some("AlreadyExists")) => continue,
                Err(e) => {
                    let name = secret_name(&record.app, revision);
                    return Err(self.fail("create", &format!("Secret {name}"))(e));
                }
            }
        }
        Err(StoreError::NoFreeRevision {
            app: record.app,
            namespace: self.namespace.clone(),
        })
    }

    /// Rewrites an existing record, its status label too.
    pub async fn update(&self, record: &ReleaseRecord) -> Result<(), StoreError> {
        validate_app_name(&record.app)?;
        let secret = self.secret(record)?;
        // A merge patch of labels, head and data: other labels and annotations stay as
        // they are; a head too large now is removed rather than left stale.
        let head = secret
            .metadata
            .annotations
            .and_then(|mut annotations| annotations.remove(HEAD_ANNOTATION));
        let patch = serde_json::json!({
            "metadata": {
                "labels": secret.metadata.labels,
                "annotations": {HEAD_ANNOTATION: head},
            },
            "data": secret.data,
        });
        self.patch_record(record, &patch).await
    }

    /// Rewrites only the head of an existing record, for a change the record's body may go
    /// without: `last_synced` (readers take the head's when it is the later). A sync that
    /// found a 10,000-object release current wrote its whole ~1 MB record to say so. A
    /// head too large for its annotation rewrites the whole record instead.
    pub async fn update_head(&self, record: &ReleaseRecord) -> Result<(), StoreError> {
        validate_app_name(&record.app)?;
        let Some(head) = record::encode_head(record) else {
            return self.update(record).await;
        };
        let patch = serde_json::json!({"metadata": {"annotations": {HEAD_ANNOTATION: head}}});
        self.patch_record(record, &patch).await
    }

    /// Applies the merge `patch` to `record`'s Secret, which must exist.
    async fn patch_record(
        &self,
        record: &ReleaseRecord,
        patch: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let name = secret_name(&record.app, record.revision);
        match self
            .api()
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_is(&e, 404, None) => Err(StoreError::NotFound {
                app: record.app.clone(),
                revision: record.revision,
                namespace: self.namespace.clone(),
            }),
            Err(e) => Err(self.fail("update", &format!("Secret {name}"))(e)),
        }
    }

    /// Marks every other deployed record of `app` superseded.
    pub async fn supersede_others(&self, app: &str, current: u32) -> Result<(), StoreError> {
        let mut listed = self.metadata(app).await?;
        self.supersede_listed(app, current, &mut listed, None).await
    }

    /// [`ReleaseStore::supersede_others`] among the records `listed`, which are updated to
    /// say what was done (so [`ReleaseStore::trim_listed`] can follow without listing
    /// again); `known`, a record already read (the deployed one a sync replaces), is not
    /// read again.
    pub async fn supersede_listed(
        &self,
        app: &str,
        current: u32,
        listed: &mut [RecordMeta],
        known: Option<&ReleaseRecord>,
    ) -> Result<(), StoreError> {
        for meta in listed.iter_mut() {
            if meta.revision == current || !meta.has_status(ReleaseStatus::Deployed) {
                continue;
            }
            let record = match known {
                Some(known) if known.revision == meta.revision => Some(known.clone()),
                // An unreadable record stays as it is.
                _ => self.get(app, meta.revision).await.ok().flatten(),
            };
            if let Some(mut record) = record.filter(|r| r.status == ReleaseStatus::Deployed) {
                record.status = ReleaseStatus::Superseded;
                self.update(&record).await?;
                meta.rewritten(ReleaseStatus::Superseded);
            }
        }
        Ok(())
    }

    /// Deletes the oldest records beyond the newest `keep`, except the newest deployed one
    /// and pending ones young enough to belong to a running sync. Unreadable records count
    /// and are trimmed like the others (unless their name gives no revision). Returns the
    /// deleted revisions, newest first.
    ///
    /// Only metadata is listed: the status label and the Secret's creation time say all
    /// this needs, and no record (each a whole compressed manifest) is sent or decoded.
    pub async fn trim(&self, app: &str, keep: usize) -> Result<Vec<u32>, StoreError> {
        let listed = self.metadata(app).await?;
        self.trim_listed(keep, &listed).await
    }

    /// [`ReleaseStore::trim`] among the records `listed` (newest first, as
    /// [`ReleaseStore::metadata`] gives them).
    pub async fn trim_listed(
        &self,
        keep: usize,
        listed: &[RecordMeta],
    ) -> Result<Vec<u32>, StoreError> {
        let newest_deployed = listed
            .iter()
            .find(|m| m.has_status(ReleaseStatus::Deployed))
            .map(|m| m.revision);
        let now = jiff::Timestamp::now();
        let grace = jiff::SignedDuration::try_from(PENDING_GRACE).unwrap_or_default();
        let mut deleted = Vec::new();
        for meta in listed.iter().skip(keep) {
            if Some(meta.revision) == newest_deployed {
                continue;
            }
            if meta.has_status(ReleaseStatus::Pending)
                && meta.created.is_some_and(|c| now.duration_since(c) < grace)
            {
                continue;
            }
            // The preconditions keep a record rewritten since the listing.
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: meta.uid.clone(),
                    resource_version: meta.resource_version.clone(),
                }),
                ..DeleteParams::default()
            };
            match self.api().delete(&meta.name, &params).await {
                Ok(_) => deleted.push(meta.revision),
                Err(e) if status_is(&e, 404, None) || status_is(&e, 409, None) => {}
                Err(e) => {
                    return Err(self.fail("delete", &format!("Secret {}", meta.name))(e));
                }
            }
        }
        Ok(deleted)
    }

    /// Marks the records a crashed sync left pending as failed ([`INTERRUPTED`]). Call it
    /// only while holding the app's lock (then no other sync is running) and before
    /// writing this sync's own pending record. Returns the revisions it marked.
    pub async fn fail_stale_pending(&self, app: &str) -> Result<Vec<u32>, StoreError> {
        let listed = self.metadata(app).await?;
        self.fail_pending_listed(app, &listed).await
    }

    /// [`ReleaseStore::fail_stale_pending`] among the records `listed`: only those labelled
    /// pending are read.
    pub async fn fail_pending_listed(
        &self,
        app: &str,
        listed: &[RecordMeta],
    ) -> Result<Vec<u32>, StoreError> {
        let mut marked = Vec::new();
        for meta in listed
            .iter()
            .filter(|m| m.has_status(ReleaseStatus::Pending))
        {
            let Some(mut record) = self.get(app, meta.revision).await.ok().flatten() else {
                continue;
            };
            if record.status == ReleaseStatus::Pending {
                record.status = ReleaseStatus::Failed;
                record.error = Some(INTERRUPTED.to_string());
                self.update(&record).await?;
                marked.push(record.revision);
            }
        }
        marked.sort_by_key(|r| std::cmp::Reverse(*r));
        Ok(marked)
    }
}

mod overview;

pub use overview::{AppReleases, Read, list_all};

#[cfg(test)]
mod tests;
