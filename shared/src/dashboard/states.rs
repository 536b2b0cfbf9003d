//! The apps' states as last read, kept until a watch ([`super::live`]) sees a change that
//! touches them: a member of the app's ApplySet, an object Helm annotated as the
//! release's, or one of its release records; a change that cannot be placed forgets them
//! all; a state read while a change touched its app is not kept (changes to other apps
//! do not count). What no watch may follow is read again after a while: a Helm release's state (an
//! object Helm did not annotate, a kind first held by a release made since the start)
//! after [`MAX_AGE_UNWATCHED`]; ours (whose Pods change their owners' status, which is watched)
//! after [`MAX_AGE`], in case a watch could not be kept open. Errors are not kept for
//! pages that wait for a state; the overview, which does not wait ([`States::check`] reads
//! in the background), shows an error for [`MAX_AGE_UNWATCHED`].

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;

use super::data::{AppRef, AppState, Cluster, app_state};
use super::live::Change;
use crate::apply::applyset::ApplySetId;
use crate::release::history::{self, AppSummary, Source};
use crate::release::store::Read;

/// How long a state is kept without a change seen.
pub const MAX_AGE: Duration = Duration::from_secs(300);

/// How long a Helm release's state is kept: its watches place only the objects Helm
/// annotated, of the kinds its releases held at the start.
pub const MAX_AGE_UNWATCHED: Duration = Duration::from_secs(10);

/// How many apps the overview's background checks read at once.
pub const CHECKS_AT_ONCE: usize = 8;

type Key = (usize, String, String, Source);

fn key_of(app: &AppRef) -> Key {
    (
        app.cluster,
        app.namespace.clone(),
        app.app.clone(),
        app.source,
    )
}

fn max_age(source: Source) -> Duration {
    match source {
        Source::Gitops => MAX_AGE,
        Source::Helm => MAX_AGE_UNWATCHED,
    }
}

/// What is known of an app's state without reading it.
pub enum Known {
    State(Arc<AppState>),
    /// The last read failed, and why.
    Failed(String),
    /// Not read yet, or being read.
    Checking,
}

/// A state kept, with when it was read.
struct Kept {
    read: Instant,
    /// The id of the app's ApplySet, which its members' changes name.
    applyset: String,
    state: Arc<AppState>,
}

/// The generation at which each thing a change names last changed: a state read while
/// another app changed is still kept (in a busy cluster something changes all the time).
#[derive(Default)]
struct Touched {
    /// By (cluster, ApplySet id).
    members: BTreeMap<(usize, String), u64>,
    /// By (cluster, namespace, app).
    releases: BTreeMap<(usize, String, String), u64>,
    /// By cluster: its newest release change.
    clusters: BTreeMap<usize, u64>,
    /// A change nobody could place.
    unknown: u64,
}

impl Touched {
    fn note(&mut self, change: &Change, generation: u64) {
        match change {
            Change::Member { cluster, applyset } => {
                self.members
                    .insert((*cluster, applyset.clone()), generation);
            }
            Change::Release {
                cluster,
                namespace,
                app,
            } => {
                self.releases
                    .insert((*cluster, namespace.clone(), app.clone()), generation);
                self.clusters.insert(*cluster, generation);
            }
            Change::Unknown => self.unknown = generation,
            Change::Checked => {}
        }
    }

    /// Whether `app` (its ApplySet `applyset`) may have changed after generation `since`.
    fn app_since(&self, app: &AppRef, applyset: &str, since: u64) -> bool {
        let after = |g: Option<&u64>| g.is_some_and(|g| *g > since);
        self.unknown > since
            || after(self.members.get(&(app.cluster, applyset.to_string())))
            || after(
                self.releases
                    .get(&(app.cluster, app.namespace.clone(), app.app.clone())),
            )
    }

    /// Whether cluster `index`'s list of apps may have changed after generation `since`.
    fn cluster_since(&self, index: usize, since: u64) -> bool {
        self.unknown > since || self.clusters.get(&index).is_some_and(|g| *g > since)
    }
}

/// The states of the apps pages asked for.
#[derive(Default)]
pub struct States {
    /// Moves on with every change; [`Touched`] says what each one touched.
    generation: AtomicU64,
    touched: Mutex<Touched>,
    kept: Mutex<BTreeMap<Key, Kept>>,
    /// Each cluster's apps with their newest release, and when they were listed.
    apps: Mutex<BTreeMap<usize, (Instant, Vec<AppSummary>)>>,
    /// The apps whose state a background check is reading now.
    checking: Mutex<BTreeSet<Key>>,
    /// Why a background check failed, and when.
    failed: Mutex<BTreeMap<Key, (Instant, String)>>,
}

impl States {
    /// A watch saw `change`: the states it touches are stale.
    pub fn changed(&self, change: &Change) {
        if *change == Change::Checked {
            return;
        }
        // Noted under the lock, so a reader that sees the new generation sees what it
        // touched.
        if let Ok(mut touched) = self.touched.lock() {
            let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
            touched.note(change, generation);
        }
        if let Ok(mut failed) = self.failed.lock() {
            failed.clear();
        }
        if let Ok(mut apps) = self.apps.lock() {
            match change {
                Change::Member { .. } => {}
                Change::Release { cluster, .. } => {
                    apps.remove(cluster);
                }
                Change::Unknown => apps.clear(),
                Change::Checked => {}
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
            Change::Checked => {}
        }
    }

    /// `app`'s state if it is kept, else why its last check failed, else `Checking`.
    pub fn known(&self, app: &AppRef) -> Known {
        let key = key_of(app);
        if let Ok(kept) = self.kept.lock()
            && let Some(k) = kept.get(&key)
            && k.read.elapsed() < max_age(app.source)
        {
            return Known::State(k.state.clone());
        }
        if let Ok(failed) = self.failed.lock()
            && let Some((when, reason)) = failed.get(&key)
            && when.elapsed() < MAX_AGE_UNWATCHED
        {
            return Known::Failed(reason.clone());
        }
        Known::Checking
    }

    /// Reads the states of `apps` (of `cluster`), [`CHECKS_AT_ONCE`] at a time, those not
    /// being read already; `done` is called after each, so open pages can show it.
    pub async fn check(&self, cluster: &Cluster, apps: Vec<AppRef>, done: impl Fn()) {
        let apps: Vec<AppRef> = match self.checking.lock() {
            Ok(mut checking) => apps
                .into_iter()
                .filter(|app| checking.insert(key_of(app)))
                .collect(),
            Err(_) => return,
        };
        futures::stream::iter(apps)
            .for_each_concurrent(CHECKS_AT_ONCE, |app| {
                let done = &done;
                async move {
                    let read = self.get(cluster, &app).await;
                    let key = key_of(&app);
                    if let Ok(mut failed) = self.failed.lock() {
                        match read {
                            Ok(_) => failed.remove(&key),
                            Err(reason) => failed.insert(key.clone(), (Instant::now(), reason)),
                        };
                    }
                    if let Ok(mut checking) = self.checking.lock() {
                        checking.remove(&key);
                    }
                    done();
                }
            })
            .await;
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
        let listed = history::apps(
            cluster.live.client(),
            cluster.scope.as_deref(),
            None,
            Read::Head,
        )
        .await
        .map_err(|e| e.to_string())?;
        let unchanged = self
            .touched
            .lock()
            .is_ok_and(|touched| !touched.cluster_since(index, generation));
        if unchanged && let Ok(mut apps) = self.apps.lock() {
            apps.insert(index, (Instant::now(), listed.clone()));
        }
        Ok(listed)
    }

    /// `app`'s state: as kept if nothing changed since it was read, else read now.
    pub async fn get(&self, cluster: &Cluster, app: &AppRef) -> Result<Arc<AppState>, String> {
        if let Known::State(state) = self.known(app) {
            return Ok(state);
        }
        let key = key_of(app);
        // Read before the state: a change to this app that comes in while it is read may
        // not be in it, so then it is not kept.
        let generation = self.generation.load(Ordering::SeqCst);
        let state = Arc::new(app_state(cluster, app).await?);
        let applyset = ApplySetId::for_app(&app.app, &app.namespace).to_string();
        let unchanged = self
            .touched
            .lock()
            .is_ok_and(|touched| !touched.app_since(app, &applyset, generation));
        if unchanged && let Ok(mut kept) = self.kept.lock() {
            kept.insert(
                key,
                Kept {
                    read: Instant::now(),
                    applyset,
                    state: state.clone(),
                },
            );
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppRef {
        AppRef {
            cluster: 0,
            namespace: "shop".into(),
            app: "web".into(),
            source: Source::Gitops,
        }
    }

    #[test]
    fn an_app_not_read_is_being_checked_and_a_failed_check_says_why() {
        let states = States::default();
        assert!(matches!(states.known(&app()), Known::Checking));
        if let Ok(mut failed) = states.failed.lock() {
            failed.insert(key_of(&app()), (Instant::now(), "forbidden".into()));
        }
        assert!(matches!(states.known(&app()), Known::Failed(why) if why == "forbidden"));
        // A change in the cluster may have fixed it: checked again.
        states.changed(&Change::Release {
            cluster: 0,
            namespace: "shop".into(),
            app: "web".into(),
        });
        assert!(matches!(states.known(&app()), Known::Checking));
    }

    #[test]
    fn a_read_is_kept_unless_a_change_touched_its_app_while_it_was_read() {
        let states = States::default();
        let web = app();
        let applyset = ApplySetId::for_app(&web.app, &web.namespace).to_string();
        let read_from = states.generation.load(Ordering::SeqCst);
        // Another app's member and release change, as they do all the time in a busy
        // cluster.
        states.changed(&Change::Member {
            cluster: 0,
            applyset: "applyset-other-v1".into(),
        });
        states.changed(&Change::Release {
            cluster: 0,
            namespace: "shop".into(),
            app: "api".into(),
        });
        let touched = |since| {
            states
                .touched
                .lock()
                .map(|t| t.app_since(&web, &applyset, since))
                .unwrap_or(true)
        };
        assert!(!touched(read_from));
        // This app's member in another cluster: not this app either.
        states.changed(&Change::Member {
            cluster: 1,
            applyset: applyset.clone(),
        });
        assert!(!touched(read_from));
        // Its own member changed while it was read: not kept.
        states.changed(&Change::Member {
            cluster: 0,
            applyset: applyset.clone(),
        });
        assert!(touched(read_from));
        // A read that started after that change keeps what it read.
        let later = states.generation.load(Ordering::SeqCst);
        assert!(!touched(later));
        states.changed(&Change::Unknown);
        assert!(touched(later));
        // The cluster's list of apps: only release changes (and unknown ones) touch it.
        let listed_from = states.generation.load(Ordering::SeqCst);
        states.changed(&Change::Member {
            cluster: 0,
            applyset: applyset.clone(),
        });
        let cluster_touched = |since| {
            states
                .touched
                .lock()
                .map(|t| t.cluster_since(0, since))
                .unwrap_or(true)
        };
        assert!(!cluster_touched(listed_from));
        states.changed(&Change::Release {
            cluster: 0,
            namespace: "shop".into(),
            app: "web".into(),
        });
        assert!(cluster_touched(listed_from));
    }

    #[test]
    fn a_finished_check_makes_nothing_stale() {
        let states = States::default();
        states.changed(&Change::Checked);
        // A read that started before it is still kept.
        assert_eq!(states.generation.load(Ordering::SeqCst), 0);
        states.changed(&Change::Unknown);
        assert_eq!(states.generation.load(Ordering::SeqCst), 1);
    }
}
