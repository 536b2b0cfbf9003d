//! A flag that several plugins take means the same everywhere: its `--help` line (value
//! name, description, default) is the same in every plugin that has it. Only `-o`'s
//! possible values may differ, since each plugin has its own formats. No cluster needed:
//! the built binaries are run directly.

use std::collections::BTreeMap;
use std::process::Command;

use kubectl_gitops_tests::{assert_success, plugin_dir};

const PLUGINS: [&str; 4] = [
    "kubectl-diff_git",
    "kubectl-sync",
    "kubectl-release_history",
    "kubectl-drift",
];

/// A flag's help entry: its line's left part (`-o, --output <FORMAT>`), then its
/// description on one line.
type Entry = (String, String);

/// Each flag of a `--help` page by its long name (or short, for one without).
fn flags(help: &str) -> BTreeMap<String, Entry> {
    let mut flags = BTreeMap::new();
    let mut current: Option<(String, String, Vec<String>)> = None;
    let mut close = |current: &mut Option<(String, String, Vec<String>)>| {
        if let Some((name, signature, words)) = current.take() {
            flags.insert(name, (signature, description(&words.join(" "))));
        }
    };
    for line in help.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        if text.starts_with('-') && indent <= 6 {
            close(&mut current);
            // The left part ends at the first run of two spaces.
            let (signature, rest) = text.split_once("  ").unwrap_or((text, ""));
            let name = signature
                .split([',', ' ', '[', '='])
                .filter(|word| word.starts_with('-'))
                .max_by_key(|word| word.len())
                .unwrap_or(signature)
                .to_string();
            current = Some((name, signature.to_string(), vec![rest.trim().to_string()]));
        } else if text.is_empty() || indent > 6 {
            // A description goes on below (or after a blank line, in the long layout).
            if let Some((_, _, words)) = &mut current {
                words.push(text.to_string());
            }
        } else {
            close(&mut current);
        }
    }
    close(&mut current);
    flags
}

/// A description with its whitespace collapsed and its possible values left out (`-o`'s
/// differ by plugin); its default stays, since a shared flag has one default.
fn description(text: &str) -> String {
    let mut text = text.to_string();
    while let Some(start) = text.find("[possible values:") {
        let end = text[start..]
            .find(']')
            .map_or(text.len(), |i| start + i + 1);
        text.replace_range(start..end, "");
    }
    if let Some(start) = text.find("Possible values:") {
        text.truncate(start);
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The flags whose help differs between the plugins that have them, each with what
/// every plugin says.
fn disagreements(pages: &[(&str, String)]) -> Vec<String> {
    let mut by_flag: BTreeMap<String, Vec<(&str, Entry)>> = BTreeMap::new();
    for (plugin, help) in pages {
        for (name, entry) in flags(help) {
            by_flag.entry(name).or_default().push((plugin, entry));
        }
    }
    by_flag
        .into_iter()
        .filter(|(_, seen)| seen.len() > 1 && seen.iter().any(|(_, e)| *e != seen[0].1))
        .map(|(name, seen)| {
            let said: Vec<String> = seen
                .iter()
                .map(|(plugin, (signature, text))| format!("  {plugin}: {signature}: {text}"))
                .collect();
            format!("{name}:\n{}", said.join("\n"))
        })
        .collect()
}

#[test]
fn a_flag_shared_by_plugins_has_one_help_text() {
    let pages: Vec<(&str, String)> = PLUGINS
        .iter()
        .map(|plugin| {
            let out = Command::new(plugin_dir().join(plugin))
                .arg("--help")
                .env("COLUMNS", "100")
                .output()
                .unwrap();
            assert_success(&format!("{plugin} --help"), &out);
            (*plugin, String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .collect();
    // The parse found the flags: the connection flags are in every page.
    for (plugin, help) in &pages {
        assert!(flags(help).contains_key("--kubeconfig"), "{plugin}: {help}");
    }
    let differing = disagreements(&pages);
    assert!(
        differing.is_empty(),
        "flags whose help differs between plugins:\n{}",
        differing.join("\n")
    );
}

#[test]
fn a_differing_help_text_or_default_is_caught() {
    let page = |interval: &str, output: &str| {
        format!(
            "Usage: x\n\nOptions:\n      --interval <DURATION>  How often --watch checks\n                             {interval}\n  -o, --output <FORMAT>      Output format {output}\n  -h, --help                 Print help\n\nExamples:\n  x --interval 1m\n"
        )
    };
    let same = [
        ("a", page("[default: 1m]", "[possible values: json]")),
        ("b", page("[default: 1m]", "[possible values: json, yaml]")),
    ];
    assert_eq!(disagreements(&same), Vec::<String>::new());
    let other_default = [
        ("a", page("[default: 1m]", "")),
        ("b", page("[default: 30s]", "")),
    ];
    let found = disagreements(&other_default);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].starts_with("--interval:"), "{found:?}");
    let other_text = [("a", page("", "(text)")), ("b", page("", "(a diff)"))];
    let found = disagreements(&other_text);
    assert!(
        found.len() == 1 && found[0].starts_with("--output:"),
        "{found:?}"
    );
}
