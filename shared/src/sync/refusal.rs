//! The refusals a plan decides before anything is written: a revision that renders
//! nothing for an app that has members, a revision whose prune would delete objects it
//! still has, and a prune that would delete objects that are not the app's. Each is
//! checked under the lock, before the release record, the parent or any object is
//! written, and names what it found and the flag that goes on anyway.

use std::collections::BTreeMap;

use super::{NAMES_SHOWN, SyncError, SyncPlan, more};
use crate::objects::ObjectKey;

/// What a sync may do beyond pruning the members the revision no longer has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneRules {
    /// Prune CustomResourceDefinitions the revision no longer has (`--prune-crds`);
    /// without it they stay, as Helm keeps the CRDs it installed.
    pub prune_crds: bool,
    /// Let a pruned CRD or Namespace take objects that are not the app's with it
    /// (`--prune-cascade`).
    pub prune_cascade: bool,
    /// Sync a revision that renders no objects, pruning every member with `--prune`
    /// (`--allow-empty`, as Argo CD's `allowEmpty`).
    pub allow_empty: bool,
}

/// What the refusals need to know of the revision besides its objects.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    pub rules: PruneRules,
    /// What the revision's path holds, when it rendered no objects: `path apps/web
    /// renders no objects: 3 files, none of them a manifest: *.cue`.
    pub empty_render: Option<String>,
}

/// Refuses `plan` if it must not be carried out: see the module's description.
pub fn check(plan: &SyncPlan, guard: &Guard) -> Result<(), SyncError> {
    let members: Vec<ObjectKey> = plan
        .stale
        .keys()
        .chain(plan.kept.keys())
        .chain(plan.object_options.kept.keys())
        .cloned()
        .collect();
    if plan.desired.is_empty() && !members.is_empty() && !guard.rules.allow_empty {
        let what = guard
            .empty_render
            .clone()
            .unwrap_or_else(|| "the revision renders no objects".to_string());
        return Err(SyncError::EmptyRender {
            text: empty_text(&what, &plan.app, &members, plan.prune),
        });
    }
    if !plan.prune {
        return Ok(());
    }
    if !plan.cascade.wanted.is_empty() {
        return Err(SyncError::CascadeWanted {
            text: format!(
                "{}; nothing was changed (keep {} in the revision, or remove these objects from it too)",
                wanted_text(&plan.cascade.wanted),
                deleters(plan.cascade.wanted.values())
            ),
        });
    }
    if !plan.cascade.foreign.is_empty() && !guard.rules.prune_cascade {
        let foreign = plan
            .cascade
            .foreign
            .iter()
            .map(|(key, cascaded)| (key.clone(), cascaded.by.clone()))
            .collect();
        return Err(SyncError::CascadeForeign {
            text: format!(
                "{}; nothing was changed (--prune-cascade deletes them too)",
                foreign_text(&plan.app, &foreign)
            ),
        });
    }
    Ok(())
}

impl SyncPlan {
    /// [`notes`] for a sync whose refusals have passed.
    pub fn notes(&self) -> Vec<String> {
        notes(self, true)
    }
}

/// The notes a preview shows about what a prune deletes beyond the members and what it
/// keeps: for a sync about to go on (its refusals have passed), or for diff-git, which
/// says what `kubectl sync --prune` would refuse.
pub fn notes(plan: &SyncPlan, for_sync: bool) -> Vec<String> {
    let mut notes = plan.object_options.kept_lines();
    if !plan.kept.is_empty() {
        let kept: Vec<ObjectKey> = plan.kept.keys().cloned().collect();
        notes.push(format!(
            "kept: CRDs are pruned only with --prune-crds: {}",
            by_kind(&kept)
        ));
    }
    if !plan.prune {
        return notes;
    }
    if !plan.cascade.foreign.is_empty() {
        let foreign: BTreeMap<ObjectKey, ObjectKey> = plan
            .cascade
            .foreign
            .iter()
            .map(|(key, cascaded)| (key.clone(), cascaded.by.clone()))
            .collect();
        let keys: Vec<ObjectKey> = foreign.keys().cloned().collect();
        let removed = format!(
            "removed (cascade): {} object(s) that are not members of app {}, deleted with {}: {}",
            keys.len(),
            plan.app,
            deleters(foreign.values()),
            by_kind(&keys)
        );
        notes.push(if for_sync {
            removed
        } else {
            format!("{removed} (kubectl sync --prune refuses this without --prune-cascade)")
        });
    }
    if !plan.cascade.wanted.is_empty() && !for_sync {
        notes.push(format!(
            "kubectl sync --prune refuses this revision: {}",
            wanted_text(&plan.cascade.wanted)
        ));
    }
    notes
}

fn empty_text(what: &str, app: &str, members: &[ObjectKey], prune: bool) -> String {
    if prune {
        format!(
            "{what}; nothing was changed: --allow-empty prunes every object of app {app} ({} object(s): {})",
            members.len(),
            by_kind(members)
        )
    } else {
        format!(
            "{what}; nothing was changed: app {app} has {} object(s) ({}), which a sync of nothing leaves in place but records as no longer deployed (a rollback to that release deletes them); --allow-empty syncs it anyway",
            members.len(),
            by_kind(members)
        )
    }
}

fn wanted_text(wanted: &BTreeMap<ObjectKey, ObjectKey>) -> String {
    let keys: Vec<ObjectKey> = wanted.keys().cloned().collect();
    format!(
        "the revision still has {} object(s) that pruning {}, which it no longer has, would delete: {}",
        keys.len(),
        deleters(wanted.values()),
        by_kind(&keys)
    )
}

fn foreign_text(app: &str, foreign: &BTreeMap<ObjectKey, ObjectKey>) -> String {
    let keys: Vec<ObjectKey> = foreign.keys().cloned().collect();
    format!(
        "pruning {} would also delete {} object(s) that are not members of app {app}: {}",
        deleters(foreign.values()),
        keys.len(),
        by_kind(&keys)
    )
}

/// `Namespace shop and CustomResourceDefinition.apiextensions.k8s.io widgets.example.com`:
/// the distinct deletions, in key order.
fn deleters<'a>(by: impl Iterator<Item = &'a ObjectKey>) -> String {
    let distinct: std::collections::BTreeSet<&ObjectKey> = by.collect();
    let names: Vec<String> = distinct.iter().map(ToString::to_string).collect();
    names.join(" and ")
}

/// `ConfigMap (2): shop/a, shop/b; Widget.example.com (1): other/w`: how many of each
/// kind, and the first few names of each.
pub fn by_kind(keys: &[ObjectKey]) -> String {
    let mut kinds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in keys {
        let name = match &key.namespace {
            Some(namespace) => format!("{namespace}/{}", key.name),
            None => key.name.clone(),
        };
        kinds.entry(key.group_kind()).or_default().push(name);
    }
    let parts: Vec<String> = kinds
        .into_iter()
        .map(|(kind, names)| {
            let shown: Vec<&str> = names.iter().take(NAMES_SHOWN).map(String::as_str).collect();
            format!(
                "{kind} ({}): {}{}",
                names.len(),
                shown.join(", "),
                more(names.len())
            )
        })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apply::applyset::ApplySet;
    use crate::compare::Comparison;
    use crate::objects::{BuiltinScopes, DesiredSet};
    use crate::render::parse_documents;
    use crate::sync::cascade::{Cascade, Cascaded};

    fn plan(desired: &str, stale: &[ObjectKey], cascade: Cascade, prune: bool) -> SyncPlan {
        let manifests = parse_documents("d.yaml", desired).unwrap();
        SyncPlan {
            app: "web".into(),
            namespace: "web".into(),
            existing: None,
            applyset: ApplySet::new("web", "web"),
            desired: DesiredSet::build(manifests, "web", &BuiltinScopes).unwrap(),
            phases: Vec::new(),
            comparison: Comparison::default(),
            stale: stale.iter().map(|k| (k.clone(), json!({}))).collect(),
            kept: BTreeMap::new(),
            object_options: Default::default(),
            cascade,
            prune,
            record_manifest: None,
        }
    }

    const ONE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one, namespace: shop}\n";

    #[test]
    fn an_empty_render_of_an_app_with_members_is_refused_unless_allowed() {
        let old = [key("ConfigMap", Some("web"), "old")];
        let guard = Guard {
            rules: PruneRules::default(),
            empty_render: Some("path web renders no objects".into()),
        };
        for prune in [true, false] {
            let error = check(&plan("", &old, Cascade::default(), prune), &guard).unwrap_err();
            assert!(matches!(error, SyncError::EmptyRender { .. }), "{error}");
            assert!(
                error
                    .to_string()
                    .starts_with("path web renders no objects; nothing was changed")
            );
        }
        let allowed = Guard {
            rules: PruneRules {
                allow_empty: true,
                ..PruneRules::default()
            },
            ..guard.clone()
        };
        assert!(check(&plan("", &old, Cascade::default(), true), &allowed).is_ok());
        // Nothing to lose: an app without members may sync nothing.
        assert!(check(&plan("", &[], Cascade::default(), true), &guard).is_ok());
    }

    #[test]
    fn a_cascade_onto_foreign_objects_needs_the_flag_and_a_contradiction_is_always_refused() {
        let ns = key("Namespace", None, "shop");
        let hand = key("ConfigMap", Some("shop"), "hand");
        let foreign = Cascade {
            foreign: BTreeMap::from([(
                hand,
                Cascaded {
                    by: ns.clone(),
                    object: json!({}),
                },
            )]),
            wanted: BTreeMap::new(),
        };
        let stale = [ns.clone()];
        let plain = Guard::default();
        let cascade = Guard {
            rules: PruneRules {
                prune_cascade: true,
                ..PruneRules::default()
            },
            ..Guard::default()
        };
        let error = check(&plan(ONE, &stale, foreign.clone(), true), &plain).unwrap_err();
        assert!(matches!(error, SyncError::CascadeForeign { .. }), "{error}");
        assert!(check(&plan(ONE, &stale, foreign.clone(), true), &cascade).is_ok());
        // Without --prune nothing is deleted, so nothing cascades.
        assert!(check(&plan(ONE, &stale, foreign, false), &plain).is_ok());
        let contradiction = Cascade {
            foreign: BTreeMap::new(),
            wanted: BTreeMap::from([(key("ConfigMap", Some("shop"), "one"), ns)]),
        };
        let error = check(&plan(ONE, &stale, contradiction, true), &cascade).unwrap_err();
        assert!(matches!(error, SyncError::CascadeWanted { .. }), "{error}");
    }

    fn key(kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: if kind == "Widget" { "example.com" } else { "" }.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn objects_are_counted_per_kind_with_the_first_names() {
        let mut keys: Vec<ObjectKey> = (0..7)
            .map(|i| key("ConfigMap", Some("shop"), &format!("c{i}")))
            .collect();
        keys.push(key("Widget", Some("other"), "hand"));
        keys.push(key("Namespace", None, "shop"));
        assert_eq!(
            by_kind(&keys),
            "ConfigMap (7): shop/c0, shop/c1, shop/c2, shop/c3, shop/c4 and 2 more; \
             Namespace (1): shop; Widget.example.com (1): other/hand"
        );
    }

    #[test]
    fn a_refusal_names_what_the_deletion_takes_and_the_flag() {
        let ns = key("Namespace", None, "shop");
        let foreign = BTreeMap::from([(key("ConfigMap", Some("shop"), "hand"), ns.clone())]);
        assert_eq!(
            foreign_text("web", &foreign),
            "pruning Namespace shop would also delete 1 object(s) that are not members of app web: \
             ConfigMap (1): shop/hand"
        );
        let wanted = BTreeMap::from([(key("ConfigMap", Some("shop"), "kept"), ns)]);
        assert!(wanted_text(&wanted).starts_with(
            "the revision still has 1 object(s) that pruning Namespace shop, which it no longer has, would delete: ConfigMap (1): shop/kept"
        ));
        let members = [key("ConfigMap", Some("web"), "a")];
        assert_eq!(
            empty_text("path apps/web renders no objects", "web", &members, true),
            "path apps/web renders no objects; nothing was changed: --allow-empty prunes every \
             object of app web (1 object(s): ConfigMap (1): web/a)"
        );
    }
}
