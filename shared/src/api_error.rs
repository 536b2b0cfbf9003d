//! Turning kube's errors into sentences a user can act on: which server did not answer,
//! which verb on which resource was forbidden, what the server rejected.

use std::time::Duration;

use crate::error_text::chain;

/// An API call that failed, described for a person.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach the API server {server}: {message}")]
    Unreachable { server: String, message: String },
    /// TLS verification failed: the server is not who the kubeconfig says it trusts.
    #[error(
        "the TLS certificate of the API server {server} does not verify against the cluster's \
         certificate authority in the kubeconfig: {message}"
    )]
    Certificate { server: String, message: String },
    #[error("the API server {server} did not answer within {}", humantime::format_duration(*timeout))]
    Timeout { server: String, timeout: Duration },
    #[error("forbidden: {message} (a cluster admin can grant \"{verb}\" on \"{resource}\")")]
    Forbidden {
        verb: String,
        resource: String,
        message: String,
    },
    #[error(
        "the credentials of context \"{context}\" were rejected (401 Unauthorized): log in again or check the kubeconfig user"
    )]
    Unauthorized { context: String },
    #[error("{message}")]
    Rejected {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{0}")]
    Other(String),
}

/// What a call was doing, so an error can say so.
#[derive(Debug, Clone)]
pub struct CallContext<'a> {
    pub server: &'a str,
    pub context: &'a str,
    pub verb: &'a str,
    pub resource: &'a str,
    pub timeout: Option<Duration>,
}

impl ApiError {
    pub fn from_kube(error: kube::Error, call: &CallContext<'_>) -> ApiError {
        match error {
            kube::Error::Api(status) => {
                let code = status.code;
                let reason = status.reason.clone();
                let message = status.message.clone();
                match code {
                    401 => ApiError::Unauthorized {
                        context: call.context.to_string(),
                    },
                    403 => {
                        // The server names the verb it checked, which is not always the
                        // request's: a server-side apply that would create the object
                        // needs "create", its dry-run too.
                        let (verb, resource) = denied_permission(&message)
                            .unwrap_or_else(|| (call.verb.to_string(), call.resource.to_string()));
                        ApiError::Forbidden {
                            verb,
                            resource,
                            message,
                        }
                    }
                    _ => ApiError::Rejected {
                        code,
                        reason,
                        message,
                    },
                }
            }
            other => {
                let message = chain(&other);
                let lower = message.to_lowercase();
                if lower.contains("timed out")
                    || lower.contains("timeout")
                    || lower.contains("deadline")
                {
                    ApiError::Timeout {
                        server: call.server.to_string(),
                        timeout: call.timeout.unwrap_or_default(),
                    }
                } else if lower.contains("invalid peer certificate") {
                    ApiError::Certificate {
                        server: call.server.to_string(),
                        message,
                    }
                } else if is_transport(&other) {
                    ApiError::Unreachable {
                        server: call.server.to_string(),
                        message,
                    }
                } else {
                    ApiError::Other(message)
                }
            }
        }
    }

    /// The HTTP status the server answered with, if it answered.
    pub fn code(&self) -> Option<u16> {
        match self {
            ApiError::Forbidden { .. } => Some(403),
            ApiError::Unauthorized { .. } => Some(401),
            ApiError::Rejected { code, .. } => Some(*code),
            _ => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.code() == Some(404)
    }

    /// The error in the server's own words when it answered, for callers whose own error
    /// says what was being done (a [`CallFailure`]); 401 and 403 are not reworded.
    pub(crate) fn answered(error: kube::Error) -> ApiError {
        match error {
            kube::Error::Api(status) => ApiError::Rejected {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => ApiError::Other(chain(&other)),
        }
    }
}

/// A failed call of the modules that keep their state in the cluster (release records,
/// Helm's releases, the app lock), translated once for all of them: a denial keeps the
/// verb, namespace and the server's message, so each caller's error can name the
/// permissions its objects need; any other failure says what was being done.
#[derive(Debug)]
pub(crate) enum CallFailure {
    Forbidden {
        verb: String,
        /// None when the call spanned all namespaces.
        namespace: Option<String>,
        message: String,
    },
    Api {
        /// `<verb> <what> in <scope>`, e.g. "list Secrets in namespace apps".
        action: String,
        source: ApiError,
    },
}

impl CallFailure {
    /// `error` of the call that tried to `verb` `what` in `namespace` (None: in all
    /// namespaces).
    pub(crate) fn new(
        error: kube::Error,
        verb: &str,
        what: &str,
        namespace: Option<&str>,
    ) -> CallFailure {
        if let kube::Error::Api(status) = &error
            && status.code == 403
        {
            return CallFailure::Forbidden {
                verb: verb.into(),
                namespace: namespace.map(str::to_string),
                message: status.message.clone(),
            };
        }
        CallFailure::Api {
            action: format!("{verb} {what} in {}", scope(namespace)),
            source: ApiError::answered(error),
        }
    }
}

/// `impl From<CallFailure>` for an error enum whose `Forbidden { verb, namespace, message }`
/// and `Api { action, source }` variants take a [`CallFailure`] as it is: one conversion
/// for the release store's and Helm's errors, whose messages differ but not their fields.
macro_rules! from_call_failure {
    ($error:ident) => {
        impl From<$crate::api_error::CallFailure> for $error {
            fn from(failure: $crate::api_error::CallFailure) -> Self {
                match failure {
                    $crate::api_error::CallFailure::Forbidden {
                        verb,
                        namespace,
                        message,
                    } => $error::Forbidden {
                        verb,
                        namespace,
                        message,
                    },
                    $crate::api_error::CallFailure::Api { action, source } => {
                        $error::Api { action, source }
                    }
                }
            }
        }
    };
}
pub(crate) use from_call_failure;

/// Where a call looked, as an error says it: `namespace <ns>`, or `all namespaces`.
pub(crate) fn scope(namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) => format!("namespace {ns}"),
        None => "all namespaces".into(),
    }
}

/// The verb and resource (`deployments/scale` for a subresource) an RBAC denial names:
/// `... cannot create resource "configmaps" in API group "" ...`.
pub fn denied_permission(message: &str) -> Option<(String, String)> {
    let rest = &message[message.find(" cannot ")? + " cannot ".len()..];
    let (verb, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("resource \"")?;
    let (resource, rest) = rest.split_once('"')?;
    let resource = match rest
        .strip_prefix(" in API group \"")
        .and_then(|r| r.split_once('"'))
        .map(|(group, _)| group)
    {
        Some(group) if !group.is_empty() => format!("{resource}.{group}"),
        _ => resource.to_string(),
    };
    (!verb.is_empty() && !resource.is_empty()).then(|| (verb.to_string(), resource))
}

fn is_transport(error: &kube::Error) -> bool {
    matches!(
        error,
        kube::Error::HyperError(_)
            | kube::Error::Service(_)
            | kube::Error::HttpError(_)
            | kube::Error::TlsRequired
    ) || {
        let text = error.to_string().to_lowercase();
        text.contains("connect") || text.contains("dns") || text.contains("certificate")
    }
}

#[cfg(test)]
mod tests {
    use super::{ApiError, CallFailure, denied_permission};

    fn answer(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status {
                code,
                reason: reason.into(),
                message: message.into(),
                ..kube::core::Status::default()
            }
            .boxed(),
        )
    }

    #[test]
    fn a_denial_keeps_the_verb_the_namespace_and_the_servers_words() {
        let denied = CallFailure::new(answer(403, "Forbidden", "no"), "list", "Secrets", None);
        assert!(
            matches!(&denied, CallFailure::Forbidden { verb, namespace: None, message }
                if verb == "list" && message == "no"),
            "{denied:?}"
        );
    }

    #[test]
    fn any_other_failure_says_what_was_being_done() {
        let failed = CallFailure::new(
            answer(500, "InternalError", "etcd is down"),
            "get",
            "Lease kubectl-gitops.web",
            Some("apps"),
        );
        let CallFailure::Api { action, source } = failed else {
            panic!("{failed:?}");
        };
        assert_eq!(action, "get Lease kubectl-gitops.web in namespace apps");
        assert!(matches!(source, ApiError::Rejected { code: 500, .. }));
        assert_eq!(source.to_string(), "etcd is down");
    }

    #[test]
    fn the_denied_verb_and_resource_come_from_the_servers_message() {
        let core = r#"configmaps "settings" is forbidden: User "system:serviceaccount:a:b" cannot create resource "configmaps" in API group "" in the namespace "a""#;
        assert_eq!(
            denied_permission(core),
            Some(("create".into(), "configmaps".into()))
        );
        let grouped = r#"leases.coordination.k8s.io "x" is forbidden: User "u" cannot update resource "leases" in API group "coordination.k8s.io" in the namespace "a""#;
        assert_eq!(
            denied_permission(grouped),
            Some(("update".into(), "leases.coordination.k8s.io".into()))
        );
        let sub = r#"User "u" cannot patch resource "deployments/scale" in API group "apps" in the namespace "a""#;
        assert_eq!(denied_permission(sub).map(|(v, _)| v), Some("patch".into()));
        assert_eq!(denied_permission("something else entirely"), None);
    }
}
