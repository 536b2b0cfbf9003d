//! One leader among the reconciler's replicas: a Lease, as client-go's leader election
//! keeps it. The leader renews it; a standby takes it over once it has seen the same
//! holder and renewal for a whole lease duration by its own clock (so clocks that
//! disagree between machines do not matter), and every write is conditional on the
//! resourceVersion read, so two standbys cannot both win.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::api_error::{ApiError, CallFailure};

/// The Lease the replicas share, unless told otherwise.
pub const DEFAULT_LEASE: &str = "kubectl-gitops-reconciler";

#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    #[error(
        "cannot {verb} Lease {name} in namespace {namespace}: {message}; the reconciler's account needs get, create and update on leases there"
    )]
    Forbidden {
        verb: String,
        name: String,
        namespace: String,
        message: String,
    },
    #[error("cannot {action}: {source}")]
    Api { action: String, source: ApiError },
}

/// The holder and renewal last seen, and when this replica first saw them.
#[derive(Debug, Clone)]
struct Seen {
    holder: String,
    renewed: Option<String>,
    at: Instant,
}

/// This replica's side of the election.
pub struct Election {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    duration: Duration,
    seen: Mutex<Option<Seen>>,
}

impl Election {
    /// `identity` names this replica (a pod name, a host and pid); `duration` is how long
    /// a leader that stops renewing keeps the lease.
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Election {
        Election {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
            seen: Mutex::new(None),
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// One try: creates the Lease, renews it when this replica holds it, or takes it over
    /// when its holder has not renewed it for a lease duration. Returns whether this
    /// replica leads now; losing a race to another replica is `Ok(false)`.
    pub async fn try_lead(&self) -> Result<bool, LeaderError> {
        let now = jiff::Timestamp::now();
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.fail("get", e))?
        else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.held_spec(now, 0)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if status_is(&e, 409) => Ok(false),
                Err(e) => Err(self.fail("create", e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let spec = if holder == self.identity {
            LeaseSpec {
                renew_time: Some(MicroTime(now)),
                ..spec
            }
        } else {
            if !holder.is_empty() && !self.expired(&holder, &spec) {
                return Ok(false);
            }
            self.held_spec(now, transitions.saturating_add(1))
        };
        lease.spec = Some(spec);
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            // Renewed or taken by another replica since it was read.
            Err(e) if status_is(&e, 409) => Ok(false),
            Err(e) => Err(self.fail("update", e)),
        }
    }

    /// Gives the lease up, when this replica holds it, so a standby takes over at once
    /// (a replica that stops on SIGTERM; one that dies is waited out instead).
    pub async fn step_down(&self) -> Result<(), LeaderError> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.fail("get", e))?
        else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if status_is(&e, 409) => Ok(()),
            Err(e) => Err(self.fail("update", e)),
        }
    }

    /// Who holds the lease now, as last read (None: nobody).
    pub async fn holder(&self) -> Result<Option<String>, LeaderError> {
        let lease = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.fail("get", e))?;
        Ok(lease
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty()))
    }

    fn held_spec(&self, now: jiff::Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(now)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Whether `holder` has not renewed for the lease's duration, by this replica's clock.
    fn expired(&self, holder: &str, spec: &LeaseSpec) -> bool {
        let renewed = spec.renew_time.as_ref().map(|t| t.0.to_string());
        let term = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.duration, Duration::from_secs);
        match self.seen.lock() {
            Ok(mut seen) => expired(&mut seen, holder, renewed, term, Instant::now()),
            Err(_) => false,
        }
    }

    fn fail(&self, verb: &str, error: kube::Error) -> LeaderError {
        let what = format!("Lease {}", self.name);
        match CallFailure::new(error, verb, &what, Some(&self.namespace)) {
            CallFailure::Forbidden { verb, message, .. } => LeaderError::Forbidden {
                verb,
                name: self.name.clone(),
                namespace: self.namespace.clone(),
                message,
            },
            CallFailure::Api { action, source } => LeaderError::Api { action, source },
        }
    }
}

/// Whether the holder last seen in `seen` has not renewed for `term` by `now`: the term
/// starts when this replica first saw `holder` with this renewal (noted in `seen`).
fn expired(
    seen: &mut Option<Seen>,
    holder: &str,
    renewed: Option<String>,
    term: Duration,
    now: Instant,
) -> bool {
    match seen.as_ref() {
        Some(last) if last.holder == holder && last.renewed == renewed => {
            now.duration_since(last.at) >= term
        }
        _ => {
            *seen = Some(Seen {
                holder: holder.to_string(),
                renewed,
                at: now,
            });
            false
        }
    }
}

/// `<pod or host name> pid <pid>`: one per replica, and a person finds the process.
pub fn replica_identity() -> String {
    format!("{} pid {}", crate::lock::hostname(), std::process::id())
}

fn status_is(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_expires_a_term_after_its_last_renewal_was_first_seen() {
        let term = Duration::from_secs(15);
        let start = Instant::now();
        let mut seen = None;
        let renewal = |t: &str| Some(t.to_string());
        // First sight: never expired, whatever the lease's own times say.
        assert!(!expired(&mut seen, "a", renewal("t1"), term, start));
        assert!(!expired(
            &mut seen,
            "a",
            renewal("t1"),
            term,
            start + Duration::from_secs(14)
        ));
        assert!(expired(&mut seen, "a", renewal("t1"), term, start + term));
        // A renewal starts the term again, as does another holder.
        let later = start + Duration::from_secs(20);
        assert!(!expired(&mut seen, "a", renewal("t2"), term, later));
        assert!(!expired(
            &mut seen,
            "a",
            renewal("t2"),
            term,
            later + Duration::from_secs(10)
        ));
        assert!(!expired(&mut seen, "b", renewal("t2"), term, later + term));
        assert!(expired(
            &mut seen,
            "b",
            renewal("t2"),
            term,
            later + term + term
        ));
    }
}
