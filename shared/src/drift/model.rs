//! What a drift check found, kept apart from how it is shown. The serde form of
//! [`AppDrift`] is the `-o json` document, so field names here are a stable interface.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::fields::{FieldDrift, IgnoredField};
use super::git::GitStatus;
use crate::objects::ObjectKey;
use crate::release::record::Counts;

/// How an object differs from the desired side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectState {
    /// Fields we applied have other values now.
    Modified,
    /// A desired object that no longer exists.
    Deleted,
    /// Labelled as a member of the app's ApplySet, but not desired.
    Stray,
}

impl ObjectState {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectState::Modified => "modified",
            ObjectState::Deleted => "deleted",
            ObjectState::Stray => "stray",
        }
    }
}

/// One object that is not as desired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectDrift {
    pub key: ObjectKey,
    pub state: ObjectState,
    /// For a modified object, each differing field; empty otherwise.
    pub fields: Vec<FieldDrift>,
    /// More about the state, e.g. that a deleted object's kind is no longer served.
    pub message: Option<String>,
}

/// Where an app stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AppStatus {
    /// The cluster is as desired (ignored fields aside) and git has nothing new.
    InSync,
    /// Something in the cluster changed behind git's back.
    Drifted,
    /// The cluster is as deployed, but the branch has changes not deployed yet.
    Behind,
}

impl AppStatus {
    /// The words a table shows.
    pub fn as_str(self) -> &'static str {
        match self {
            AppStatus::InSync => "in sync",
            AppStatus::Drifted => "drifted",
            AppStatus::Behind => "behind",
        }
    }
}

/// What the live cluster was compared with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Against {
    /// `release` (the last deployed release) or `revision` (`--against REV`).
    pub kind: &'static str,
    /// The release number, or the revision as given.
    pub name: String,
    /// The commit: the release's (if synced from git) or the revision's.
    pub commit: Option<String>,
}

/// Counts of what a check found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DriftSummary {
    pub modified: usize,
    pub deleted: usize,
    pub stray: usize,
    /// Desired objects that are as desired.
    pub in_sync: usize,
    /// Differing fields left out by ignore rules.
    pub ignored_fields: usize,
}

/// The release a heal wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Healed {
    pub release: u32,
    /// `deployed`, or `failed` (then the error says why).
    pub status: String,
    pub description: String,
    pub counts: Counts,
}

/// The app's newest release, when it is newer than the deployed one it was checked
/// against and did not deploy: a sync still running or one that died (`pending`), or one
/// that failed or was interrupted part-way (`failed`). Either may have left a half-applied
/// change, which a check sees as drift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LatestRelease {
    pub release: u32,
    /// `pending` or `failed`.
    pub status: String,
    pub who: String,
    pub started: jiff::Timestamp,
    /// What the failed record says happened (for an interrupted sync: what was and was
    /// not applied).
    pub error: Option<String>,
}

/// One app checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AppDrift {
    pub app: String,
    /// Where the app's records live.
    pub namespace: String,
    /// The deployed release.
    pub release: u32,
    /// Set when a newer release is pending or failed: see [`LatestRelease`].
    pub latest_release: Option<LatestRelease>,
    pub against: Against,
    pub status: AppStatus,
    pub summary: DriftSummary,
    /// The objects that differ, by key.
    pub objects: Vec<ObjectDrift>,
    /// Differing fields that ignore rules left out.
    pub ignored: Vec<IgnoredField>,
    /// With `--git` or `--against`: the branch against the deployed release.
    pub git: Option<GitStatus>,
    /// Set by a heal.
    pub healed: Option<Healed>,
    /// Things the user should know that did not stop the check.
    pub warnings: Vec<String>,
    /// The dry runs of objects with ignored differences, for a heal to leave those
    /// fields out of what it applies.
    #[serde(skip)]
    pub(crate) applied: BTreeMap<ObjectKey, Value>,
}

impl AppDrift {
    /// A report with nothing found yet: fill `objects`, `ignored` and `git`, then
    /// [`AppDrift::settle`].
    pub fn new(app: &str, namespace: &str, release: u32, against: Against) -> AppDrift {
        AppDrift {
            app: app.to_string(),
            namespace: namespace.to_string(),
            release,
            latest_release: None,
            against,
            status: AppStatus::InSync,
            summary: DriftSummary::default(),
            objects: Vec::new(),
            ignored: Vec::new(),
            git: None,
            healed: None,
            warnings: Vec::new(),
            applied: BTreeMap::new(),
        }
    }

    /// Whether the cluster differs (strays included), ignoring git.
    pub fn drifted(&self) -> bool {
        !self.objects.is_empty()
    }

    /// Whether the branch has undeployed changes.
    pub fn behind(&self) -> bool {
        self.git.as_ref().is_some_and(|g| g.behind)
    }

    /// Counts and status from `objects`, `ignored` and `git` (`in_sync` is the caller's).
    pub fn settle(&mut self) {
        let count = |state| self.objects.iter().filter(|o| o.state == state).count();
        self.summary.modified = count(ObjectState::Modified);
        self.summary.deleted = count(ObjectState::Deleted);
        self.summary.stray = count(ObjectState::Stray);
        self.summary.ignored_fields = self.ignored.len();
        self.status = if self.drifted() {
            AppStatus::Drifted
        } else if self.behind() {
            AppStatus::Behind
        } else {
            AppStatus::InSync
        };
    }

    /// The objects in `state`.
    pub fn in_state(&self, state: ObjectState) -> impl Iterator<Item = &ObjectDrift> {
        self.objects.iter().filter(move |o| o.state == state)
    }
}
