//! Counting a command's API requests in the audit log, by verb, resource and namespace.

use kubectl_gitops_tests::TestCluster;

/// One request as the audit log saw it: verb (with `(dry-run)`), resource, namespace, name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Request {
    pub verb: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

/// Our requests since `offset` that concern `namespaces`: objects in them, and the
/// Namespace objects themselves (other tests run at the same time, so requests about
/// other namespaces, and discovery, are left out). Requests across all namespaces are kept
/// when they select the members of ApplySet `members_of`, with namespace `*`.
pub fn requests_about(
    cluster: &TestCluster,
    offset: u64,
    namespaces: &[&str],
    members_of: Option<&str>,
) -> Vec<Request> {
    let field = |event: &serde_json::Value, name: &str| {
        event["objectRef"][name]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let mut out: Vec<Request> = cluster
        .our_audit_events_since(offset)
        .iter()
        .filter_map(|event| {
            let request = Request {
                verb: kubectl_gitops_tests::describe_request(event)
                    .split(' ')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
                resource: field(event, "resource"),
                namespace: field(event, "namespace"),
                name: field(event, "name"),
            };
            let everywhere = request.namespace.is_empty()
                && request.resource != "namespaces"
                && members_of.is_some_and(|id| {
                    event["requestURI"]
                        .as_str()
                        .is_some_and(|uri| uri.contains(id))
                });
            if everywhere {
                return Some(Request {
                    namespace: "*".into(),
                    ..request
                });
            }
            let about = namespaces.contains(&request.namespace.as_str())
                || request.resource == "namespaces" && namespaces.contains(&request.name.as_str());
            about.then_some(request)
        })
        .collect();
    out.sort();
    out
}

/// How often each `verb resource namespace` occurs among `requests` with verb `verb`.
pub fn counted(requests: &[Request], verb: &str) -> Vec<(String, usize)> {
    let mut counts = std::collections::BTreeMap::new();
    for r in requests.iter().filter(|r| r.verb == verb) {
        *counts
            .entry(format!("{} {}", r.resource, r.namespace))
            .or_insert(0) += 1;
    }
    counts.into_iter().collect()
}

/// The LISTs of `resource` among `requests`, by namespace (`*`: across all namespaces).
pub fn lists_of(requests: &[Request], resource: &str) -> Vec<(String, usize)> {
    let prefix = format!("{resource} ");
    counted(requests, "list")
        .into_iter()
        .filter(|(what, _)| what.starts_with(&prefix))
        .collect()
}
