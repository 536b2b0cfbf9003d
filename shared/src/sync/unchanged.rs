//! A resync of the very files the deployed release was rendered from, proven to change
//! nothing without rendering them again.
//!
//! When a path's files alone decide its objects (plain YAML: see
//! `render::source_digest`), the same digest means the same objects, which the deployed
//! release holds. Its members, listed under the lock while the revision would render, then
//! prove the rest: each object the release applied is still a member, at the
//! resourceVersion the release recorded (nobody wrote it since) or written since by others
//! in fields the release did not apply (see `Fingerprints::recorded_owned_untouched`), and
//! no other member exists. That is everything a plan of the rendered objects would have
//! found: nothing to apply or prune. At 10,000 objects rendering was the larger half of
//! such a sync.
//!
//! Anything else goes the usual way: a release with hooks, waves or sync options (they
//! decide more than what to apply), an object whose applied fields were written since, one
//! more or less, a member not healthy when the sync waits for health.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::apply::applyset::{ApplySet, ApplySetId};
use crate::apply::health::{Health, assess};
use crate::fingerprint::{Fingerprints, LiveMark};
use crate::live::{ListedObject, MemberLists};
use crate::objects::ObjectKey;
use crate::release::manifest_documents;
use crate::release::record::{CASCADE_ACTION, Counts, ReleaseRecord, ReleaseStatus};

/// Annotations whose objects a sync treats as more than objects to apply (hooks, waves,
/// options): a release holding any of them is planned the usual way.
const PLANNED_ANNOTATIONS: [&str; 2] = ["argocd.argoproj.io/", "helm.sh/"];

/// What proved the resync unchanged.
#[derive(Debug)]
pub(super) struct Proof {
    /// The release's objects, in key order.
    pub keys: Vec<ObjectKey>,
    /// Their health, when the sync waits for it (all healthy).
    pub health: BTreeMap<ObjectKey, Health>,
    /// Where the objects written since the release (by others, in fields it did not
    /// apply) are now, for the record's fingerprints.
    pub moved: BTreeMap<ObjectKey, LiveMark>,
}

/// Where the app is, as read under its lock.
pub(super) struct Found<'a> {
    pub parent: &'a ApplySet,
    pub members: &'a MemberLists,
    /// How many kinds the parent names that the cluster serves (each must have been
    /// listed: a failed LIST leaves its kind out of `members`).
    pub kinds: usize,
}

/// Proves that a sync of files with `digest` would change nothing of the deployed release
/// `record` (see the module's documentation); `wait`: the sync waits for health, so every
/// object must be healthy now.
pub(super) fn prove(
    record: &ReleaseRecord,
    digest: &str,
    found: &Found<'_>,
    wait: bool,
) -> Option<Proof> {
    let planned_more = PLANNED_ANNOTATIONS
        .iter()
        .any(|prefix| record.manifest.contains(prefix));
    if record.status != ReleaseStatus::Deployed
        || record.source_digest.as_deref() != Some(digest)
        || record.hooks_digest.is_some()
        || planned_more
    {
        return None;
    }
    // Each applied object has its fingerprint; the release's removals are no members.
    let removal = |action: &str| action == "pruned" || action == CASCADE_ACTION;
    let fingerprints = Fingerprints::from_record(record);
    let keys: BTreeSet<ObjectKey> = record
        .objects
        .iter()
        .filter(|object| !removal(&object.action))
        .map(|object| object.key.clone())
        .collect();
    if keys.is_empty() || keys.len() != fingerprints.len() {
        return None;
    }
    let ours = ApplySetId::for_app(&record.app, &record.namespace);
    let expected = ApplySet::new(&record.namespace, &record.app).with_members(keys.iter());
    if found.parent != &expected
        || found.parent.check_tooling().is_err()
        || found.members.kinds() != found.kinds
    {
        return None;
    }
    let live: HashMap<&ObjectKey, &ListedObject> = found.members.objects().collect();
    if live.len() != keys.len() || !keys.iter().all(|key| live.contains_key(key)) {
        return None;
    }
    // Objects someone wrote since are proven from what the release applied to them: the
    // top-level fields of their documents of the manifest, read from those lines alone.
    let lookup = |key: &ObjectKey| live.get(key).copied();
    let moved_keys: BTreeSet<&ObjectKey> = keys
        .iter()
        .filter(|key| !lookup(key).is_some_and(|l| fingerprints.recorded_untouched(key, l, &ours)))
        .collect();
    let mut moved = BTreeMap::new();
    if !moved_keys.is_empty() {
        let text = record.manifest.text();
        let mut applied: BTreeMap<ObjectKey, Vec<&str>> = BTreeMap::new();
        for document in manifest_documents::split(&text) {
            if let Some(key) = manifest_documents::glance(document.text)
                && moved_keys.contains(&key)
                && applied
                    .insert(key, top_level_fields(document.text)?)
                    .is_some()
            {
                // One object twice: not a manifest this reads.
                return None;
            }
        }
        for key in moved_keys {
            let value = lookup(key)?.value().ok()?;
            let fields = applied.get(key)?;
            let mark = fingerprints.recorded_owned_untouched(key, fields, &value, &ours)?;
            moved.insert(key.clone(), mark);
        }
    }
    let mut health = BTreeMap::new();
    if wait {
        for (key, listed) in &live {
            let verdict = assess(&listed.value().ok()?);
            if !verdict.is_healthy() {
                return None;
            }
            health.insert((*key).clone(), verdict);
        }
    }
    Some(Proof {
        keys: keys.into_iter().collect(),
        health,
        moved,
    })
}

/// The top-level fields of a manifest's document as our YAML writer writes it (each a
/// plain `field:` at the start of a line, its value indented below it or after it); None
/// for a line that is anything else.
fn top_level_fields(document: &str) -> Option<Vec<&str>> {
    let mut fields = Vec::new();
    for line in document.lines() {
        if line.is_empty() || line.starts_with([' ', '-', '#']) {
            continue;
        }
        let (field, _) = line.split_once(':')?;
        let plain = !field.is_empty()
            && field
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
        if !plain {
            return None;
        }
        fields.push(field);
    }
    Some(fields)
}

/// The deployed release `stored` as a proven resync shows it: every object unchanged
/// (healthy, when it waited), the release's removals left out, as a no-op sync shows it.
pub(super) fn shown(mut stored: ReleaseRecord, proof: &Proof) -> ReleaseRecord {
    stored
        .objects
        .retain(|object| proof.keys.binary_search(&object.key).is_ok());
    for object in &mut stored.objects {
        object.action = "unchanged".to_string();
        object.health = proof.health.get(&object.key).map(ToString::to_string);
        object.message = None;
    }
    stored.counts = Counts {
        unchanged: stored.objects.len(),
        ..Counts::default()
    };
    stored
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_documents_top_level_fields_are_read_from_its_lines_or_not_at_all() {
        let document = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    a: b\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\nlist:\n- a\nnote: |\n  text: not a field\n";
        assert_eq!(
            top_level_fields(document),
            Some(vec![
                "apiVersion",
                "kind",
                "metadata",
                "spec",
                "list",
                "note"
            ])
        );
        // A quoted or complex key: the document is not read this way.
        assert_eq!(top_level_fields("kind: A\n\"odd key\": 1\n"), None);
        assert_eq!(top_level_fields("kind: A\n? complex\n: 1\n"), None);
    }
}
