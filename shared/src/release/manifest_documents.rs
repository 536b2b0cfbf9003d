//! A release's manifest read line by line: split into its documents, and each object's
//! key taken from a glance at its first lines. Our YAML writer writes every manifest, so
//! its lines say what a parse would, for the few things a reader needs before (or
//! instead of) parsing a document.

use crate::objects::ObjectKey;
use crate::render::value::yaml11_reads_as_non_string;

/// One document of a manifest.
#[derive(Debug, PartialEq)]
pub(crate) struct Document<'a> {
    /// From the line after its `---` to the next one.
    pub text: &'a str,
    /// The manifest's 1-based line number of its first line.
    pub line: usize,
}

/// Splits a manifest at its `---` lines. A line starting with `---` inside a document's
/// content cannot be written by a YAML writer (block scalars are indented, quoted ones may
/// not hold a document marker), so this is where YAML itself splits.
pub(crate) fn split(text: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (line, piece) in (1..).zip(text.split_inclusive('\n')) {
        if piece.trim_end() == "---" {
            if offset > start {
                documents.push(Document {
                    text: &text[start..offset],
                    line: start_line,
                });
            }
            start = offset + piece.len();
            start_line = line + 1;
        }
        offset += piece.len();
    }
    if text.len() > start {
        documents.push(Document {
            text: &text[start..],
            line: start_line,
        });
    }
    documents
}

/// The key of the object `document` holds, read from its lines as our YAML writer writes
/// them (`apiVersion`, `kind` and `metadata` at the top, `name` and `namespace` two spaces
/// in), if every part is there once and plainly written; None otherwise (the document is
/// then parsed).
pub(crate) fn glance(document: &str) -> Option<ObjectKey> {
    fn set<'a>(slot: &mut Option<&'a str>, value: &'a str) -> Option<()> {
        if slot.is_some() || !plain(value) {
            return None;
        }
        *slot = Some(value);
        Some(())
    }
    let (mut api_version, mut kind, mut name, mut namespace) = (None, None, None, None);
    let mut in_metadata = false;
    for line in document.lines() {
        if let Some(nested) = line.strip_prefix("  ") {
            if in_metadata && !nested.starts_with(' ') {
                if let Some(value) = nested.strip_prefix("name: ") {
                    set(&mut name, value)?;
                } else if let Some(value) = nested.strip_prefix("namespace: ") {
                    set(&mut namespace, value)?;
                }
            }
            continue;
        }
        if line.starts_with(' ') || line.starts_with('#') || line.is_empty() {
            continue;
        }
        in_metadata = line == "metadata:";
        if let Some(value) = line.strip_prefix("apiVersion: ") {
            set(&mut api_version, value)?;
        } else if let Some(value) = line.strip_prefix("kind: ") {
            set(&mut kind, value)?;
        } else if line.starts_with("metadata") && !in_metadata {
            // `metadata: {...}` or anything else unusual.
            return None;
        }
    }
    let api_version = api_version?;
    let group = match api_version.split_once('/') {
        Some((group, _)) => group,
        None => "",
    };
    Some(ObjectKey {
        group: group.to_string(),
        kind: kind?.to_string(),
        namespace: namespace.map(str::to_string),
        name: name?.to_string(),
    })
}

/// Whether `value` is a plain scalar that YAML reads as this very string: the characters
/// of names, kinds and apiVersions, and nothing YAML 1.1 or 1.2 might read as a number, a
/// boolean or null (when in doubt, the document is parsed).
fn plain(value: &str) -> bool {
    let charset = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'/'));
    // Every number YAML reads has a digit (hex and octal ones too).
    let numeric_like = value.bytes().any(|b| b.is_ascii_digit())
        && value.bytes().all(|b| {
            b.is_ascii_hexdigit() || matches!(b, b'-' | b'.' | b'_' | b'x' | b'X' | b'o' | b'O')
        });
    // YAML 1.2's words; 1.1's (`yes`, `on`, ...) are the last check's.
    let keyword = ["true", "false", "null"]
        .iter()
        .any(|word| value.eq_ignore_ascii_case(word));
    charset
        && !numeric_like
        && !keyword
        && !value.starts_with(['-', '.'])
        && !yaml11_reads_as_non_string(value)
}
