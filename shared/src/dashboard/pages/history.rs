//! An app's releases as a timeline, and the diff between two of them as diff-git draws it.

use std::fmt::Write as _;

use super::{app_params, commit, pairs, when};
use crate::dashboard::actions::RollbackPreview;
use crate::dashboard::data::{AppRef, ReleaseDiff};
use crate::dashboard::html::{badge, confirm_form, diff_block, escape, link, page};
use crate::release::history::{AppHistory, Release, Source, Unreadable};

/// The history page: newest first, each release with its status, commit, who, duration,
/// counts and hooks, and a form to compare any two.
/// With `actions`, each earlier release that was deployed offers a rollback to it, and the
/// deployed one offers to sync it again.
pub fn render(app: &AppRef, history: &AppHistory, actions: bool) -> String {
    let params = app_params(app);
    let mut body = format!(
        "<h1>{} <small>history · {} · {}</small></h1>\n<p>{}</p>\n",
        escape(&app.app),
        escape(&app.namespace),
        escape(app.source.as_str()),
        link("/app", &pairs(&params), "resource tree"),
    );
    let revisions: Vec<u32> = history
        .entries
        .iter()
        .filter_map(|e| e.as_ref().ok().map(|r| r.revision))
        .collect();
    body.push_str(&compare_form(app, &revisions));
    body.push_str("<ol class=\"timeline\">\n");
    for (index, entry) in history.entries.iter().enumerate() {
        match entry {
            Ok(release) => {
                let mut more = revisions
                    .get(index + 1)
                    .map(|previous| since_link(app, *previous, release.revision))
                    .unwrap_or_default();
                if let Some(what) = actions.then(|| rollback_action(app, release)).flatten() {
                    let mut params = app_params(app);
                    params.push(("rev", release.revision.to_string()));
                    more.push_str(&format!(
                        "<p>{}</p>",
                        link("/rollback", &pairs(&params), &what)
                    ));
                }
                body.push_str(&release_item(release, &more));
            }
            Err(unreadable) => body.push_str(&unreadable_item(unreadable)),
        }
    }
    body.push_str("</ol>\n");
    page(&format!("{} history", app.app), &body)
}

/// The rollback offered to `release`, one of ours: to one that was deployed and is no
/// longer, a rollback; to the deployed one, syncing it again (what drifted from it goes
/// back). The tool refuses failed and pending ones.
fn rollback_action(app: &AppRef, release: &Release) -> Option<String> {
    if app.source != Source::Gitops {
        return None;
    }
    match release.status.as_str() {
        "superseded" | "rolled-back" => Some(format!("Roll back to release {}", release.revision)),
        "deployed" => Some(format!("Sync release {} again", release.revision)),
        _ => None,
    }
}

/// The page that asks before a rollback: what it would change, and the button that does it
/// (a POST carrying the run's CSRF token).
pub fn render_rollback(app: &AppRef, preview: &RollbackPreview, csrf: &str) -> String {
    let params = app_params(app);
    let (what, action) = match preview.again {
        true => (
            format!("Sync release {} again", preview.target),
            "syncing it again",
        ),
        false => (
            format!("Roll back to release {}", preview.target),
            "the rollback",
        ),
    };
    let mut body = format!(
        "<h1>{} <small>{}</small></h1>\n<p>{}</p>\n<p>Release {} was chosen: {}. It is recorded as <code>kubectl sync --rollback {}</code> records it.</p>\n<h2>What {action} changes</h2>\n",
        escape(&app.app),
        escape(&what.to_lowercase()),
        link("/history", &pairs(&params), "history"),
        preview.target,
        escape(&preview.reason),
        preview.target,
    );
    if preview.text.is_empty() {
        let _ = writeln!(
            body,
            "<p>No object changes: {action} only records a release.</p>"
        );
    } else {
        body.push_str(&diff_block(&preview.text));
    }
    let _ = writeln!(
        body,
        "<p class=\"summary\">{}</p>",
        escape(&preview.summary)
    );
    if !preview.blocked.is_empty() {
        // Nothing to confirm: the POST would be refused (and is, if forged) for the same
        // reasons.
        let _ = writeln!(
            body,
            "<h2>Why it cannot be done from here</h2>\n<ul class=\"blocked\">"
        );
        for reason in &preview.blocked {
            let _ = writeln!(body, "<li>{} {}</li>", badge("refused"), escape(reason));
        }
        body.push_str("</ul>\n");
        return page(&format!("{} rollback", app.app), &body);
    }
    let target = preview.target.to_string();
    let mut fields = pairs(&params);
    fields.extend([("rev", target.as_str()), ("csrf", csrf)]);
    body.push_str(&confirm_form("/rollback", &fields, &what));
    page(&format!("{} rollback", app.app), &body)
}

/// A record that cannot be read, in its place in the timeline.
pub fn unreadable_item(unreadable: &Unreadable) -> String {
    format!(
        "<li>{} {}: {}</li>\n",
        badge("unreadable"),
        escape(&unreadable.secret),
        escape(&unreadable.reason)
    )
}

/// A link to the diff from release `previous` to `revision`.
fn since_link(app: &AppRef, previous: u32, revision: u32) -> String {
    let mut params = app_params(app);
    params.push(("a", previous.to_string()));
    params.push(("b", revision.to_string()));
    format!(
        "<p>{}</p>",
        link(
            "/diff",
            &pairs(&params),
            &format!("changes since release {previous}")
        )
    )
}

/// One release of the timeline: its status, commit, who, when, duration, counts, hooks
/// and error, then `more` (HTML: a link to its changes, or the changes themselves).
pub fn release_item(release: &Release, more: &str) -> String {
    let mut out = format!(
        "<li class=\"release\" data-revision=\"{}\"><h3>Release {} {}</h3>\n<dl>",
        release.revision,
        release.revision,
        badge(&release.status)
    );
    let mut fact = |name: &str, text: String| {
        let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", escape(name), escape(&text));
    };
    fact("commit", commit(release));
    if let Some(operation) = &release.operation {
        let of = release
            .rollback_of
            .map(|r| format!(" of release {r}"))
            .unwrap_or_default();
        fact("operation", format!("{operation}{of}"));
    }
    fact("who", release.who.clone().unwrap_or_else(|| "-".into()));
    fact("when", when(release.updated));
    if let Some(seconds) = release.duration_seconds {
        fact("duration", format!("{seconds:.1} s"));
    }
    if let Some(c) = &release.counts {
        fact(
            "objects",
            format!(
                "{} created, {} configured, {} unchanged, {} pruned, {} failed",
                c.created, c.configured, c.unchanged, c.pruned, c.failed
            ),
        );
    }
    if !release.hooks.is_empty() {
        let hooks: Vec<String> = release
            .hooks
            .iter()
            .map(|h| format!("{} {} ({})", h.stage, h.key.name, h.result))
            .collect();
        fact("hooks", hooks.join(", "));
    }
    if let Some(error) = &release.error {
        fact("error", error.clone());
    }
    out.push_str("</dl>");
    out.push_str(more);
    out.push_str("</li>\n");
    out
}

/// Two selects of revisions and a button: the diff between any two releases.
fn compare_form(app: &AppRef, revisions: &[u32]) -> String {
    if revisions.len() < 2 {
        return String::new();
    }
    let mut out = String::from("<form class=\"compare\" method=\"get\" action=\"/diff\">");
    for (name, value) in app_params(app) {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"{name}\" value=\"{}\">",
            escape(&value)
        );
    }
    for (name, label, chosen) in [
        ("a", "Compare release", revisions[1]),
        ("b", "with release", revisions[0]),
    ] {
        let _ = write!(out, "<label>{label} <select name=\"{name}\">");
        for revision in revisions {
            let selected = if *revision == chosen { " selected" } else { "" };
            let _ = write!(out, "<option{selected}>{revision}</option>");
        }
        out.push_str("</select></label> ");
    }
    out.push_str("<button type=\"submit\">Show the diff</button></form>\n");
    out
}

/// The diff page.
pub fn render_diff(app: &AppRef, diff: &ReleaseDiff) -> String {
    let params = app_params(app);
    let mut body = format!(
        "<h1>{} <small>release {} → release {}</small></h1>\n<p>{}</p>\n",
        escape(&app.app),
        diff.before,
        diff.after,
        link("/history", &pairs(&params), "history"),
    );
    if diff.text.is_empty() {
        body.push_str("<p>No object changed.</p>\n");
    } else {
        body.push_str(&diff_block(&diff.text));
    }
    let _ = writeln!(body, "<p class=\"summary\">{}</p>", escape(&diff.summary));
    page(
        &format!("{} {}..{}", app.app, diff.before, diff.after),
        &body,
    )
}
