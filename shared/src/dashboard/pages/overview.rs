//! The overview: every app of every cluster, one row each, filtered by namespace, status
//! and health (a plain GET form: it works without the script).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::{app_params, commit, pairs, when};
use crate::dashboard::data::{AppHealth, ClusterOverview, DriftState, OverviewRow};
use crate::dashboard::html::{badge, checking, escape, link, page, table};

/// What the overview's form asks to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub namespace: Option<String>,
    pub status: Option<String>,
    pub health: Option<String>,
}

impl Filters {
    fn keeps(&self, row: &OverviewRow) -> bool {
        let status = row
            .latest
            .as_ref()
            .map_or("unreadable", |r| r.status.as_str());
        self.namespace
            .as_ref()
            .is_none_or(|ns| *ns == row.app.namespace)
            && self.status.as_ref().is_none_or(|s| s == status)
            && self
                .health
                .as_ref()
                .is_none_or(|h| h == row.health.as_str())
    }
}

/// The overview page.
pub fn render(clusters: &[ClusterOverview], filters: &Filters) -> String {
    let all: Vec<&OverviewRow> = clusters.iter().flat_map(|c| &c.rows).collect();
    let mut body = String::from("<h1>Apps</h1>\n");
    body.push_str(&form(&all, filters));
    for cluster in clusters {
        if let Some(error) = &cluster.error {
            let _ = writeln!(
                body,
                "<p class=\"error\">{} context {}: {}</p>",
                badge("error"),
                escape(&cluster.context),
                escape(error)
            );
        }
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .filter(|row| filters.keeps(row))
        .map(|row| cells(row))
        .collect();
    if rows.is_empty() {
        body.push_str("<p class=\"empty\">No app matches.</p>\n");
    } else {
        body.push_str(&table(
            "apps",
            &[
                "App",
                "Context",
                "Namespace",
                "Release",
                "Status",
                "Commit",
                "When",
                "Who",
                "Health",
                "Drift",
                "Source",
            ],
            &rows,
        ));
    }
    let _ = writeln!(
        body,
        "<p class=\"summary\">{} apps shown of {}.</p>",
        rows.len(),
        all.len()
    );
    page("Apps", &body)
}

fn cells(row: &OverviewRow) -> Vec<String> {
    let params = app_params(&row.app);
    let name = link("/app", &pairs(&params), &row.app.app);
    let (revision, status, commit, updated, who) = match &row.latest {
        Ok(release) => (
            link("/history", &pairs(&params), &release.revision.to_string()),
            badge(&release.status),
            escape(&commit(release)),
            escape(&when(release.updated)),
            escape(release.who.as_deref().unwrap_or("-")),
        ),
        Err(reason) => (
            "-".into(),
            format!(
                "<span title=\"{}\">{}</span>",
                escape(reason),
                badge("unreadable")
            ),
            "-".into(),
            "-".into(),
            "-".into(),
        ),
    };
    vec![
        name,
        escape(&row.context),
        escape(&row.app.namespace),
        revision,
        status,
        commit,
        updated,
        who,
        health_cell(row.health),
        drift_cell(&row.drift),
        escape(row.app.source.as_str()),
    ]
}

fn health_cell(health: AppHealth) -> String {
    match health {
        AppHealth::Checking => checking(),
        known => badge(known.as_str()),
    }
}

/// `✓ in sync`, `≠ 2 drifted`, `? unknown` (why, on hover) or `… checking`.
pub fn drift_cell(drift: &DriftState) -> String {
    match drift {
        DriftState::Checking => checking(),
        DriftState::InSync => badge("in sync"),
        DriftState::Drifted(n) => format!(
            "<span class=\"state warn\"><span aria-hidden=\"true\">≠</span> {n} drifted</span>"
        ),
        DriftState::Unknown(why) => {
            format!(
                "<span title=\"{}\">{}</span>",
                escape(why),
                badge("unknown")
            )
        }
    }
}

/// The filter form: a choice each of the namespaces, statuses and healths present.
fn form(rows: &[&OverviewRow], filters: &Filters) -> String {
    let namespaces: BTreeSet<&str> = rows.iter().map(|r| r.app.namespace.as_str()).collect();
    let statuses: BTreeSet<&str> = rows
        .iter()
        .map(|r| {
            r.latest
                .as_ref()
                .map_or("unreadable", |l| l.status.as_str())
        })
        .collect();
    let healths: BTreeSet<&str> = rows.iter().map(|r| r.health.as_str()).collect();
    format!(
        "<form class=\"filters\" method=\"get\" action=\"/\">{}{}{}<button type=\"submit\">Filter</button></form>\n",
        select("ns", "Namespace", &namespaces, filters.namespace.as_deref()),
        select("status", "Status", &statuses, filters.status.as_deref()),
        select("health", "Health", &healths, filters.health.as_deref()),
    )
}

fn select(name: &str, label: &str, values: &BTreeSet<&str>, chosen: Option<&str>) -> String {
    let mut out = format!("<label>{label} <select name=\"{name}\"><option value=\"\">all</option>");
    for value in values {
        let selected = if chosen == Some(*value) {
            " selected"
        } else {
            ""
        };
        let _ = write!(out, "<option{selected}>{}</option>", escape(value));
    }
    out.push_str("</select></label> ");
    out
}
