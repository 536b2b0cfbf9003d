//! Mapping both sources into the common model, and the errors it reports.
#![allow(clippy::unwrap_used)]

use super::*;
use crate::release::helm::{Chart, ChartMetadata, Info};
use crate::release::record::{Operation, ReleaseStatus};

fn record() -> ReleaseRecord {
    let mut record = ReleaseRecord::start("shop", "apps", Operation::Rollback, "alice", "m".into());
    record.revision = 4;
    record.rollback_of = Some(2);
    record.status = ReleaseStatus::Deployed;
    record.started = "2025-01-02T03:04:05Z".parse().unwrap();
    record.finished = Some("2025-01-02T03:04:09.2504Z".parse().unwrap());
    record.path = "deploy".into();
    record.commit = Some(CommitInfo {
        id: "0123456789abcdef0123456789abcdef01234567".into(),
        short_id: "0123456".into(),
        subject: "Bump".into(),
        author_name: "Ada".into(),
        author_email: "ada@example.com".into(),
        time: 1_700_000_000,
    });
    record.extra.insert(
        "chart".into(),
        serde_json::json!({"name": "web", "version": "1.0.0", "values_files": ["env/prod.yaml"],
            "set": ["image.tag=v2,token=s3cret"], "values": {"token": "s3cret"}}),
    );
    record
}

#[test]
fn our_records_map_with_duration_and_operation() {
    let release = Release::from_record(record());
    assert_eq!(release.source, Source::Gitops);
    assert_eq!(release.revision, 4);
    assert_eq!(release.status, "deployed");
    assert_eq!(release.operation.as_deref(), Some("rollback"));
    assert_eq!(release.rollback_of, Some(2));
    assert_eq!(release.duration_seconds, Some(4.25));
    assert_eq!(release.updated, release.finished);
    assert_eq!(release.who.as_deref(), Some("alice"));
    assert_eq!(release.path.as_deref(), Some("deploy"));
    assert_eq!(release.renderer, None);
    assert_eq!(
        release.chart,
        Some(ChartRef {
            name: "web".into(),
            version: "1.0.0".into(),
            repository: None,
            digest: None,
        })
    );
    assert_eq!(
        release.values_files,
        Some(vec!["env/prod.yaml".to_string()])
    );
    assert_eq!(
        release.set_keys,
        Some(vec!["image.tag".to_string(), "token".to_string()])
    );
    assert_eq!(release.values, Some(serde_json::json!({"token": "s3cret"})));
    assert!(!serde_json::to_string(&release).unwrap().contains("s3cret"));

    // Records of paths that are not charts, and older records, have none of it.
    let mut plain = record();
    plain.extra.clear();
    let release = Release::from_record(plain);
    assert_eq!(
        (release.chart, release.values_files, release.values),
        (None, None, None)
    );

    let mut pending = record();
    pending.finished = None;
    let release = Release::from_record(pending);
    assert_eq!(release.updated, release.started);
    assert_eq!(release.duration_seconds, None);
}

#[test]
fn a_records_head_lists_as_the_whole_record_does_and_holds_no_value() {
    let mut whole = record();
    whole.manifest = crate::release::record::StoredManifest::new(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter2\n",
    );
    whole
        .objects
        .push(crate::release::record::ObjectResult::done(
            &ObjectKey {
                group: String::new(),
                kind: "Secret".into(),
                namespace: Some("apps".into()),
                name: "db".into(),
            },
            "created",
            None,
        ));
    let json = crate::release::record::encode_head(&whole).unwrap();
    for value in ["s3cret", "hunter2", "Secret"] {
        assert!(!json.contains(value), "{value} is in the head: {json}");
    }
    let head = crate::release::record::decode(json.as_bytes()).unwrap();
    assert!(head.objects.is_empty() && head.manifest.text().is_empty());
    // What `release-history -o json` prints of an app's newest release is the same.
    assert_eq!(
        serde_json::to_value(Release::from_record(head)).unwrap(),
        serde_json::to_value(Release::from_record(whole)).unwrap()
    );

    // A head that would make every listing large is left off: the record is read instead.
    let mut long = record();
    long.error = Some("x".repeat(crate::release::record::MAX_HEAD_BYTES));
    assert_eq!(crate::release::record::encode_head(&long), None);
}

#[test]
fn helm_releases_map_with_chart_and_times() {
    let release = Release::from_helm(HelmRelease {
        name: "web".into(),
        namespace: "apps".into(),
        version: 3,
        info: Info {
            last_deployed: "2024-05-02T11:30:00Z".into(),
            deleted: "0001-01-01T00:00:00Z".into(),
            description: "Upgrade complete".into(),
            status: "superseded".into(),
            ..Info::default()
        },
        chart: Chart {
            metadata: ChartMetadata {
                name: "nginx".into(),
                version: "15.1.0".into(),
                app_version: "1.25.3".into(),
            },
        },
        manifest: "m".into(),
        config: serde_json::json!({"password": "hunter2"}),
    });
    assert_eq!(release.source, Source::Helm);
    assert_eq!((release.app.as_str(), release.revision), ("web", 3));
    assert_eq!(release.status, "superseded");
    assert_eq!(
        release.updated.map(|t| t.to_string()).as_deref(),
        Some("2024-05-02T11:30:00Z")
    );
    assert_eq!(release.deleted, None);
    assert_eq!(release.app_version.as_deref(), Some("1.25.3"));
    assert_eq!(release.chart.as_ref().unwrap().version, "15.1.0");
    assert_eq!(release.who, None);
    assert_eq!(
        release.values,
        Some(serde_json::json!({"password": "hunter2"}))
    );
    assert!(
        !serde_json::to_string(&release).unwrap().contains("hunter2"),
        "values are printed only when asked"
    );
    let unknown = Release::from_helm(HelmRelease::default());
    assert_eq!(unknown.status, "unknown");
    assert_eq!(unknown.chart, None);
}

#[test]
fn json_field_names_are_stable() {
    let json = serde_json::to_value(Release::from_record(record())).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "source",
            "app",
            "namespace",
            "revision",
            "status",
            "updated",
            "started",
            "finished",
            "duration_seconds",
            "operation",
            "rollback_of",
            "description",
            "commit",
            "commits",
            "commits_left_out",
            "last_synced",
            "who",
            "counts",
            "repo",
            "path",
            "renderer",
            "chart",
            "app_version",
            "values_files",
            "set_keys",
            "first_deployed",
            "deleted",
            "notes",
            "error"
        ]
    );
    assert_eq!(json["source"], "kubectl-gitops");
    assert_eq!(json["updated"], "2025-01-02T03:04:09.2504Z");
    assert_eq!(json["commit"]["short_id"], "0123456");
    // A record from before releases listed their commits gives its one commit.
    assert_eq!(json["commits"], serde_json::json!([json["commit"]]));
    assert_eq!(json["commits_left_out"], 0);
    assert_eq!(json["last_synced"], serde_json::Value::Null);
    assert_eq!(
        serde_json::to_value(Source::Helm).unwrap(),
        serde_json::json!("helm")
    );
}

#[test]
fn errors_read_as_one_sentence_with_context() {
    let forbidden = HistoryError::from(StoreError::Forbidden {
        verb: "list".into(),
        namespace: Some("shop".into()),
        message: "secrets is forbidden".into(),
    });
    assert_eq!(
        forbidden.to_string(),
        "cannot list Secrets in namespace shop: secrets is forbidden; releases are kept in Secrets, so reading them needs get and list on secrets in namespace shop"
    );
    let everywhere = HistoryError::from(HelmError::Forbidden {
        verb: "list".into(),
        namespace: None,
        message: "no".into(),
    });
    assert!(
        everywhere.to_string().contains("in all namespaces"),
        "{everywhere}"
    );
    let missing = HistoryError::NoSuchRelease {
        app: "shop".into(),
        namespace: "apps".into(),
        revision: 9,
        available: vec![3, 2, 1],
    };
    assert_eq!(
        missing.to_string(),
        "app shop has no release 9 in namespace apps (its releases: 3, 2, 1)"
    );
    let none = HistoryError::NoSuchApp {
        app: "shop".into(),
        namespace: "apps".into(),
        known: vec!["web".into()],
        elsewhere: Vec::new(),
    };
    assert_eq!(
        none.to_string(),
        "no releases of app shop in namespace apps (apps with releases there: web)"
    );
    let there = HistoryError::NoSuchApp {
        app: "shop".into(),
        namespace: "default".into(),
        known: Vec::new(),
        elsewhere: vec!["apps".into()],
    };
    assert_eq!(
        there.to_string(),
        "no releases of app shop in namespace default (no app has releases there); app shop has releases in namespace apps: add -n apps"
    );
}
