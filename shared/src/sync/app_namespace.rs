//! The app's own namespace (where its Lease, ApplySet parent and release records live)
//! when it does not exist yet: the sync takes its lock there, so the namespace has to come
//! first. Either the revision holds it (then that member is applied before the lock, as it
//! would be first of all anyway), or `--create-namespace` asks for it (then it is created
//! bare and is no member of the app: nothing prunes it).

use serde_json::{Value, json};

use crate::apply::applyset::{ApplySetId, label_member};
use crate::live::{LiveCluster, LiveError};
use crate::objects::{DesiredSet, ObjectKey};

/// How the app's missing namespace came to exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provided {
    /// The revision's Namespace object, applied ahead of the others as a member.
    FromRevision,
    /// Created by `--create-namespace` (`create_namespace: true`): not a member.
    Created,
}

#[derive(Debug, thiserror::Error)]
pub enum AppNamespaceError {
    #[error(
        "cannot create namespace {namespace}, where app {app} keeps its lock and records: {source}"
    )]
    Apply {
        namespace: String,
        app: String,
        #[source]
        source: LiveError,
    },
}

/// The key of the Namespace object `namespace`.
fn key(namespace: &str) -> ObjectKey {
    ObjectKey {
        group: String::new(),
        kind: "Namespace".into(),
        namespace: None,
        name: namespace.into(),
    }
}

/// What would provide `namespace` if it is missing: the revision's own Namespace object
/// (it wins over `create`), else `--create-namespace`, else nothing.
pub fn provider(namespace: &str, desired: &DesiredSet, create: bool) -> Option<Provided> {
    if desired.contains(&key(namespace)) {
        Some(Provided::FromRevision)
    } else if create {
        Some(Provided::Created)
    } else {
        None
    }
}

/// Makes the missing `namespace` of `app` exist, as [`provider`] says; None when nothing
/// provides it (the caller reports the missing namespace). A namespace someone created
/// meanwhile is fine: both are server-side applies.
pub async fn provide(
    cluster: &LiveCluster,
    namespace: &str,
    app: &str,
    desired: &DesiredSet,
    create: bool,
) -> Result<Option<Provided>, AppNamespaceError> {
    let provided = provider(namespace, desired, create);
    let object = match provided {
        None => return Ok(None),
        Some(Provided::FromRevision) => {
            let mut object = desired
                .get(&key(namespace))
                .map(|d| d.object.clone())
                .unwrap_or(Value::Null);
            // A member like the others, so the plan finds it ours and a prune knows it.
            label_member(&mut object, &ApplySetId::for_app(app, namespace));
            object
        }
        Some(Provided::Created) => json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": { "name": namespace },
        }),
    };
    cluster
        .apply(&object, false)
        .await
        .map_err(|source| AppNamespaceError::Apply {
            namespace: namespace.into(),
            app: app.into(),
            source,
        })?;
    Ok(provided)
}

/// Whether `namespace` is missing, for a dry run that would create it (a namespace the
/// user may not read counts as existing).
pub async fn is_missing(cluster: &LiveCluster, namespace: &str) -> Result<bool, LiveError> {
    let names = std::iter::once(namespace.to_string()).collect();
    Ok(!cluster.missing_namespaces(&names).await?.is_empty())
}
