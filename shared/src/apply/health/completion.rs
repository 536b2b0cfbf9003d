//! Whether a Job or a Pod has run to an end, and how: what a hook runner waits for.
//!
//! Health asks "is it what the manifest wanted?"; a hook asks "did it run, and did it
//! work?". For a Job or a Pod the two mostly agree, but a hook runner needs the failure in
//! the words of whoever wrote the hook (a Pod's termination message), and nothing else.

use serde_json::Value;

use super::rules::{self, Condition};

/// For a Job or a Pod: `Some(Ok(()))` once it succeeded, `Some(Err(message))` once it
/// failed, with the best message available, `None` while it is still running (or not yet
/// started, or suspended). `None` for every other kind too: only Jobs and Pods run to an
/// end.
///
/// A Job's message is its `Failed` condition's reason and message
/// (`BackoffLimitExceeded: Job has reached the specified backoff limit`). A Pod's is its
/// own reason and message when the kubelet set them (an eviction, a deadline), then the
/// first failed container's termination message, else that container's reason and exit
/// code (`container migrate: Error (exit code 1)`).
pub fn completion(object: &Value) -> Option<Result<(), String>> {
    let group = object
        .get("apiVersion")
        .and_then(Value::as_str)
        .and_then(crate::objects::group_of);
    match (group, object.get("kind").and_then(Value::as_str)) {
        (Some("batch"), Some("Job")) => job(object),
        (Some(""), Some("Pod")) => pod(object),
        _ => None,
    }
}

fn job(object: &Value) -> Option<Result<(), String>> {
    let conditions = rules::conditions(object);
    let is_true = |kind: &str| {
        conditions
            .iter()
            .find(|c| c.kind == kind && c.status == "True")
    };
    if is_true("Complete").is_some() {
        return Some(Ok(()));
    }
    // FailureTarget: the controller has decided, and only waits for the pods to terminate
    // before it writes Failed with the same reason.
    ["Failed", "FailureTarget"]
        .into_iter()
        .find_map(is_true)
        .map(|c: &Condition<'_>| Err(described(c)))
}

/// `Reason: message`, or a stand-in when the controller left both empty.
fn described(condition: &Condition<'_>) -> String {
    let text = condition.describe("");
    if text.is_empty() {
        format!("{} without a reason", condition.kind)
    } else {
        text
    }
}

fn pod(object: &Value) -> Option<Result<(), String>> {
    match object.pointer("/status/phase").and_then(Value::as_str) {
        Some("Succeeded") => Some(Ok(())),
        Some("Failed") => Some(Err(match rules::pod_failure(object) {
            message if message.is_empty() => "no reason given".into(),
            message => message,
        })),
        _ => None,
    }
}
