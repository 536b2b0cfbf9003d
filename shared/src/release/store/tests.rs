//! Unit tests of the store's pure parts; the cluster parts are in tests/e2e/release_store.rs.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::release::record::Operation;

#[test]
fn the_revision_comes_from_the_name_then_the_label() {
    let labels = BTreeMap::from([(REVISION_LABEL.to_string(), "7".to_string())]);
    assert_eq!(revision_of("web.r12", "web", &labels), Some(12));
    assert_eq!(revision_of("web.rx", "web", &labels), Some(7));
    assert_eq!(revision_of("web.rx", "web", &BTreeMap::new()), None);
    assert_eq!(revision_of("webby.r3", "web", &BTreeMap::new()), None);
}

fn secret_of(record: &ReleaseRecord) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(secret_name(&record.app, record.revision)),
            labels: Some(labels(record)),
            ..ObjectMeta::default()
        },
        type_: Some(RELEASE_TYPE.into()),
        data: Some(BTreeMap::from([(
            DATA_KEY.to_string(),
            ByteString(record::encode(record).unwrap()),
        )])),
        ..Secret::default()
    }
}

#[test]
fn a_record_secret_reads_back_and_mismatches_are_unreadable() {
    let mut record = ReleaseRecord::start("web", "apps", Operation::Sync, "me", Default::default());
    record.revision = 4;
    let entry = read_secret(secret_of(&record), "apps", "web");
    assert_eq!(entry.revision, Some(4));
    assert_eq!(entry.record.unwrap(), record);

    let mut renamed = secret_of(&record);
    renamed.metadata.name = Some("web.r5".into());
    let err = read_secret(renamed, "apps", "web").record.unwrap_err();
    assert_eq!(err.revision, Some(5));
    assert!(err.reason.contains("does not match its name"), "{err}");

    let mut opaque = secret_of(&record);
    opaque.type_ = Some("Opaque".into());
    let err = read_secret(opaque, "apps", "web").record.unwrap_err();
    assert!(err.to_string().contains("its type is Opaque"), "{err}");

    let mut corrupt = secret_of(&record);
    corrupt.data = Some(BTreeMap::from([(
        DATA_KEY.to_string(),
        ByteString(b"garbage".to_vec()),
    )]));
    let err = read_secret(corrupt, "apps", "web").record.unwrap_err();
    assert!(err.to_string().contains("apps/web.r4"), "{err}");
    assert!(err.reason.contains("not valid JSON"), "{err}");
}

#[test]
fn forbidden_names_the_verb_and_namespace() {
    let err = StoreError::Forbidden {
        verb: "list".into(),
        namespace: Some("team-a".into()),
        message: "secrets is forbidden".into(),
    };
    let text = err.to_string();
    assert!(
        text.starts_with("cannot list Secrets in namespace team-a: secrets is forbidden"),
        "{text}"
    );
    assert!(text.contains("release records are Secrets"), "{text}");
    assert_eq!(err.code(), Some(403));
}
