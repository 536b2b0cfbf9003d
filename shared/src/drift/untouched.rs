//! Reading only the part of a release's manifest a drift check needs.
//!
//! A release's manifest holds every object it applied (8 MB of YAML at 10,000 objects),
//! and parsing it was a third of a drift check's time. But an object still at the
//! resourceVersion the release recorded for it has not been written since: it is in sync
//! whatever its manifest says, so its document need not be parsed at all. Each document
//! is matched to its object by a glance at its first lines (the manifest is written by our
//! own YAML writer, one object per document); only the documents of objects someone wrote
//! since, and any the glance cannot place, are parsed.
//!
//! A glance that placed a document wrongly cannot go unnoticed: every object of the
//! release must then be found exactly once, untouched or parsed, or the whole manifest
//! is parsed as before.

use std::collections::{BTreeMap, BTreeSet};

use crate::apply::applyset::ApplySetId;
use crate::fingerprint::Fingerprints;
use crate::live::ListedObject;
use crate::objects::ObjectKey;
use crate::release::manifest_documents::{Document, glance, split};
use crate::render::{Manifest, RenderError, parse_documents};

/// What of a release's manifest a check must compare.
#[derive(Debug)]
pub(super) struct Needed {
    /// The objects to compare (and the release's hooks), parsed.
    pub manifests: Vec<Manifest>,
    /// The objects proven in sync without being parsed.
    pub untouched: BTreeSet<ObjectKey>,
}

/// The documents of a release's manifest (`text`) a check must parse, given the live
/// objects (`listed` finds each) and the objects the release `applied`: those of objects
/// not at the resourceVersion the release recorded, and those a glance cannot place. None
/// when the whole manifest is better parsed at once (most of it is needed, or a glance
/// placed something twice).
pub(super) fn needed<'l>(
    applied: &BTreeSet<ObjectKey>,
    text: &str,
    listed: impl Fn(&ObjectKey) -> Option<&'l ListedObject>,
    fingerprints: &Fingerprints,
    ours: &ApplySetId,
    file: &str,
) -> Option<Needed> {
    let documents = split(text);
    let mut by_key: BTreeMap<ObjectKey, Vec<usize>> = BTreeMap::new();
    for (index, document) in documents.iter().enumerate() {
        if let Some(key) = glance(document.text) {
            by_key.entry(key).or_default().push(index);
        }
    }
    let mut untouched = BTreeSet::new();
    let mut skipped = vec![false; documents.len()];
    for (key, at) in &by_key {
        let [index] = at.as_slice() else {
            continue;
        };
        let proven =
            listed(key).is_some_and(|live| fingerprints.recorded_untouched(key, live, ours));
        if proven {
            untouched.insert(key.clone());
            skipped[*index] = true;
        }
    }
    let parse: Vec<&Document> = documents
        .iter()
        .zip(&skipped)
        .filter(|(_, skipped)| !**skipped)
        .map(|(document, _)| document)
        .collect();
    if parse.len() * 2 > documents.len() {
        return None;
    }
    let manifests = match parse_some(file, &parse) {
        Ok(manifests) => manifests,
        // Its error is the whole manifest's to report, with the line it has there.
        Err(_) => return None,
    };
    // Every object the release applied, found once: untouched or parsed.
    let parsed: BTreeSet<ObjectKey> = manifests
        .iter()
        .filter_map(|m| ObjectKey::from_object(&m.object))
        .collect();
    let whole = untouched.iter().all(|key| !parsed.contains(key))
        && applied
            .iter()
            .all(|key| untouched.contains(key) || parsed.contains(key));
    whole.then_some(Needed {
        manifests,
        untouched,
    })
}

/// `documents` parsed, their origins as in the whole manifest.
fn parse_some(file: &str, documents: &[&Document]) -> Result<Vec<Manifest>, RenderError> {
    let mut manifests = Vec::new();
    for document in documents {
        for mut manifest in parse_documents(file, document.text)? {
            manifest.origin.line += document.line - 1;
            manifests.push(manifest);
        }
    }
    Ok(manifests)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn a_manifest_splits_at_its_document_markers_with_each_documents_line() {
        let text = "---\napiVersion: v1\nkind: A\n---\n---\nkind: B\ndata:\n  x: |\n    ---x\n";
        let documents = split(text);
        assert_eq!(
            documents,
            [
                Document {
                    text: "apiVersion: v1\nkind: A\n",
                    line: 2
                },
                Document {
                    text: "kind: B\ndata:\n  x: |\n    ---x\n",
                    line: 6
                }
            ]
        );
        assert!(split("").is_empty());
    }

    #[test]
    fn a_glance_reads_the_key_our_writer_writes_and_nothing_unusual() {
        let deployment = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  labels:\n    name: not-this\n  name: web\n  namespace: shop\nspec:\n  template:\n    metadata:\n      name: nor-this\n  name: nor-this-either\n";
        assert_eq!(
            glance(deployment).unwrap().to_string(),
            "Deployment.apps shop/web"
        );
        let namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n";
        let short = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: beef\n";
        assert_eq!(glance(short).unwrap().to_string(), "ConfigMap beef/a");
        assert_eq!(glance(namespace).unwrap().to_string(), "Namespace shop");
        // Written otherwise than our writer writes: parsed instead.
        for unusual in [
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: b}\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 'a'\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"a\"\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
            "apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata:\n  name: a\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 123\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yes\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 1e3\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 0x1F\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  generateName: a-\n",
            "kind: ConfigMap\nmetadata:\n  name: a\n",
        ] {
            assert_eq!(glance(unusual), None, "{unusual}");
        }
    }

    #[test]
    fn a_glance_agrees_with_the_parser_on_what_our_writer_writes() {
        let objects = [
            serde_json::json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop", "labels": {"name": "x"}, "annotations": {"a": "line one\nline two\n  name: evil\n"}}, "spec": {"replicas": 1}}),
            serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "0123", "namespace": "true"}, "data": {"---": "---\n---"}}),
            serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "a:b"}}),
        ];
        let text: String = objects
            .iter()
            .map(|o| format!("---\n{}", crate::diff::to_yaml(o)))
            .collect();
        let documents = split(&text);
        assert_eq!(documents.len(), objects.len());
        for (document, object) in documents.iter().zip(&objects) {
            let parsed = parse_documents("m", document.text).unwrap();
            assert_eq!(&parsed[0].object, object);
            // Placed where it is, or not at all (then parsed): never another key.
            if let Some(key) = glance(document.text) {
                assert_eq!(Some(key), ObjectKey::from_object(object));
            }
        }
        assert!(glance(documents[0].text).is_some());
    }
}
