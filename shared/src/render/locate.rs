//! The line of a field the API server refused, found in the file it came from.
//!
//! Lines of fields are not kept while parsing: a sync of ten thousand objects would carry
//! a position for every value to report the one a server refuses. Instead, when a refusal
//! names a field (`.spec.replica: field not declared in schema`, `spec.replicas: Invalid
//! value`), the object's document is read again and walked along that path; the line is
//! where the deserializer stands when the walk reaches the field's key.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::yaml::{self, Form};
use serde::Deserialize as _;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// A key of a mapping (`.spec`, or `[app]` in a validation path).
    Key(String),
    /// An element of a list by position (`[0]`).
    Index(usize),
    /// An element of a list by its key fields (`[name="web"]`, server-side apply's
    /// notation for a list of mappings keyed by some of their fields).
    Match(Vec<(String, String)>),
}

/// The first field path a server's refusal names, if any: server-side apply's
/// (`.spec.template.spec.containers[name="web"].imagee: field not declared in schema`),
/// strict decoding's (`unknown field "spec.replica"`), or a validation error's
/// (`Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1`).
pub(crate) fn refused_field(message: &str) -> Option<Vec<Step>> {
    if let Some(end) = message.find(": field not declared in schema") {
        let start = message[..end].rfind([' ', '\t']).map_or(0, |i| i + 1);
        return parse_path(&message[start..end]);
    }
    if let Some(at) = message.find("unknown field \"") {
        let rest = &message[at + "unknown field \"".len()..];
        return parse_path(&rest[..rest.find('"')?]);
    }
    let at = message.find(" is invalid: ")?;
    let rest = message[at + " is invalid: ".len()..].trim_start_matches('[');
    parse_path(&rest[..rest.find(": ")?])
}

/// `spec.a[0].b[name="x"]` (a leading `.` optional) as steps; `None` if it does not read
/// as a path.
fn parse_path(path: &str) -> Option<Vec<Step>> {
    let mut steps = Vec::new();
    let mut rest = path.strip_prefix('.').unwrap_or(path);
    while !rest.is_empty() {
        if let Some(inner) = rest.strip_prefix('[') {
            let end = closing_bracket(inner)?;
            steps.push(bracket(&inner[..end])?);
            rest = &inner[end + 1..];
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let key = &rest[..end];
            if key.is_empty() || key.contains(char::is_whitespace) {
                return None;
            }
            steps.push(Step::Key(key.to_string()));
            rest = &rest[end..];
        }
        rest = rest.strip_prefix('.').unwrap_or(rest);
    }
    (!steps.is_empty()).then_some(steps)
}

/// Where the `]` closing a bracket is, skipping any inside quotes.
fn closing_bracket(inner: &str) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ']' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

fn bracket(inner: &str) -> Option<Step> {
    if let Ok(index) = inner.parse() {
        return Some(Step::Index(index));
    }
    if !inner.contains('=') {
        return Some(Step::Key(inner.to_string()));
    }
    // `k="v",n=80`: a value is JSON (a quoted string or a number).
    let mut pairs = Vec::new();
    for pair in split_outside_quotes(inner) {
        let (key, value) = pair.split_once('=')?;
        let value = match serde_json::from_str::<Value>(value) {
            Ok(Value::String(s)) => s,
            Ok(other) => other.to_string(),
            Err(_) => value.to_string(),
        };
        pairs.push((key.to_string(), value));
    }
    Some(Step::Match(pairs))
}

fn split_outside_quotes(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The 1-based line in `text` (the file `file`) of the field `steps` names in `object`,
/// which is document `document` of the file; the line of the deepest part of the path
/// the document has when the rest is missing (a required field names where it belongs).
/// `None` when the document is not `object` (a `List`'s items share their list's
/// document) or holds no part of the path.
pub(crate) fn field_line(
    file: &str,
    text: &str,
    document: usize,
    object: &Value,
    steps: &[Step],
) -> Option<usize> {
    // Selectors become positions, read from the object (its lists are the document's).
    let steps = positions(object, steps);
    let source = yaml::Document::find(file, text, document)?;
    if source.value.get("kind") != object.get("kind") {
        return None;
    }
    (1..=steps.len())
        .rev()
        .find_map(|depth| line_of(&source, &steps[..depth]))
}

/// The path with every [`Step::Match`] replaced by the position of the element it
/// matches; cut short at the first step the object does not have.
fn positions(object: &Value, steps: &[Step]) -> Vec<Walk> {
    let mut walked = Vec::new();
    let mut at = Some(object);
    for step in steps {
        let (next, walk) = match (step, at) {
            (Step::Key(key), Some(Value::Object(map))) => (map.get(key), Walk::Key(key.clone())),
            (Step::Key(key), _) => (None, Walk::Key(key.clone())),
            (Step::Index(i), Some(Value::Array(items))) => (items.get(*i), Walk::Index(*i)),
            (Step::Index(i), _) => (None, Walk::Index(*i)),
            (Step::Match(pairs), Some(Value::Array(items))) => {
                let Some(i) = items.iter().position(|item| matches(item, pairs)) else {
                    break;
                };
                (items.get(i), Walk::Index(i))
            }
            (Step::Match(_), _) => break,
        };
        walked.push(walk);
        at = next;
    }
    walked
}

fn matches(item: &Value, pairs: &[(String, String)]) -> bool {
    pairs.iter().all(|(key, want)| match item.get(key) {
        Some(Value::String(s)) => s == want,
        Some(Value::Number(n)) => n.to_string() == *want,
        Some(Value::Bool(b)) => (if *b { "true" } else { "false" }) == want,
        _ => false,
    })
}

/// A step the deserializer can take without looking ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Walk {
    Key(String),
    Index(usize),
}

/// The error a walk stops with where it found its field: the deserializer adds the
/// position it stands at.
const FOUND: &str = "found the field";

pub(crate) fn is_found(message: &str) -> bool {
    message.contains(FOUND)
}

/// Walks a document along the path and fails with [`FOUND`] at the last step.
pub(crate) struct FindSeed<'a>(pub(crate) &'a [Walk]);

impl<'de> DeserializeSeed<'de> for FindSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        match self.0.first() {
            None => Err(de::Error::custom(FOUND)),
            Some(_) => deserializer.deserialize_any(self),
        }
    }
}

impl<'de> Visitor<'de> for FindSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((Walk::Key(want), rest)) = self.0.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        let seed = KeySeed {
            want,
            last: rest.is_empty(),
        };
        while let Some(hit) = map.next_key_seed(seed)? {
            if hit {
                return map.next_value_seed(FindSeed(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((Walk::Index(want), rest)) = self.0.split_first() else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(());
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        // The element itself is where a path ending at an index stops.
        seq.next_element_seed(FindSeed(rest)).map(drop)
    }

    // Scalars hold no fields: the path is not here.
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
}

/// A mapping key: whether it is the one wanted; for the path's last step, [`FOUND`] at
/// the key itself, so the line is the key's even when its value starts below it.
#[derive(Clone, Copy)]
struct KeySeed<'a> {
    want: &'a str,
    last: bool,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        match key == self.want {
            true if self.last => Err(E::custom(FOUND)),
            hit => Ok(hit),
        }
    }

    // Keys that are not strings (`1: x`, `true: y`) are never a field's name.
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

/// The file's line where the walk along `path` finds its field in `source`, if it does.
fn line_of(source: &yaml::Document<'_>, path: &[Walk]) -> Option<usize> {
    match source.form {
        Form::Yaml { first_line, within } => {
            let doc = serde_yaml_ng::Deserializer::from_str(source.text).nth(within)?;
            let err = FindSeed(path).deserialize(doc).err()?;
            let at = err.location().filter(|_| is_found(&err.to_string()))?;
            Some(first_line + at.line() - 1)
        }
        Form::Json { index } => {
            let mut stream = serde_json::Deserializer::from_str(source.text);
            for _ in 0..index {
                serde::de::IgnoredAny::deserialize(&mut stream).ok()?;
            }
            let err = FindSeed(path).deserialize(&mut stream).err()?;
            (is_found(&err.to_string()) && err.line() > 0).then(|| err.line())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn line(file: &str, text: &str, document: usize, message: &str) -> Option<usize> {
        let manifests = yaml::parse_documents(file, text).unwrap();
        let object = &manifests
            .iter()
            .find(|m| m.origin.document == document)
            .unwrap()
            .object;
        field_line(file, text, document, object, &refused_field(message)?)
    }

    const DEPLOYMENT: &str = "\
# a comment
apiVersion: v1
kind: ConfigMap
metadata:
  name: first
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replica: 3
  template:
    spec:
      containers:
        - name: sidecar
          image: b
        - name: web
          imagee: a
          ports:
            - containerPort: 80
              protocol: TCP
              nme: http
";

    #[test]
    fn a_field_ssa_does_not_declare_is_found_at_its_key() {
        let ssa = "failed to create typed patch object (ns/web; apps/v1, Kind=Deployment): \
                   .spec.replica: field not declared in schema";
        assert_eq!(line("web.yaml", DEPLOYMENT, 1, ssa), Some(12));
        let keyed = "… : .spec.template.spec.containers[name=\"web\"].imagee: field not \
                     declared in schema";
        assert_eq!(line("web.yaml", DEPLOYMENT, 1, keyed), Some(19));
        let two_keys = "x: .spec.template.spec.containers[name=\"web\"].ports\
                        [containerPort=80,protocol=\"TCP\"].nme: field not declared in schema";
        assert_eq!(line("web.yaml", DEPLOYMENT, 1, two_keys), Some(23));
    }

    #[test]
    fn validation_and_strict_decoding_paths_are_found_too() {
        let invalid = "Deployment.apps \"web\" is invalid: \
                       spec.template.spec.containers[1].imagee: Invalid value";
        assert_eq!(line("web.yaml", DEPLOYMENT, 1, invalid), Some(19));
        let strict = ".. strict decoding error: unknown field \"spec.replica\"";
        assert_eq!(line("web.yaml", DEPLOYMENT, 1, strict), Some(12));
        // A required field that is missing: where it belongs.
        let required = "Deployment.apps \"web\" is invalid: spec.selector: Required value";
        assert_eq!(line("web.yaml", DEPLOYMENT, 1, required), Some(11));
    }

    #[test]
    fn json_documents_are_walked_the_same_way() {
        let json = "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\",\n \"metadata\": {\"name\": \"a\"}}\n\
                    {\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\",\n \"metadata\": {\"name\": \"b\"},\n \"datta\": {}}\n";
        let ssa = "x: .datta: field not declared in schema";
        assert_eq!(line("cm.json", json, 1, ssa), Some(5));
    }

    #[test]
    fn nothing_is_claimed_when_the_path_is_not_there() {
        assert_eq!(line("web.yaml", DEPLOYMENT, 1, "etcd is unavailable"), None);
        assert_eq!(
            line(
                "web.yaml",
                DEPLOYMENT,
                1,
                "x: .zzz: field not declared in schema"
            ),
            None
        );
        // A List's items share its document: the list is not the item.
        let list = "apiVersion: v1\nkind: List\nmetadata: {}\nitems:\n  - apiVersion: v1\n    \
                    kind: ConfigMap\n    metadata:\n      name: a\n    datta: {}\n";
        assert_eq!(
            line(
                "l.yaml",
                list,
                0,
                "x: .metadata: field not declared in schema"
            ),
            None
        );
    }

    #[test]
    fn paths_read_as_steps() {
        assert_eq!(
            parse_path(".a[0][k=\"x]y\",n=1].b[app]"),
            Some(vec![
                Step::Key("a".into()),
                Step::Index(0),
                Step::Match(vec![("k".into(), "x]y".into()), ("n".into(), "1".into())]),
                Step::Key("b".into()),
                Step::Key("app".into()),
            ])
        );
        assert_eq!(parse_path("not a path"), None);
    }
}
