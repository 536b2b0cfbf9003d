//! `Chart.lock`: the exact versions `helm dependency update` picked, and the digest
//! that ties them to the `dependencies:` of `Chart.yaml`. The digest is Helm's
//! (`resolver.HashReq`): SHA-256 of Go's `json.Marshal([2][]*Dependency{req, lock})`,
//! where `req` is Chart.yaml's dependencies with `@name` repositories replaced by their
//! URLs. Go's encoder is reproduced here: struct fields in declaration order, empty
//! ones left out where the field says `omitempty`, map keys sorted, `<`, `>` and `&`
//! escaped.

use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// One dependency as `Chart.yaml` (or `Chart.lock`) lists it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dependency {
    pub name: String,
    pub version: String,
    pub repository: String,
    pub condition: String,
    pub tags: Vec<String>,
    pub import_values: Vec<Value>,
    pub alias: String,
}

/// The lock file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lock {
    pub digest: String,
    pub dependencies: Vec<Dependency>,
}

fn text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => b.to_string(),
        _ => String::new(),
    }
}

impl Dependency {
    /// A dependency from its YAML map (read as JSON values).
    pub fn from_value(value: &Value) -> Dependency {
        Dependency {
            name: text(value.get("name")),
            version: text(value.get("version")),
            repository: text(value.get("repository")),
            condition: text(value.get("condition")),
            tags: value
                .get("tags")
                .and_then(Value::as_array)
                .map(|tags| tags.iter().map(|t| text(Some(t))).collect())
                .unwrap_or_default(),
            import_values: value
                .get("import-values")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
            alias: text(value.get("alias")),
        }
    }

    /// Go's `json.Marshal` of Helm's `chart.Dependency`.
    fn go_json(&self, out: &mut String) {
        out.push_str("{\"name\":");
        go_string(&self.name, out);
        if !self.version.is_empty() {
            out.push_str(",\"version\":");
            go_string(&self.version, out);
        }
        out.push_str(",\"repository\":");
        go_string(&self.repository, out);
        if !self.condition.is_empty() {
            out.push_str(",\"condition\":");
            go_string(&self.condition, out);
        }
        if !self.tags.is_empty() {
            out.push_str(",\"tags\":[");
            for (i, tag) in self.tags.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(tag, out);
            }
            out.push(']');
        }
        if !self.import_values.is_empty() {
            out.push_str(",\"import-values\":");
            go_value(&Value::Array(self.import_values.clone()), out);
        }
        if !self.alias.is_empty() {
            out.push_str(",\"alias\":");
            go_string(&self.alias, out);
        }
        out.push('}');
    }
}

fn go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn go_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => go_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                go_string(key, out);
                out.push(':');
                go_value(&map[key], out);
            }
            out.push('}');
        }
    }
}

/// Helm's digest of `requirements` (Chart.yaml's, `@name` already replaced by URLs)
/// and `locked` (the lock's).
pub fn digest(requirements: &[Dependency], locked: &[Dependency]) -> String {
    let mut json = String::from("[");
    for (i, list) in [requirements, locked].into_iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push('[');
        for (j, dependency) in list.iter().enumerate() {
            if j > 0 {
                json.push(',');
            }
            dependency.go_json(&mut json);
        }
        json.push(']');
    }
    json.push(']');
    let hash = Sha256::digest(json.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl Lock {
    /// Parses a `Chart.lock` (already read as a JSON value from its YAML).
    pub fn from_value(value: &Value) -> Lock {
        Lock {
            digest: text(value.get("digest")),
            dependencies: value
                .get("dependencies")
                .and_then(Value::as_array)
                .map(|deps| deps.iter().map(Dependency::from_value).collect())
                .unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml_ng::from_str(text).unwrap()
    }

    /// A Chart.yaml and the Chart.lock `helm dependency update` (Helm v4.3.1) wrote for
    /// it; the test `charts::tests::helm_writes_the_lock_digest_we_compute` checks the
    /// same against the helm of the test suite.
    #[test]
    fn the_digest_of_a_lock_written_by_helm() {
        let chart = yaml(
            "dependencies:
- name: sub
  version: \">=0.1.0 <1.0.0\"
  repository: file://../sub
  condition: sub.enabled
  tags: [backend, cache]
  alias: cache
  import-values:
  - child: exports.data
    parent: imported
  - plain
",
        );
        let lock = yaml(
            "dependencies:
- name: sub
  repository: file://../sub
  version: 0.1.0
digest: sha256:73a83f13657b951113e2c5a24beb9ed770a45c4c1f5146823cdee94edad72ba1
generated: \"2026-12-06T22:23:41.510553683Z\"
",
        );
        let requirements: Vec<Dependency> = chart["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(Dependency::from_value)
            .collect();
        let lock = Lock::from_value(&lock);
        let mut json = String::new();
        requirements[0].go_json(&mut json);
        assert_eq!(
            json,
            r#"{"name":"sub","version":"\u003e=0.1.0 \u003c1.0.0","repository":"file://../sub","condition":"sub.enabled","tags":["backend","cache"],"import-values":[{"child":"exports.data","parent":"imported"},"plain"],"alias":"cache"}"#
        );
        assert_eq!(digest(&requirements, &lock.dependencies), lock.digest);
    }
}
