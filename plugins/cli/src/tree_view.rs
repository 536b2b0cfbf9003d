//! `-o tree`: an app's resource tree as text, one line per object, what a member owns
//! drawn under it, as `kapp inspect --tree` and `argocd app resources -o tree` draw theirs.
//! Every state is a word (`healthy`, `missing`, `modified`), coloured only on top.

use comfy_table::{Cell, Color, ContentArrangement, Table, presets};
use gitops::apply::health::Health;
use gitops::tree::{DriftMark, ResourceTree, TreeNode};

/// Spaces between columns, as kubectl puts them.
const PADDING: u16 = 3;

/// The tree as a table: KIND (drawn as a tree), NAMESPACE, NAME, HEALTH, DRIFT (with
/// `drift`), MESSAGE. Members in key order, each followed by what it owns, sorted. The
/// caller adds a line of counts ([`summary`]).
pub fn text(tree: &ResourceTree, drift: bool, color: bool) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        // A wrapped tree cannot be read: long lines stay long, as kubectl's do.
        .set_content_arrangement(ContentArrangement::Disabled);
    if color {
        table.enforce_styling();
        table.style_text_only();
    }
    let mut header = vec!["KIND", "NAMESPACE", "NAME", "HEALTH"];
    if drift {
        header.push("DRIFT");
    }
    header.push("MESSAGE");
    table.set_header(header);
    let mut rows = Vec::new();
    rows_of(&tree.roots, "", true, &mut rows);
    for (prefix, node) in rows {
        let mut cells = vec![
            Cell::new(format!("{prefix}{}", node.key.group_kind())),
            Cell::new(node.key.namespace.as_deref().unwrap_or("-")),
            Cell::new(&node.key.name),
            health_cell(node.health.as_ref(), color),
        ];
        if drift {
            cells.push(drift_cell(node.drift, color));
        }
        let message = node
            .health
            .as_ref()
            .and_then(Health::message)
            .or(node.message.as_deref())
            .unwrap_or_default();
        cells.push(Cell::new(message));
        table.add_row(cells);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, PADDING));
    }
    let mut out = String::new();
    for line in table.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Each node with the lines drawn before its kind: `├─ `, `└─ `, and under an owner
/// that has more children `│  `.
fn rows_of<'a>(
    nodes: &'a [TreeNode],
    indent: &str,
    roots: bool,
    out: &mut Vec<(String, &'a TreeNode)>,
) {
    for (index, node) in nodes.iter().enumerate() {
        let last = index + 1 == nodes.len();
        let (branch, below) = match (roots, last) {
            (true, _) => ("", String::new()),
            (false, false) => ("├─ ", format!("{indent}│  ")),
            (false, true) => ("└─ ", format!("{indent}   ")),
        };
        out.push((format!("{indent}{branch}"), node));
        rows_of(&node.children, &below, false, out);
    }
}

/// `4 members (1 missing), 5 objects they own; 8 healthy, 1 progressing, 0 failed`.
pub fn summary(tree: &ResourceTree) -> String {
    let s = tree.summary();
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    let mut text = plural(s.members, "member", "members");
    if s.missing > 0 {
        text.push_str(&format!(" ({} missing)", s.missing));
    }
    text.push_str(&format!(
        ", {} they own; {} healthy, {} progressing, {} failed",
        plural(s.owned, "object", "objects"),
        s.healthy,
        s.progressing,
        s.failed
    ));
    text
}

/// The health word: `healthy`, `progressing`, `failed`, or `missing` for a member that
/// does not exist.
fn health_cell(health: Option<&Health>, color: bool) -> Cell {
    let (word, shade) = match health {
        Some(Health::Healthy) => ("healthy", Color::Green),
        Some(Health::Progressing(_)) => ("progressing", Color::Yellow),
        Some(Health::Failed(_)) => ("failed", Color::Red),
        None => ("missing", Color::Red),
    };
    paint(Cell::new(word), shade, color)
}

/// A member's drift mark; nothing for an owned object, which no check compares.
fn drift_cell(mark: Option<DriftMark>, color: bool) -> Cell {
    let Some(mark) = mark else {
        return Cell::new("");
    };
    let shade = match mark {
        DriftMark::InSync => Color::Green,
        DriftMark::Modified => Color::Yellow,
        DriftMark::Deleted => Color::Red,
        DriftMark::Stray => Color::Magenta,
    };
    paint(Cell::new(mark.as_str()), shade, color)
}

fn paint(cell: Cell, shade: Color, color: bool) -> Cell {
    if color { cell.fg(shade) } else { cell }
}

#[cfg(test)]
mod tests {
    use gitops::objects::ObjectKey;

    use super::*;

    fn node(group: &str, kind: &str, name: &str, health: Option<Health>) -> TreeNode {
        TreeNode {
            key: ObjectKey {
                group: group.into(),
                kind: kind.into(),
                namespace: (kind != "Namespace").then(|| "shop".into()),
                name: name.into(),
            },
            uid: None,
            member: true,
            health,
            message: None,
            drift: None,
            children: Vec::new(),
        }
    }

    fn tree() -> ResourceTree {
        let mut web = node("apps", "Deployment", "web", Some(Health::Healthy));
        web.drift = Some(DriftMark::Modified);
        let mut rs_old = node("apps", "ReplicaSet", "web-5d8f", Some(Health::Healthy));
        let mut rs = node(
            "apps",
            "ReplicaSet",
            "web-7c9b",
            Some(Health::Progressing("1/2 replicas ready".into())),
        );
        rs.children = vec![
            node("", "Pod", "web-7c9b-a", Some(Health::Healthy)),
            node(
                "",
                "Pod",
                "web-7c9b-b",
                Some(Health::Progressing("not ready".into())),
            ),
        ];
        rs_old.member = false;
        rs.member = false;
        web.children = vec![rs_old, rs];
        let mut settings = node("", "ConfigMap", "settings", None);
        settings.drift = Some(DriftMark::Deleted);
        let mut ns = node("", "Namespace", "shop", Some(Health::Healthy));
        ns.drift = Some(DriftMark::InSync);
        let mut job = node(
            "batch",
            "Job",
            "migrate",
            Some(Health::Failed("BackoffLimitExceeded".into())),
        );
        job.drift = Some(DriftMark::InSync);
        job.children = vec![node(
            "",
            "Pod",
            "migrate-x",
            Some(Health::Failed("exit 1".into())),
        )];
        ResourceTree {
            roots: vec![settings, ns, web, job],
            warnings: Vec::new(),
        }
    }

    #[test]
    fn a_tree_with_drift_marks() {
        let tree = tree();
        insta::assert_snapshot!(format!("{}\n{}", text(&tree, true, false), summary(&tree)));
    }

    #[test]
    fn a_tree_without_drift_marks() {
        insta::assert_snapshot!(text(&tree(), false, false));
    }

    #[test]
    fn colour_is_only_on_top_of_the_words() {
        let plain = text(&tree(), true, false);
        let coloured = text(&tree(), true, true);
        assert!(coloured.contains("\u{1b}["), "{coloured}");
        let stripped = regex_free_strip(&coloured);
        assert_eq!(stripped, plain);
    }

    /// The text without its ANSI colour sequences.
    fn regex_free_strip(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}
