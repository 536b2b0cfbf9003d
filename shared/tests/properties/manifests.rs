//! Manifest parsing: `parse_documents` on text, and the plain renderer on raw bytes.

use std::collections::BTreeMap;

use gitops::diff::to_yaml;
use gitops::render::{self, RenderOptions, parse_documents};
use gitops::source::Snapshot;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

use crate::support::{assert_one_line, bounded, config, corpus, tricky_string};

/// `parse_documents` answers: objects with a kind and a name, or a one-line error.
fn check_text(file: &str, text: &str) {
    match bounded(file, || parse_documents(file, text)) {
        Ok(manifests) => {
            for manifest in manifests {
                assert!(manifest.object["kind"].is_string(), "{manifest:?}");
                assert!(
                    manifest.object["metadata"]["name"].is_string(),
                    "{manifest:?}"
                );
            }
        }
        Err(err) => assert_one_line(&err),
    }
}

/// The plain renderer on a file's raw bytes (UTF-8 or not), under both extensions.
fn check_bytes(bytes: &[u8]) {
    for file in ["app/x.yaml", "app/x.json"] {
        let snapshot = Snapshot {
            files: BTreeMap::from([(file.to_string(), bytes.to_vec())]).into(),
            root: "app".into(),
            commit: None,
        };
        match bounded(file, || {
            render::render(&snapshot, &RenderOptions::default())
        }) {
            Ok(_) => {}
            Err(err) => assert_one_line(&err),
        }
    }
}

/// Pieces YAML is made of, to build text that is almost YAML.
fn yamlish() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        prop::sample::select(
            &[
                "- ",
                ": ",
                "\n",
                "  ",
                "{",
                "}",
                "[",
                "]",
                ", ",
                "&a ",
                "*a",
                "<<: ",
                "---\n",
                "...\n",
                "'",
                "\"",
                "!!str ",
                "!!binary ",
                "!Thing ",
                "# c",
                "|\n",
                ">-\n",
                "? ",
                "%YAML 1.1\n",
                "%TAG ! tag:x,2000:\n",
                "\t",
                "\u{feff}",
                "\\",
                "\r\n",
                "apiVersion: v1\n",
                "kind: ConfigMap\n",
                "kind: List\nitems:\n",
                "metadata:\n  name: x\n",
                "metadata: {name: y}\n",
                "data:\n",
                "items: [",
                "generateName: g-\n",
                "{\"apiVersion\": \"v1\", \"kind\": \"Secret\", ",
            ][..]
        )
        .prop_map(str::to_string),
        crate::support::tricky_string(),
        "[a-z0-9]{1,6}",
    ];
    prop::collection::vec(token, 0..64).prop_map(|parts| parts.concat())
}

/// JSON values whose strings are the ones YAML gets wrong. Floats keep a fraction: an
/// integral float reads back as an integer, as kubectl reads it.
fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1.0e9..1.0e9f64)
            .prop_filter("a fraction", |f| f.fract() != 0.0)
            .prop_map(Value::from),
        tricky_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((tricky_string(), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A Kubernetes object carrying an arbitrary value.
fn object() -> impl Strategy<Value = Value> {
    ("[a-z][a-z0-9-]{0,10}", value()).prop_map(|(name, data)| {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
    })
}

/// A valid document broken one way or another.
fn mangled() -> impl Strategy<Value = String> {
    (object(), any::<prop::sample::Index>(), 0..4usize, yamlish()).prop_map(
        |(object, at, how, extra)| {
            let text = to_yaml(&object);
            let mut cut = at.index(text.len() + 1);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            match how {
                0 => text[..cut].to_string(),
                1 => format!("{}{extra}{}", &text[..cut], &text[cut..]),
                2 => format!("{}{}", &text[cut..], &text[..cut]),
                _ => text.replacen(' ', &extra, 1),
            }
        },
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        check_bytes(&bytes);
        check_text("x.yaml", &String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn almost_yaml_never_panics(text in yamlish()) {
        check_text("x.yaml", &text);
        check_text("x.json", &text);
    }

    #[test]
    fn mangled_documents_never_panic(text in mangled()) {
        check_text("x.yaml", &text);
    }

    /// What `to_yaml` writes (diffs, release manifests) reads back as the same object, as
    /// a rollback needs.
    #[test]
    fn yaml_written_reads_back_the_same(object in object()) {
        let text = to_yaml(&object);
        let read = parse_documents("x.yaml", &text).unwrap();
        prop_assert_eq!(read.len(), 1, "{}", text);
        prop_assert_eq!(&read[0].object, &object, "{}", text);
    }

    /// Floats aside: without its `float_roundtrip` feature, serde_json may read a float
    /// one unit in the last place off.
    #[test]
    fn json_reads_back_the_same(object in object().prop_filter("no floats", |o| !has_float(o))) {
        let text = serde_json::to_string_pretty(&object).unwrap();
        let read = parse_documents("x.json", &text).unwrap();
        prop_assert_eq!(&read[0].object, &object);
    }
}

fn has_float(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.is_f64(),
        Value::Array(items) => items.iter().any(has_float),
        Value::Object(map) => map.values().any(has_float),
        _ => false,
    }
}

#[test]
fn corpus_of_nasty_manifests() {
    for (name, bytes) in corpus("manifests") {
        check_bytes(&bytes);
        check_text(&name, &String::from_utf8_lossy(&bytes));
    }
}
