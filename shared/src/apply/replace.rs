//! Writing an object as its options say: server-side apply, or, for `Replace=true`, a PUT
//! of the whole object, deleted and created again when the server refuses the change of
//! an immutable field (a Job's pod template, a Service's clusterIP), as Argo CD's
//! `Replace=true` with `Force=true` and `kubectl replace --force` do.

use std::time::Duration;

use serde_json::Value;

use crate::apply::object_options::wants_replace;
use crate::live::{LiveCluster, LiveError};
use crate::objects::ObjectKey;

/// How long a deleted object may take to be gone before it is created again.
const GONE_TIMEOUT: Duration = Duration::from_secs(60);
const GONE_POLL: Duration = Duration::from_millis(200);

/// Applies `object` for real: replaced when it asks for it, else server-side applied.
pub async fn write(cluster: &LiveCluster, object: &Value, force: bool) -> Result<Value, LiveError> {
    if wants_replace(object) {
        replace(cluster, object, false).await
    } else {
        cluster.apply(object, force).await
    }
}

fn text<'a>(object: &'a Value, pointer: &str) -> Option<&'a str> {
    object.pointer(pointer).and_then(Value::as_str)
}

/// Whether the server refused the object itself (422 Invalid: an immutable field, a
/// field the update may not drop).
fn refused_as_invalid(error: &LiveError) -> bool {
    matches!(error, LiveError::Api(e) if e.code() == Some(422))
}

/// Replaces `object` (a PUT at the live object's resourceVersion; created if it does not
/// exist). For real (not `dry_run`), a refused update is done as a delete (of that very
/// object, by uid) and a create. A dry run returns the refusal: the caller shows what the
/// object will become from its manifest.
pub async fn replace(
    cluster: &LiveCluster,
    object: &Value,
    dry_run: bool,
) -> Result<Value, LiveError> {
    let api_version = text(object, "/apiVersion").unwrap_or_default();
    let kind = text(object, "/kind").unwrap_or_default();
    let name = text(object, "/metadata/name").unwrap_or_default();
    let (resource, caps) = cluster.resolve_fresh(api_version, kind).await?;
    let namespace = match caps.scope {
        kube::discovery::Scope::Namespaced => text(object, "/metadata/namespace"),
        kube::discovery::Scope::Cluster => None,
    };
    let Some(live) = cluster.get(&resource, namespace, name).await? else {
        return cluster.put(object, None, dry_run).await;
    };
    let version = text(&live, "/metadata/resourceVersion");
    match cluster.put(object, version, dry_run).await {
        Err(error) if refused_as_invalid(&error) && !dry_run => {
            let key = ObjectKey {
                group: resource.group.clone(),
                kind: resource.kind.clone(),
                namespace: namespace.map(str::to_string),
                name: name.to_string(),
            };
            let uid = text(&live, "/metadata/uid");
            cluster.delete(&key, uid, false).await?;
            wait_gone(cluster, &resource, namespace, name, uid).await?;
            cluster.put(object, None, false).await
        }
        other => other,
    }
}

/// Waits until the object with `uid` is gone (finalizers may hold it a while).
async fn wait_gone(
    cluster: &LiveCluster,
    resource: &kube::discovery::ApiResource,
    namespace: Option<&str>,
    name: &str,
    uid: Option<&str>,
) -> Result<(), LiveError> {
    let deadline = tokio::time::Instant::now() + GONE_TIMEOUT;
    loop {
        let current = cluster.get(resource, namespace, name).await?;
        let same = current
            .as_ref()
            .is_some_and(|c| uid.is_none() || text(c, "/metadata/uid") == uid);
        if !same {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(LiveError::Api(crate::api_error::ApiError::Other(format!(
                "{} {name} was deleted to be replaced (Replace=true), but was still there after {}s (a finalizer holds it?)",
                resource.kind,
                GONE_TIMEOUT.as_secs()
            ))));
        }
        tokio::time::sleep(GONE_POLL).await;
    }
}
