//! Release decoding: our records (`record::decode`, and `encode` back) and Helm's
//! (`helm::decode`, `helm::read_secret`).

use std::collections::BTreeMap;
use std::io::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::write::GzEncoder;
use gitops::objects::ObjectKey;
use gitops::release::helm;
use gitops::release::record::{
    self, Counts, ObjectResult, Operation, ReleaseRecord, ReleaseStatus,
};
use gitops::source::CommitInfo;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::ObjectMeta;
use proptest::prelude::*;
use serde_json::Value;

use crate::support::{assert_one_line, bounded, config, corpus, tricky_string};

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn check_record(bytes: &[u8]) {
    if let Err(err) = bounded("record::decode", || record::decode(bytes)) {
        assert_one_line(&err);
    }
}

/// `helm::decode`, and `read_secret` on a release Secret holding the bytes (which also
/// compares the body with the Secret's name).
fn check_helm(bytes: &[u8]) {
    if let Err(err) = bounded("helm::decode", || helm::decode(bytes)) {
        assert_one_line(&err);
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(helm::secret_name("web", 1)),
            ..ObjectMeta::default()
        },
        type_: Some(helm::RELEASE_TYPE.into()),
        data: Some(BTreeMap::from([(
            helm::DATA_KEY.to_string(),
            ByteString(bytes.to_vec()),
        )])),
        ..Secret::default()
    };
    if let Err(err) = bounded("helm::read_secret", || helm::read_secret(&secret, "ns")) {
        assert_one_line(&err);
    }
}

/// The ways one input reaches a decoder: as it is, gzipped, base64 of it, base64 of gzip.
fn wrappings(bytes: &[u8]) -> [Vec<u8>; 4] {
    let zipped = gzip(bytes);
    [
        bytes.to_vec(),
        STANDARD.encode(bytes).into_bytes(),
        STANDARD.encode(&zipped).into_bytes(),
        zipped,
    ]
}

fn timestamp() -> impl Strategy<Value = jiff::Timestamp> {
    (0i64..4_000_000_000, 0i32..1_000_000_000)
        .prop_map(|(s, n)| jiff::Timestamp::new(s, n).unwrap())
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        tricky_string().prop_map(Value::String),
    ]
}

fn object_result() -> impl Strategy<Value = ObjectResult> {
    (
        (
            tricky_string(),
            tricky_string(),
            prop::option::of(tricky_string()),
            tricky_string(),
        ),
        tricky_string(),
        (
            prop::option::of(tricky_string()),
            prop::option::of(tricky_string()),
        ),
        (
            prop::option::of(tricky_string()),
            prop::option::of("[0-9a-f]{64}"),
            prop::option::of("[0-9a-f]{32}"),
        ),
    )
        .prop_map(
            |(
                (group, kind, namespace, name),
                action,
                (health, message),
                (resource_version, applied_hash, owned_hash),
            )| ObjectResult {
                key: ObjectKey {
                    group,
                    kind,
                    namespace,
                    name,
                },
                action,
                health,
                message,
                resource_version,
                applied_hash,
                owned_hash,
            },
        )
}

fn commit() -> impl Strategy<Value = CommitInfo> {
    (
        "[0-9a-f]{40}",
        tricky_string(),
        tricky_string(),
        tricky_string(),
        any::<i64>(),
    )
        .prop_map(
            |(id, subject, author_name, author_email, time)| CommitInfo {
                short_id: id[..7].to_string(),
                id,
                subject,
                author_name,
                author_email,
                time,
            },
        )
}

fn record() -> impl Strategy<Value = ReleaseRecord> {
    let status = prop::sample::select(vec![
        ReleaseStatus::Pending,
        ReleaseStatus::Deployed,
        ReleaseStatus::Failed,
        ReleaseStatus::Superseded,
        ReleaseStatus::RolledBack,
    ]);
    let operation =
        prop::sample::select(vec![Operation::Sync, Operation::Rollback, Operation::Heal]);
    (
        (
            tricky_string(),
            tricky_string(),
            any::<u32>(),
            operation,
            any::<Option<u32>>(),
        ),
        (
            tricky_string(),
            prop::option::of(tricky_string()),
            tricky_string(),
        ),
        (
            prop::option::of(commit()),
            tricky_string(),
            timestamp(),
            prop::option::of(timestamp()),
        ),
        (status, prop::collection::vec(object_result(), 0..4)),
        (prop::option::of(tricky_string()), any::<String>()),
        prop::collection::btree_map(tricky_string(), json_leaf(), 0..3),
    )
        .prop_map(
            |(
                (app, namespace, revision, operation, rollback_of),
                (description, repo, path),
                (commit, who, started, finished),
                (status, objects),
                (error, manifest),
                extra,
            )| {
                let mut record =
                    ReleaseRecord::start(&app, &namespace, operation, &who, manifest.into());
                record.revision = revision;
                record.rollback_of = rollback_of;
                record.description = description;
                record.repo = repo;
                record.path = path;
                record.renderer = "plain".into();
                record.commit = commit;
                record.started = started;
                record.finished = finished;
                record.status = status;
                record.counts = Counts::of(&objects);
                record.objects = objects;
                record.error = error;
                record.extra = extra;
                record
            },
        )
}

/// A record's JSON with one field replaced by something else, or cut short.
fn mangled_record() -> impl Strategy<Value = Vec<u8>> {
    let field = prop::sample::select(vec![
        "format",
        "app",
        "revision",
        "operation",
        "status",
        "started",
        "finished",
        "counts",
        "objects",
        "commit",
        "manifest",
        "extra",
        "who",
    ]);
    (
        record(),
        field,
        json_leaf(),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(record, field, replacement, cut, truncate)| {
            let mut json = serde_json::to_value(&record).unwrap();
            json[field] = replacement;
            let text = serde_json::to_vec(&json).unwrap();
            if truncate {
                text[..cut.index(text.len() + 1)].to_vec()
            } else {
                text
            }
        })
}

/// A Helm release's JSON with nonsense in its fields.
fn helm_json() -> impl Strategy<Value = Vec<u8>> {
    (
        json_leaf(),
        json_leaf(),
        json_leaf(),
        json_leaf(),
        json_leaf(),
        tricky_string(),
    )
        .prop_map(|(name, version, info, chart, manifest, status)| {
            let mut json = serde_json::json!({
                "name": "web", "version": 1, "namespace": "ns",
                "info": {"status": status, "first_deployed": "2024-05-01T10:00:00Z"},
                "chart": {"metadata": {"name": "c", "version": "1.0.0"}},
                "manifest": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            });
            for (field, value) in [
                ("name", name),
                ("version", version),
                ("info", info),
                ("chart", chart),
                ("manifest", manifest),
            ] {
                if !value.is_null() {
                    json[field] = value;
                }
            }
            serde_json::to_vec(&json).unwrap()
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn record_encode_then_decode_gives_the_same_record(record in record()) {
        let bytes = record::encode(&record).unwrap();
        prop_assert_eq!(record::decode(&bytes).unwrap(), record);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        for wrapped in wrappings(&bytes) {
            check_record(&wrapped);
            check_helm(&wrapped);
        }
    }

    #[test]
    fn mangled_records_never_panic(bytes in mangled_record()) {
        for wrapped in wrappings(&bytes) {
            check_record(&wrapped);
        }
    }

    #[test]
    fn mangled_helm_releases_never_panic(bytes in helm_json()) {
        for wrapped in wrappings(&bytes) {
            check_helm(&wrapped);
        }
    }

    #[test]
    fn corrupted_gzip_never_panics(record in record(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = record::encode(&record).unwrap();
        let i = at.index(bytes.len());
        bytes[i] ^= byte | 1;
        check_record(&bytes);
        check_helm(&STANDARD.encode(&bytes).into_bytes());
    }
}

#[test]
fn corpus_of_nasty_records() {
    for (_, bytes) in corpus("records") {
        for wrapped in wrappings(&bytes) {
            check_record(&wrapped);
        }
    }
}

#[test]
fn corpus_of_nasty_helm_releases() {
    for (_, bytes) in corpus("helm") {
        for wrapped in wrappings(&bytes) {
            check_helm(&wrapped);
        }
    }
}
