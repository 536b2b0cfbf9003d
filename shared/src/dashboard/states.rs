//! The apps' states as last read, kept until a watch ([`super::live`]) sees a change that
//! touches them: a member of the app's ApplySet, or one of its release records; a change
//! that cannot be placed forgets them all. What no watch follows is read again after a
//! while: a Helm release's state (its objects carry no member label) after
//! [`MAX_AGE_UNWATCHED`]; ours (whose Pods change their owners' status, which is watched)
//! after [`MAX_AGE`], in case a watch could not be kept open. Errors are not kept.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::data::{AppRef, AppState, Cluster, app_state};
use super::live::Change;
use crate::apply::applyset::ApplySetId;
use crate::release::history::{self, AppSummary, Source};

/// How long a state is kept without a change seen.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// How long a Helm release's state is kept: no watch follows its objects.
pub const MAX_AGE_UNWATCHED: Duration = Duration::from_secs(10);

type Key = (usize, String, String, Source);

/// A state kept, with when it was read.
struct Kept {
    read: Instant,
    /// The id of the app's ApplySet, which its members' changes name.
    applyset: String,
    state: Arc<AppState>,
}

/// The states of the apps pages asked for.
#[derive(Default)]
pub struct States {
    /// Moves on with every change: a state read while one came in is not kept.
    generation: AtomicU64,
    kept: Mutex<BTreeMap<Key, Kept>>,
    /// Each cluster's apps with their newest release, and when they were listed.
    apps: Mutex<BTreeMap<usize, (Instant, Vec<AppSummary>)>>,
}

impl States {
    /// A watch saw `change`: the states it touches are stale.
    pub fn changed(&self, change: &Change) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut apps) = self.apps.lock() {
            match change {
                Change::Member { .. } => {}
                Change::Release { cluster, .. } => {
                    apps.remove(cluster);
                }
                Change::Unknown => apps.clear(),
            }
        }
        let Ok(mut kept) = self.kept.lock() else {
            return;
        };
        match change {
            Change::Member { cluster, applyset } => {
                kept.retain(|key, k| !(key.0 == *cluster && k.applyset == *applyset));
            }
            Change::Release {
                cluster,
                namespace,
                app,
            } => kept.retain(|key, _| !(key.0 == *cluster && key.1 == *namespace && key.2 == *app)),
            Change::Unknown => kept.clear(),
        }
    }

    /// The apps of cluster `index` with their newest release: as kept if no release
    /// record changed since they were listed, else listed now.
    pub async fn apps(&self, index: usize, cluster: &Cluster) -> Result<Vec<AppSummary>, String> {
        if let Ok(apps) = self.apps.lock()
            && let Some((read, listed)) = apps.get(&index)
            && read.elapsed() < MAX_AGE
        {
            return Ok(listed.clone());
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let listed = history::apps(cluster.live.client(), cluster.scope.as_deref(), None)
            .await
            .map_err(|e| e.to_string())?;
        if let Ok(mut apps) = self.apps.lock()
            && self.generation.load(Ordering::SeqCst) == generation
        {
            apps.insert(index, (Instant::now(), listed.clone()));
        }
        Ok(listed)
    }

    /// `app`'s state: as kept if nothing changed since it was read, else read now.
    pub async fn get(&self, cluster: &Cluster, app: &AppRef) -> Result<Arc<AppState>, String> {
        let key = (
            app.cluster,
            app.namespace.clone(),
            app.app.clone(),
            app.source,
        );
        let max_age = match app.source {
            Source::Gitops => MAX_AGE,
            Source::Helm => MAX_AGE_UNWATCHED,
        };
        if let Ok(kept) = self.kept.lock()
            && let Some(k) = kept.get(&key)
            && k.read.elapsed() < max_age
        {
            return Ok(k.state.clone());
        }
        // Read before the state: a change that comes in while it is read may not be in it,
        // so then it is not kept.
        let generation = self.generation.load(Ordering::SeqCst);
        let state = Arc::new(app_state(cluster, app).await?);
        if let Ok(mut kept) = self.kept.lock()
            && self.generation.load(Ordering::SeqCst) == generation
        {
            kept.insert(
                key,
                Kept {
                    read: Instant::now(),
                    applyset: ApplySetId::for_app(&app.app, &app.namespace).to_string(),
                    state: state.clone(),
                },
            );
        }
        Ok(state)
    }
}
