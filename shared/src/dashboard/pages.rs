//! Each page as HTML, from what [`super::data`] read. Pure functions: the pages are
//! tested (and their HTML snapshotted) without a cluster.

pub mod app;
pub mod history;
pub mod overview;

use super::data::AppRef;
use crate::release::history::Release;

/// The query parameters that name an app: `c` (cluster), `ns`, `app`, `src`.
pub fn app_params(app: &AppRef) -> Vec<(&'static str, String)> {
    vec![
        ("c", app.cluster.to_string()),
        ("ns", app.namespace.clone()),
        ("app", app.app.clone()),
        ("src", app.source.as_str().to_string()),
    ]
}

/// `params` as the `(&str, &str)` pairs [`super::html::href`] takes.
pub fn pairs<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// A time to the second, UTC: `2026-12-07T08:01:02Z`.
pub fn when(time: Option<jiff::Timestamp>) -> String {
    time.map(|t| format!("{t:.0}"))
        .unwrap_or_else(|| "-".into())
}

/// `abc1234 subject` of a release's commit, or `-`.
pub fn commit(release: &Release) -> String {
    release
        .commit
        .as_ref()
        .map(|c| format!("{} {}", c.short_id, c.subject))
        .unwrap_or_else(|| "-".into())
}
