//! One sync per app at a time: a Lease in the app's namespace, as leader election uses.
//!
//! The Lease `kubectl-gitops.<app>` names its holder (`<who>@<host> pid <pid>`) and how
//! long the hold lasts without renewal. A second sync finds it held and says by whom; a
//! lease left behind by a crashed sync expires and is taken over, at once when its holder
//! names this host and a pid that is no longer running (the sync was killed, or its
//! machine's Ctrl-C came twice). Every write is conditional on the resourceVersion read, so
//! two takers cannot both win.
//!
//! Expiry compares the holder's renewTime with this machine's clock. client-go's leader
//! election instead waits a whole term for a renewal that does not come; a CLI cannot wait
//! that long, so clock skew between two machines shortens or lengthens a hold by the skew.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::{Client, ResourceExt};

use crate::api_error::{ApiError, CallFailure};
use crate::app_identity::{
    APP_LABEL, AppNameError, MANAGED_BY, MANAGED_BY_LABEL, validate_app_name,
};

/// How long a hold lasts without renewal unless the caller says otherwise.
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(60);

/// How often acquire, renew and release re-read a lease that changed under them.
const ATTEMPTS: usize = 5;

/// The name of an app's Lease.
pub fn lease_name(app: &str) -> String {
    format!("kubectl-gitops.{app}")
}

/// `<who>@<hostname> pid <pid>`: enough for a person to find the other sync.
pub fn holder_identity(who: &str) -> String {
    format!("{who}@{} pid {}", hostname(), std::process::id())
}

/// A holder whose lock was taken over before its lease expired, because it was a process
/// on this host that is no longer running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakenOver {
    pub app: String,
    /// Its identity, as the Lease named it.
    pub holder: String,
    pub pid: i32,
}

/// The pid of `holder` (a [`holder_identity`]) if it names this host.
fn local_pid(holder: &str) -> Option<i32> {
    let (rest, pid) = holder.rsplit_once(" pid ")?;
    let (_, host) = rest.rsplit_once('@')?;
    let pid: i32 = pid.trim().parse().ok()?;
    (host == hostname() && pid > 0).then_some(pid)
}

/// Whether `holder` is a process of this host that no longer exists. Another host's
/// process cannot be checked, and a process that exists, whoever's it is, may be the sync.
fn holder_is_gone(holder: &str) -> Option<i32> {
    let pid = local_pid(holder)?;
    if u32::try_from(pid).ok() == Some(std::process::id()) {
        return None;
    }
    (!process_exists(pid)).then_some(pid)
}

#[cfg(unix)]
fn process_exists(pid: i32) -> bool {
    use nix::errno::Errno;
    use nix::sys::signal::kill;
    use nix::unistd::Pid;
    // Signal 0 checks without sending: EPERM means it exists under another user.
    !matches!(kill(Pid::from_raw(pid), None), Err(Errno::ESRCH))
}

#[cfg(not(unix))]
fn process_exists(_pid: i32) -> bool {
    true
}

pub(crate) fn hostname() -> String {
    let from_file = |path: &str| std::fs::read_to_string(path).ok();
    let from_env = |name: &str| std::env::var(name).ok();
    from_file("/proc/sys/kernel/hostname")
        .or_else(|| from_file("/etc/hostname"))
        .or_else(|| from_env("HOSTNAME"))
        .or_else(|| from_env("COMPUTERNAME"))
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    AppName(#[from] AppNameError),
    #[error("app {app} is being synced by {holder} (lease expires in {})", seconds(*expires_in))]
    Held {
        app: String,
        holder: String,
        expires_in: Duration,
    },
    #[error("lost the lock on app {app}: {reason}")]
    Lost { app: String, reason: String },
    #[error("cannot take the lock on app {app}: its Lease {name} kept changing; try again")]
    Contended { app: String, name: String },
    #[error(
        "cannot {verb} Leases in namespace {namespace}: {message}; the app lock is a Lease (coordination.k8s.io): ask a cluster admin for get, create, update and delete on leases in namespace {namespace}"
    )]
    Forbidden {
        verb: String,
        namespace: String,
        message: String,
    },
    #[error("cannot {action}: {source}")]
    Api { action: String, source: ApiError },
    #[error("the lock keep-alive needs a tokio runtime")]
    NoRuntime,
}

impl LockError {
    /// The Lease could not be created because its namespace does not exist (the server
    /// answers 404 to a create only then).
    pub fn is_namespace_missing(&self) -> bool {
        matches!(self, LockError::Api { source, .. } if source.is_not_found())
    }
}

/// Whole seconds, rounded up, so "expires in 0s" never appears for a live lease.
fn seconds(duration: Duration) -> String {
    let whole = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    humantime::format_duration(Duration::from_secs(whole)).to_string()
}

/// A held app lock. Release it when the sync ends; otherwise it expires on its own.
#[derive(Debug)]
pub struct AppLock {
    api: Api<Lease>,
    namespace: String,
    app: String,
    name: String,
    holder: String,
    duration: Duration,
    /// The Lease we created or took over; a Lease with another uid is someone else's.
    uid: Option<String>,
    /// Whose unexpired lock this one replaced, its process gone.
    taken_over: Option<TakenOver>,
    /// The resourceVersion our last write of the Lease left: a release deletes on it
    /// without reading the Lease first (any other write since fails the precondition).
    written: std::sync::Mutex<Option<String>>,
}

/// Takes the lock on `app` in `namespace` for `holder` (see [`holder_identity`]), or says
/// who holds it. A holder on this host whose process is gone is taken over at once
/// ([`AppLock::taken_over`] says so).
pub async fn acquire(
    client: Client,
    namespace: &str,
    app: &str,
    holder: &str,
    duration: Duration,
) -> Result<AppLock, LockError> {
    validate_app_name(app)?;
    let mut lock = AppLock {
        api: Api::namespaced(client, namespace),
        namespace: namespace.to_string(),
        app: app.to_string(),
        name: lease_name(app),
        holder: holder.to_string(),
        duration,
        uid: None,
        taken_over: None,
        written: std::sync::Mutex::new(None),
    };
    for _ in 0..ATTEMPTS {
        let now = jiff::Timestamp::now();
        match lock
            .api
            .create(&PostParams::default(), &lock.new_lease(now))
            .await
        {
            Ok(created) => {
                lock.remember(&created);
                return Ok(lock);
            }
            Err(e) if status_is(&e, 409) => {}
            Err(e) => return Err(lock.fail("create", e)),
        }
        let Some(mut existing) = lock.read().await? else {
            continue; // released in between: create again
        };
        let spec = existing.spec.get_or_insert_with(LeaseSpec::default);
        let current = spec.holder_identity.clone().unwrap_or_default();
        let expires_in = remaining(spec, now);
        let mut gone = None;
        if !current.is_empty() && current != lock.holder && !expires_in.is_zero() {
            match holder_is_gone(&current) {
                Some(pid) => gone = Some(pid),
                None => {
                    return Err(LockError::Held {
                        app: lock.app.clone(),
                        holder: current,
                        expires_in,
                    });
                }
            }
        }
        // Expired (or already ours): take it over, conditional on what we read.
        if current != lock.holder {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        spec.holder_identity = Some(lock.holder.clone());
        spec.acquire_time = Some(MicroTime(now));
        spec.renew_time = Some(MicroTime(now));
        spec.lease_duration_seconds = Some(lock.duration_seconds());
        match lock
            .api
            .replace(&lock.name, &PostParams::default(), &existing)
            .await
        {
            Ok(taken) => {
                lock.remember(&taken);
                lock.taken_over = gone.map(|pid| TakenOver {
                    app: lock.app.clone(),
                    holder: current,
                    pid,
                });
                return Ok(lock);
            }
            // Someone else took or renewed it, or released it: look again.
            Err(e) if status_is(&e, 409) || status_is(&e, 404) => {}
            Err(e) => return Err(lock.fail("update", e)),
        }
    }
    Err(LockError::Contended {
        app: lock.app,
        name: lock.name,
    })
}

/// How long until the lease expires, zero if it has (or says nothing about its term).
fn remaining(spec: &LeaseSpec, now: jiff::Timestamp) -> Duration {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return Duration::ZERO;
    };
    let term = jiff::SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    let Ok(expiry) = renewed.0.checked_add(term) else {
        return Duration::ZERO;
    };
    Duration::try_from(expiry.duration_since(now)).unwrap_or(Duration::ZERO)
}

fn status_is(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

impl AppLock {
    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Lease's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// The holder this lock replaced before its lease expired, its process gone.
    pub fn taken_over(&self) -> Option<&TakenOver> {
        self.taken_over.as_ref()
    }

    /// Keeps what a write of ours answered: the Lease's uid and resourceVersion.
    fn remember(&mut self, written: &Lease) {
        self.uid.clone_from(&written.metadata.uid);
        self.set_written(written);
    }

    fn set_written(&self, written: &Lease) {
        if let Ok(mut rv) = self.written.lock() {
            rv.clone_from(&written.metadata.resource_version);
        }
    }

    fn duration_seconds(&self) -> i32 {
        let whole = self.duration.as_secs() + u64::from(self.duration.subsec_nanos() > 0);
        i32::try_from(whole.max(1)).unwrap_or(i32::MAX)
    }

    fn new_lease(&self, now: jiff::Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                namespace: Some(self.namespace.clone()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY_LABEL.to_string(), MANAGED_BY.to_string()),
                    (APP_LABEL.to_string(), self.app.clone()),
                ])),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.holder.clone()),
                lease_duration_seconds: Some(self.duration_seconds()),
                acquire_time: Some(MicroTime(now)),
                renew_time: Some(MicroTime(now)),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        }
    }

    fn fail(&self, verb: &str, error: kube::Error) -> LockError {
        let what = format!("Lease {}", self.name);
        match CallFailure::new(error, verb, &what, Some(&self.namespace)) {
            CallFailure::Forbidden { verb, message, .. } => LockError::Forbidden {
                verb,
                namespace: self.namespace.clone(),
                message,
            },
            CallFailure::Api { action, source } => LockError::Api { action, source },
        }
    }

    async fn read(&self) -> Result<Option<Lease>, LockError> {
        self.api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.fail("get", e))
    }

    fn lost(&self, reason: impl Into<String>) -> LockError {
        LockError::Lost {
            app: self.app.clone(),
            reason: reason.into(),
        }
    }

    /// The Lease if it is still ours; `Lost` if it is gone or someone else's.
    async fn read_ours(&self) -> Result<Option<Lease>, LockError> {
        let Some(lease) = self.read().await? else {
            return Ok(None);
        };
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.clone())
            .unwrap_or_default();
        if lease.metadata.uid != self.uid || holder != self.holder {
            let holder = if holder.is_empty() { "nobody" } else { &holder };
            return Err(self.lost(format!("its Lease {} is now held by {holder}", self.name)));
        }
        Ok(Some(lease))
    }

    /// Extends the hold by the lease duration from now.
    pub async fn renew(&self) -> Result<(), LockError> {
        for _ in 0..ATTEMPTS {
            let Some(mut lease) = self.read_ours().await? else {
                return Err(self.lost(format!("its Lease {} was deleted", self.name)));
            };
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
            spec.lease_duration_seconds = Some(self.duration_seconds());
            match self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await
            {
                Ok(renewed) => {
                    self.set_written(&renewed);
                    return Ok(());
                }
                Err(e) if status_is(&e, 409) => {} // changed since read: look again
                Err(e) if status_is(&e, 404) => {
                    return Err(self.lost(format!("its Lease {} was deleted", self.name)));
                }
                Err(e) => return Err(self.fail("update", e)),
            }
        }
        Err(LockError::Contended {
            app: self.app.clone(),
            name: self.name.clone(),
        })
    }

    /// Gives the lock up: deletes the Lease, only if it is still ours.
    pub async fn release(self) -> Result<(), LockError> {
        self.release_ref().await
    }

    async fn release_ref(&self) -> Result<(), LockError> {
        // Untouched since our last write, it is deleted on that version with no read
        // first; otherwise (or once that fails) on what a read finds.
        let mut remembered = self
            .written
            .lock()
            .ok()
            .and_then(|rv| rv.clone())
            .map(|rv| (self.uid.clone(), Some(rv)));
        let attempts = ATTEMPTS + usize::from(remembered.is_some());
        for _ in 0..attempts {
            let (uid, resource_version) = match remembered.take() {
                Some(version) => version,
                None => {
                    let Some(lease) = self.read_ours().await? else {
                        return Ok(());
                    };
                    (lease.metadata.uid.clone(), lease.resource_version())
                }
            };
            // Conditional, so a Lease taken over meanwhile survives.
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid,
                    resource_version,
                }),
                ..DeleteParams::default()
            };
            match self.api.delete(&self.name, &params).await {
                Ok(_) => return Ok(()),
                Err(e) if status_is(&e, 404) => return Ok(()),
                Err(e) if status_is(&e, 409) => {}
                Err(e) => return Err(self.fail("delete", e)),
            }
        }
        Err(LockError::Contended {
            app: self.app.clone(),
            name: self.name.clone(),
        })
    }

    /// Keeps renewing in the background; see [`keep_alive`].
    pub fn keep_alive(self) -> Result<KeepAlive, LockError> {
        keep_alive(self)
    }
}

/// What the renewing task has seen.
#[derive(Debug)]
struct Health {
    last_renewed: Instant,
    lost: Option<String>,
}

/// A lock renewed every third of its duration by a background task, for syncs that run
/// longer than a lease lasts. Dropping it stops the renewals (the lease then expires);
/// [`KeepAlive::release`] stops them and gives the lock up at once. Check
/// [`KeepAlive::check`] before each step that changes the cluster.
#[derive(Debug)]
pub struct KeepAlive {
    lock: Arc<AppLock>,
    health: Arc<Mutex<Health>>,
    task: tokio::task::JoinHandle<()>,
}

/// Starts renewing `lock` in the background on the current tokio runtime.
pub fn keep_alive(lock: AppLock) -> Result<KeepAlive, LockError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| LockError::NoRuntime)?;
    let lock = Arc::new(lock);
    let health = Arc::new(Mutex::new(Health {
        last_renewed: Instant::now(),
        lost: None,
    }));
    let interval = (lock.duration / 3).max(Duration::from_millis(200));
    let task = runtime.spawn(renew_loop(lock.clone(), health.clone(), interval));
    Ok(KeepAlive { lock, health, task })
}

async fn renew_loop(lock: Arc<AppLock>, health: Arc<Mutex<Health>>, interval: Duration) {
    loop {
        tokio::time::sleep(interval).await;
        let result = lock.renew().await;
        let mut state = health.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => state.last_renewed = Instant::now(),
            Err(LockError::Lost { reason, .. }) => {
                state.lost = Some(reason);
                return;
            }
            // A passing failure (network, server): retry at the next tick, unless the
            // lease may have expired meanwhile; then another sync may hold it.
            Err(other) => {
                if state.last_renewed.elapsed() >= lock.duration {
                    state.lost = Some(format!(
                        "it could not be renewed for {}: {other}",
                        seconds(state.last_renewed.elapsed())
                    ));
                    return;
                }
            }
        }
    }
}

impl KeepAlive {
    pub fn lock(&self) -> &AppLock {
        &self.lock
    }

    /// Ok while the lock is ours as far as anyone can tell; `Lost` once a renewal found
    /// another holder, or renewals have failed (or been starved) for a whole lease term.
    pub fn check(&self) -> Result<(), LockError> {
        let health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        let reason = match &health.lost {
            Some(reason) => reason.clone(),
            None if health.last_renewed.elapsed() >= self.lock.duration => format!(
                "it was last renewed {} ago, longer than the lease lasts",
                seconds(health.last_renewed.elapsed())
            ),
            None => return Ok(()),
        };
        Err(self.lock.lost(reason))
    }

    /// Stops renewing and deletes the Lease (if it is still ours).
    pub async fn release(self) -> Result<(), LockError> {
        self.task.abort();
        self.lock.release_ref().await
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn spec(renewed: Option<&str>, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some("bob@host pid 1".into()),
            lease_duration_seconds: Some(seconds),
            renew_time: renewed.map(|t| MicroTime(t.parse().unwrap())),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn remaining_counts_from_the_last_renewal() {
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let live = spec(Some("2026-01-01T00:00:30Z"), 75);
        assert_eq!(remaining(&live, now), Duration::from_secs(45));
        let expired = spec(Some("2026-01-01T00:00:00Z"), 60);
        assert_eq!(remaining(&expired, now), Duration::ZERO);
        assert_eq!(remaining(&spec(None, 60), now), Duration::ZERO);
    }

    #[test]
    fn held_names_the_holder_and_the_time_left() {
        let err = LockError::Held {
            app: "web".into(),
            holder: "bob@laptop pid 42".into(),
            expires_in: Duration::from_millis(44_200),
        };
        assert_eq!(
            err.to_string(),
            "app web is being synced by bob@laptop pid 42 (lease expires in 45s)"
        );
    }

    #[test]
    fn only_a_holder_on_this_host_whose_pid_is_gone_counts_as_gone() {
        let host = hostname();
        // A child that has exited and been waited for: its pid names no process.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = i32::try_from(child.id()).unwrap();
        child.wait().unwrap();
        assert_eq!(
            holder_is_gone(&format!("alice@{host} pid {dead}")),
            Some(dead)
        );
        // A user name with an @ in it still finds the host.
        assert_eq!(
            holder_is_gone(&format!("a@b.example@{host} pid {dead}")),
            Some(dead)
        );
        // Alive (this very process, or pid 1), another host, or no pid: not gone.
        let me = std::process::id();
        assert_eq!(holder_is_gone(&format!("alice@{host} pid {me}")), None);
        assert_eq!(holder_is_gone(&format!("alice@{host} pid 1")), None);
        assert_eq!(
            holder_is_gone(&format!("alice@not-{host} pid {dead}")),
            None
        );
        assert_eq!(holder_is_gone(&format!("alice@{host} pid 0")), None);
        assert_eq!(holder_is_gone(&format!("alice@{host} pid -1")), None);
        assert_eq!(holder_is_gone("someone else entirely"), None);
    }

    #[test]
    fn holder_identity_names_user_host_and_pid() {
        let id = holder_identity("alice");
        assert!(id.starts_with("alice@"), "{id}");
        assert!(
            id.ends_with(&format!(" pid {}", std::process::id())),
            "{id}"
        );
    }
}
