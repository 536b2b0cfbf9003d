//! Building a JSON value from YAML the way kubectl reads it.
//!
//! serde_yaml_ng follows YAML 1.2, but kubectl (sigs.k8s.io/yaml, go-yaml v2) follows
//! YAML 1.1, and manifests are written for kubectl: `defaultMode: 0644` must be 420,
//! `enabled: yes` must be `true`. So plain (unquoted) scalars that serde_yaml_ng leaves
//! as strings get YAML 1.1's resolution here. Along the way this builder
//! - charges every node against a budget, so aliases cannot expand a small document
//!   into gigabytes (serde_yaml_ng's own repetition limit misses one large anchor
//!   repeated many times);
//! - applies `<<` merge keys (go-yaml does) and stringifies scalar keys (as JSON needs);
//! - refuses duplicate keys (the API server's strict decoding refuses them too) and
//!   `.inf`/`.nan` (JSON cannot hold them).

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// State shared by every node of one document.
pub(super) struct Builder<'t> {
    /// Nodes plus string bytes still allowed.
    budget: Cell<usize>,
    /// The YAML text the deserializer borrows from, to tell plain scalars from quoted
    /// ones; `None` for JSON, which has neither plain scalars nor merge keys.
    yaml_source: Option<&'t str>,
    /// Set when the scalar just read was a plain `<<`: only that spelling is a merge key
    /// (go-yaml's rule); `'<<'` and `!!str <<` are ordinary keys.
    plain_merge_key: Cell<bool>,
}

impl<'t> Builder<'t> {
    /// A builder for one YAML document of `source` whose own text is `doc_len` bytes.
    pub(super) fn yaml(source: &'t str, doc_len: usize) -> Self {
        // Without aliases a node costs at least about one byte of text; twice the text
        // plus some slack is plenty for any honest document.
        let budget = doc_len.saturating_mul(2).saturating_add(4096);
        Builder {
            budget: Cell::new(budget),
            yaml_source: Some(source),
            plain_merge_key: Cell::new(false),
        }
    }

    pub(super) fn json() -> Self {
        Builder {
            budget: Cell::new(usize::MAX),
            yaml_source: None,
            plain_merge_key: Cell::new(false),
        }
    }

    pub(super) fn seed(&self) -> Seed<'_, 't> {
        Seed { builder: self }
    }

    fn charge<E: de::Error>(&self, cost: usize) -> Result<(), E> {
        match self.budget.get().checked_sub(cost) {
            Some(left) => {
                self.budget.set(left);
                Ok(())
            }
            None => Err(E::custom(
                "the document expands through YAML aliases far beyond its own size \
                 (an alias bomb?)",
            )),
        }
    }

    /// Whether `s`, borrowed from the YAML text, was written as a plain scalar: not
    /// quoted and not tagged (`!!str 0644` stays a string).
    fn is_plain(&self, s: &str) -> bool {
        let Some(source) = self.yaml_source else {
            return false;
        };
        let offset = (s.as_ptr() as usize).wrapping_sub(source.as_ptr() as usize);
        let Some(before) = source.get(..offset) else {
            return false;
        };
        if before.ends_with(['"', '\'']) {
            return false;
        }
        // Look back over the anchor (`&a`) and tag that may precede the scalar.
        let mut rest = before.trim_end();
        for _ in 0..2 {
            let start = rest
                .char_indices()
                .rev()
                .find(|&(_, c)| c.is_whitespace() || matches!(c, '[' | '{' | ','))
                .map_or(0, |(i, c)| i + c.len_utf8());
            let token = &rest[start..];
            if token.starts_with('!') {
                return false;
            }
            if !token.starts_with('&') {
                break;
            }
            rest = rest[..start].trim_end();
        }
        true
    }

    fn string<E: de::Error>(&self, s: &str) -> Result<Value, E> {
        self.charge(1 + s.len())?;
        Ok(Value::String(s.to_owned()))
    }
}

#[derive(Clone, Copy)]
pub(super) struct Seed<'b, 't> {
    builder: &'b Builder<'t>,
}

impl<'de> DeserializeSeed<'de> for Seed<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.builder.charge(1)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.builder.charge(1)?;
        Ok(Value::from(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.builder.charge(1)?;
        Ok(Value::from(v))
    }

    // Integers beyond 64 bits become floats, as they do in go-yaml.
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        self.visit_f64(v as f64)
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        self.visit_f64(v as f64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.builder.charge(1)?;
        float(v).ok_or_else(|| {
            E::custom(format!(
                "`{v}` is not a finite number, which JSON cannot hold"
            ))
        })
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.builder.string(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value, E> {
        if v == "<<" {
            self.builder.plain_merge_key.set(self.builder.is_plain(v));
        }
        if self.builder.is_plain(v)
            && let Some(resolved) = resolve_yaml11(v)
        {
            self.builder.charge(1)?;
            return Ok(resolved);
        }
        self.builder.string(v)
    }

    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Value, E> {
        Err(E::custom("binary values are not supported"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.builder.charge(1)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.builder.charge(1)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        items.shrink_to_fit();
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.builder.charge(1)?;
        let mut out = Map::new();
        let mut merges = Vec::new();
        loop {
            self.builder.plain_merge_key.set(false);
            let Some(key) = map.next_key_seed(self)? else {
                break;
            };
            let merge = self.builder.plain_merge_key.get();
            let key = key_string(key)?;
            let value = map.next_value_seed(self)?;
            if key == "<<" && merge {
                merges.push(value);
            } else if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            } else {
                out.insert(key, value);
            }
        }
        // Keys written in the mapping win over merged ones; earlier merges win over later.
        for merge in merges {
            let sources = match merge {
                Value::Array(items) => items,
                other => vec![other],
            };
            for source in sources {
                let Value::Object(source) = source else {
                    return Err(de::Error::custom(
                        "a `<<` merge key needs a mapping or a list of mappings",
                    ));
                };
                for (key, value) in source {
                    out.entry(key).or_insert(value);
                }
            }
        }
        // Collected again at its exact size: a map grown by inserts has room for up to twice
        // its entries, and a revision's objects are kept for a whole sync (at 10,000 objects
        // the spare room was a quarter of the desired set's memory).
        Ok(Value::Object(out.into_iter().collect()))
    }

    // A local tag (`!Thing value`): go-yaml ignores tags it cannot resolve and keeps the
    // value, so do the same.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        use serde::de::VariantAccess;
        let (_tag, variant): (de::IgnoredAny, _) = data.variant()?;
        variant.newtype_variant_seed(self)
    }
}

/// A float as kubectl sends it: Go prints integral floats without a fraction (`1e3` is
/// `1000`) and the API server then reads them as integers, which integer fields need.
fn float(v: f64) -> Option<Value> {
    // 2^63: beyond it an integral float does not fit an i64.
    if v.fract() == 0.0 && v.abs() < 9_223_372_036_854_775_808.0 {
        return Some(Value::from(v as i64));
    }
    Number::from_f64(v).map(Value::Number)
}

/// JSON object keys are strings; go-yaml's JSON conversion stringifies scalar keys.
fn key_string<E: de::Error>(key: Value) -> Result<String, E> {
    match key {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Ok("null".to_string()),
        Value::Array(_) | Value::Object(_) => Err(E::custom(
            "a mapping key must be a scalar, not a list or mapping",
        )),
    }
}

/// Whether YAML 1.1 (kubectl, [`super::parse_documents`]) reads `s`, written as a plain
/// scalar that YAML 1.2 reads as a string, as something else: a boolean, a number, or
/// (as a key) a merge.
pub(crate) fn yaml11_reads_as_non_string(s: &str) -> bool {
    s == "<<" || resolve_yaml11(s).is_some()
}

/// YAML 1.1 meanings (as go-yaml v2 resolves them) of plain scalars that YAML 1.2 reads
/// as strings: `yes`/`no`/`on`/`off`/`y`/`n`, octal `0644`, and `_` digit separators.
fn resolve_yaml11(s: &str) -> Option<Value> {
    match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => return Some(Value::Bool(true)),
        "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" => {
            return Some(Value::Bool(false));
        }
        _ => {}
    }
    if !s.starts_with(|c: char| c.is_ascii_digit() || c == '+' || c == '-') {
        return None;
    }
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    go_integer(&plain).or_else(|| {
        is_yaml11_float(&plain)
            .then(|| plain.parse::<f64>().ok())
            .flatten()
            .and_then(float)
    })
}

/// Go's `strconv.ParseInt(s, 0, 64)`, falling back to `ParseUint`: a sign, then
/// `0x`/`0o`/`0b` prefixes or a leading `0` for octal.
fn go_integer(s: &str) -> Option<Value> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = unsigned.get(..2).map(str::to_ascii_lowercase);
    let (radix, digits) = match lower.as_deref() {
        Some("0x") => (16, &unsigned[2..]),
        Some("0o") => (8, &unsigned[2..]),
        Some("0b") => (2, &unsigned[2..]),
        _ if unsigned.len() > 1 && unsigned.starts_with('0') => (8, &unsigned[1..]),
        _ => (10, unsigned),
    };
    // from_str_radix accepts a sign of its own; Go does not after the prefix.
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i128::from(u64::from_str_radix(digits, radix).ok()?);
    let value = if negative { -magnitude } else { magnitude };
    if let Ok(v) = i64::try_from(value) {
        Some(Value::from(v))
    } else {
        u64::try_from(value).ok().map(Value::from)
    }
}

/// go-yaml v2's float syntax: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml11_float(s: &str) -> bool {
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let mantissa_ok = match mantissa.strip_prefix('.') {
        Some(frac) => !frac.is_empty() && digits(frac) == frac.len(),
        None => {
            let int = digits(mantissa);
            int > 0
                && match mantissa[int..].strip_prefix('.') {
                    Some(frac) => digits(frac) == frac.len(),
                    None => int == mantissa.len(),
                }
        }
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && digits(e) == e.len()
    });
    mantissa_ok && exponent_ok
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use serde_json::json;

    fn yaml(text: &str) -> Result<Value, serde_yaml_ng::Error> {
        let builder = Builder::yaml(text, text.len());
        builder
            .seed()
            .deserialize(serde_yaml_ng::Deserializer::from_str(text))
    }

    #[test]
    fn plain_scalars_resolve_as_kubectl_does() {
        let text = "mode: 0644\nquoted: '0644'\ndq: \"yes\"\ntagged: !!str 0644\n\
                    on: yes\nbig: 1_000\nhex: 0x1F\nneg: -010\nf: 08\nver: 1.20\n\
                    s: 0.1.2\nempty:\nlist: [no, 'no', 0755]\n";
        assert_eq!(
            yaml(text).unwrap(),
            json!({"mode": 420, "quoted": "0644", "dq": "yes", "tagged": "0644",
                   "true": true, "big": 1000, "hex": 31, "neg": -8, "f": 8, "ver": 1.2,
                   "s": "0.1.2", "empty": null, "list": [false, "no", 493]})
        );
    }

    #[test]
    fn merge_keys_and_local_tags() {
        let text = "base: &b {a: 1, b: 2}\nm:\n  <<: *b\n  b: 3\nt: !Thing {x: 1}\n\
                    q: {'<<': 1, \"<<\": 2}\ns: {!!str <<: 3}\n";
        let err = yaml(text).unwrap_err().to_string();
        assert!(err.contains("duplicate key `<<`"), "{err}");
        let text = text.replace(", \"<<\": 2", "");
        assert_eq!(
            yaml(&text).unwrap(),
            json!({"base": {"a": 1, "b": 2}, "m": {"b": 3, "a": 1}, "t": {"x": 1},
                   "q": {"<<": 1}, "s": {"<<": 3}})
        );
    }

    #[test]
    fn duplicate_keys_and_infinities_are_refused() {
        let err = yaml("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err().to_string();
        assert!(err.contains("duplicate key `c`"), "{err}");
        let err = yaml("a: .inf\n").unwrap_err().to_string();
        assert!(err.contains("not a finite number"), "{err}");
    }

    #[test]
    fn json_strings_are_never_resolved() {
        let text = r#"{"a": "0644", "b": "yes", "<<": {"c": 1}}"#;
        let value = Builder::json()
            .seed()
            .deserialize(&mut serde_json::Deserializer::from_str(text))
            .unwrap();
        assert_eq!(value, json!({"a": "0644", "b": "yes", "<<": {"c": 1}}));
    }

    #[test]
    fn go_number_rules() {
        assert_eq!(go_integer("0b101"), Some(json!(5)));
        assert_eq!(go_integer("18446744073709551615"), Some(json!(u64::MAX)));
        assert_eq!(go_integer("09"), None);
        assert_eq!(go_integer("0x-1"), None);
        assert!(is_yaml11_float("1.") && is_yaml11_float(".5e-3") && is_yaml11_float("09"));
        assert!(!is_yaml11_float("1.2.3") && !is_yaml11_float("e5") && !is_yaml11_float("."));
    }
}
