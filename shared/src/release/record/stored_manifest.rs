//! A release's manifest as its record stores it: one JSON string, kept in its escaped form.
//!
//! A record is read, copied and written far more often than its manifest is parsed: a sync
//! reads the deployed release for its fingerprints, a no-op sync rewrites it, a sync of the
//! same objects records the same manifest again. Kept as the JSON text it was read as (and
//! shared between copies), the manifest is written back byte for byte and unescaped only by
//! the few readers that parse it: at 10,000 objects it is ~8 MB, which reading unescaped
//! held twice over (the decoder's scratch copy and the string), and each copy of a record
//! held again.

use std::fmt;
use std::sync::Arc;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The multi-document YAML a release applied, stored as a JSON string. Boxed inside the
/// `Arc` so a read takes the box the decoder filled as it is (an `Arc<RawValue>` copied
/// it: two ~8 MB copies at once, at 10,000 objects).
#[derive(Clone)]
pub struct StoredManifest(Arc<Box<RawValue>>);

impl StoredManifest {
    /// The manifest `text`, escaped once for storing.
    pub fn new(text: &str) -> StoredManifest {
        StoredManifest::from_parts([text])
    }

    /// The manifest whose text is `parts` one after the other, each escaped as it comes,
    /// so the text is never held whole beside its stored form (at 10,000 objects the two
    /// were 16 MB at once).
    pub fn from_parts<S: AsRef<str>>(parts: impl IntoIterator<Item = S>) -> StoredManifest {
        let mut json = String::from("\"");
        for part in parts {
            // Escaping is per character, so the parts' escapes make the whole's.
            let quoted = serde_json::to_string(part.as_ref()).expect("a string serializes");
            json.push_str(&quoted[1..quoted.len() - 1]);
        }
        json.push('"');
        let raw = RawValue::from_string(json).expect("an escaped JSON string is JSON");
        StoredManifest(Arc::new(raw))
    }

    /// The manifest's text (unescaped: a copy each time it is asked for).
    pub fn text(&self) -> String {
        // Checked to be a JSON string when it was read or made.
        serde_json::from_str(self.0.get()).unwrap_or_default()
    }

    /// Whether the text holds `needle`, which has no character JSON escapes (looked for
    /// in the stored form, so without unescaping the text).
    pub fn contains(&self, needle: &str) -> bool {
        self.0.get().contains(needle)
    }

    pub fn is_empty(&self) -> bool {
        self.0.get() == "\"\""
    }
}

impl Default for StoredManifest {
    fn default() -> Self {
        StoredManifest::new("")
    }
}

impl From<String> for StoredManifest {
    fn from(text: String) -> Self {
        StoredManifest::new(&text)
    }
}

impl From<&str> for StoredManifest {
    fn from(text: &str) -> Self {
        StoredManifest::new(text)
    }
}

/// Two manifests are equal when their texts are (escaping may differ between writers).
impl PartialEq for StoredManifest {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get() || self.text() == other.text()
    }
}

impl fmt::Debug for StoredManifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text(), f)
    }
}

impl Serialize for StoredManifest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for StoredManifest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        // Anything but a string would fail only when parsed, far from the record's read.
        if !raw.get().starts_with('"') {
            return Err(D::Error::custom("manifest: expected a string"));
        }
        Ok(StoredManifest(Arc::new(raw)))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn text_survives_storing_and_reading_byte_for_byte() {
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"a\\tb\" # ü\n---\n";
        let manifest = StoredManifest::new(text);
        assert_eq!(manifest.text(), text);
        let json = serde_json::to_string(&manifest).unwrap();
        assert_eq!(json, serde_json::to_string(text).unwrap());
        let read: StoredManifest = serde_json::from_str(&json).unwrap();
        assert_eq!(read.text(), text);
        // Written back as it was read.
        assert_eq!(serde_json::to_string(&read).unwrap(), json);
        assert!(!read.is_empty());
        assert!(StoredManifest::default().is_empty());
    }

    #[test]
    fn parts_are_stored_as_their_text_would_be() {
        let parts = ["---\n", "a: \"b\"\n", "c: ü\t\u{1}\n", ""];
        let whole = StoredManifest::new(&parts.concat());
        let joined = StoredManifest::from_parts(parts);
        assert_eq!(joined.0.get(), whole.0.get());
        assert_eq!(joined.text(), parts.concat());
        assert!(StoredManifest::from_parts(Vec::<String>::new()).is_empty());
    }

    #[test]
    fn other_escapings_of_the_same_text_are_equal() {
        let written: StoredManifest = serde_json::from_str(r#""a\u0041\n""#).unwrap();
        assert_eq!(written, StoredManifest::new("aA\n"));
        assert_ne!(written, StoredManifest::new("aA"));
    }

    #[test]
    fn a_manifest_that_is_not_a_string_is_refused_when_read() {
        let error = serde_json::from_str::<StoredManifest>("[1]").unwrap_err();
        assert!(error.to_string().contains("expected a string"), "{error}");
    }
}
