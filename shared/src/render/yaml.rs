//! Plain rendering: YAML and JSON files, split into documents, kept when they are
//! Kubernetes objects.

use std::collections::BTreeMap;
use std::ops::Bound;

use serde::de::DeserializeSeed as _;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::sops::{self, Keys};
use super::value::Builder;
use super::{MAX_FILE_BYTES, Manifest, Origin, RenderError};
use crate::error_text::one_line;

/// Every `.yaml`, `.yml` and `.json` file under `root`, in path order. Hidden files and
/// directories (`.git`, `.github`, ...) below `root` are tool configuration, not
/// manifests, and are skipped. A `root` naming one file renders that file.
pub(super) fn render_plain(
    files: &BTreeMap<String, Vec<u8>>,
    root: &str,
) -> Result<Vec<Manifest>, RenderError> {
    if let Some(bytes) = files.get(root) {
        return parse_file(root, bytes);
    }
    match manifest_files(files, root) {
        Some(to_read) => parse_files(&to_read),
        None => Err(RenderError::RootNotFound {
            root: root.to_string(),
        }),
    }
}

/// The files [`render_plain`] reads under the directory `root`; None if it holds none.
fn manifest_files<'a>(
    files: &'a BTreeMap<String, Vec<u8>>,
    root: &str,
) -> Option<Vec<(&'a str, &'a [u8])>> {
    let prefix = if root.is_empty() {
        String::new()
    } else {
        format!("{root}/")
    };
    let mut found = false;
    let mut to_read: Vec<(&str, &[u8])> = Vec::new();
    let under_root = files.range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded));
    for (path, bytes) in under_root {
        let Some(relative) = path.strip_prefix(&prefix) else {
            break;
        };
        found = true;
        let hidden = relative.split('/').any(|part| part.starts_with('.'));
        let manifest_file = [".yaml", ".yml", ".json"]
            .iter()
            .any(|ext| path.ends_with(ext));
        if manifest_file && !hidden {
            to_read.push((path.as_str(), bytes.as_slice()));
        }
    }
    found.then_some(to_read)
}

/// A digest of everything [`render_plain`] reads under `root`: each file's path and
/// content. None when a file may be SOPS-encrypted (what it renders to depends on the
/// keys at hand too) or `root` holds nothing.
pub(super) fn plain_digest(files: &BTreeMap<String, Vec<u8>>, root: &str) -> Option<String> {
    let read: Vec<(&str, &[u8])> = match files.get_key_value(root) {
        Some((path, bytes)) => vec![(path.as_str(), bytes.as_slice())],
        None => manifest_files(files, root)?,
    };
    let mut hasher = Sha256::new();
    hasher.update(b"plain\0");
    hasher.update(root.as_bytes());
    for (path, bytes) in read {
        if bytes.windows(5).any(|w| w == b"sops:") {
            return None;
        }
        hasher.update([0]);
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    Some(
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}

/// The documents of `files`, in order; several threads share them when they are large
/// together (10,000 files took a fifth of a no-op sync's time on one thread). Parts are
/// joined in order, so the error reported is still the first file's that has one.
fn parse_files(files: &[(&str, &[u8])]) -> Result<Vec<Manifest>, RenderError> {
    let bytes: usize = files.iter().map(|(_, b)| b.len()).sum();
    let threads = if bytes < PARALLEL_BYTES {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    };
    let read = |part: &[(&str, &[u8])]| -> Result<Vec<Manifest>, RenderError> {
        let mut manifests = Vec::new();
        for (path, bytes) in part {
            manifests.extend(parse_file(path, bytes)?);
        }
        Ok(manifests)
    };
    if threads <= 1 || files.len() < 2 {
        return read(files);
    }
    let per_thread = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = files
            .chunks(per_thread)
            .map(|part| scope.spawn(move || read(part)))
            .collect();
        let mut manifests = Vec::new();
        for part in parts {
            let part = part
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            manifests.extend(part);
        }
        Ok(manifests)
    })
}

/// One file of a plain path: its documents, decrypted first when sops encrypted them.
fn parse_file(path: &str, bytes: &[u8]) -> Result<Vec<Manifest>, RenderError> {
    check_size(path, bytes.len())?;
    let text = std::str::from_utf8(bytes).map_err(|err| RenderError::NotUtf8 {
        file: path.to_string(),
        line: line_at(bytes, err.valid_up_to()),
    })?;
    let mut documents = documents(path, text)?;
    if sops::is_encrypted(&documents) {
        documents =
            sops::decrypt(documents, Keys::from_env).map_err(|source| RenderError::Sops {
                file: path.to_string(),
                source,
            })?;
    }
    objects(path, documents)
}

pub(super) fn check_size(file: &str, size: usize) -> Result<(), RenderError> {
    if size > MAX_FILE_BYTES {
        return Err(RenderError::TooLarge {
            file: file.to_string(),
            size,
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(())
}

/// 1-based line of byte `offset`.
fn line_at(bytes: &[u8], offset: usize) -> usize {
    1 + bytes.iter().take(offset).filter(|&&b| b == b'\n').count()
}

/// Parses one YAML or JSON file's text into the Kubernetes objects it holds.
///
/// `file` names the file in errors and origins; a name ending in `.json`, or text
/// starting with `{`, is read as a stream of JSON values (YAML is the fallback for the
/// latter). Documents that are not Kubernetes objects (no `apiVersion` and `kind`: values
/// files, CI configuration) are skipped, as are kustomize's own config files; `List` kinds
/// are unpacked. YAML is read with YAML 1.1 scalars, as kubectl reads it.
pub fn parse_documents(file: &str, text: &str) -> Result<Vec<Manifest>, RenderError> {
    objects(file, documents(file, text)?)
}

/// The Kubernetes objects among a file's documents.
fn objects(file: &str, documents: Vec<(usize, Value)>) -> Result<Vec<Manifest>, RenderError> {
    let mut manifests = Vec::new();
    for (document, (line, value)) in documents.into_iter().enumerate() {
        collect(file, document, line, value, &mut manifests)?;
    }
    Ok(manifests)
}

/// Every non-empty document of a YAML or JSON file, with the line its content starts on.
fn documents(file: &str, text: &str) -> Result<Vec<(usize, Value)>, RenderError> {
    check_size(file, text.len())?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let json = if file.ends_with(".json") {
        Some(json_documents(file, text)?)
    } else if text.trim_start().starts_with('{') {
        json_documents(file, text).ok()
    } else {
        None
    };
    match json {
        Some(values) => Ok(values),
        None => yaml_documents(file, text),
    }
}

/// Every non-empty YAML document of `text` as JSON, read as [`parse_documents`] reads
/// them (YAML 1.1 scalars, the alias budget), each with the line its content starts on.
pub(super) fn yaml_documents(file: &str, text: &str) -> Result<Vec<(usize, Value)>, RenderError> {
    let chunks = split_documents(text);
    let threads = if text.len() < PARALLEL_BYTES {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    };
    if threads <= 1 || chunks.len() < 2 {
        return chunk_documents(file, text, &chunks);
    }
    // A release's manifest of 10,000 objects is ~8 MB of YAML, most of a second to read on
    // one thread; its documents are independent. Parts are joined in order, so the error
    // reported is still the first document's that has one.
    let per_thread = chunks.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = chunks
            .chunks(per_thread)
            .map(|part| scope.spawn(move || chunk_documents(file, text, part)))
            .collect();
        let mut values = Vec::new();
        for part in parts {
            let part = part
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
            values.extend(part);
        }
        Ok(values)
    })
}

/// Text from which [`yaml_documents`] reads documents on several threads.
const PARALLEL_BYTES: usize = 1024 * 1024;

/// [`yaml_documents`] for some of a text's `---` chunks, in order.
fn chunk_documents(
    file: &str,
    text: &str,
    chunks: &[Chunk<'_>],
) -> Result<Vec<(usize, Value)>, RenderError> {
    let mut values = Vec::new();
    for chunk in chunks {
        let Some(content_line) = chunk.content_line else {
            continue;
        };
        check_flow_depth(file, chunk)?;
        for doc in serde_yaml_ng::Deserializer::from_str(chunk.text) {
            let builder = Builder::yaml(text, chunk.text.len());
            let value = builder
                .seed()
                .deserialize(doc)
                .map_err(|err| yaml_error(file, chunk, content_line, &err))?;
            values.push((content_line, value));
        }
    }
    Ok(values)
}

/// One document of a file found again by its index among the file's documents (as
/// [`parse_documents`] counts them), for the locate module to walk.
pub(super) struct Document<'a> {
    /// The document as [`parse_documents`] reads it.
    pub value: Value,
    pub(super) text: &'a str,
    pub(super) form: Form,
}

pub(super) enum Form {
    /// Serde document `within` of a `---` chunk starting at line `first_line`.
    Yaml { first_line: usize, within: usize },
    /// Value `index` of a JSON stream (`text` is the whole file).
    Json { index: usize },
}

impl<'a> Document<'a> {
    pub(super) fn find(file: &str, text: &'a str, document: usize) -> Option<Document<'a>> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // The same choice between JSON and YAML as parse_documents makes.
        let json = if file.ends_with(".json") {
            Some(json_documents(file, text).ok()?)
        } else if text.trim_start().starts_with('{') {
            json_documents(file, text).ok()
        } else {
            None
        };
        if let Some(values) = json {
            let (_, value) = values.into_iter().nth(document)?;
            return Some(Document {
                value,
                text,
                form: Form::Json { index: document },
            });
        }
        let mut seen = 0;
        for chunk in split_documents(text) {
            if chunk.content_line.is_none() {
                continue;
            }
            for (within, doc) in serde_yaml_ng::Deserializer::from_str(chunk.text).enumerate() {
                if seen == document {
                    let value = Builder::yaml(text, chunk.text.len())
                        .seed()
                        .deserialize(doc)
                        .ok()?;
                    return Some(Document {
                        value,
                        text: chunk.text,
                        form: Form::Yaml {
                            first_line: chunk.first_line,
                            within,
                        },
                    });
                }
                seen += 1;
            }
        }
        None
    }
}

/// How deep brackets may nest in one YAML document. Real manifests stay far below the
/// deserializer's own limit (128 levels).
const MAX_FLOW_DEPTH: usize = 1_000;

/// libyaml keeps a possible simple key per open bracket and walks them all on every
/// token, so deeply nested flow collections take quadratic time before the deserializer's
/// recursion limit refuses them: 40,000 `{a: ` take seconds, a 16 MiB file would take
/// hours. Brackets are counted in scalars too, which can only overestimate the depth.
fn check_flow_depth(file: &str, chunk: &Chunk<'_>) -> Result<(), RenderError> {
    let (mut depth, mut line, mut line_start) = (0usize, chunk.first_line, 0);
    for (offset, byte) in chunk.text.bytes().enumerate() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(RenderError::Syntax {
                        file: file.to_string(),
                        line,
                        column: offset - line_start + 1,
                        message: format!(
                            "brackets nest more than {MAX_FLOW_DEPTH} levels deep; refusing \
                             to parse the document"
                        ),
                    });
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            b'\n' => (line, line_start) = (line + 1, offset + 1),
            _ => {}
        }
    }
    Ok(())
}

/// The text of one `---`-separated document.
struct Chunk<'a> {
    text: &'a str,
    /// 1-based line where `text` begins.
    first_line: usize,
    /// 1-based line of its first line that is not blank or a comment; `None` if empty.
    content_line: Option<usize>,
}

/// Splits like kubectl's YAML reader: a separator is a line starting with `---` followed
/// by nothing but spaces or a comment. (A `--- value` line stays inside its document and
/// serde_yaml_ng sees it as a document start.)
fn split_documents(text: &str) -> Vec<Chunk<'_>> {
    let mut chunks = Vec::new();
    let (mut start, mut first_line, mut content_line) = (0, 1, None);
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        let rest = line.strip_prefix("---").map(str::trim);
        if rest.is_some_and(|rest| rest.is_empty() || rest.starts_with('#')) {
            chunks.push(Chunk {
                text: &text[start..offset],
                first_line,
                content_line,
            });
            (start, first_line, content_line) = (offset + line.len(), number + 1, None);
        } else if content_line.is_none() {
            let trimmed = line.trim();
            if !trimmed.is_empty() && !trimmed.starts_with('#') {
                content_line = Some(number);
            }
        }
        offset += line.len();
    }
    chunks.push(Chunk {
        text: &text[start..],
        first_line,
        content_line,
    });
    chunks
}

fn yaml_error(
    file: &str,
    chunk: &Chunk<'_>,
    content_line: usize,
    err: &serde_yaml_ng::Error,
) -> RenderError {
    let (line, column) = match err.location() {
        Some(at) => (chunk.first_line + at.line() - 1, at.column()),
        None => (content_line, 1),
    };
    RenderError::Syntax {
        file: file.to_string(),
        line,
        column,
        // Messages can quote the document (a duplicate key): keep them one line.
        message: one_line(&relocate(&err.to_string(), chunk.first_line - 1)),
    }
}

/// serde_yaml_ng's messages carry positions relative to the document
/// (`... at line 2 column 3`). The error's own position moves to the `file:line:col`
/// prefix, so drop the first one and shift any later ones (libyaml's context) by `shift`.
fn relocate(message: &str, shift: usize) -> String {
    let mut out = String::new();
    let mut rest = message;
    let mut first = true;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let Ok(line) = after[..digits].parse::<usize>() else {
            out.push_str(" at line ");
            rest = after;
            continue;
        };
        let tail = &after[digits..];
        let column_len = tail.strip_prefix(" column ").map_or(0, |c| {
            " column ".len() + c.bytes().take_while(u8::is_ascii_digit).count()
        });
        if !first {
            out.push_str(&format!(" at line {}{}", line + shift, &tail[..column_len]));
        }
        first = false;
        rest = &tail[column_len..];
    }
    out.push_str(rest);
    out
}

/// The values of a JSON stream (`{...} {...}`), each with the line it starts on.
fn json_documents(file: &str, text: &str) -> Result<Vec<(usize, Value)>, RenderError> {
    struct JsonValue(Value);
    impl<'de> serde::Deserialize<'de> for JsonValue {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            Builder::json().seed().deserialize(d).map(JsonValue)
        }
    }
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<JsonValue>();
    let mut values = Vec::new();
    // Lines are counted incrementally: a stream can hold many values.
    let (mut end, mut line, mut counted) = (0, 1, 0);
    while let Some(next) = stream.next() {
        let value = next.map_err(|err| RenderError::Syntax {
            file: file.to_string(),
            line: err.line().max(1),
            column: err.column().max(1),
            message: one_line(&relocate(&err.to_string(), 0)),
        })?;
        let gap = text.get(end..).unwrap_or("");
        let start = end + (gap.len() - gap.trim_start().len());
        let between = text.as_bytes().get(counted..start).unwrap_or_default();
        line += between.iter().filter(|&&b| b == b'\n').count();
        counted = start;
        values.push((line, value.0));
        end = stream.byte_offset();
    }
    Ok(values)
}

/// Adds the Kubernetes objects in one document to `out`.
pub(super) fn collect(
    file: &str,
    document: usize,
    line: usize,
    value: Value,
    out: &mut Vec<Manifest>,
) -> Result<(), RenderError> {
    let Some((api_version, kind)) = type_of(&value) else {
        return Ok(());
    };
    // kustomize's own config (Kustomization, Component, transformers) is never applied.
    if api_version.starts_with("kustomize.config.k8s.io/")
        || api_version.starts_with("config.kubernetes.io/")
        || api_version.starts_with("builtin/")
    {
        return Ok(());
    }
    let origin = Origin {
        file: file.to_string(),
        document,
        line,
    };
    // The message names the document's kind, which is hostile input like the rest.
    let invalid = |message: String| RenderError::InvalidObject {
        file: file.to_string(),
        line,
        message: one_line(&message),
    };
    if kind.ends_with("List") && value.get("items").is_some_and(Value::is_array) {
        let kind = kind.to_string();
        let Value::Object(mut list) = value else {
            return Ok(());
        };
        let Some(Value::Array(items)) = list.remove("items") else {
            return Ok(());
        };
        for (index, item) in items.into_iter().enumerate() {
            if type_of(&item).is_none() {
                return Err(invalid(format!(
                    "item {index} of the {kind} has no apiVersion or kind"
                )));
            }
            check_name(&item).map_err(|m| invalid(format!("item {index} of the {kind}: {m}")))?;
            out.push(Manifest {
                object: item,
                origin: origin.clone(),
            });
        }
        return Ok(());
    }
    check_name(&value).map_err(invalid)?;
    out.push(Manifest {
        object: value,
        origin,
    });
    Ok(())
}

/// `apiVersion` and `kind`, if the value is shaped like a Kubernetes object.
fn type_of(value: &Value) -> Option<(&str, &str)> {
    let api_version = value.get("apiVersion")?.as_str()?;
    let kind = value.get("kind")?.as_str()?;
    (!api_version.is_empty() && !kind.is_empty()).then_some((api_version, kind))
}

/// An object needs a name, or a `generateName` (which only a hook may use: the desired
/// set says so, knowing which objects are hooks).
fn check_name(object: &Value) -> Result<(), String> {
    let metadata = object.get("metadata");
    let named = |field: &str| {
        metadata
            .and_then(|m| m.get(field))
            .and_then(Value::as_str)
            .is_some_and(|name| !name.is_empty())
    };
    if named("name") || named("generateName") {
        return Ok(());
    }
    let kind = object
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("object");
    Err(format!("the {kind} has no metadata.name"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::{Duration, Instant};

    fn parse(file: &str, text: &str) -> Vec<Manifest> {
        parse_documents(file, text).unwrap()
    }

    fn origins(manifests: &[Manifest]) -> Vec<(usize, usize)> {
        manifests
            .iter()
            .map(|m| (m.origin.document, m.origin.line))
            .collect()
    }

    const CM: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ";

    #[test]
    fn multi_document_lines_and_indexes() {
        let text = format!(
            "# license header\n\n{CM}a\n---\n---  # only a comment follows\n# nothing\n\
             ---\n\n{CM}b\ndata:\n  x: |\n    ---not a separator\n--- # next\n{CM}c\n"
        );
        let manifests = parse("apps/cm.yaml", &text);
        let names: Vec<_> = manifests
            .iter()
            .map(|m| &m.object["metadata"]["name"])
            .collect();
        assert_eq!(names, [&json!("a"), &json!("b"), &json!("c")]);
        assert_eq!(origins(&manifests), [(0, 3), (1, 12), (2, 20)]);
        assert_eq!(
            manifests[1].object["data"]["x"],
            json!("---not a separator\n")
        );
        assert_eq!(manifests[0].origin.file, "apps/cm.yaml");
    }

    #[test]
    fn lists_are_unpacked_with_the_list_origin() {
        let text = format!(
            "{CM}first\n---\napiVersion: v1\nkind: List\nitems:\n- {}\n- apiVersion: apps/v1\n  \
             kind: Deployment\n  metadata: {{name: web}}\n",
            "{apiVersion: v1, kind: Secret, metadata: {name: s}}"
        );
        let manifests = parse("l.yaml", &text);
        let kinds: Vec<_> = manifests.iter().map(|m| m.object["kind"].clone()).collect();
        assert_eq!(
            kinds,
            [json!("ConfigMap"), json!("Secret"), json!("Deployment")]
        );
        assert_eq!(origins(&manifests), [(0, 1), (1, 6), (1, 6)]);

        let err = parse_documents("l.yaml", "apiVersion: v1\nkind: List\nitems:\n- {a: 1}\n");
        assert_eq!(
            err.unwrap_err().to_string(),
            "l.yaml:1: item 0 of the List has no apiVersion or kind"
        );
    }

    #[test]
    fn non_manifests_are_ignored() {
        let files: BTreeMap<String, Vec<u8>> = [
            (
                "app/values.yaml",
                "replicas: 3\nimage: {tag: v1}\n".to_string(),
            ),
            (
                "app/Chart.yaml",
                "apiVersion: v2\nname: chart\n".to_string(),
            ),
            (
                "app/.github/workflows/ci.yml",
                format!("{CM}hidden\non: push\n"),
            ),
            ("app/.hidden.yaml", format!("{CM}hidden\n")),
            ("app/README.md", format!("{CM}readme\n")),
            (
                "app/base/kustomization.yaml",
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n"
                    .to_string(),
            ),
            (
                "app/scalar.yaml",
                "just a string\n---\n- a list\n".to_string(),
            ),
            ("app/z/cm.yml", format!("{CM}z\n")),
            (
                "app/a.json",
                r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}"#.to_string(),
            ),
            ("app.yaml", format!("{CM}outside\n")),
            ("apps/cm.yaml", format!("{CM}outside\n")),
        ]
        .into_iter()
        .map(|(path, text)| (path.to_string(), text.into_bytes()))
        .collect();
        let manifests = render_plain(&files, "app").unwrap();
        let files_seen: Vec<_> = manifests.iter().map(|m| m.origin.file.as_str()).collect();
        assert_eq!(files_seen, ["app/a.json", "app/z/cm.yml"]);
        assert_eq!(render_plain(&files, "").unwrap().len(), 4);
        assert_eq!(render_plain(&files, "app/z/cm.yml").unwrap().len(), 1);
    }

    #[test]
    fn a_large_text_read_on_several_threads_reads_as_on_one() {
        let mut text = String::new();
        let mut n = 0;
        while text.len() < 2 * PARALLEL_BYTES {
            text.push_str(&format!(
                "{CM}cm-{n}\n  labels: {{n: \"{n}\"}}\ndata:\n  k: v\n---\n"
            ));
            n += 1;
        }
        let chunks = split_documents(&text);
        let one = chunk_documents("m.yaml", &text, &chunks).unwrap();
        let several = yaml_documents("m.yaml", &text).unwrap();
        assert_eq!(several.len(), n);
        assert_eq!(several, one);
        let manifests = parse_documents("m.yaml", &text).unwrap();
        let last = &manifests[n - 1];
        assert_eq!(last.object["metadata"]["name"], format!("cm-{}", n - 1));
        assert_eq!(last.origin.document, n - 1);
        assert_eq!(last.origin.line, one[n - 1].0);

        // Two bad documents, one in each half: the first is reported, with its own line.
        let mut bad = text.clone();
        let late = bad.rfind("  k: v").unwrap();
        bad.replace_range(late..late + 6, "  k: [v");
        let early = bad.find("  k: v").unwrap();
        bad.replace_range(early..early + 6, "  k: {v");
        let err = parse_documents("m.yaml", &bad).unwrap_err().to_string();
        let line = bad[..early].matches('\n').count() + 1;
        assert!(err.starts_with(&format!("m.yaml:{}:", line + 1)), "{err}");
    }

    #[test]
    fn many_files_read_on_several_threads_read_as_on_one() {
        let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut bytes = 0;
        while bytes < 2 * PARALLEL_BYTES {
            let n = files.len();
            let text = format!("{CM}cm-{n}\ndata:\n  k: v\n---\n{CM}cm-{n}-b\n");
            bytes += text.len();
            files.insert(format!("app/{n:05}.yaml"), text.into_bytes());
        }
        let n = files.len();
        let several = render_plain(&files, "app").unwrap();
        let one: Vec<Manifest> = files
            .iter()
            .flat_map(|(path, bytes)| parse_file(path, bytes).unwrap())
            .collect();
        assert_eq!(several.len(), 2 * n);
        assert_eq!(several, one);
        assert_eq!(
            several[2 * n - 1].origin.file,
            format!("app/{:05}.yaml", n - 1)
        );
        assert_eq!(several[2 * n - 1].origin.document, 1);

        // A bad file in each half: the first in path order is reported.
        files.insert(format!("app/{:05}.yaml", n - 2), b"a: [b\n".to_vec());
        files.insert("app/00003.yaml".into(), b"a: {b\n".to_vec());
        let err = render_plain(&files, "app").unwrap_err().to_string();
        assert!(err.starts_with("app/00003.yaml:"), "{err}");
    }

    #[test]
    fn malformed_yaml_names_file_line_and_column() {
        let text = format!("{CM}a\n---\n{CM}web\nspec:\n  replicas: 2\n  selector: [a, b\n");
        let err = parse_documents("apps/web/deploy.yaml", &text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "apps/web/deploy.yaml:13:1: did not find expected ',' or ']', \
             while parsing a flow sequence at line 12 column 13"
        );
        let err = parse_documents("x.yaml", "a: b\n  c: d\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.yaml:2:4: mapping values are not allowed in this context"
        );
        let err = parse_documents("d.yaml", &format!("{CM}a\n  name: b\n")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d.yaml:4:3: metadata: duplicate key `name`"
        );
    }

    #[test]
    fn missing_name_is_an_error() {
        let err = parse_documents("a.yaml", "apiVersion: v1\nkind: Pod\nspec: {}\n").unwrap_err();
        assert_eq!(err.to_string(), "a.yaml:1: the Pod has no metadata.name");
        // A generated name is read; whether the object may have one (a hook may) is the
        // desired set's to say.
        let generated = parse_documents(
            "b.yaml",
            "---\napiVersion: v1\nkind: Pod\nmetadata: {generateName: x-}\n",
        );
        assert_eq!(generated.unwrap().len(), 1);
    }

    #[test]
    fn json_files_and_streams() {
        let text = "\n{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\",\n \"metadata\": {\"name\": \"a\"},\n \"data\": {\"mode\": \"0644\"}}\n\n{\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": []}\n{\"apiVersion\": \"v1\", \"kind\": \"Secret\", \"metadata\": {\"name\": \"b\"}}";
        let manifests = parse("j.json", text);
        assert_eq!(origins(&manifests), [(0, 2), (2, 7)]);
        assert_eq!(manifests[0].object["data"]["mode"], json!("0644"));
        let err = parse_documents("bad.json", "{\"a\": 1,\n \"b\": }").unwrap_err();
        assert_eq!(err.to_string(), "bad.json:2:7: expected value");
        // A `.yaml` file in flow style is YAML even though it starts with `{`.
        let flow = parse(
            "f.yaml",
            "{apiVersion: v1, kind: Namespace, metadata: {name: f}}\n",
        );
        assert_eq!(flow[0].object["metadata"]["name"], json!("f"));
    }

    #[test]
    fn alias_bombs_fail_fast() {
        let mut laughs = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (name, prev) in ["b", "c", "d", "e", "f", "g", "h", "i"]
            .iter()
            .zip(["a", "b", "c", "d", "e", "f", "g", "h"])
        {
            let refs = vec![format!("*{prev}"); 9].join(",");
            laughs.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        // One large anchor repeated: within serde_yaml_ng's repetition limit, so only
        // the expansion budget catches it.
        let wide = format!(
            "a: &a [{}]\nb: [{}]\n",
            vec!["xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"; 10_000].join(","),
            vec!["*a"; 10_000].join(",")
        );
        for bomb in [laughs, wide] {
            let started = Instant::now();
            let err = parse_documents("bomb.yaml", &bomb).unwrap_err().to_string();
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "took {:?}",
                started.elapsed()
            );
            assert!(err.starts_with("bomb.yaml:"), "{err}");
            assert!(
                err.contains("repetition limit") || err.contains("alias bomb"),
                "{err}"
            );
        }
    }

    #[test]
    fn non_utf8_and_oversized_files_are_refused() {
        let files: BTreeMap<String, Vec<u8>> = [(
            "a/bin.yaml".to_string(),
            b"kind: x\nname: \xff\xfe\n".to_vec(),
        )]
        .into();
        let err = render_plain(&files, "a").unwrap_err();
        assert_eq!(
            err.to_string(),
            "a/bin.yaml:2: the file is not valid UTF-8 text"
        );
        let big = " ".repeat(MAX_FILE_BYTES + 1);
        let err = parse_documents("big.yaml", &big).unwrap_err();
        assert!(matches!(err, RenderError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let depth = 10_000;
        let block: String = (0..2_000)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect();
        let aliases: String = (0..200)
            .map(|i| match i {
                0 => "a0: &a0 [x]\n".to_string(),
                _ => format!("a{i}: &a{i} [*a{}]\n", i - 1),
            })
            .collect();
        let cases = [
            ("block.yaml", block, "recursion limit exceeded"),
            ("aliases.yaml", aliases, "recursion limit exceeded"),
            // Within the bracket limit: the deserializer's recursion limit answers.
            ("flow.yaml", "{a: ".repeat(900), "recursion limit exceeded"),
            (
                "deep.json",
                format!("{}1{}", "[".repeat(depth), "]".repeat(depth)),
                "recursion limit exceeded",
            ),
            (
                "object.json",
                format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth)),
                "recursion limit exceeded",
            ),
            (
                "seq.yaml",
                format!("x: y\nz: {}{}", "[".repeat(depth), "]".repeat(depth)),
                "seq.yaml:2:1004: brackets nest more than 1000 levels deep",
            ),
            // Quadratic in libyaml without the bracket limit: minutes for a few MiB.
            (
                "map.yaml",
                "{a: ".repeat(1_000_000),
                "map.yaml:1:4001: brackets nest more than 1000 levels deep",
            ),
            (
                "keys.yaml",
                "[{\"a\": ".repeat(1_000_000),
                "brackets nest more than 1000 levels deep",
            ),
        ];
        for (file, text, want) in cases {
            let started = Instant::now();
            let err = parse_documents(file, &text).unwrap_err().to_string();
            assert!(started.elapsed() < Duration::from_secs(5), "{file}");
            assert!(err.starts_with(&format!("{file}:")), "{err}");
            assert!(err.contains(want), "{file}: {err}");
        }
        // Brackets in a scalar count too, but real text stays far below the limit.
        let script = format!(
            "{CM}a\ndata:\n  s: |\n    {}\n",
            "function f() { return [1, {a: 2}]; }\n    ".repeat(1_000)
        );
        assert_eq!(parse("s.yaml", &script).len(), 1);
    }

    #[test]
    fn relocate_shifts_context_positions() {
        assert_eq!(
            relocate("bad at line 2 column 3, while x at line 1 column 1", 10),
            "bad, while x at line 11 column 1"
        );
        assert_eq!(relocate("no position", 3), "no position");
    }
}
