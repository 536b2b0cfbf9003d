//! The one sync flow every command runs: take the app's lock (reading its ApplySet parent
//! under it), make every read a plan needs at once, plan; then, once the caller has shown
//! the plan and had its answer, execute and record, giving the lock up whatever happens.
//!
//! `kubectl sync` (a revision, `--watch`, `--rollback`) and `kubectl drift --heal` go
//! through [`lock`], [`Locked::plan`] and [`Planned::execute`] (or [`Planned::stop`]);
//! `kubectl diff-git` plans without a lock, through [`preview`], and `kubectl sync
//! --dry-run` through [`dry_run`]. What the commands keep
//! is theirs alone: parsing flags, the question on a terminal, and printing.
//!
//! A [`Cancel`] (the plugins set it on Ctrl-C or SIGTERM) is checked throughout: while
//! planning, the plan's reads are dropped and the lock given up, with nothing written;
//! while executing, no new write starts and the record says how far the sync got.

use std::time::Duration;

use super::refusal::{self, Guard};
use super::uninstall::{self, UninstallOptions, UninstallPlan};
use super::{
    PlanOptions, SyncError, SyncEvent, SyncOptions, SyncPlan, execute, plan_with_parent, unchanged,
};
use crate::apply::applyset::{self, ApplySet, ApplySetError, ApplySetId};
use crate::apply::object_options;
use crate::apply::ownership::ForeignOwner;
use crate::cancel::Cancel;
use crate::compare::{Conflict, Missing, against_cluster};

use crate::diff::{ChangeSet, NormaliseOptions};
use crate::fingerprint::Fingerprints;
use crate::hooks::{self, PlannedHook};
use crate::live::{LiveCluster, MemberLists};
use crate::lock::{self, KeepAlive, TakenOver};
use crate::objects::{DesiredSet, ObjectKey};
use crate::release::record::{Operation, ReleaseRecord, StoredManifest};
use crate::release::store::{RecordMeta, ReleaseStore};
use crate::source::CommitInfo;

/// One sync's input: the app, the objects it wants, and what to record.
pub struct SyncJob {
    pub app: String,
    pub desired: DesiredSet,
    /// How to carry it out and what to record (`previous` and `listed` are filled in
    /// under the lock).
    pub options: SyncOptions,
    /// Delete the app's members the objects no longer include (always, for a rollback).
    pub prune: bool,
    /// The manifest to record instead of the desired objects' (see
    /// [`SyncPlan::record_manifest`]).
    pub record_manifest: Option<StoredManifest>,
    /// What the sync may prune beyond the members, and what the revision's path holds
    /// when it rendered nothing: checked before anything is written.
    pub guard: Guard,
}

/// The app's lock, held (and renewed in the background), with its ApplySet parent as read
/// under it.
pub struct Locked {
    lock: KeepAlive,
    parent: Result<Option<ApplySet>, ApplySetError>,
    /// The members of the kinds the parent names, listed with the lock (see
    /// [`Locked::list_members`]).
    members: Option<MemberLists>,
    /// The app's records as [`Locked::resync_unchanged`] read them, for the plan.
    records: Option<Records>,
}

/// The records a plan reads, read under the lock.
struct Records {
    /// The last deployed release, if there is one and it could be read.
    previous: Option<ReleaseRecord>,
    /// Every record's metadata, if they could be listed.
    listed: Option<Vec<RecordMeta>>,
}

impl Records {
    async fn read(store: &ReleaseStore, app: &str) -> Records {
        let (previous, listed) = futures::join!(last_deployed(store, app), store.metadata(app));
        Records {
            previous,
            listed: listed.ok(),
        }
    }
}

/// Takes `app`'s lock in `namespace` for `who` (an invalid app name is refused before any
/// request), then reads the app's ApplySet parent. A command can do this while it renders
/// the revision: neither needs the other.
pub async fn lock(
    cluster: &LiveCluster,
    namespace: &str,
    app: &str,
    who: &str,
    duration: Duration,
) -> Result<Locked, SyncError> {
    let holder = lock::holder_identity(who);
    let lock = lock::acquire(cluster.client().clone(), namespace, app, &holder, duration)
        .await?
        .keep_alive()?;
    let parent = applyset::read(cluster, namespace, app).await;
    Ok(Locked {
        lock,
        parent,
        members: None,
        records: None,
    })
}

impl Locked {
    /// Lists `app`'s members of every kind its parent names, and reads its records, for
    /// its plan: a command that does this while its revision renders has them when it
    /// plans (at 10,000 objects the LISTs keep the API server busy for a good part of a
    /// second, and the deployed release is about 1 MB to read).
    pub async fn read_ahead(
        mut self,
        cluster: &LiveCluster,
        store: &ReleaseStore,
        app: &str,
    ) -> Locked {
        let listing = async {
            match &self.parent {
                Ok(Some(set)) => {
                    let selector = ApplySetId::for_app(app, &set.namespace).member_selector();
                    let resources = set.member_resources(cluster);
                    Some(cluster.list_members_ahead(&selector, resources).await)
                }
                _ => None,
            }
        };
        let (members, records) = futures::join!(listing, Records::read(store, app));
        self.members = members;
        self.records = Some(records);
        self
    }

    /// The holder whose lock this one replaced at once, because it was a process on this
    /// host that is no longer running: for the caller to say so.
    pub fn taken_over(&self) -> Option<&TakenOver> {
        self.lock.lock().taken_over()
    }

    /// Gives the lock up without planning (the command stopped before it could plan).
    pub async fn release(self) -> Result<(), SyncError> {
        Ok(self.lock.release().await?)
    }

    /// Plans `job` under the lock. The reads the plan needs go out together: the last
    /// deployed release (its fingerprints spare dry-runs), the records' metadata (the
    /// sync numbers, supersedes and trims from it), and the LISTs of the objects' kinds.
    /// `missing` says how objects that do not exist yet are compared. A plan that fails,
    /// or is cancelled (it only reads, so it stops at once), gives the lock up.
    pub async fn plan(
        self,
        cluster: &LiveCluster,
        store: &ReleaseStore,
        job: SyncJob,
        missing: Missing,
        cancel: &Cancel,
    ) -> Result<Planned, SyncError> {
        let Locked {
            lock,
            parent,
            members,
            records,
        } = self;
        let read = (parent, members, records);
        let planned = tokio::select! {
            planned = plan_locked(cluster, store, job, read, missing) => planned,
            () = cancel.cancelled() => Err(SyncError::InterruptedBeforeWriting),
        };
        match planned {
            Ok((plan, options)) => Ok(Planned {
                plan,
                options,
                lock,
            }),
            Err(error) => {
                // Best effort: the error that stopped the plan is the one to report.
                let _ = lock.release().await;
                Err(error)
            }
        }
    }
}

impl Locked {
    /// A sync of files whose digest is `options.source_digest` (see
    /// [`ReleaseRecord::source_digest`]), when the deployed release was rendered from the
    /// same files: proven from the release and the members listed with the lock to change
    /// nothing (see the `unchanged` module), it ends as a no-op sync ends, the objects
    /// neither rendered nor planned, and the lock is given up. `Err(self)` when it is not
    /// proven: the caller renders and plans as usual. `commits_since` gives the commits a
    /// release covers after the deployed release's commit.
    pub async fn resync_unchanged(
        mut self,
        cluster: &LiveCluster,
        store: &ReleaseStore,
        app: &str,
        mut options: SyncOptions,
        commits_since: impl FnOnce(Option<&CommitInfo>) -> (Vec<CommitInfo>, usize),
        events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
    ) -> Result<Executed, Locked> {
        if options.operation != Operation::Sync {
            return Err(self);
        }
        let (Some(digest), Ok(Some(parent)), Some(members)) =
            (&options.source_digest, &self.parent, &self.members)
        else {
            return Err(self);
        };
        let records = match self.records.take() {
            Some(records) => records,
            None => Records::read(store, app).await,
        };
        let proof = match (&records.previous, &records.listed) {
            (Some(record), Some(listed))
                if listed.iter().map(|m| m.revision).max() == Some(record.revision)
                    && record.repo == options.repo
                    && record.path == options.path
                    && record.renderer == options.renderer
                    && record.extra == options.extra =>
            {
                let found = unchanged::Found {
                    parent,
                    members,
                    kinds: parent.member_resources(cluster).len(),
                };
                unchanged::prove(record, digest, &found, options.wait.is_some())
            }
            _ => None,
        };
        let (proof, mut record, listed) = match (proof, records) {
            (
                Some(proof),
                Records {
                    previous: Some(record),
                    listed: Some(listed),
                },
            ) => (proof, record, listed),
            (_, records) => {
                // Not proven: the plan goes on with the records as read.
                self.records = Some(records);
                return Err(self);
            }
        };
        let lock = self.lock;
        if let Err(lost) = lock.check() {
            // Best effort: losing the lock is the error to report.
            let _ = lock.release().await;
            return Ok(Executed {
                record: None,
                recorded: false,
                result: Err(lost.into()),
            });
        }
        if let Some(wait) = &options.wait {
            events(SyncEvent::Waiting {
                count: proof.keys.len(),
                timeout: wait.timeout,
            });
            for (key, health) in &proof.health {
                events(SyncEvent::Health { key, health });
            }
        }
        (options.commits, options.commits_left_out) = commits_since(record.commit.as_ref());
        // Objects others wrote since (in fields the release did not apply): where they are
        // now, for the next sync's fingerprints.
        let moved = execute::move_marks(&mut record, &proof.moved);
        let kept = execute::keep_current(store, record, moved, &options, &listed).await;
        let released = lock.release().await.map_err(SyncError::NotReleased);
        let (record, result) = match kept {
            Ok(stored) => (Some(unchanged::shown(stored, &proof)), released),
            Err(error) => (None, Err(error)),
        };
        Ok(Executed {
            record,
            recorded: false,
            result,
        })
    }
}

async fn plan_locked(
    cluster: &LiveCluster,
    store: &ReleaseStore,
    job: SyncJob,
    (parent, members, records): (
        Result<Option<ApplySet>, ApplySetError>,
        Option<MemberLists>,
        Option<Records>,
    ),
    missing: Missing,
) -> Result<(SyncPlan, SyncOptions), SyncError> {
    let SyncJob {
        app,
        desired,
        mut options,
        prune,
        record_manifest,
        guard,
    } = job;
    let namespace = store.namespace().to_string();
    let shared = cluster.shared_reads();
    if let Some(listed) = members {
        cluster.keep_members(listed);
    }
    let members = ApplySetId::for_app(&app, &namespace).member_selector();
    // Without a parent nothing is a member yet: no member LISTs.
    let members_of = matches!(parent, Ok(Some(_))).then_some(members.as_str());
    let reading = async {
        match records {
            Some(records) => records,
            None => Records::read(store, &app).await,
        }
    };
    let (Records { previous, listed }, ()) =
        futures::join!(reading, cluster.prefetch(desired.keys(), members_of));
    let existing = parent?;
    let known = previous.as_ref().map(Fingerprints::from_record);
    options.previous = previous;
    // Listed under the lock: the sync numbers, supersedes and trims from it.
    options.listed = listed;
    let plan_options = PlanOptions {
        prune: prune || options.rollback_of.is_some(),
        prune_crds: guard.rules.prune_crds,
        known: known.as_ref(),
        missing,
    };
    let mut plan =
        plan_with_parent(cluster, existing, &app, &namespace, desired, plan_options).await?;
    plan.record_manifest = record_manifest;
    drop(shared);
    // Refused here, under the lock and before the record: a refusal writes nothing.
    refusal::check(&plan, &guard)?;
    Ok((plan, options))
}

impl Locked {
    /// Plans the uninstall of `app` under the lock (see [`uninstall`]); a plan that fails
    /// gives the lock up.
    pub async fn plan_uninstall(
        self,
        cluster: &LiveCluster,
        store: &ReleaseStore,
        app: &str,
        options: UninstallOptions,
        cancel: &Cancel,
    ) -> Result<PlannedUninstall, SyncError> {
        let Locked { lock, parent, .. } = self;
        let planned = tokio::select! {
            planned = uninstall::plan(cluster, store, app, parent, &options) => planned,
            () = cancel.cancelled() => Err(SyncError::InterruptedBeforeWriting),
        };
        match planned {
            Ok(plan) => Ok(PlannedUninstall {
                plan,
                options,
                lock,
            }),
            Err(error) => {
                // Best effort: the error that stopped the plan is the one to report.
                let _ = lock.release().await;
                Err(error)
            }
        }
    }
}

/// An uninstall planned under the app's lock, to be shown, then carried out or given up.
pub struct PlannedUninstall {
    pub plan: UninstallPlan,
    options: UninstallOptions,
    lock: KeepAlive,
}

impl PlannedUninstall {
    /// Carries the uninstall out and gives the lock up: the last record written (the
    /// `uninstalled` one, or a failed one), and how it ended.
    pub async fn execute(
        self,
        cluster: &LiveCluster,
        store: &ReleaseStore,
        cancel: &Cancel,
        events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
    ) -> (Option<ReleaseRecord>, Result<(), SyncError>) {
        let PlannedUninstall {
            plan,
            options,
            lock,
        } = self;
        if let Err(lost) = lock.check() {
            let _ = lock.release().await;
            return (None, Err(lost.into()));
        }
        let result = uninstall::execute(cluster, store, &plan, &options, cancel, events).await;
        let released = lock.release().await;
        match result {
            Ok(record) => (Some(record), released.map_err(SyncError::NotReleased)),
            Err(error) if error.wrote_nothing() => (None, Err(error)),
            Err(error) => {
                let record = store
                    .list(&plan.app)
                    .await
                    .ok()
                    .and_then(|records| records.into_iter().find_map(Result::ok));
                (record, Err(error))
            }
        }
    }

    /// Gives the lock up without changing anything.
    pub async fn stop(self) -> Result<(), SyncError> {
        self.lock.release().await.map_err(SyncError::NotReleased)
    }
}

/// A plan made under the app's lock, to be shown, then carried out or given up.
pub struct Planned {
    pub plan: SyncPlan,
    options: SyncOptions,
    lock: KeepAlive,
}

/// How a sync that got as far as executing ended.
pub struct Executed {
    /// The release it recorded: the finished one, or, when it failed, the newest record
    /// (which says what happened).
    pub record: Option<ReleaseRecord>,
    /// Whether the sync recorded a new release: not for a no-op sync (see
    /// [`SyncOutcome::recorded`](super::SyncOutcome::recorded)), nor when it stopped before
    /// writing one.
    pub recorded: bool,
    pub result: Result<(), SyncError>,
}

impl Planned {
    /// The deployed release this sync follows, as read under the lock.
    pub fn previous(&self) -> Option<&ReleaseRecord> {
        self.options.previous.as_ref()
    }

    /// Says which commits the release covers, newest first, and how many more are left
    /// out: the caller reads them from git once it knows [`Planned::previous`]'s commit.
    pub fn cover_commits(&mut self, commits: Vec<CommitInfo>, left_out: usize) {
        self.options.commits = commits;
        self.options.commits_left_out = left_out;
    }

    /// Carries the plan out (the lock is checked first: a long question may have outlived
    /// it), records the release, and gives the lock up, also when `cancel` stops it
    /// part-way (then the record is finished as failed, saying what was and was not done).
    pub async fn execute(
        self,
        cluster: &LiveCluster,
        store: &ReleaseStore,
        cancel: &Cancel,
        events: &mut (dyn FnMut(SyncEvent<'_>) + Send),
    ) -> Executed {
        let Planned {
            plan,
            options,
            lock,
        } = self;
        if let Err(lost) = lock.check() {
            // Best effort: losing the lock is the error to report.
            let _ = lock.release().await;
            return Executed {
                record: None,
                recorded: false,
                result: Err(lost.into()),
            };
        }
        let result = execute(cluster, store, &plan, &options, cancel, events).await;
        let released = lock.release().await;
        let recorded = match &result {
            Ok(outcome) => outcome.recorded,
            Err(SyncError::InterruptedBeforeWriting) => false,
            Err(_) => true,
        };
        let record = match &result {
            Ok(outcome) => Some(outcome.record.clone()),
            // Nothing was recorded: the newest record is an earlier sync's.
            Err(error) if error.wrote_nothing() => None,
            // The failed record says what happened.
            Err(_) => store
                .list(&plan.app)
                .await
                .ok()
                .and_then(|records| records.into_iter().find_map(Result::ok)),
        };
        let result = match (result, released) {
            (Ok(_), Err(error)) => Err(SyncError::NotReleased(error)),
            (result, _) => result.map(|_| ()),
        };
        Executed {
            record,
            recorded,
            result,
        }
    }

    /// Gives the lock up without changing anything: a dry run, or a "no" at the question.
    pub async fn stop(self) -> Result<(), SyncError> {
        self.lock.release().await.map_err(SyncError::NotReleased)
    }
}

/// What a revision would change, for a command that only shows it (`kubectl diff-git`).
pub struct Preview {
    pub changes: ChangeSet,
    pub conflicts: Vec<Conflict>,
    pub missing_namespaces: Vec<String>,
    /// Existing objects another app or a Helm release owns: a sync refuses them without
    /// `adopt`.
    pub owners: Vec<ForeignOwner>,
    /// Existing objects nobody owns, which a sync adopts.
    pub unowned: Vec<ObjectKey>,
    /// The app's ApplySet parent could not be read (forbidden), so what a sync would
    /// prune is not shown.
    pub parent_forbidden: bool,
    /// What a prune keeps (CRDs, objects whose options keep them), deletes with a CRD
    /// or Namespace, or would refuse; the differences IgnoreExtraneous leaves out.
    pub notes: Vec<String>,
    /// The hooks a sync would run, by stage (an install's when the app has no deployed
    /// release, else an upgrade's), and those it never runs. None of them is a difference.
    pub hooks: Vec<PlannedHook>,
    /// Object options that are not honoured, each naming the object and its origin.
    pub warnings: Vec<String>,
}

/// What the commands that write nothing read before they plan: the parent (None when it
/// is missing or may not be read) and the last deployed release's fingerprints.
struct Unlocked {
    parent: Option<ApplySet>,
    parent_forbidden: bool,
    known: Option<Fingerprints>,
}

/// Reads the parent and the records alongside (they matter only if the parent exists),
/// and lists the objects' kinds meanwhile: the LISTs need neither. No lock: nothing is
/// written, so nothing needs keeping out.
async fn read_unlocked(
    cluster: &LiveCluster,
    store: &ReleaseStore,
    app: &str,
    desired: &DesiredSet,
) -> Result<Unlocked, SyncError> {
    let namespace = store.namespace();
    let members = ApplySetId::for_app(app, namespace).member_selector();
    let (parent, known, ()) = futures::join!(
        applyset::read(cluster, namespace, app),
        known_fingerprints(store, app),
        cluster.prefetch(desired.keys(), Some(&members))
    );
    let (parent, parent_forbidden) = match parent {
        Ok(parent) => (parent, false),
        Err(error) if error.is_forbidden() => (None, true),
        Err(error) => return Err(error.into()),
    };
    Ok(Unlocked {
        parent,
        parent_forbidden,
        known,
    })
}

/// Plans `desired` as app `app` with records in `store`'s namespace, without a lock and
/// writing nothing. A synced app (one with an ApplySet parent) shows exactly what
/// `kubectl sync --prune` would do, removals included; an app never synced is compared
/// without the ApplySet bookkeeping a sync would add. `prune_crds`: as `--prune-crds`.
pub async fn preview(
    cluster: &LiveCluster,
    store: &ReleaseStore,
    app: &str,
    desired: DesiredSet,
    prune_crds: bool,
) -> Result<Preview, SyncError> {
    let reads = cluster.shared_reads();
    let read = read_unlocked(cluster, store, app, &desired).await?;
    let occasion = hooks::occasion(Operation::Sync, read.known.is_some());
    let hooks = hooks::planned(desired.hooks(), occasion);
    let mut preview = if read.parent.is_some() {
        let options = PlanOptions {
            prune: true,
            prune_crds,
            known: read.known.as_ref(),
            ..PlanOptions::default()
        };
        let namespace = store.namespace();
        let mut plan =
            plan_with_parent(cluster, read.parent, app, namespace, desired, options).await?;
        Preview {
            // Moved, not copied: the plan ends here.
            changes: plan.take_preview(),
            notes: refusal::notes(&plan, false),
            warnings: plan.object_options.warnings,
            conflicts: plan.comparison.conflicts,
            missing_namespaces: plan.comparison.missing_namespaces,
            owners: plan.comparison.owners,
            unowned: plan.comparison.unowned,
            parent_forbidden: read.parent_forbidden,
            hooks,
        }
    } else {
        let warnings = object_options::warnings(&desired)?;
        let normalise = NormaliseOptions::ignoring_applyset();
        let id = ApplySetId::for_app(app, store.namespace());
        let comparison = against_cluster(cluster, &desired, &id, &normalise).await?;
        Preview {
            changes: comparison.changes,
            conflicts: comparison.conflicts,
            missing_namespaces: comparison.missing_namespaces,
            owners: comparison.owners,
            unowned: comparison.unowned,
            parent_forbidden: read.parent_forbidden,
            notes: Vec::new(),
            hooks,
            warnings,
        }
    };
    let ignored = object_options::set_aside_ignored(&mut preview.changes);
    preview.notes.extend(ignored);
    drop(reads);
    Ok(preview)
}

/// A sync's plan made without its lock, for `kubectl sync --dry-run`.
pub struct DryRun {
    pub plan: SyncPlan,
    /// The app's ApplySet parent could not be read (forbidden): the plan is made as if the
    /// app had never been synced, so it prunes nothing.
    pub parent_forbidden: bool,
    /// The app has a deployed release: its sync is an upgrade (which decides the Helm
    /// hooks that would run).
    pub deployed_before: bool,
}

/// Plans `job` exactly as a sync would (its prune choice, the ApplySet labels it adds),
/// with only the reads `kubectl diff-git` makes: no Lease, no record, no parent is
/// written, so it needs diff-git's permissions alone and never stands in a sync's way.
/// Cancelling it stops it at once.
pub async fn dry_run(
    cluster: &LiveCluster,
    store: &ReleaseStore,
    job: SyncJob,
    cancel: &Cancel,
) -> Result<DryRun, SyncError> {
    let planning = async {
        let reads = cluster.shared_reads();
        let read = read_unlocked(cluster, store, &job.app, &job.desired).await?;
        let options = PlanOptions {
            prune: job.prune || job.options.rollback_of.is_some(),
            prune_crds: job.guard.rules.prune_crds,
            known: read.known.as_ref(),
            missing: Missing::DryRun,
        };
        let namespace = store.namespace();
        let plan = plan_with_parent(
            cluster,
            read.parent,
            &job.app,
            namespace,
            job.desired,
            options,
        )
        .await?;
        drop(reads);
        // What the sync would refuse, the dry run refuses alike.
        refusal::check(&plan, &job.guard)?;
        if !plan.comparison.owners.is_empty() && !job.options.adopt {
            return Err(SyncError::OwnedElsewhere(plan.comparison.owners.clone()));
        }
        Ok(DryRun {
            plan,
            parent_forbidden: read.parent_forbidden,
            deployed_before: read.known.is_some(),
        })
    };
    tokio::select! {
        planned = planning => planned,
        () = cancel.cancelled() => Err(SyncError::InterruptedBeforeWriting),
    }
}

/// `app`'s last deployed release, if there is one and it can be read: without it (and its
/// fingerprints) everything is dry-run, which is slower but never wrong.
async fn last_deployed(store: &ReleaseStore, app: &str) -> Option<ReleaseRecord> {
    store.latest_deployed(app).await.ok().flatten()
}

/// The fingerprints of [`last_deployed`].
async fn known_fingerprints(store: &ReleaseStore, app: &str) -> Option<Fingerprints> {
    let record = last_deployed(store, app).await?;
    Some(Fingerprints::from_record(&record))
}
