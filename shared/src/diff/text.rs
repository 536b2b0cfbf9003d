//! The change set as text for people: YAML, unified diffs, a summary line, markdown for a
//! pull-request comment, and kubectl's `-o name`.

use std::cell::Cell;
use std::fmt::Write as _;

use serde_json::Value;
use similar::{ChangeTag, TextDiff};

use super::change::{ChangeSet, ObjectChange, Summary};
use crate::objects::ObjectKey;

const BOLD: &str = "\x1b[1m";
const RED: &str = "\x1b[31m";
const GREEN: &str = "\x1b[32m";
const CYAN: &str = "\x1b[36m";
const RESET: &str = "\x1b[0m";

/// How [`unified`] renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextOptions {
    /// Lines of context around each change (`-U`).
    pub context: usize,
    /// ANSI colours; the caller decides (terminal, `--color`, `NO_COLOR`).
    pub color: bool,
}

impl Default for TextOptions {
    fn default() -> Self {
        TextOptions {
            context: 3,
            color: false,
        }
    }
}

/// An object as YAML, its keys in the object's own order. The text reads back as the same
/// object with YAML 1.1 rules, as kubectl and [`crate::render::parse_documents`] read it
/// (release records store their manifest this way, and rollback parses it again).
pub fn to_yaml(obj: &Value) -> String {
    // A JSON value always has a YAML form; should the emitter still refuse, JSON is YAML too.
    let json = || {
        serde_json::to_string_pretty(obj)
            .map(|s| s + "\n")
            .unwrap_or_default()
    };
    let tagged = Cell::new(false);
    let Ok(text) = serde_yaml_ng::to_string(&Yaml11Safe(obj, &tagged)) else {
        return json();
    };
    if !tagged.get() {
        return text;
    }
    // libyaml percent-encodes the second `!` of the tag; both spellings read as a string,
    // but `!!str` is the one people know. Should a string of the object itself hold that
    // text, the check below catches it.
    let text = text.replace("!%21str ", "!!str ");
    if crate::render::yaml_value(&text).as_ref() == Some(obj) {
        text
    } else {
        json()
    }
}

/// serde_yaml_ng quotes strings that YAML 1.2 would read as something else, but writes
/// `yes`, `on`, `1_000` or `0b101` plain, and YAML 1.1 reads those as booleans and
/// numbers. Such strings (values and keys) are written with the `!!str` tag instead; the
/// cell records that one was.
struct Yaml11Safe<'a>(&'a Value, &'a Cell<bool>);

impl serde::Serialize for Yaml11Safe<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let tagged = self.1;
        match self.0 {
            Value::String(s) => Yaml11Str(s, tagged).serialize(serializer),
            Value::Array(items) => {
                serializer.collect_seq(items.iter().map(|item| Yaml11Safe(item, tagged)))
            }
            Value::Object(map) => {
                // No length: serde_yaml_ng would take a one-entry map for a possible
                // `!Tag value` and mangle a tagged key.
                let mut out = serializer.serialize_map(None)?;
                for (key, value) in map {
                    out.serialize_entry(&Yaml11Str(key, tagged), &Yaml11Safe(value, tagged))?;
                }
                out.end()
            }
            other => other.serialize(serializer),
        }
    }
}

struct Yaml11Str<'a>(&'a str, &'a Cell<bool>);

impl serde::Serialize for Yaml11Str<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let written_plain =
            || serde_yaml_ng::to_string(self.0).is_ok_and(|text| !text.starts_with(['\'', '"']));
        if crate::render::yaml11_reads_as_non_string(self.0) && written_plain() {
            self.1.set(true);
            // serde_yaml_ng writes a newtype variant as a tagged scalar.
            serializer.serialize_newtype_variant("", 0, "!!str", self.0)
        } else {
            serializer.serialize_str(self.0)
        }
    }
}

/// A unified diff of one object's YAML, headed `--- <before_label>/<group>/<Kind>/<ns>/<name>`
/// and `+++ <after_label>/...` (group `core` for the core group, no namespace segment for a
/// cluster-scoped object). An added or removed object is diffed against nothing; an
/// unchanged object gives an empty string.
pub fn unified(
    change: &ObjectChange,
    before_label: &str,
    after_label: &str,
    opts: &TextOptions,
) -> String {
    let old = change.before.as_ref().map(to_yaml).unwrap_or_default();
    let new = change.after.as_ref().map(to_yaml).unwrap_or_default();
    let diff = TextDiff::from_lines(&old, &new);
    let mut udiff = diff.unified_diff();
    udiff.context_radius(opts.context);

    let path = object_path(&change.key);
    let mut out = String::new();
    for (index, hunk) in udiff.iter_hunks().enumerate() {
        if index == 0 {
            let old_header = format!("--- {before_label}/{path}");
            let new_header = format!("+++ {after_label}/{path}");
            push_line(&mut out, &old_header, Some(BOLD), opts.color);
            push_line(&mut out, &new_header, Some(BOLD), opts.color);
        }
        push_line(&mut out, &hunk.header().to_string(), Some(CYAN), opts.color);
        for line in hunk.iter_changes() {
            let (sign, style) = match line.tag() {
                ChangeTag::Delete => ('-', Some(RED)),
                ChangeTag::Insert => ('+', Some(GREEN)),
                ChangeTag::Equal => (' ', None),
            };
            let text = line.value();
            let text = text.strip_suffix('\n').unwrap_or(text);
            push_line(&mut out, &format!("{sign}{text}"), style, opts.color);
        }
    }
    out
}

/// [`unified`] for every object that differs, in key order.
pub fn unified_all(
    set: &ChangeSet,
    before_label: &str,
    after_label: &str,
    opts: &TextOptions,
) -> String {
    set.differences()
        .map(|change| unified(change, before_label, after_label, opts))
        .collect()
}

/// `2 changed, 1 added, 0 removed, 5 unchanged`.
pub fn summary_line(summary: &Summary) -> String {
    format!(
        "{} changed, {} added, {} removed, {} unchanged",
        summary.changed, summary.added, summary.removed, summary.unchanged
    )
}

/// A pull-request comment: the two sides and the summary, a table of the objects that
/// differ, and a collapsed unified diff (no colour) for each of them.
pub fn markdown(set: &ChangeSet, before_label: &str, after_label: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "**{} → {}**: {}",
        escape_markdown(before_label),
        escape_markdown(after_label),
        summary_line(&set.summary())
    );
    if !set.has_differences() {
        out.push_str("\nNo differences.\n");
        return out;
    }

    out.push_str("\n| Action | Kind | Namespace | Name |\n|---|---|---|---|\n");
    for change in set.differences() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            change.action.as_str(),
            escape_markdown(&change.key.group_kind()),
            escape_markdown(change.key.namespace.as_deref().unwrap_or("")),
            escape_markdown(&change.key.name),
        );
    }

    let plain = TextOptions::default();
    for change in set.differences() {
        let diff = unified(change, before_label, after_label, &plain);
        let fence = fence_for(&diff);
        let _ = write!(
            out,
            "\n<details><summary>{} {}</summary>\n\n{fence}diff\n{diff}{fence}\n\n</details>\n",
            change.action.as_str(),
            escape_html(&change.key.to_string()),
        );
    }
    out
}

/// kubectl's `-o name`: `deployment.apps/web`, `configmap/cfg`, one line per object that
/// differs.
pub fn names(set: &ChangeSet) -> String {
    set.differences()
        .map(|change| {
            let key = &change.key;
            let kind = key.kind.to_lowercase();
            if key.group.is_empty() {
                format!("{kind}/{}\n", key.name)
            } else {
                format!("{kind}.{}/{}\n", key.group, key.name)
            }
        })
        .collect()
}

fn push_line(out: &mut String, line: &str, style: Option<&str>, color: bool) {
    match style {
        Some(style) if color => {
            let _ = writeln!(out, "{style}{line}{RESET}");
        }
        _ => {
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// `apps/Deployment/demo/web`, `core/Namespace/demo`.
fn object_path(key: &ObjectKey) -> String {
    let group = if key.group.is_empty() {
        "core"
    } else {
        &key.group
    };
    match &key.namespace {
        Some(ns) => format!("{group}/{}/{ns}/{}", key.kind, key.name),
        None => format!("{group}/{}/{}", key.kind, key.name),
    }
}

/// A code fence longer than any run of backticks in `text`, so YAML holding a fence of its
/// own (a ConfigMap with a README, say) cannot close ours early.
fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Escapes what would turn plain text into markup inside a paragraph or a table cell.
fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in escape_html(text).chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::diff::change::Action;
    use crate::diff::normalise::normalise;
    use serde_json::json;

    fn key(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        ObjectKey {
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
        }
    }

    fn deployment(image: &str, replicas: u32) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{
                            "name": "web",
                            "image": image,
                            "ports": [{"containerPort": 8080}],
                            "env": [
                                {"name": "A", "value": "1"},
                                {"name": "B", "value": "2"},
                                {"name": "C", "value": "3"},
                                {"name": "D", "value": "4"}
                            ]
                        }]
                    }
                }
            }
        })
    }

    fn config_map(name: &str, data: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "demo"},
            "data": data
        })
    }

    fn changed_deployment() -> ObjectChange {
        ObjectChange {
            key: key("apps", "Deployment", Some("demo"), "web"),
            action: Action::Changed,
            before: Some(deployment("nginx:1.25", 2)),
            after: Some(deployment("nginx:1.27", 3)),
        }
    }

    fn sample_set() -> ChangeSet {
        let before = BTreeMap::from([
            (
                key("apps", "Deployment", Some("demo"), "web"),
                deployment("nginx:1.25", 2),
            ),
            (
                key("", "ConfigMap", Some("demo"), "old"),
                config_map("old", json!({"k": "v"})),
            ),
            (
                key("", "ConfigMap", Some("demo"), "same"),
                config_map("same", json!({"k": "v"})),
            ),
        ]);
        let after = BTreeMap::from([
            (
                key("apps", "Deployment", Some("demo"), "web"),
                deployment("nginx:1.27", 3),
            ),
            (
                key("", "ConfigMap", Some("demo"), "same"),
                config_map("same", json!({"k": "v"})),
            ),
            (
                key("rbac.authorization.k8s.io", "ClusterRole", None, "reader"),
                json!({
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRole",
                    "metadata": {"name": "reader"},
                    "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
                }),
            ),
        ]);
        ChangeSet::between(before, after)
    }

    /// Escape codes made visible, so a snapshot shows where colour starts and ends.
    fn visible(text: &str) -> String {
        text.replace('\x1b', "<ESC>")
    }

    #[test]
    fn yaml_reads_back_as_the_same_object_with_yaml_1_1_rules() {
        let object = json!({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
            "data": {"a": "yes", "b": "on", "c": "1_000", "d": "0b101", "e": "0644", "f": "Y",
                     "g": "+1_0", "h": "1_0.5", "i": "plain", "on": "key", "j": true, "k": 1.5,
                     "<<": "not a merge", "l": ["NO", "off", "0x_1F"], "m": {"on": "1_0"},
                     "n": {"!tag": "x"}}
        });
        let yaml = to_yaml(&object);
        assert!(yaml.contains("a: !!str yes\n"), "{yaml}");
        assert!(yaml.contains("e: '0644'\n"), "{yaml}");
        assert!(yaml.contains("i: plain\n"), "{yaml}");
        let read = crate::render::parse_documents("m.yaml", &yaml).unwrap();
        assert_eq!(read[0].object, object, "{yaml}");
    }

    #[test]
    fn yaml_keeps_the_object_key_order() {
        let yaml = to_yaml(
            &json!({"kind": "ConfigMap", "apiVersion": "v1", "data": {"z": "1", "a": "multi\nline\n"}}),
        );
        insta::assert_snapshot!(yaml);
    }

    #[test]
    fn unified_changed_object() {
        let text = unified(
            &changed_deployment(),
            "live",
            "HEAD (1a2b3c4)",
            &TextOptions::default(),
        );
        assert!(!text.contains('\x1b'));
        insta::assert_snapshot!(text);
    }

    #[test]
    fn unified_context_lines_follow_the_option() {
        let opts = TextOptions {
            context: 1,
            color: false,
        };
        insta::assert_snapshot!(unified(&changed_deployment(), "live", "git", &opts));
    }

    #[test]
    fn unified_added_and_removed_objects_diff_against_nothing() {
        let set = sample_set();
        insta::assert_snapshot!(unified_all(&set, "live", "git", &TextOptions::default()));
    }

    #[test]
    fn unified_unchanged_object_is_empty() {
        let obj = config_map("same", json!({"k": "v"}));
        let change = ObjectChange {
            key: key("", "ConfigMap", Some("demo"), "same"),
            action: Action::Unchanged,
            before: Some(obj.clone()),
            after: Some(obj),
        };
        assert_eq!(unified(&change, "live", "git", &TextOptions::default()), "");
    }

    #[test]
    fn colours_only_when_asked() {
        let opts = TextOptions {
            context: 3,
            color: true,
        };
        let text = unified(&changed_deployment(), "live", "git", &opts);
        insta::assert_snapshot!(visible(&text));
        let plain = unified(
            &changed_deployment(),
            "live",
            "git",
            &TextOptions::default(),
        );
        assert_eq!(
            text.replace(BOLD, "")
                .replace(RED, "")
                .replace(GREEN, "")
                .replace(CYAN, "")
                .replace(RESET, ""),
            plain
        );
    }

    #[test]
    fn masked_secret_diff_shows_which_keys_changed() {
        let secret = |password: &str| {
            let mut s = json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "db", "namespace": "demo", "resourceVersion": "7"},
                "type": "Opaque",
                "data": {"password": password, "user": "YWRtaW4="}
            });
            normalise(&mut s);
            s
        };
        let k = key("", "Secret", Some("demo"), "db");
        let mut set = ChangeSet::between(
            BTreeMap::from([(k.clone(), secret("aHVudGVyMg=="))]),
            BTreeMap::from([(k, secret("aHVudGVyMw=="))]),
        );
        set.mask_secrets();
        let text = unified_all(&set, "live", "git", &TextOptions::default());
        assert!(!text.contains("aHVudGVy") && !text.contains("YWRtaW4="));
        insta::assert_snapshot!(text);
    }

    #[test]
    fn summary_line_counts_in_order() {
        let summary = Summary {
            added: 1,
            changed: 2,
            removed: 0,
            unchanged: 5,
        };
        assert_eq!(
            summary_line(&summary),
            "2 changed, 1 added, 0 removed, 5 unchanged"
        );
    }

    #[test]
    fn markdown_comment() {
        insta::assert_snapshot!(markdown(&sample_set(), "live", "HEAD (1a2b3c4)"));
    }

    #[test]
    fn markdown_without_differences() {
        let objects = BTreeMap::from([(
            key("", "ConfigMap", Some("demo"), "same"),
            config_map("same", json!({"k": "v"})),
        )]);
        let set = ChangeSet::between(objects.clone(), objects);
        assert_eq!(
            markdown(&set, "live", "main"),
            "**live → main**: 0 changed, 0 added, 0 removed, 1 unchanged\n\nNo differences.\n"
        );
    }

    #[test]
    fn markdown_fence_outlasts_backticks_in_the_object() {
        let k = key("", "ConfigMap", Some("demo"), "readme");
        let set = ChangeSet::between(
            BTreeMap::new(),
            BTreeMap::from([(
                k,
                config_map("readme", json!({"README.md": "````sh\nls\n````\n"})),
            )]),
        );
        let md = markdown(&set, "live", "a_b|c");
        assert!(md.contains("\n`````diff\n"), "{md}");
        assert!(md.contains("**live → a\\_b\\|c**"), "{md}");
    }

    #[test]
    fn names_like_kubectl() {
        assert_eq!(
            names(&sample_set()),
            "configmap/old\ndeployment.apps/web\nclusterrole.rbac.authorization.k8s.io/reader\n"
        );
        assert_eq!(names(&ChangeSet::default()), "");
    }
}
