//! Drift: what changed in the cluster behind git's back, who changed it, and healing it.
//!
//! The desired side is the manifest of the app's last deployed release (or a git
//! revision). Each desired object is server-side applied as a dry run with force and
//! compared with the live object ([`fields`]): a field differs only when applying our
//! manifest again would change it, i.e. a field we applied that someone changed since.
//! Its owner now, read from managedFields ([`owners`]), is who changed it. Members that are
//! gone are `deleted`; objects labelled as members that the release does not hold are
//! `stray`. Objects the release's fingerprints prove unchanged (nobody wrote them, or no
//! field we own of them, since the sync) are in sync without a dry run. [`ignore`] rules
//! leave out fields others legitimately own; [`git`] says whether the branch has
//! undeployed changes; [`heal`] puts the release back.

mod check;
pub mod fields;
pub mod git;
pub mod heal;
pub mod ignore;
mod model;
pub mod owners;
mod untouched;

pub use check::{CheckRequest, Checked, check_app};
pub use fields::{FieldDrift, IgnoredField};
pub use git::{GitChange, GitStatus, Repos};
pub use heal::{HealOptions, heal, needs_heal};
pub use ignore::{IgnoreError, IgnoreRule, IgnoreRules};
pub use model::{
    Against, AppDrift, AppStatus, DriftSummary, Healed, LatestRelease, ObjectDrift, ObjectState,
};

use crate::apply::applyset::ApplySetError;
use crate::desired::DesiredError;
use crate::live::LiveError;
use crate::lock::LockError;
use crate::objects::ObjectKey;
use crate::release::store::StoreError;
use crate::source::SourceError;
use crate::sync::SyncError;

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sync(#[from] Box<SyncError>),
    #[error(transparent)]
    Live(Box<LiveError>),
    #[error(transparent)]
    ApplySet(#[from] ApplySetError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Ignore(Box<IgnoreError>),
    #[error("the manifest stored in release {revision} of app {app} cannot be read: {message}")]
    StoredManifest {
        app: String,
        revision: u32,
        message: String,
    },
    #[error(
        "app {app} has no releases in namespace {namespace} (kubectl sync creates them){}",
        crate::release::elsewhere::hint(app, elsewhere)
    )]
    NoRelease {
        app: String,
        namespace: String,
        /// The other namespaces where the app has releases.
        elsewhere: Vec<String>,
    },
    #[error("app {app} has no deployed release in namespace {namespace}: {newest}")]
    NoDeployedRelease {
        app: String,
        namespace: String,
        newest: String,
    },
    // The causes are part of the message, not a source chain, so they print once.
    #[error("cannot read git for app {app}: {cause}")]
    Git {
        app: String,
        cause: Box<SourceError>,
    },
    #[error("cannot render revision {revision} for app {app}: {cause}")]
    Render {
        app: String,
        revision: String,
        cause: Box<DesiredError>,
    },
    #[error("cannot compare {key} with the cluster (server-side dry run): {cause}")]
    DryRun {
        key: ObjectKey,
        cause: Box<LiveError>,
    },
    #[error(
        "nothing was healed: app {app} was checked against release {checked}, but {} is deployed now; check again",
        now.map(|n| format!("release {n}")).unwrap_or_else(|| "no release".into())
    )]
    ReleaseMoved {
        app: String,
        checked: u32,
        now: Option<u32>,
    },
    #[error(
        "heal puts the deployed release back; it cannot heal towards revision {revision} (kubectl sync applies a revision)"
    )]
    HealAgainstRevision { revision: String },
}

impl From<IgnoreError> for DriftError {
    fn from(source: IgnoreError) -> Self {
        DriftError::Ignore(Box::new(source))
    }
}

impl From<SyncError> for DriftError {
    fn from(source: SyncError) -> Self {
        DriftError::Sync(Box::new(source))
    }
}
