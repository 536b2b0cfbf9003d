//! An app's page (its release and resource tree, each node with its health and drift
//! mark) and the page of one node (its drift with the managers that changed each field,
//! its live YAML and its events).

use std::fmt::Write as _;

use serde_json::Value;

use super::overview::drift_cell;
use super::{app_params, commit, pairs, when};
use crate::dashboard::data::{AppHealth, AppRef, AppState, ObjectDetail, health_word};
use crate::dashboard::html::{badge, confirm_form, escape, link, page, table};
use crate::drift::{AppDrift, FieldDrift};
use crate::objects::ObjectKey;
use crate::tree::{MAX_DEPTH, TreeNode};

/// The app page. With `actions`, an app of ours that drifted offers a heal.
pub fn render(app: &AppRef, context: &str, state: &AppState, actions: bool) -> String {
    let params = app_params(app);
    let release = &state.release;
    let mut body = format!(
        "<h1>{} <small>{} · {} · {}</small></h1>\n",
        escape(&app.app),
        escape(context),
        escape(&app.namespace),
        escape(app.source.as_str())
    );
    let _ = writeln!(
        body,
        "<p class=\"facts\">Health {} · drift {} · release {} ({}) · {} · {} · {}</p>",
        badge(AppHealth::of(&state.tree).as_str()),
        drift_cell(&state.drift_state()),
        release.revision,
        escape(&release.status),
        escape(&commit(release)),
        escape(&when(release.updated)),
        link("/history", &pairs(&params), "history"),
    );
    for warning in state
        .tree
        .warnings
        .iter()
        .chain(state.drift.iter().flat_map(|d| &d.warnings))
    {
        let _ = writeln!(
            body,
            "<p class=\"warning\">warning: {}</p>",
            escape(warning)
        );
    }
    if actions && state.drift.as_ref().is_some_and(|d| !d.objects.is_empty()) {
        let _ = writeln!(
            body,
            "<p>{}</p>",
            link("/heal", &pairs(&params), "Heal drift")
        );
    }
    body.push_str("<h2>Resource tree</h2>\n");
    body.push_str(&tree_table(app, state));
    page(&app.app, &body)
}

/// The tree as table rows, each node indented by its depth, its kind and name linking to
/// its details. Rows carry `data-object="Kind.group/namespace/name"` for scripts and tests.
fn tree_table(app: &AppRef, state: &AppState) -> String {
    let mut out = String::from(
        "<div class=\"scroll\"><table class=\"tree\">\n<thead><tr><th scope=\"col\">Object</th><th scope=\"col\">Namespace</th><th scope=\"col\">Health</th><th scope=\"col\">Drift</th><th scope=\"col\">Message</th></tr></thead>\n<tbody>\n",
    );
    for (depth, node) in state.tree.walk() {
        row(&mut out, app, depth.min(MAX_DEPTH), node);
    }
    out.push_str("</tbody></table></div>\n");
    out
}

fn row(out: &mut String, app: &AppRef, depth: usize, node: &TreeNode) {
    let key = &node.key;
    let mut params = app_params(app);
    params.extend(object_params(key));
    let name = format!("{}/{}", key.group_kind(), key.name);
    let drift = match node.drift {
        Some(mark) => badge(mark.as_str()),
        None => String::new(),
    };
    let message = node
        .health
        .as_ref()
        .and_then(|h| h.message())
        .or(node.message.as_deref())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "<tr data-object=\"{}\"><td data-label=\"Object\" class=\"depth-{depth}\">{}{}</td><td data-label=\"Namespace\">{}</td><td data-label=\"Health\" class=\"health\">{}</td><td data-label=\"Drift\" class=\"drift\">{drift}</td><td data-label=\"Message\">{}</td></tr>",
        escape(&object_id(key)),
        if depth > 0 {
            "<span aria-hidden=\"true\">└ </span>"
        } else {
            ""
        },
        link("/object", &pairs(&params), &name),
        escape(key.namespace.as_deref().unwrap_or("-")),
        badge(health_word(node.health.as_ref())),
        escape(message),
    );
}

/// `Deployment.apps/shop/web`: how rows name their object.
pub fn object_id(key: &ObjectKey) -> String {
    format!(
        "{}/{}/{}",
        key.group_kind(),
        key.namespace.as_deref().unwrap_or("-"),
        key.name
    )
}

/// The query parameters that name one object: `g`, `k`, `on` (its namespace), `n`.
pub fn object_params(key: &ObjectKey) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("g", key.group.clone()),
        ("k", key.kind.clone()),
        ("n", key.name.clone()),
    ];
    if let Some(ns) = &key.namespace {
        params.push(("on", ns.clone()));
    }
    params
}

/// The page of one node.
pub fn render_object(app: &AppRef, detail: &ObjectDetail) -> String {
    let params = app_params(app);
    let mut body = format!(
        "<h1>{} <small>{}</small></h1>\n<p>{}</p>\n",
        escape(&format!("{}/{}", detail.key.group_kind(), detail.key.name)),
        escape(detail.key.namespace.as_deref().unwrap_or("cluster-scoped")),
        link("/app", &pairs(&params), &format!("back to app {}", app.app)),
    );
    body.push_str("<h2>Drift</h2>\n");
    if detail.fields.is_empty() {
        body.push_str("<p class=\"drift-none\">No drifted field.</p>\n");
    } else {
        body.push_str(&fields_table(&detail.fields));
    }
    body.push_str("<h2>Live object</h2>\n");
    match &detail.yaml {
        Some(yaml) => {
            let _ = writeln!(body, "<pre class=\"yaml\">{}</pre>", escape(yaml));
        }
        None => body.push_str("<p>The object does not exist.</p>\n"),
    }
    body.push_str("<h2>Events</h2>\n");
    if detail.events.is_empty() {
        body.push_str("<p>No events.</p>\n");
    } else {
        let rows: Vec<Vec<String>> = detail
            .events
            .iter()
            .map(|e| {
                vec![
                    badge(&e.kind),
                    escape(&e.reason),
                    escape(&e.message),
                    e.count.to_string(),
                    escape(&e.last),
                ]
            })
            .collect();
        body.push_str(&table(
            "events",
            &["Type", "Reason", "Message", "Count", "Last"],
            &rows,
        ));
    }
    page(&detail.key.name, &body)
}

/// Drifted fields: what the release has, what the cluster has, and who changed it.
pub fn fields_table(fields: &[FieldDrift]) -> String {
    let rows: Vec<Vec<String>> = fields
        .iter()
        .map(|f| {
            let changed_by = [
                f.manager.as_deref(),
                f.operation.as_deref(),
                f.subresource.as_deref(),
                f.time.as_deref(),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" · ");
            vec![
                format!("<code>{}</code>", escape(&f.path)),
                format!("<code>{}</code>", escape(&value(f.desired.as_ref()))),
                format!("<code>{}</code>", escape(&value(f.live.as_ref()))),
                escape(if changed_by.is_empty() {
                    "-"
                } else {
                    &changed_by
                }),
            ]
        })
        .collect();
    table(
        "fields",
        &["Field", "Release has", "Cluster has", "Changed by"],
        &rows,
    )
}

/// The page that asks before a heal: each drifted object of the check, with its fields,
/// and the button that heals (a POST carrying the run's CSRF token).
pub fn render_heal(app: &AppRef, drift: &AppDrift, csrf: &str) -> String {
    let params = app_params(app);
    let mut body = format!(
        "<h1>{} <small>heal drift</small></h1>\n<p>{}</p>\n<p>A heal applies release {} again to the objects below, as <code>kubectl drift {} --heal</code> does, and records a release.</p>\n",
        escape(&app.app),
        link("/app", &pairs(&params), &format!("back to app {}", app.app)),
        drift.release,
        escape(&app.app),
    );
    for object in &drift.objects {
        let _ = writeln!(
            body,
            "<h2>{} {}</h2>",
            escape(&object.key.to_string()),
            badge(object.state.as_str())
        );
        if !object.fields.is_empty() {
            body.push_str(&fields_table(&object.fields));
        }
    }
    let mut fields = pairs(&params);
    fields.push(("csrf", csrf));
    body.push_str(&confirm_form("/heal", &fields, "Heal drift"));
    page(&format!("{} heal", app.app), &body)
}

/// A field's value on one line; `(not set)` when absent.
fn value(value: Option<&Value>) -> String {
    match value {
        None => "(not set)".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}
