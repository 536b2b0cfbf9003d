//! What a release's stored manifest holds: its objects, the difference between two
//! releases, and the manifest text with Secret values masked.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{HistoryError, Release, ReleaseObject};
use crate::diff::mask::{is_secret, mask_secret};
use crate::diff::{ChangeSet, NormaliseOptions, normalise_with, to_yaml};
use crate::objects::{BuiltinScopes, DesiredSet, ObjectKey, ScopeResolver};
use crate::render::parse_documents;

/// What replaces a document that cannot be parsed when masking: it may hold a Secret.
const HIDDEN: &str = "# (a document that cannot be parsed is hidden: it may hold a Secret; --show-secrets shows it)\n";

/// The manifest's objects, keyed as a sync keys them: namespaced objects without a
/// namespace are in the release's (as Helm installs them).
fn desired(release: &Release) -> Result<DesiredSet, HistoryError> {
    desired_in(release, &BuiltinScopes)
}

/// The keys of the objects the release's manifest holds (its hooks are not among them),
/// each object's scope as `scopes` say (a cluster's discovery knows its custom kinds).
pub fn member_keys(
    release: &Release,
    scopes: &dyn ScopeResolver,
) -> Result<BTreeSet<ObjectKey>, HistoryError> {
    Ok(desired_in(release, scopes)?.keys().cloned().collect())
}

/// [`desired`], with scopes from `scopes`.
fn desired_in(release: &Release, scopes: &dyn ScopeResolver) -> Result<DesiredSet, HistoryError> {
    let label = format!("release {} of {}", release.revision, release.app);
    let manifests =
        parse_documents(&label, &release.manifest).map_err(|source| HistoryError::Manifest {
            app: release.app.clone(),
            revision: release.revision,
            source: Box::new(source),
        })?;
    DesiredSet::build(manifests, &release.namespace, scopes).map_err(|source| {
        HistoryError::Objects {
            app: release.app.clone(),
            revision: release.revision,
            source: Box::new(source),
        }
    })
}

/// The objects of a release: what our sync did to each, or (for Helm's releases and ours
/// that stopped before applying) the objects its manifest holds.
pub fn objects(release: &Release) -> Result<Vec<ReleaseObject>, HistoryError> {
    if !release.results.is_empty() {
        return Ok(release
            .results
            .iter()
            .map(|r| ReleaseObject {
                key: r.key.clone(),
                action: Some(r.action.clone()),
                health: r.health.clone(),
                message: r.message.clone(),
            })
            .collect());
    }
    Ok(desired(release)?
        .keys()
        .map(|key| ReleaseObject {
            key: key.clone(),
            action: None,
            health: None,
            message: None,
        })
        .collect())
}

/// The objects that differ between two releases' manifests, as diff-git compares two
/// revisions: normalised, with our ApplySet bookkeeping left out. Secrets are not masked
/// here; the caller masks unless asked to show them.
pub fn diff(before: &Release, after: &Release) -> Result<ChangeSet, HistoryError> {
    let options = NormaliseOptions::ignoring_applyset();
    let side = |release: &Release| -> Result<BTreeMap<ObjectKey, Value>, HistoryError> {
        Ok(desired(release)?
            .into_iter()
            .map(|o| {
                let mut object = o.object;
                normalise_with(&mut object, &options);
                (o.key, object)
            })
            .collect())
    };
    Ok(ChangeSet::between(side(before)?, side(after)?))
}

/// The manifest with every Secret's values masked. Other documents are kept as written
/// (comments such as Helm's `# Source:` included); a document holding a Secret is written
/// out again, masked; a document that cannot be parsed is hidden, since it may hold one.
pub fn masked_manifest(manifest: &str) -> String {
    let mut out = String::with_capacity(manifest.len());
    for piece in split_documents(manifest) {
        let (separator, body) = match piece.split_once('\n') {
            Some((first, rest)) if is_separator(first) => (&piece[..first.len() + 1], rest),
            _ if is_separator(piece) => (piece, ""),
            _ => ("", piece),
        };
        out.push_str(separator);
        match parse_documents("manifest", body) {
            Ok(objects) if objects.iter().any(|m| is_secret(&m.object)) => {
                out.push_str(leading_comments(body));
                let masked: Vec<String> = objects
                    .into_iter()
                    .map(|manifest| {
                        let mut object = manifest.object;
                        mask_secret(&mut object);
                        to_yaml(&object)
                    })
                    .collect();
                out.push_str(&masked.join("---\n"));
            }
            // Not an object to parse_documents, yet it says Secret: hide it to be safe.
            Ok(objects) if objects.is_empty() && mentions_secret(body) => out.push_str(HIDDEN),
            Ok(_) => out.push_str(body),
            Err(_) => out.push_str(HIDDEN),
        }
    }
    out
}

/// A line that separates YAML documents, as kubectl splits them: `---`, then nothing but
/// spaces or a comment.
fn is_separator(line: &str) -> bool {
    line.strip_prefix("---")
        .map(str::trim)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('#'))
}

/// Splits at separator lines; each piece after the first starts with its separator, so
/// the pieces joined are the text again.
fn split_documents(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if offset > start && is_separator(line.trim_end_matches(['\n', '\r'])) {
            pieces.push(&text[start..offset]);
            start = offset;
        }
        offset += line.len();
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

/// The blank and comment lines a document starts with.
fn leading_comments(body: &str) -> &str {
    let mut end = 0;
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim();
        if !(trimmed.is_empty() || trimmed.starts_with('#')) {
            break;
        }
        end += line.len();
    }
    &body[..end]
}

fn mentions_secret(body: &str) -> bool {
    body.lines().any(|line| {
        line.trim_start()
            .strip_prefix("kind:")
            .is_some_and(|kind| kind.contains("Secret"))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::release::helm::HelmRelease;
    use crate::release::record::{ObjectResult, Operation, ReleaseRecord};

    const HELM_MANIFEST: &str = "---
# Source: web/templates/secret.yaml
apiVersion: v1
kind: Secret
metadata:
  name: creds
data:
  password: aHVudGVyMg==
---
# Source: web/templates/cm.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  greeting: hello   # kept as written
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: reader
";

    fn helm(version: u32, manifest: &str) -> Release {
        Release::from_helm(HelmRelease {
            name: "web".into(),
            namespace: "apps".into(),
            version,
            manifest: manifest.into(),
            ..HelmRelease::default()
        })
    }

    #[test]
    fn masking_hides_secret_values_and_keeps_the_rest_as_written() {
        let masked = masked_manifest(HELM_MANIFEST);
        assert!(!masked.contains("aHVudGVyMg=="), "{masked}");
        assert!(masked.contains("password: '***'"), "{masked}");
        assert!(masked.contains("# Source: web/templates/secret.yaml\n"));
        assert!(masked.contains("greeting: hello   # kept as written\n"));
        assert!(masked.starts_with("---\n# Source"), "{masked}");
        assert_eq!(masked.matches("---\n").count(), 3, "{masked}");
        // Nothing to mask: the text comes back unchanged.
        let plain = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\nkind: x\n";
        assert_eq!(masked_manifest(plain), plain);
        assert_eq!(masked_manifest(""), "");
    }

    #[test]
    fn masking_hides_what_it_cannot_parse() {
        let broken = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: Secret\ndata: [unclosed\n";
        let masked = masked_manifest(broken);
        assert!(!masked.contains("unclosed"), "{masked}");
        assert!(masked.ends_with(HIDDEN), "{masked}");
        // Looks like a Secret but is no object parse_documents reads (no apiVersion).
        let masked = masked_manifest("kind: Secret\ndata:\n  k: dmFsdWU=\n");
        assert_eq!(masked, HIDDEN);
        // Secrets inside a List are masked too.
        let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s}\n  stringData: {k: value}\n";
        let masked = masked_manifest(list);
        assert!(!masked.contains("value"), "{masked}");
    }

    #[test]
    fn objects_come_from_the_results_or_the_manifest() {
        let listed = objects(&helm(1, HELM_MANIFEST)).unwrap();
        let keys: Vec<String> = listed.iter().map(|o| o.key.to_string()).collect();
        assert_eq!(
            keys,
            [
                "ConfigMap apps/settings",
                "Secret apps/creds",
                "ClusterRole.rbac.authorization.k8s.io reader"
            ]
        );
        assert!(listed.iter().all(|o| o.action.is_none()));

        let mut record =
            ReleaseRecord::start("shop", "apps", Operation::Sync, "a", Default::default());
        record.objects = vec![ObjectResult {
            key: ObjectKey::from_object(&serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "apps"}
            }))
            .unwrap(),
            action: "pruned".into(),
            health: None,
            message: None,
            resource_version: None,
            applied_hash: None,
            owned_hash: None,
        }];
        let recorded = super::objects(&Release::from_record(record)).unwrap();
        assert_eq!(recorded[0].action.as_deref(), Some("pruned"));
    }

    #[test]
    fn diff_compares_objects_by_key() {
        let after = HELM_MANIFEST
            .replace("greeting: hello", "greeting: bonjour")
            .replace("aHVudGVyMg==", "c2VjcmV0");
        let mut set = diff(&helm(1, HELM_MANIFEST), &helm(2, &after)).unwrap();
        let summary = set.summary();
        assert_eq!((summary.changed, summary.unchanged), (2, 1));
        set.mask_secrets();
        let text = serde_json::to_string(&set).unwrap();
        assert!(!text.contains("c2VjcmV0"), "{text}");
    }

    #[test]
    fn a_bad_manifest_is_an_error_naming_the_release() {
        let err = diff(&helm(1, "a: [\n"), &helm(2, "")).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "the manifest of release 1 of app web cannot be read: release 1 of web:"
            ),
            "{err}"
        );
        let twice = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n";
        let err = objects(&helm(3, twice)).unwrap_err();
        assert!(err.to_string().contains("defined twice"), "{err}");
    }

    #[test]
    fn splitting_keeps_every_byte() {
        for text in [HELM_MANIFEST, "", "---\n", "a: 1\n--- # c\nb: 2", "---x\n"] {
            assert_eq!(split_documents(text).concat(), text);
        }
        assert_eq!(split_documents("a: 1\n---\nb: 2\n").len(), 2);
    }
}
