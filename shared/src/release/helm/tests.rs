//! Decoding Helm's release Secrets, hostile ones included.
#![allow(clippy::unwrap_used)]

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use k8s_openapi::ByteString;
use kube::api::ObjectMeta;

use super::*;

/// A release as Helm 3 writes it (trimmed: the chart's templates and files are left out,
/// and the unknown fields Helm adds must be ignored).
const RELEASE_JSON: &str = r#"{
    "name": "web", "namespace": "shop", "version": 2,
    "info": {
        "first_deployed": "2024-05-01T10:00:00.123456789+02:00",
        "last_deployed": "2024-05-02T11:30:00Z",
        "deleted": "0001-01-01T00:00:00Z",
        "description": "Upgrade complete",
        "status": "deployed",
        "notes": "Visit http://web"
    },
    "chart": {"metadata": {"name": "nginx", "version": "15.1.0", "appVersion": "1.25.3",
                           "apiVersion": "v2"},
              "templates": [{"name": "templates/cm.yaml", "data": "YQ=="}],
              "values": {"replicas": 1}},
    "config": {"password": "hunter2"},
    "manifest": "---\n# Source: nginx/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n",
    "hooks": [], "labels": null
}"#;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn helm_encoded(json: &str, compress: bool) -> Vec<u8> {
    let bytes = if compress {
        gzip(json.as_bytes())
    } else {
        json.as_bytes().to_vec()
    };
    STANDARD.encode(bytes).into_bytes()
}

fn secret(name: &str, type_: &str, data: Option<Vec<u8>>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        type_: Some(type_.into()),
        data: data.map(|d| BTreeMap::from([(DATA_KEY.to_string(), ByteString(d))])),
        ..Secret::default()
    }
}

#[test]
fn decodes_gzip_and_plain_releases_alike() {
    let gz = decode(&helm_encoded(RELEASE_JSON, true)).unwrap();
    let plain = decode(&helm_encoded(RELEASE_JSON, false)).unwrap();
    assert_eq!(gz, plain);
    assert_eq!((gz.name.as_str(), gz.version), ("web", 2));
    assert_eq!(gz.info.status, "deployed");
    assert_eq!(gz.info.description, "Upgrade complete");
    assert_eq!(gz.chart.metadata.name, "nginx");
    assert_eq!(gz.chart.metadata.version, "15.1.0");
    assert_eq!(gz.chart.metadata.app_version, "1.25.3");
    assert!(gz.manifest.contains("kind: ConfigMap"));
    // Raw gzip or JSON, as other tools write it, and line-wrapped base64.
    assert_eq!(decode(&gzip(RELEASE_JSON.as_bytes())).unwrap(), gz);
    assert_eq!(decode(RELEASE_JSON.as_bytes()).unwrap(), gz);
    let wrapped: Vec<u8> = helm_encoded(RELEASE_JSON, true)
        .chunks(76)
        .flat_map(|line| line.iter().copied().chain(*b"\n"))
        .collect();
    assert_eq!(decode(&wrapped).unwrap(), gz);
}

#[test]
fn go_times_parse_and_the_zero_time_is_unset() {
    let release = decode(RELEASE_JSON.as_bytes()).unwrap();
    assert_eq!(
        timestamp(&release.info.first_deployed).unwrap().to_string(),
        "2024-05-01T08:00:00.123456789Z"
    );
    assert!(timestamp(&release.info.last_deployed).is_some());
    assert_eq!(timestamp(&release.info.deleted), None);
    assert_eq!(timestamp(""), None);
    assert_eq!(timestamp("yesterday"), None);
}

#[test]
fn nulls_and_missing_fields_read_as_empty() {
    let release = decode(br#"{"name": "x", "version": 1, "info": null, "chart": {"metadata": null}, "manifest": null}"#).unwrap();
    assert_eq!(release.info, Info::default());
    assert_eq!(release.chart, Chart::default());
    assert!(release.manifest.is_empty());
}

#[test]
fn hostile_bytes_are_errors_not_panics() {
    assert!(matches!(decode(b"%%%"), Err(DecodeError::Base64(_))));
    assert!(matches!(decode(b""), Err(DecodeError::Json(_))));
    let truncated = &gzip(RELEASE_JSON.as_bytes())[..40];
    assert!(matches!(
        decode(STANDARD.encode(truncated).as_bytes()),
        Err(DecodeError::Gzip(_))
    ));
    assert!(matches!(
        decode(STANDARD.encode("[1, 2]").as_bytes()),
        Err(DecodeError::Json(_))
    ));
    assert!(matches!(
        decode(br#"{"version": -1}"#),
        Err(DecodeError::Json(_))
    ));
    let deep = "{\"a\":".repeat(100_000);
    assert!(matches!(decode(deep.as_bytes()), Err(DecodeError::Json(_))));
}

#[test]
fn a_gzip_bomb_is_refused() {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
    let zeros = vec![b' '; 1024 * 1024];
    for _ in 0..(MAX_DECODED_BYTES / (1024 * 1024) + 1) {
        encoder.write_all(&zeros).unwrap();
    }
    let bomb = STANDARD.encode(encoder.finish().unwrap());
    assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
    assert_eq!(decode(bomb.as_bytes()), Err(DecodeError::TooLarge));
}

#[test]
fn secret_names_give_release_and_version() {
    assert_eq!(secret_name("web", 3), "sh.helm.release.v1.web.v3");
    assert_eq!(
        parse_secret_name("sh.helm.release.v1.web.v3"),
        Some(("web", 3))
    );
    assert_eq!(
        parse_secret_name("sh.helm.release.v1.my.app.v12"),
        Some(("my.app", 12))
    );
    assert_eq!(parse_secret_name("sh.helm.release.v1.web.v"), None);
    assert_eq!(parse_secret_name("sh.helm.release.v1.web.v+3"), None);
    assert_eq!(parse_secret_name("sh.helm.release.v1..v3"), None);
    assert_eq!(parse_secret_name("web.r3"), None);
}

#[test]
fn label_values_are_checked_before_selecting() {
    assert!(is_label_value("web"));
    assert!(is_label_value("my.app-1"));
    assert!(!is_label_value("a b"));
    assert!(!is_label_value("web,owner!=helm"));
    assert!(!is_label_value(&"a".repeat(64)));
}

#[test]
fn secrets_are_read_or_reported_unreadable() {
    let good = secret(
        "sh.helm.release.v1.web.v2",
        RELEASE_TYPE,
        Some(helm_encoded(RELEASE_JSON, true)),
    );
    let release = read_secret(&good, "elsewhere").unwrap();
    assert_eq!(release.namespace, "elsewhere");

    let reason = |s: Secret| read_secret(&s, "ns").unwrap_err();
    let wrong_name = reason(secret(
        "sh.helm.release.v1.web.v3",
        RELEASE_TYPE,
        Some(helm_encoded(RELEASE_JSON, true)),
    ));
    assert_eq!(wrong_name.revision, Some(3));
    assert!(
        wrong_name.reason.contains("does not match its name"),
        "{wrong_name}"
    );
    let no_data = reason(secret("sh.helm.release.v1.web.v2", RELEASE_TYPE, None));
    assert!(no_data.reason.contains("no \"release\" key"), "{no_data}");
    let wrong_type = reason(secret("sh.helm.release.v1.web.v2", "Opaque", Some(vec![])));
    assert!(wrong_type.reason.contains("type is Opaque"), "{wrong_type}");
    let corrupt = reason(secret(
        "sh.helm.release.v1.web.v2",
        RELEASE_TYPE,
        Some(b"not base64!".to_vec()),
    ));
    assert_eq!(
        corrupt.to_string(),
        format!(
            "release record ns/sh.helm.release.v1.web.v2 cannot be read: {}",
            corrupt.reason
        )
    );
    assert!(corrupt.reason.contains("not valid base64"), "{corrupt}");
}
