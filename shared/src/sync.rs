//! A sync: apply a desired set as one app, prune what it no longer has, wait for health,
//! and record the result as a release. [`flow`] is the one way through it that every
//! command takes: the lock, the reads, the plan (`plan`), and carrying it out (`execute`).

pub mod access;
pub mod app_namespace;
pub mod cascade;
mod execute;
pub mod flow;
mod hook_stages;
mod plan;
mod refusal;
mod rollback_job;
mod unchanged;
pub mod uninstall;

use std::collections::BTreeMap;
use std::time::Duration;

use execute::execute;
use plan::plan_with_parent;
pub use plan::{PlanOptions, SyncPlan};
pub use refusal::{Guard, PruneRules, by_kind};
pub use rollback_job::rollback_job;

use crate::apply::applyset::ApplySetError;
use crate::apply::health::{Health, HealthError, WaitOptions};
use crate::apply::object_options::ObjectOptionsError;
use crate::apply::order::OrderError;
use crate::apply::ownership::ForeignOwner;
use crate::apply::prune::PruneError;
use crate::compare::{CompareError, Conflict};
use crate::live::LiveError;
use crate::lock::{LockError, TakenOver};
use crate::objects::hook::Stage;
use crate::objects::{BuiltinScopes, DesiredSet, ObjectKey, ObjectsError};
use crate::release::record::{HookRun, Operation, ReleaseRecord};
use crate::release::store::{RecordMeta, StoreError};
use crate::render::{RenderError, parse_documents};
use crate::source::CommitInfo;

/// How long a sync or a heal waits for health (and retries its requests) unless told
/// otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Release records kept unless told otherwise.
pub const DEFAULT_HISTORY_MAX: usize = 10;

/// How to carry out a plan, and what to record about it.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Take fields over from other field managers (ownership of the object is another
    /// matter: see `adopt`).
    pub force_conflicts: bool,
    /// Take over existing objects that another ApplySet or a Helm release owns; without
    /// it such a sync is refused before anything is written.
    pub adopt: bool,
    /// Wait for health after applying; None skips it (`--wait=false`).
    pub wait: Option<WaitOptions>,
    /// How long the whole sync may take (`--timeout`): hooks and the waits between waves
    /// count against it, with or without `wait`.
    pub timeout: Duration,
    /// Run no hooks (`--no-hooks`).
    pub no_hooks: bool,
    /// Records to keep (`--history-max`).
    pub history_max: usize,
    pub operation: Operation,
    pub rollback_of: Option<u32>,
    pub description: String,
    pub who: String,
    pub repo: Option<String>,
    pub path: String,
    pub renderer: String,
    pub commit: Option<CommitInfo>,
    /// Every commit the release covers, newest first, and how many more are left out
    /// (see [`ReleaseRecord::commits`]).
    pub commits: Vec<CommitInfo>,
    pub commits_left_out: usize,
    pub extra: BTreeMap<String, serde_json::Value>,
    /// The digest of the files the objects were rendered from, if they alone decide them
    /// (see [`ReleaseRecord::source_digest`]).
    pub source_digest: Option<String>,
    /// The deployed release this sync follows, if the caller has read it (for its
    /// fingerprints): superseded at the end without reading it again.
    pub previous: Option<ReleaseRecord>,
    /// The app's records by metadata, if the caller listed them while holding the app's
    /// lock: not listed again.
    pub listed: Option<Vec<RecordMeta>>,
}

impl SyncOptions {
    /// A sync by `who` as the commands run one without flags: wait for health up to
    /// [`DEFAULT_TIMEOUT`], run hooks, keep [`DEFAULT_HISTORY_MAX`] records, take nothing
    /// over from other owners.
    pub fn by(who: String) -> SyncOptions {
        SyncOptions {
            force_conflicts: false,
            adopt: false,
            wait: Some(WaitOptions {
                timeout: DEFAULT_TIMEOUT,
                poll_interval: Duration::from_secs(1),
            }),
            timeout: DEFAULT_TIMEOUT,
            no_hooks: false,
            history_max: DEFAULT_HISTORY_MAX,
            operation: Operation::Sync,
            rollback_of: None,
            description: String::new(),
            who,
            repo: None,
            path: String::new(),
            renderer: String::new(),
            commit: None,
            commits: Vec::new(),
            commits_left_out: 0,
            extra: BTreeMap::new(),
            source_digest: None,
            previous: None,
            listed: None,
        }
    }
}

/// A finished sync.
#[derive(Debug)]
pub struct SyncOutcome {
    /// The release it recorded; for a no-op sync (`recorded` false), the current deployed
    /// release as now stored (`last_synced` now; `commit` and `commits` moved on for a
    /// sync of a later commit), with `counts` and `objects` saying what this sync found.
    pub record: ReleaseRecord,
    /// Whether a new release was recorded.
    pub recorded: bool,
}

/// What a sync is doing, for progress displays.
#[derive(Debug)]
pub enum SyncEvent<'a> {
    /// The app's lock was another's, a process of this host that is gone: it was taken
    /// over without waiting for its lease to expire.
    LockTakenOver {
        taken_over: &'a TakenOver,
    },
    Recorded {
        revision: u32,
    },
    Phase {
        name: &'static str,
        wave: i64,
        count: usize,
    },
    Applied {
        key: &'a ObjectKey,
        action: &'static str,
    },
    ApplyFailed {
        key: &'a ObjectKey,
        message: &'a str,
    },
    Pruned {
        key: &'a ObjectKey,
    },
    /// An object this sync created was deleted again, after another create failed.
    Undone {
        key: &'a ObjectKey,
    },
    Waiting {
        count: usize,
        timeout: Duration,
    },
    Health {
        key: &'a ObjectKey,
        health: &'a Health,
    },
    /// A wave is applied and a later one follows: its objects are waited for first.
    WaveWaiting {
        wave: i64,
        count: usize,
    },
    /// Hooks of one weight of a stage are starting.
    Hooks {
        stage: Stage,
        weight: i64,
        count: usize,
    },
    /// A hook has run (or could not be).
    HookFinished {
        run: &'a HookRun,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Compare(#[from] CompareError),
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error(transparent)]
    ApplySet(#[from] ApplySetError),
    #[error(transparent)]
    Order(#[from] OrderError),
    #[error(transparent)]
    Prune(#[from] PruneError),
    #[error(transparent)]
    ObjectOptions(#[from] ObjectOptionsError),
    #[error(transparent)]
    Health(#[from] HealthError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("the sync finished, but its lock could not be released")]
    NotReleased(#[source] LockError),
    #[error("{}", describe_conflicts(.0))]
    Conflicts(Vec<Conflict>),
    /// The revision renders no objects, and the app has members (`--allow-empty`).
    #[error("{text}")]
    EmptyRender { text: String },
    /// Pruning a CRD or Namespace would delete objects the revision still has.
    #[error("{text}")]
    CascadeWanted { text: String },
    /// Pruning a CRD or Namespace would delete objects that are not the app's
    /// (`--prune-cascade`).
    #[error("{text}")]
    CascadeForeign { text: String },
    /// Existing objects belong to another app or a Helm release, and the sync was not
    /// asked to adopt them: refused before anything was written.
    #[error("{}", describe_owners(.0))]
    OwnedElsewhere(Vec<ForeignOwner>),
    /// The identity the sync acts as may not make some of its writes: refused before
    /// anything was written.
    #[error(
        "{who} may not sync app {app}: it cannot {}; nothing was applied (grant these to {who}, or leave the objects out of the app)",
        refused.join("; ")
    )]
    NotAllowed {
        app: String,
        who: String,
        refused: Vec<String>,
    },
    /// Stopped by the caller's [`Cancel`](crate::cancel::Cancel) after the first write: the
    /// requests in flight finished, no new one started.
    #[error("{}", describe_interruption(.0))]
    Interrupted(Interruption),
    /// Stopped by the caller's cancel before anything was written.
    #[error("interrupted before anything was changed: nothing was applied, pruned or recorded")]
    InterruptedBeforeWriting,
    #[error("{}", describe_apply_failure(failed, applied, not_applied, undo.as_ref()))]
    ApplyFailed {
        failed: Vec<(ObjectKey, String)>,
        applied: Vec<ObjectKey>,
        not_applied: Vec<ObjectKey>,
        /// For a sync that only created objects: what deleting its creations did.
        undo: Option<Undo>,
    },
    #[error("not healthy: {}", objects.iter().map(|(k, h)| format!("{k} ({h})")).collect::<Vec<_>>().join("; "))]
    Unhealthy { objects: Vec<(ObjectKey, String)> },
    /// A wave's objects were not all healthy, so the waves after it were not applied.
    #[error("wave {wave} is not healthy, so the waves after it were not applied: {}", objects.iter().map(|(k, h)| format!("{k} ({h})")).collect::<Vec<_>>().join("; "))]
    WaveUnhealthy {
        wave: i64,
        objects: Vec<(ObjectKey, String)>,
    },
    /// A hook failed, timed out, or could not be created.
    #[error("{stage} hook {hook} {result}: {message}{}", after_hook(stage))]
    HookFailed {
        stage: Stage,
        hook: String,
        result: String,
        message: String,
    },
    #[error("release {revision} could not be finished ({write}); the sync itself {}", sync.as_deref().map(|s| format!("failed: {s}")).unwrap_or_else(|| "succeeded".into()))]
    RecordNotFinished {
        revision: u32,
        sync: Option<String>,
        write: String,
    },
    #[error("the release could not be recorded ({write}); the sync itself {}", sync.as_deref().map(|s| format!("failed: {s}")).unwrap_or_else(|| "succeeded (it changed nothing)".into()))]
    RecordNotWritten { sync: Option<String>, write: String },
    /// Nothing of the app is there: no ApplySet parent, no release.
    #[error(
        "app {app} has no objects and no releases in namespace {namespace}: there is nothing to uninstall (is -n right?)"
    )]
    NothingToUninstall { app: String, namespace: String },
    #[error("uninstall failed deleting {key} after deleting {deleted} object(s): {message}")]
    UninstallDelete {
        key: Box<ObjectKey>,
        deleted: usize,
        message: String,
    },
    #[error("the manifest stored in release {revision} cannot be read: {source}")]
    StoredManifest { revision: u32, source: RenderError },
    #[error("the manifest stored in release {revision} cannot be used: {source}")]
    StoredObjects { revision: u32, source: ObjectsError },
}

impl SyncError {
    /// Whether the caller's cancel stopped the sync (before or after its first write).
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            SyncError::Interrupted(_) | SyncError::InterruptedBeforeWriting
        )
    }

    /// Whether the sync stopped before its first write, leaving no record.
    pub fn wrote_nothing(&self) -> bool {
        matches!(
            self,
            SyncError::InterruptedBeforeWriting | SyncError::OwnedElsewhere(_)
        )
    }
}

/// How far an interrupted sync got: what it was doing, and what it did and did not do.
#[derive(Debug, Clone, Default)]
pub struct Interruption {
    /// `applying`, `pruning`, `waiting for health`, ...
    pub during: &'static str,
    /// Created or configured by this sync before it stopped.
    pub applied: Vec<ObjectKey>,
    /// Objects the plan would have changed that it did not get to.
    pub not_applied: Vec<ObjectKey>,
    pub pruned: Vec<ObjectKey>,
    /// Stale members a `--prune` would have deleted that it did not get to.
    pub not_pruned: Vec<ObjectKey>,
}

/// `interrupted while applying (no change was started after the signal): applied 3
/// object(s): ...; not applied 197 object(s): ...`, in the style of an apply failure.
fn describe_interruption(stopped: &Interruption) -> String {
    let mut text = format!(
        "interrupted while {} (no change was started after the signal): applied {} object(s): {}; not applied {} object(s): {}",
        stopped.during,
        stopped.applied.len(),
        names(&stopped.applied),
        stopped.not_applied.len(),
        names(&stopped.not_applied)
    );
    if !stopped.pruned.is_empty() || !stopped.not_pruned.is_empty() {
        text.push_str(&format!(
            "; pruned {} object(s): {}; not pruned {} object(s): {}",
            stopped.pruned.len(),
            names(&stopped.pruned),
            stopped.not_pruned.len(),
            names(&stopped.not_pruned)
        ));
    }
    if stopped.during == WAITING_FOR_HEALTH {
        text.push_str("; their health was not confirmed");
    }
    text
}

/// What a failed hook of `stage` means for the objects.
fn after_hook(stage: &Stage) -> &'static str {
    match stage {
        Stage::Pre => "; no object was applied",
        Stage::Post => " (the objects were applied)",
        Stage::PreDelete => "; nothing was deleted",
        _ => "",
    }
}

/// What [`Interruption::during`] says of a sync stopped while it waited for health.
const WAITING_FOR_HEALTH: &str = "waiting for health";

fn describe_conflicts(conflicts: &[Conflict]) -> String {
    let list: Vec<String> = conflicts
        .iter()
        .map(|c| format!("{}: {}", c.key, c.message))
        .collect();
    format!(
        "fields are owned by other field managers; nothing was applied (use --force-conflicts to take them over): {}",
        list.join("; ")
    )
}

fn describe_owners(owners: &[ForeignOwner]) -> String {
    let list: Vec<String> = owners
        .iter()
        .map(|o| format!("{} belongs to {}", o.key, o.owner))
        .collect();
    format!(
        "{} object(s) belong to another owner; nothing was applied or recorded (kubectl sync --adopt takes them over): {}",
        owners.len(),
        list.join("; ")
    )
}

/// What undoing a sync's creations did.
#[derive(Debug, Default, Clone)]
pub struct Undo {
    /// Created by the sync, then deleted again.
    pub deleted: Vec<ObjectKey>,
    /// Created by the sync and still there: the delete failed.
    pub left: Vec<(ObjectKey, String)>,
}

/// How many names an apply failure lists of each kind before saying "and N more": a
/// 200-object sync that lost its API server must still fit on a screen.
const NAMES_SHOWN: usize = 5;

/// ` and N more` past the first [`NAMES_SHOWN`] of `total`.
fn more(total: usize) -> String {
    if total > NAMES_SHOWN {
        format!(" and {} more", total - NAMES_SHOWN)
    } else {
        String::new()
    }
}

/// The first few keys by name, `none` for none.
fn names(keys: &[ObjectKey]) -> String {
    if keys.is_empty() {
        return "none".to_string();
    }
    let shown: Vec<String> = keys
        .iter()
        .take(NAMES_SHOWN)
        .map(ToString::to_string)
        .collect();
    format!("{}{}", shown.join(", "), more(keys.len()))
}

fn describe_apply_failure(
    failed: &[(ObjectKey, String)],
    applied: &[ObjectKey],
    not_applied: &[ObjectKey],
    undo: Option<&Undo>,
) -> String {
    let failed_text: Vec<String> = failed
        .iter()
        .take(NAMES_SHOWN)
        .map(|(k, m)| format!("{k}: {m}"))
        .collect();
    let failure = format!(
        "apply failed for {} object(s): {}{}",
        failed.len(),
        failed_text.join("; "),
        more(failed.len()),
    );
    match undo {
        None => format!(
            "{failure}; applied before the failure: {} object(s): {}; not applied: {} object(s): {}",
            applied.len(),
            names(applied),
            not_applied.len(),
            names(not_applied)
        ),
        Some(undo) if undo.left.is_empty() => format!(
            "{failure}; this sync only created objects, and the {} it had created were deleted again: the cluster is as it was",
            undo.deleted.len()
        ),
        Some(undo) => {
            let left: Vec<ObjectKey> = undo.left.iter().map(|(k, _)| k.clone()).collect();
            format!(
                "{failure}; this sync only created objects, and deleting them again failed for {} object(s) that remain ({}): {}; deleted again: {} object(s); not applied: {} object(s)",
                left.len(),
                undo.left
                    .first()
                    .map(|(_, m)| m.as_str())
                    .unwrap_or_default(),
                names(&left),
                undo.deleted.len(),
                not_applied.len()
            )
        }
    }
}

/// The desired set a release recorded, for a rollback: its manifest already carries
/// namespaces and membership labels.
pub fn desired_from_record(record: &ReleaseRecord) -> Result<DesiredSet, SyncError> {
    let file = format!("release {}.r{}", record.app, record.revision);
    let manifests = parse_documents(&file, &record.manifest.text()).map_err(|source| {
        SyncError::StoredManifest {
            revision: record.revision,
            source,
        }
    })?;
    DesiredSet::build(manifests, &record.namespace, &BuiltinScopes).map_err(|source| {
        SyncError::StoredObjects {
            revision: record.revision,
            source,
        }
    })
}

/// A stable app name for a path: its components joined with `-` (the repository's
/// directory name for the whole repository), lower-cased, other characters replaced, at
/// most 53 characters so record names fit.
pub fn app_name_for_path(path: &str, repo_name: &str) -> String {
    let base = if path.trim_matches('/').is_empty() {
        repo_name
    } else {
        path
    };
    let mut name: String = base
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while name.contains("--") {
        name = name.replace("--", "-");
    }
    let name = name.trim_matches('-');
    let name: String = name.chars().take(53).collect();
    let name = name.trim_end_matches('-').to_string();
    if name.is_empty() {
        "app".to_string()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::app_name_for_path;

    #[test]
    fn app_names_are_stable_and_valid() {
        assert_eq!(app_name_for_path("deploy/prod", "repo"), "deploy-prod");
        assert_eq!(app_name_for_path("", "My_Repo"), "my-repo");
        assert_eq!(app_name_for_path("/apps//Web.UI/", "r"), "apps-web-ui");
        assert_eq!(app_name_for_path("", "---"), "app");
        assert_eq!(app_name_for_path(&"a".repeat(80), "r").len(), 53);
    }
}
