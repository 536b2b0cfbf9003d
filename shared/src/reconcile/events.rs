//! Kubernetes Events on an app's ApplySet parent for what the reconciler did, so
//! `kubectl describe secret <app>.applyset` and `kubectl get events` show it next to
//! everything else the cluster reports.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use crate::api_error::{ApiError, CallFailure};
use crate::apply::applyset::parent_name;

/// What the reconciler tells about an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Happened {
    /// A sync deployed a new release.
    Synced,
    /// A sync failed (the release record says why).
    SyncFailed,
    /// Drift was healed.
    Healed,
    /// Healing drift failed.
    HealFailed,
}

impl Happened {
    /// The Event's reason, in the CamelCase Kubernetes uses.
    pub fn reason(self) -> &'static str {
        match self {
            Happened::Synced => "Synced",
            Happened::SyncFailed => "SyncFailed",
            Happened::Healed => "Healed",
            Happened::HealFailed => "HealFailed",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Happened::Synced | Happened::Healed => "Normal",
            Happened::SyncFailed | Happened::HealFailed => "Warning",
        }
    }
}

/// The component name Events carry.
pub const COMPONENT: &str = "kubectl-gitops";

/// Writes an Event about `app` (records in `namespace`) on its ApplySet parent.
/// `instance` names the replica. An app without a parent yet (its first sync failed before
/// writing one) gets none: there is nothing to attach it to.
pub async fn record(
    client: &Client,
    namespace: &str,
    app: &str,
    happened: Happened,
    message: &str,
    instance: &str,
) -> Result<bool, EventError> {
    let parent = parent_name(app);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let fail = |verb: &str, what: &str, e: kube::Error| match CallFailure::new(
        e,
        verb,
        what,
        Some(namespace),
    ) {
        CallFailure::Forbidden { verb, message, .. } => EventError::Forbidden {
            verb,
            namespace: namespace.to_string(),
            message,
        },
        CallFailure::Api { action, source } => EventError::Api { action, source },
    };
    let Some(secret) = secrets
        .get_metadata_opt(&parent)
        .await
        .map_err(|e| fail("get", &format!("Secret {parent}"), e))?
    else {
        return Ok(false);
    };
    let now = jiff::Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{parent}.")),
            namespace: Some(namespace.to_string()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Secret".into()),
            name: Some(parent.clone()),
            namespace: Some(namespace.to_string()),
            uid: secret.uid(),
            resource_version: secret.resource_version(),
            ..ObjectReference::default()
        },
        reason: Some(happened.reason().into()),
        message: Some(message.to_string()),
        type_: Some(happened.kind().into()),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(instance.to_string()),
        action: Some(
            match happened {
                Happened::Synced | Happened::SyncFailed => "Sync",
                Happened::Healed | Happened::HealFailed => "Heal",
            }
            .into(),
        ),
        ..Event::default()
    };
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    events
        .create(&PostParams::default(), &event)
        .await
        .map_err(|e| fail("create", "Event", e))?;
    Ok(true)
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(
        "cannot {verb} Events in namespace {namespace}: {message}; the reconciler's account needs create on events"
    )]
    Forbidden {
        verb: String,
        namespace: String,
        message: String,
    },
    #[error("cannot {action}: {source}")]
    Api { action: String, source: ApiError },
}
