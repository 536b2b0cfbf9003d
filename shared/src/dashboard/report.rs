//! `kubectl release-history APP -o html`: one self-contained page for a CI artifact or a
//! pull request: the app's releases as a timeline, each with what changed since the one
//! before, drawn as diff-git draws it. The stylesheet is inside the page, there is no
//! script, and the page's own Content-Security-Policy lets it load nothing else.

use std::fmt::Write as _;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::data::diff_of;
use super::html::{diff_block, escape};
use super::pages::history::{release_item, unreadable_item};
use crate::release::history::{AppHistory, Release};

const STYLESHEET: &str = include_str!("assets/dashboard.css");

/// The report of `history` (newest first), written at `generated`.
pub fn report(history: &AppHistory, generated: jiff::Timestamp) -> String {
    let readable: Vec<&Release> = history.entries.iter().flatten().collect();
    let mut body = format!(
        "<h1>{} <small>{} · {}</small></h1>\n<p class=\"summary\">{} releases · written {generated:.0} by kubectl release-history</p>\n<ol class=\"timeline\">\n",
        escape(&history.app),
        escape(&history.namespace),
        escape(history.source.as_str()),
        history.entries.len(),
    );
    for entry in &history.entries {
        let release = match entry {
            Ok(release) => release,
            Err(unreadable) => {
                body.push_str(&unreadable_item(unreadable));
                continue;
            }
        };
        let older = readable
            .iter()
            .find(|r| r.revision < release.revision)
            .copied();
        body.push_str(&release_item(release, &changes(older, release)));
    }
    body.push_str("</ol>\n");
    let style_hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLESHEET));
    let mut out = String::with_capacity(body.len() + STYLESHEET.len() + 512);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'sha256-{style_hash}'\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} releases · kubectl-gitops</title>\n<style>{STYLESHEET}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(&history.app),
    );
    out
}

/// What changed since `older` (the release before), or why it cannot be shown.
fn changes(older: Option<&Release>, release: &Release) -> String {
    let Some(older) = older else {
        return String::new();
    };
    match diff_of(older, release) {
        Ok(diff) => format!(
            "<details open><summary>Changes since release {}: {}</summary>\n{}</details>",
            older.revision,
            escape(&diff.summary),
            if diff.text.is_empty() {
                "<p>No object changed.</p>\n".to_string()
            } else {
                diff_block(&diff.text)
            }
        ),
        Err(err) => format!(
            "<p class=\"warning\">The changes since release {} cannot be shown: {}</p>",
            older.revision,
            escape(&err.to_string())
        ),
    }
}
