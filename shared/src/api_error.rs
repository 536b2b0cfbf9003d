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
    use super::denied_permission;

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
