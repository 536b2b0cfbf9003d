//! Which release `kubectl sync --rollback` goes to, and why.
//!
//! The rule: a bare rollback goes to the newest release before the deployed one that was
//! deployed itself at some point (deployed, superseded or rolled-back: never failed, never
//! pending) and whose objects differ from the deployed one's, as their stored manifests
//! say. A release with the same objects would change nothing, and a failed one was never
//! running. A rollback to a release asked for by number goes there, unless it failed or
//! never finished: it was never deployed, so it is refused.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::objects::{BuiltinScopes, DesiredSet, ObjectKey};
use crate::release::record::{ReleaseRecord, ReleaseStatus};
use crate::render::parse_documents;

/// The release a rollback goes to, and a sentence saying why, for the preview.
#[derive(Debug)]
pub struct RollbackTarget<'a> {
    pub release: &'a ReleaseRecord,
    /// E.g. `the newest release before release 4, the deployed one, whose objects differ
    /// from release 4's; release 5 failed`.
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("app {app} has no releases in namespace {namespace}: nothing to roll back to")]
    NoReleases { app: String, namespace: String },
    #[error("app {app} has no release {revision} (it has {})", join(available))]
    NoSuchRelease {
        app: String,
        revision: u32,
        available: Vec<u32>,
    },
    #[error(
        "release {revision} of app {app} {}, so it was never deployed: a rollback to it is refused; roll back to a release that was deployed{}{}",
        never_deployed(*status),
        deployed_list(deployed),
        commit.as_deref().map(|c| format!(", or sync its commit {c} to try its objects again")).unwrap_or_default()
    )]
    NeverDeployed {
        app: String,
        revision: u32,
        status: ReleaseStatus,
        /// The releases that were deployed at some point, newest first.
        deployed: Vec<u32>,
        /// The release's commit, short.
        commit: Option<String>,
    },
    #[error("app {app} has nothing to roll back to: {why}")]
    NothingToRollBackTo { app: String, why: String },
}

fn never_deployed(status: ReleaseStatus) -> &'static str {
    match status {
        ReleaseStatus::Pending => "never finished (it is pending)",
        _ => "failed",
    }
}

fn deployed_list(deployed: &[u32]) -> String {
    if deployed.is_empty() {
        " (this app has none)".into()
    } else {
        format!(" ({})", join(deployed))
    }
}

fn join(revisions: &[u32]) -> String {
    let words: Vec<String> = revisions.iter().map(u32::to_string).collect();
    words.join(", ")
}

/// Whether a release with `status` was deployed at some point.
pub fn was_deployed(status: ReleaseStatus) -> bool {
    matches!(
        status,
        ReleaseStatus::Deployed | ReleaseStatus::Superseded | ReleaseStatus::RolledBack
    )
}

/// Chooses the release to roll back to among `records` (an app's, newest first): `asked`,
/// else by the rule above.
pub fn choose<'a>(
    app: &str,
    namespace: &str,
    records: &'a [ReleaseRecord],
    asked: Option<u32>,
) -> Result<RollbackTarget<'a>, RollbackError> {
    if records.is_empty() {
        return Err(RollbackError::NoReleases {
            app: app.to_string(),
            namespace: namespace.to_string(),
        });
    }
    let current = records.iter().find(|r| r.status == ReleaseStatus::Deployed);
    match asked {
        Some(revision) => by_number(app, records, current, revision),
        None => newest_other(app, records, current),
    }
}

fn by_number<'a>(
    app: &str,
    records: &'a [ReleaseRecord],
    current: Option<&ReleaseRecord>,
    revision: u32,
) -> Result<RollbackTarget<'a>, RollbackError> {
    let Some(release) = records.iter().find(|r| r.revision == revision) else {
        return Err(RollbackError::NoSuchRelease {
            app: app.to_string(),
            revision,
            available: records.iter().map(|r| r.revision).collect(),
        });
    };
    if !was_deployed(release.status) {
        return Err(RollbackError::NeverDeployed {
            app: app.to_string(),
            revision,
            status: release.status,
            deployed: records
                .iter()
                .filter(|r| was_deployed(r.status))
                .map(|r| r.revision)
                .collect(),
            commit: release.commit.as_ref().map(|c| c.short_id.clone()),
        });
    }
    let reason = match current {
        Some(current) if current.revision == revision => {
            "as asked; it is the deployed one, so only what differs from it in the cluster is applied"
                .to_string()
        }
        Some(current) => format!("as asked; release {} is the deployed one", current.revision),
        None => "as asked; no release is deployed now".to_string(),
    };
    Ok(RollbackTarget { release, reason })
}

/// Why a release was passed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Passed {
    Failed,
    Pending,
    SameObjects,
    Unreadable,
}

fn newest_other<'a>(
    app: &str,
    records: &'a [ReleaseRecord],
    current: Option<&ReleaseRecord>,
) -> Result<RollbackTarget<'a>, RollbackError> {
    let mut passed: Vec<(u32, Passed)> = Vec::new();
    let (current_objects, before) = match current {
        Some(current) => (objects_of(current), current.revision),
        None => (None, u32::MAX),
    };
    let mut target = None;
    for record in records {
        if current.is_some_and(|c| c.revision == record.revision) {
            continue;
        }
        let word = match record.status {
            ReleaseStatus::Failed => Some(Passed::Failed),
            ReleaseStatus::Pending => Some(Passed::Pending),
            _ => None,
        };
        if let Some(word) = word {
            passed.push((record.revision, word));
            continue;
        }
        // Deployed at some point: only those before the deployed one are candidates.
        if record.revision > before {
            continue;
        }
        match objects_of(record) {
            None => passed.push((record.revision, Passed::Unreadable)),
            Some(objects) if current_objects.as_ref() == Some(&objects) => {
                passed.push((record.revision, Passed::SameObjects));
            }
            Some(_) => {
                target = Some(record);
                break;
            }
        }
    }
    let notes = notes(&passed, current.map(|c| c.revision));
    let Some(release) = target else {
        let why = match current {
            Some(current) => format!(
                "release {} is the deployed one, and no release before it that was deployed holds other objects{notes}",
                current.revision
            ),
            None => format!("no release of it was ever deployed{notes}"),
        };
        return Err(RollbackError::NothingToRollBackTo {
            app: app.to_string(),
            why,
        });
    };
    let reason = match current {
        Some(current) => format!(
            "the newest release before release {0}, the deployed one, whose objects differ from release {0}'s{notes}",
            current.revision
        ),
        None => format!("the newest release that was deployed; none is deployed now{notes}"),
    };
    Ok(RollbackTarget { release, reason })
}

/// `; release 5 failed; releases 3, 2 hold release 4's objects`, for the releases passed
/// over, newest first within each reason.
fn notes(passed: &[(u32, Passed)], current: Option<u32>) -> String {
    let mut by_reason: BTreeMap<Passed, Vec<u32>> = BTreeMap::new();
    for (revision, why) in passed {
        by_reason.entry(*why).or_default().push(*revision);
    }
    let mut text = String::new();
    for (why, revisions) in by_reason {
        let one = revisions.len() == 1;
        let which = format!(
            "{} {}",
            if one { "release" } else { "releases" },
            join(&revisions)
        );
        let said = match why {
            Passed::Failed => "failed".to_string(),
            Passed::Pending => format!("{} pending", if one { "is" } else { "are" }),
            Passed::SameObjects => format!(
                "{} release {}'s objects",
                if one { "holds" } else { "hold" },
                current.unwrap_or_default()
            ),
            Passed::Unreadable => format!(
                "{} a manifest that cannot be read",
                if one { "has" } else { "have" }
            ),
        };
        text.push_str(&format!("; {which} {said}"));
    }
    text
}

/// A release's objects as its stored manifest holds them, keyed; None if the manifest
/// cannot be read (a rollback to it would fail).
fn objects_of(record: &ReleaseRecord) -> Option<BTreeMap<ObjectKey, Value>> {
    let label = format!("release {} of {}", record.revision, record.app);
    let manifests = parse_documents(&label, &record.manifest.text()).ok()?;
    let desired = DesiredSet::build(manifests, &record.namespace, &BuiltinScopes).ok()?;
    Some(desired.into_iter().map(|o| (o.key, o.object)).collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::release::record::Operation;

    fn release(revision: u32, status: ReleaseStatus, greeting: &str) -> ReleaseRecord {
        let manifest = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: shop\ndata:\n  greeting: {greeting}\n"
        );
        let mut record =
            ReleaseRecord::start("shop", "shop", Operation::Sync, "ada", manifest.into());
        record.revision = revision;
        record.status = status;
        record
    }

    use ReleaseStatus::{Deployed, Failed, Pending, Superseded};

    #[test]
    fn a_bare_rollback_passes_over_failed_releases_and_those_with_the_same_objects() {
        // 5 failed after 4 was deployed; 3 holds 4's objects; 2 failed; 1 differs.
        let records = vec![
            release(5, Failed, "e"),
            release(4, Deployed, "d"),
            release(3, Superseded, "d"),
            release(2, Failed, "b"),
            release(1, Superseded, "a"),
        ];
        let chosen = choose("shop", "shop", &records, None).unwrap();
        assert_eq!(chosen.release.revision, 1);
        assert_eq!(
            chosen.reason,
            "the newest release before release 4, the deployed one, whose objects differ from release 4's; releases 5, 2 failed; release 3 holds release 4's objects"
        );
    }

    #[test]
    fn the_newest_earlier_release_that_differs_is_chosen() {
        let records = vec![
            release(3, Failed, "c"),
            release(2, Deployed, "b"),
            release(1, Superseded, "a"),
        ];
        let chosen = choose("shop", "shop", &records, None).unwrap();
        assert_eq!(chosen.release.revision, 1);
        assert!(
            chosen.reason.ends_with("; release 3 failed"),
            "{}",
            chosen.reason
        );
    }

    #[test]
    fn nothing_to_roll_back_to_is_an_error_saying_why() {
        let records = vec![
            release(3, Pending, "c"),
            release(2, Deployed, "a"),
            release(1, Superseded, "a"),
        ];
        let err = choose("shop", "shop", &records, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "app shop has nothing to roll back to: release 2 is the deployed one, and no release before it that was deployed holds other objects; release 3 is pending; release 1 holds release 2's objects"
        );
        let err = choose("shop", "shop", &[], None).unwrap_err();
        assert!(matches!(err, RollbackError::NoReleases { .. }), "{err}");
    }

    #[test]
    fn a_failed_release_asked_for_by_number_is_refused() {
        let records = vec![
            release(3, Failed, "c"),
            release(2, Deployed, "b"),
            release(1, Superseded, "a"),
        ];
        let err = choose("shop", "shop", &records, Some(3)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "release 3 of app shop failed, so it was never deployed: a rollback to it is refused; roll back to a release that was deployed (2, 1)"
        );
        let chosen = choose("shop", "shop", &records, Some(1)).unwrap();
        assert_eq!(chosen.release.revision, 1);
        assert_eq!(chosen.reason, "as asked; release 2 is the deployed one");
        let err = choose("shop", "shop", &records, Some(7)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "app shop has no release 7 (it has 3, 2, 1)"
        );
    }
}
