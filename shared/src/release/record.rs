//! The release record: what one sync (or rollback, or heal) did, and how it is encoded.
//!
//! A record is JSON, gzip-compressed, as Helm stores its releases. Decoding accepts plain
//! JSON too (no gzip magic), so a record edited by hand still reads, and refuses records
//! written by a newer format instead of misreading them.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufWriter, Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};

use crate::error_text::one_line;
use crate::objects::ObjectKey;
use crate::render::{ChartInfo, JsonnetOptions};
use crate::source::CommitInfo;

mod stored_manifest;

pub use stored_manifest::StoredManifest;

/// The record format this version writes and the newest it reads.
pub const FORMAT: u32 = 1;

/// The most a record may expand to when decompressed. Real records are far smaller (a
/// Secret holds at most 1 MiB compressed); the limit keeps a gzip bomb from exhausting memory.
pub const MAX_DECODED_BYTES: u64 = 64 * 1024 * 1024;

/// Where a release stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReleaseStatus {
    /// Written before the first change; a sync that crashed leaves it so.
    Pending,
    Deployed,
    Failed,
    /// Was deployed; a later release replaced it.
    Superseded,
    /// Was deployed; a rollback to an earlier release replaced it.
    RolledBack,
    /// The last release of an app that was uninstalled.
    Uninstalled,
}

impl ReleaseStatus {
    /// The word used in JSON and in the status label.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseStatus::Pending => "pending",
            ReleaseStatus::Deployed => "deployed",
            ReleaseStatus::Failed => "failed",
            ReleaseStatus::Superseded => "superseded",
            ReleaseStatus::RolledBack => "rolled-back",
            ReleaseStatus::Uninstalled => "uninstalled",
        }
    }
}

impl fmt::Display for ReleaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What produced a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    Sync,
    Rollback,
    Heal,
    Uninstall,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Sync => "sync",
            Operation::Rollback => "rollback",
            Operation::Heal => "heal",
            Operation::Uninstall => "uninstall",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many objects ended up in each state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub created: usize,
    pub configured: usize,
    pub unchanged: usize,
    /// Deleted by this sync: the members pruned, and the objects deleted with a pruned
    /// CRD or Namespace ([`CASCADE_ACTION`]).
    pub pruned: usize,
    pub failed: usize,
    /// How many of `pruned` went with a pruned CRD or Namespace.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cascaded: usize,
}

/// The action recorded for an object that was not a member, deleted with a pruned CRD
/// (its custom resources) or Namespace (what it held).
pub const CASCADE_ACTION: &str = "pruned (cascade)";

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Counts {
    /// Counts the actions of `objects` (unknown action words are not counted).
    pub fn of(objects: &[ObjectResult]) -> Counts {
        let mut counts = Counts::default();
        for object in objects {
            match object.action.as_str() {
                "created" => counts.created += 1,
                "configured" => counts.configured += 1,
                "unchanged" => counts.unchanged += 1,
                "pruned" => counts.pruned += 1,
                CASCADE_ACTION => {
                    counts.pruned += 1;
                    counts.cascaded += 1;
                }
                "failed" => counts.failed += 1,
                _ => {}
            }
        }
        counts
    }
}

/// What happened to one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectResult {
    pub key: ObjectKey,
    /// `created`, `configured`, `unchanged`, `pruned`, `pruned (cascade)` or `failed`.
    pub action: String,
    pub health: Option<String>,
    pub message: Option<String>,
    /// The object's resourceVersion when the sync finished, and a hash of what the sync
    /// applied: while both still match, the object is known unchanged without a dry run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_hash: Option<String>,
    /// A hash of what our field manager owned of the object then (the fingerprint
    /// module's `owned_hash`): while it still matches, writes by others
    /// touched only fields we do not apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owned_hash: Option<String>,
}

impl ObjectResult {
    /// What a sync did to an object it did not apply (pruned, kept): no health, no marks.
    pub fn done(key: &ObjectKey, action: &str, message: Option<String>) -> ObjectResult {
        ObjectResult {
            key: key.clone(),
            action: action.into(),
            health: None,
            message,
            resource_version: None,
            applied_hash: None,
            owned_hash: None,
        }
    }
}

/// One release of an app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// The record format ([`FORMAT`]).
    pub format: u32,
    pub app: String,
    /// The namespace holding the record (the app's namespace).
    pub namespace: String,
    pub revision: u32,
    pub operation: Operation,
    /// For a rollback: the revision whose manifest it re-applied.
    pub rollback_of: Option<u32>,
    pub description: String,
    pub repo: Option<String>,
    pub path: String,
    pub renderer: String,
    /// The newest commit whose objects this release holds.
    pub commit: Option<CommitInfo>,
    /// Every commit this release covers, newest first (the first is `commit`): those after
    /// the commit of the release it replaced, as `git log PREVIOUS..COMMIT` lists them,
    /// and later commits a sync found with the same objects. At most [`COMMITS_LISTED`];
    /// `commits_left_out` counts the rest. Empty in older records and without git.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<CommitInfo>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub commits_left_out: usize,
    /// The last time a sync found the cluster already as this release has it, and so
    /// recorded no release of its own (see the sync flow's no-op rule).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_synced: Option<jiff::Timestamp>,
    /// The kubeconfig user (or `--as`) who ran it.
    pub who: String,
    pub started: jiff::Timestamp,
    pub finished: Option<jiff::Timestamp>,
    pub status: ReleaseStatus,
    pub counts: Counts,
    pub objects: Vec<ObjectResult>,
    pub error: Option<String>,
    /// The rendered manifest exactly as applied (labels included), multi-document YAML, so
    /// rollback needs no git.
    pub manifest: StoredManifest,
    /// The hooks this release ran, in the order they started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<HookRun>,
    /// A digest of the revision's hooks (see the hooks module's `digest`): a sync whose
    /// objects are unchanged runs its hooks, and records a release, only when they differ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks_digest: Option<String>,
    /// A digest of the files the objects were rendered from, when those files alone
    /// decide them (see `render::source_digest`): a later sync of the same files can
    /// prove the app unchanged from this release without rendering them again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<String>,
    /// Extras with stable key names, absent from older records: [`CHART_KEY`] holds the
    /// Helm chart and values of a chart's release ([`ChartInfo`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// The most commits a record lists (a first sync of a long history, a branch far ahead).
pub const COMMITS_LISTED: usize = 100;

/// The key of [`ReleaseRecord::extra`] holding a chart's [`ChartInfo`]. Kept in the
/// extras, so rollbacks and heals, which copy them, keep it too.
pub const CHART_KEY: &str = "chart";

/// The [`Release::extra`] key of the Jsonnet options a release was rendered with, so a
/// later render of its revision (drift against git) gives the same objects.
pub const JSONNET_KEY: &str = "jsonnet";

impl ReleaseRecord {
    /// The chart this release was rendered from and its values; `None` for a path that
    /// is not a chart, and for a chart entry this version cannot read.
    pub fn chart(&self) -> Option<ChartInfo> {
        let value = self.extra.get(CHART_KEY)?;
        serde_json::from_value(value.clone()).ok()
    }

    /// What a listing of apps shows of this release: the record without its objects,
    /// manifest and hooks, and with its chart's name, version, files and the keys of its
    /// `--set` flags but none of their values. A head reads as a record ([`decode`]), so a
    /// listing maps it as it maps a whole one; it is never a release to apply.
    pub fn head(&self) -> ReleaseRecord {
        let chart = self.chart().map(|chart| ChartInfo {
            set: chart.set_keys(),
            values: serde_json::Value::Null,
            ..chart
        });
        ReleaseRecord {
            format: self.format,
            app: self.app.clone(),
            namespace: self.namespace.clone(),
            revision: self.revision,
            operation: self.operation,
            rollback_of: self.rollback_of,
            description: self.description.clone(),
            repo: self.repo.clone(),
            path: self.path.clone(),
            renderer: self.renderer.clone(),
            commit: self.commit.clone(),
            commits: self.commits.clone(),
            commits_left_out: self.commits_left_out,
            last_synced: self.last_synced,
            who: self.who.clone(),
            started: self.started,
            finished: self.finished,
            status: self.status,
            counts: self.counts.clone(),
            objects: Vec::new(),
            error: self.error.clone(),
            manifest: StoredManifest::new(""),
            hooks: Vec::new(),
            hooks_digest: None,
            source_digest: self.source_digest.clone(),
            extra: chart
                .and_then(|chart| serde_json::to_value(chart).ok())
                .map(|chart| BTreeMap::from([(CHART_KEY.to_string(), chart)]))
                .unwrap_or_default(),
        }
    }

    /// The Jsonnet options the release was rendered with ([`JSONNET_KEY`]), if any.
    pub fn jsonnet(&self) -> Option<JsonnetOptions> {
        let value = self.extra.get(JSONNET_KEY)?;
        serde_json::from_value(value.clone()).ok()
    }

    /// Adds `newer` (newest first, `newer_left_out` more beyond them) before the commits
    /// this release covers already, and makes the newest its `commit`: a sync of a later
    /// commit found the same objects. A commit already listed is not listed twice.
    pub fn cover_newer(&mut self, newer: &[CommitInfo], newer_left_out: usize) {
        let Some(newest) = newer.first() else {
            return;
        };
        let mut commits: Vec<CommitInfo> = newer.to_vec();
        let older = if self.commits.is_empty() {
            self.commit.iter().cloned().collect()
        } else {
            std::mem::take(&mut self.commits)
        };
        commits.extend(older.into_iter().filter(|c| !newer.contains(c)));
        let left_out = commits.len().saturating_sub(COMMITS_LISTED);
        commits.truncate(COMMITS_LISTED);
        self.commit = Some(newest.clone());
        self.commits = commits;
        self.commits_left_out += newer_left_out + left_out;
    }
}

impl ReleaseRecord {
    /// A record about to be written as pending: started now, no results yet. The store
    /// assigns the revision.
    pub fn start(
        app: &str,
        namespace: &str,
        operation: Operation,
        who: &str,
        manifest: StoredManifest,
    ) -> ReleaseRecord {
        ReleaseRecord {
            format: FORMAT,
            app: app.to_string(),
            namespace: namespace.to_string(),
            revision: 0,
            operation,
            rollback_of: None,
            description: String::new(),
            repo: None,
            path: String::new(),
            renderer: String::new(),
            commit: None,
            commits: Vec::new(),
            commits_left_out: 0,
            last_synced: None,
            who: who.to_string(),
            started: jiff::Timestamp::now(),
            finished: None,
            status: ReleaseStatus::Pending,
            counts: Counts::default(),
            objects: Vec::new(),
            error: None,
            manifest,
            hooks: Vec::new(),
            hooks_digest: None,
            source_digest: None,
            extra: BTreeMap::new(),
        }
    }
}

/// One run of a hook: created, waited for, and perhaps deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookRun {
    /// The object as created (a generated name as the server chose it).
    pub key: ObjectKey,
    /// `PreSync`, `Sync`, `PostSync`, `SyncFail`, `PreDelete` or `PostDelete`.
    pub stage: String,
    /// The annotation words that made it run: `PreSync`, `pre-install`.
    pub events: String,
    /// `succeeded`, `failed`, `timed-out` or `interrupted`.
    pub result: String,
    pub started: jiff::Timestamp,
    pub duration_ms: u64,
    /// Why it failed (the Job's failure condition, the Pod's termination message), or
    /// what it was doing when the time ran out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Deleted after it ran, by its delete policy.
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot encode the release record: {0}")]
    Encode(String),
    #[error("the release record is not valid gzip: {0}")]
    Gzip(String),
    #[error(
        "the release record expands to more than {} MiB; refusing to read it",
        MAX_DECODED_BYTES / (1024 * 1024)
    )]
    TooLarge,
    #[error("the release record is not valid JSON: {0}")]
    Json(String),
    #[error("the release record has no format number; it was not written by kubectl-gitops")]
    NoFormat,
    #[error(
        "the release record was written by a newer kubectl-gitops (format {0}); upgrade to read it"
    )]
    NewerFormat(u32),
    #[error("the release record has an unknown format {0}")]
    UnknownFormat(u32),
}

/// gzip(JSON), as stored in the record Secret's `release` key.
pub fn encode(record: &ReleaseRecord) -> Result<Vec<u8>, RecordError> {
    encode_within(record, usize::MAX)
}

/// [`encode`], compressed harder when the fast level leaves more than `limit` bytes (a
/// Secret holds 1 MiB): a record of 10,000 objects, with two hashes each that do not
/// compress, comes close to it at the fast level.
pub fn encode_within(record: &ReleaseRecord, limit: usize) -> Result<Vec<u8>, RecordError> {
    // The fast level first: a sync writes up to two records (its own, the one it
    // supersedes), each holding a whole manifest; the default level took three times as
    // long to save about a tenth of the size.
    let fast = gzip(record, Compression::fast())?;
    if fast.len() <= limit {
        return Ok(fast);
    }
    gzip(record, Compression::best())
}

/// `record` as gzip-compressed JSON, serialized straight into the compressor: the JSON of
/// a 10,000-object record (~11 MB) is never held whole.
fn gzip(record: &ReleaseRecord, level: Compression) -> Result<Vec<u8>, RecordError> {
    let encode_error = |e: &dyn fmt::Display| RecordError::Encode(e.to_string());
    let mut encoder = GzEncoder::new(Vec::new(), level);
    {
        // serde_json writes a few bytes at a time; the compressor wants them in blocks.
        let mut buffered = BufWriter::with_capacity(64 * 1024, &mut encoder);
        serde_json::to_writer(&mut buffered, record).map_err(|e| encode_error(&e))?;
        buffered.flush().map_err(|e| encode_error(&e))?;
    }
    encoder.finish().map_err(|e| encode_error(&e))
}

/// The most bytes a record's [head](ReleaseRecord::head) may take as JSON: it rides on the
/// record Secret as an annotation, and every listing of records carries it.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// `record`'s [head](ReleaseRecord::head) as JSON, when it is within [`MAX_HEAD_BYTES`].
pub fn encode_head(record: &ReleaseRecord) -> Option<String> {
    serde_json::to_string(&record.head())
        .ok()
        .filter(|json| json.len() <= MAX_HEAD_BYTES)
}

/// Reads a record written by [`encode`], or plain JSON.
pub fn decode(bytes: &[u8]) -> Result<ReleaseRecord, RecordError> {
    let json = if bytes.starts_with(&[0x1f, 0x8b]) {
        gunzip_bounded(bytes, MAX_DECODED_BYTES)?
    } else if bytes.len() as u64 > MAX_DECODED_BYTES {
        return Err(RecordError::TooLarge);
    } else {
        bytes.to_vec()
    };
    // The format is read on its own first, so a newer record is refused by name rather
    // than failing on whichever field changed shape.
    #[derive(Deserialize)]
    struct Probe {
        format: Option<u32>,
    }
    // serde quotes unknown enum words as they are: keep a hostile record's error one line.
    let json_error = |e: serde_json::Error| RecordError::Json(one_line(&e.to_string()));
    let probe: Probe = serde_json::from_slice(&json).map_err(json_error)?;
    match probe.format {
        None => return Err(RecordError::NoFormat),
        Some(FORMAT) => {}
        Some(newer) if newer > FORMAT => return Err(RecordError::NewerFormat(newer)),
        Some(other) => return Err(RecordError::UnknownFormat(other)),
    }
    serde_json::from_slice(&json).map_err(json_error)
}

/// Decompresses at most `limit` bytes; more is an error, found after reading one byte
/// past the limit rather than after expanding everything.
fn gunzip_bounded(bytes: &[u8], limit: u64) -> Result<Vec<u8>, RecordError> {
    // Sized from the gzip trailer (the size it expands to, modulo 2^32), within the limit and
    // what deflate can expand the input to: grown by doubling, the buffer of a 10,000-object
    // record took 16 MB for 11 MB.
    let stated = bytes
        .last_chunk::<4>()
        .map_or(0, |size| u64::from(u32::from_le_bytes(*size)));
    let capacity = stated.min(limit).min(bytes.len() as u64 * 1032);
    let mut out = Vec::with_capacity(usize::try_from(capacity).unwrap_or(0));
    GzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| RecordError::Gzip(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(RecordError::TooLarge);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sample() -> ReleaseRecord {
        let mut record = ReleaseRecord::start(
            "web",
            "apps",
            Operation::Sync,
            "alice",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n".into(),
        );
        record.revision = 3;
        record.repo = Some("https://example.com/repo.git".into());
        record.path = "deploy/web".into();
        record.renderer = "plain".into();
        record.commit = Some(CommitInfo {
            id: "0123456789abcdef0123456789abcdef01234567".into(),
            short_id: "0123456".into(),
            subject: "Bump the image".into(),
            author_name: "Alice".into(),
            author_email: "alice@example.com".into(),
            time: 1_700_000_000,
        });
        record.finished = Some(record.started);
        record.status = ReleaseStatus::Deployed;
        record.objects = vec![ObjectResult {
            key: ObjectKey {
                group: String::new(),
                kind: "ConfigMap".into(),
                namespace: Some("apps".into()),
                name: "a".into(),
            },
            action: "created".into(),
            health: Some("Current".into()),
            message: None,
            resource_version: None,
            applied_hash: None,
            owned_hash: None,
        }];
        record.counts = Counts::of(&record.objects);
        record
            .extra
            .insert("chart".into(), serde_json::json!({"name": "web"}));
        record
    }

    #[test]
    fn encode_then_decode_gives_the_same_record() {
        let record = sample();
        let bytes = encode(&record).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip magic");
        assert_eq!(decode(&bytes).unwrap(), record);
        assert_eq!(record.counts.created, 1);
    }

    #[test]
    fn statuses_and_operations_use_kebab_case_words() {
        let json = serde_json::to_value(sample()).unwrap();
        assert_eq!(json["status"], "deployed");
        assert_eq!(json["operation"], "sync");
        assert_eq!(
            serde_json::to_value(ReleaseStatus::RolledBack).unwrap(),
            "rolled-back"
        );
        assert_eq!(ReleaseStatus::RolledBack.to_string(), "rolled-back");
        assert_eq!(Operation::Heal.to_string(), "heal");
    }

    #[test]
    fn plain_json_is_accepted() {
        let record = sample();
        let json = serde_json::to_vec_pretty(&record).unwrap();
        assert_eq!(decode(&json).unwrap(), record);
    }

    #[test]
    fn empty_extra_is_left_out_and_may_be_missing() {
        let mut record = sample();
        record.extra.clear();
        let json = serde_json::to_value(&record).unwrap();
        assert!(json.get("extra").is_none(), "{json}");
        assert_eq!(decode(json.to_string().as_bytes()).unwrap(), record);
    }

    #[test]
    fn a_newer_format_is_refused_by_name() {
        let mut json = serde_json::to_value(sample()).unwrap();
        json["format"] = 2.into();
        json["objects"] = "changed shape in format 2".into();
        let err = decode(json.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, RecordError::NewerFormat(2)), "{err:?}");
        assert!(
            err.to_string()
                .contains("written by a newer kubectl-gitops (format 2)"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_bytes_are_errors() {
        let bytes = encode(&sample()).unwrap();
        let truncated = &bytes[..bytes.len() / 2];
        assert!(matches!(decode(truncated), Err(RecordError::Gzip(_))));
        assert!(matches!(
            decode(&[0x1f, 0x8b, 0, 1, 2, 3]),
            Err(RecordError::Gzip(_))
        ));
        assert!(matches!(decode(b"not json"), Err(RecordError::Json(_))));
        assert!(matches!(decode(b""), Err(RecordError::Json(_))));
        assert!(matches!(decode(b"{}"), Err(RecordError::NoFormat)));
        assert!(matches!(
            decode(br#"{"format": 1}"#),
            Err(RecordError::Json(_))
        ));
        assert!(matches!(
            decode(br#"{"format": 0}"#),
            Err(RecordError::UnknownFormat(0))
        ));
    }

    fn commit(id: &str) -> CommitInfo {
        CommitInfo {
            id: id.repeat(40),
            short_id: id.repeat(7),
            subject: format!("commit {id}"),
            author_name: "Ada".into(),
            author_email: "ada@example.com".into(),
            time: 0,
        }
    }

    #[test]
    fn a_later_commit_with_the_same_objects_is_covered_newest_first() {
        let mut record = sample();
        record.commit = Some(commit("a"));
        // An older record lists no commits: its one commit counts.
        record.cover_newer(&[commit("c"), commit("b")], 0);
        assert_eq!(record.commit, Some(commit("c")));
        assert_eq!(record.commits, [commit("c"), commit("b"), commit("a")]);
        record.cover_newer(&[commit("d"), commit("c")], 2);
        assert_eq!(
            record.commits,
            [commit("d"), commit("c"), commit("b"), commit("a")]
        );
        assert_eq!(record.commits_left_out, 2);
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["commits"].as_array().unwrap().len(), 4);
        assert_eq!(decode(&encode(&record).unwrap()).unwrap(), record);
        // Without commits, nothing changes.
        record.cover_newer(&[], 0);
        assert_eq!(record.commit, Some(commit("d")));
    }

    /// A record of a 10,000-object sync, as the benchmark's fixture makes them: a
    /// manifest of ConfigMaps, Secrets, Services and Deployments with pod templates, and
    /// for each object a resourceVersion and two hashes (which do not compress).
    fn ten_thousand_objects() -> ReleaseRecord {
        use sha2::{Digest, Sha256};
        let hash = |seed: String| {
            // 128 bits in hex, as the fingerprint module writes them.
            Sha256::digest(seed.as_bytes())
                .iter()
                .take(16)
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        let mut manifest = String::new();
        let mut objects = Vec::new();
        for i in 0..10_000 {
            let kind = ["ConfigMap", "Secret", "Service", "Deployment"][i % 4];
            let name = format!("{}-{i:05}", kind.to_lowercase());
            let namespace = format!("ns{}", i % 10);
            let value = &hash(format!("value {i}"))[..12];
            manifest.push_str(&format!(
                "---\napiVersion: v1\nkind: {kind}\nmetadata:\n  name: {name}\n  namespace: {namespace}\n  labels:\n    app.kubernetes.io/name: {name}\n    tier: t{}\n",
                i % 7
            ));
            if kind == "Deployment" {
                manifest.push_str(&format!(
                    "spec:\n  replicas: 0\n  selector:\n    matchLabels: {{app: {name}}}\n  template:\n    metadata:\n      labels: {{app: {name}}}\n    spec:\n      containers:\n      - name: main\n        image: registry.example.com/team/{name}:{}\n        ports:\n        - {{name: http, containerPort: 8080}}\n        env:\n        - {{name: MODE, value: production}}\n        resources:\n          requests: {{cpu: 50m, memory: 64Mi}}\n        readinessProbe:\n          httpGet: {{path: /ready, port: http}}\n",
                    i % 9
                ));
            } else {
                manifest.push_str(&format!("data:\n  key: value-{value}\n"));
            }
            objects.push(ObjectResult {
                key: ObjectKey {
                    group: if kind == "Deployment" { "apps" } else { "" }.into(),
                    kind: kind.into(),
                    namespace: Some(namespace),
                    name,
                },
                action: "created".into(),
                health: None,
                message: None,
                resource_version: Some(format!("{}", 100_000 + i * 3)),
                applied_hash: Some(hash(format!("applied {i}"))),
                owned_hash: Some(hash(format!("owned {i}"))),
            });
        }
        let mut record = sample();
        record.manifest = manifest.into();
        record.objects = objects;
        record.counts = Counts::of(&record.objects);
        record
    }

    #[test]
    fn the_record_of_ten_thousand_objects_fits_a_secret() {
        let record = ten_thousand_objects();
        let limit = 1024 * 1024;
        let bytes = encode_within(&record, limit).unwrap();
        assert!(bytes.len() <= limit, "{} bytes", bytes.len());
        assert_eq!(decode(&bytes).unwrap(), record);
    }

    #[test]
    fn a_record_is_compressed_harder_only_when_the_fast_level_does_not_fit() {
        let record = ten_thousand_objects();
        let fast = encode(&record).unwrap();
        assert_eq!(encode_within(&record, fast.len()).unwrap(), fast);
        let harder = encode_within(&record, fast.len() - 1).unwrap();
        assert!(harder.len() < fast.len(), "{} {}", harder.len(), fast.len());
        assert_eq!(decode(&harder).unwrap(), record);
    }

    #[test]
    fn a_gzip_bomb_is_refused_quickly() {
        // 80 MiB of zeros compress to about 80 KiB: a Secret holds far worse.
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        let zeros = vec![0u8; 1024 * 1024];
        for _ in 0..80 {
            encoder.write_all(&zeros).unwrap();
        }
        let bomb = encoder.finish().unwrap();
        assert!(bomb.len() < 2 * 1024 * 1024, "{}", bomb.len());
        let started = std::time::Instant::now();
        assert!(matches!(decode(&bomb), Err(RecordError::TooLarge)));
        // Stops at the limit rather than expanding everything.
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }
}
