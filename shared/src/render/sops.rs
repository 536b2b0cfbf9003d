//! SOPS-encrypted manifests, decrypted in memory while rendering, as Flux's
//! kustomize-controller does: a document with a top-level `sops:` block has its values
//! decrypted with the file's data key (unwrapped with an age key), the MAC over all values
//! is checked, and the `sops:` block is dropped. Nothing decrypted is written anywhere.
//!
//! The format, as sops writes it: each encrypted value is `ENC[AES256_GCM,...]` with its
//! key path (`a:b:c:`, list indexes left out) as additional data ([`cipher`]); the MAC is
//! the upper-case hex SHA-512 of every value in document order (only the encrypted ones
//! with `mac_only_encrypted`), itself encrypted with `lastmodified` as additional data.

mod cipher;
mod keys;

use regex::Regex;
use serde_json::Value;
use sha2::{Digest as _, Sha512};

pub use keys::{AgeKeys, KeyFileError};

use cipher::CipherError;

/// sops's `MACOnlyEncryptedInitialization`: sha256 of `sops`.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    #[error(
        "no age key opens it: it is encrypted for {}; looked for keys in {} \
         (set $SOPS_AGE_KEY_FILE to a key file holding one of them)",
        recipients.join(", "),
        if looked_in.is_empty() { "no place".to_string() } else { looked_in.join(", ") }
    )]
    NoKey {
        recipients: Vec<String>,
        looked_in: Vec<String>,
    },

    #[error(
        "it is encrypted only for PGP ({}), which needs gpg: decrypting with gpg is not \
         supported yet; add an age recipient to the file (`sops updatekeys`)",
        fingerprints.join(", ")
    )]
    PgpOnly { fingerprints: Vec<String> },

    #[error(
        "it is encrypted only with {}, which is not supported yet; add an age recipient to \
         the file (`sops updatekeys`)",
        kinds.join(", ")
    )]
    Unsupported { kinds: Vec<String> },

    #[error("its `sops` block is not one sops wrote: {message}")]
    Metadata { message: String },

    #[error(
        "the value at `{path}` does not decrypt with the file's data key: it was changed \
         after sops encrypted the file (tampered?); refusing to apply it"
    )]
    Tampered { path: String },

    #[error("the value at `{path}` is not a sops value: {reason}")]
    BadValue { path: String, reason: String },

    #[error(
        "the MAC over its values does not match: the file was changed after sops encrypted \
         it (tampered?); refusing to apply it"
    )]
    MacMismatch,

    #[error(
        "the value at `{path}` is encrypted (`ENC[...]`) where the file's rules say values \
         are plain; an encrypted value is never applied as data"
    )]
    EncryptedWherePlain { path: String },

    #[error(
        "the {kind} `{name}` holds encrypted values: only a Secret may, since only a \
         Secret's values are masked in every output; move them into a Secret"
    )]
    NotASecret { kind: String, name: String },

    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
}

/// Whether any of a file's documents is a Kubernetes object with a top-level `sops:` block.
pub(super) fn is_encrypted(documents: &[(usize, Value)]) -> bool {
    documents.iter().any(|(_, doc)| encrypted_object(doc))
}

fn encrypted_object(doc: &Value) -> bool {
    doc.get("sops").is_some_and(Value::is_object)
        && doc.get("apiVersion").is_some()
        && doc.get("kind").is_some()
}

/// The first value left in `documents` that is still in sops's `ENC[...]` form, by key
/// path: such a value must never be applied as data.
pub(super) fn leftover_encrypted(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if s.starts_with(cipher::PREFIX) => Some(String::new()),
        Value::Array(items) => items.iter().find_map(leftover_encrypted),
        Value::Object(map) => map.iter().find_map(|(key, value)| {
            leftover_encrypted(value).map(|rest| {
                if rest.is_empty() {
                    key.clone()
                } else {
                    format!("{key}.{rest}")
                }
            })
        }),
        _ => None,
    }
}

/// Decrypts every document of a file that carries a `sops:` block, checks the MAC over
/// them all (sops hashes a multi-document file as one), and drops the blocks. `keys` is
/// asked only when there is something to decrypt.
pub(super) fn decrypt(
    documents: Vec<(usize, Value)>,
    keys: impl FnOnce() -> Result<AgeKeys, KeyFileError>,
) -> Result<Vec<(usize, Value)>, SopsError> {
    let Some(block) = documents
        .iter()
        .find_map(|(_, doc)| doc.get("sops").filter(|_| encrypted_object(doc)))
    else {
        return Ok(documents);
    };
    let metadata = Metadata::read(block)?;
    let data_key = metadata.data_key(&keys()?)?;
    let mut hash = Sha512::new();
    if metadata.mac_only_encrypted {
        // sops starts such a MAC with fixed bytes (sha256("sops")), so that it never equals
        // the MAC over all values.
        hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    let mut walk = Walk {
        key: data_key,
        rules: &metadata.rules,
        mac_only_encrypted: metadata.mac_only_encrypted,
        hash,
        path: Vec::new(),
        decrypted: 0,
    };
    let mut out = Vec::with_capacity(documents.len());
    for (line, mut doc) in documents {
        if let Some(map) = doc.as_object_mut().filter(|map| map.contains_key("sops")) {
            map.shift_remove("sops");
            let before = walk.decrypted;
            walk.value(&mut doc)?;
            if walk.decrypted > before {
                only_in_a_secret(&doc)?;
            }
        }
        out.push((line, doc));
    }
    let computed: String = walk
        .hash
        .finalize()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let stored = cipher::decrypt(&metadata.mac, &data_key, &metadata.lastmodified)
        .map_err(|_| SopsError::MacMismatch)?;
    if stored.value.as_str() != Some(computed.as_str()) {
        return Err(SopsError::MacMismatch);
    }
    Ok(out)
}

fn only_in_a_secret(doc: &Value) -> Result<(), SopsError> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("object");
    if kind == "Secret" {
        return Ok(());
    }
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(SopsError::NotASecret {
        kind: kind.to_string(),
        name: name.to_string(),
    })
}

/// Which values sops encrypted: at most one of the four rules is set.
struct Rules {
    unencrypted_suffix: Option<String>,
    encrypted_suffix: Option<String>,
    unencrypted_regex: Option<Regex>,
    encrypted_regex: Option<Regex>,
}

impl Rules {
    /// As sops decides it: by every key on the value's path.
    fn encrypted(&self, path: &[String]) -> bool {
        let any = |test: &dyn Fn(&str) -> bool| path.iter().any(|key| test(key));
        let mut encrypted = true;
        if let Some(suffix) = &self.unencrypted_suffix {
            encrypted = !any(&|key| key.ends_with(suffix.as_str()));
        }
        if let Some(suffix) = &self.encrypted_suffix {
            encrypted = any(&|key| key.ends_with(suffix.as_str()));
        }
        if let Some(regex) = &self.unencrypted_regex
            && any(&|key| regex.is_match(key))
        {
            encrypted = false;
        }
        if let Some(regex) = &self.encrypted_regex {
            encrypted = any(&|key| regex.is_match(key));
        }
        encrypted
    }
}

struct Metadata {
    age: Vec<(String, String)>,
    pgp: Vec<String>,
    others: Vec<String>,
    lastmodified: String,
    mac: String,
    mac_only_encrypted: bool,
    rules: Rules,
}

impl Metadata {
    fn read(block: &Value) -> Result<Metadata, SopsError> {
        let bad = |message: &str| SopsError::Metadata {
            message: message.to_string(),
        };
        let text = |field: &str| block.get(field).and_then(Value::as_str);
        let list = |field: &str| {
            block
                .get(field)
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
        };
        if block.get("key_groups").is_some_and(|g| !g.is_null()) {
            return Err(bad(
                "key groups (Shamir secret sharing) are not supported yet",
            ));
        }
        // Which values these encrypt depends on YAML comments, which are not read here.
        for field in ["encrypted_comment_regex", "unencrypted_comment_regex"] {
            if text(field).is_some() {
                return Err(bad(&format!("`{field}` is not supported yet")));
            }
        }
        let mut age = Vec::new();
        for entry in list("age") {
            let recipient = entry.get("recipient").and_then(Value::as_str);
            let enc = entry.get("enc").and_then(Value::as_str);
            match (recipient, enc) {
                (Some(r), Some(e)) => age.push((r.to_string(), e.to_string())),
                _ => return Err(bad("an `age` entry without `recipient` and `enc`")),
            }
        }
        let pgp = list("pgp")
            .iter()
            .map(|e| {
                e.get("fp")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string()
            })
            .collect();
        let others = ["kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"]
            .into_iter()
            .filter(|kind| !list(kind).is_empty())
            .map(String::from)
            .collect();
        let regex = |field: &str| {
            text(field)
                .map(|r| Regex::new(r).map_err(|_| bad(&format!("`{field}` is not a regex"))))
                .transpose()
        };
        Ok(Metadata {
            age,
            pgp,
            others,
            lastmodified: text("lastmodified")
                .ok_or_else(|| bad("no `lastmodified`"))?
                .to_string(),
            mac: text("mac").ok_or_else(|| bad("no `mac`"))?.to_string(),
            mac_only_encrypted: block
                .get("mac_only_encrypted")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            rules: Rules {
                unencrypted_suffix: text("unencrypted_suffix").map(String::from),
                encrypted_suffix: text("encrypted_suffix").map(String::from),
                unencrypted_regex: regex("unencrypted_regex")?,
                encrypted_regex: regex("encrypted_regex")?,
            },
        })
    }

    fn data_key(&self, keys: &AgeKeys) -> Result<[u8; 32], SopsError> {
        if let Some(key) = self.age.iter().find_map(|(_, enc)| keys.unwrap(enc)) {
            return Ok(key);
        }
        if self.age.is_empty() && !self.pgp.is_empty() {
            return Err(SopsError::PgpOnly {
                fingerprints: self.pgp.clone(),
            });
        }
        if self.age.is_empty() {
            return Err(SopsError::Unsupported {
                kinds: self.others.clone(),
            });
        }
        let mut recipients: Vec<String> = self.age.iter().map(|(r, _)| r.clone()).collect();
        recipients.extend(
            self.pgp
                .iter()
                .map(|fp| format!("PGP {fp} (not supported yet)")),
        );
        Err(SopsError::NoKey {
            recipients,
            looked_in: keys.looked_in.clone(),
        })
    }
}

/// The walk over a document's values in sops's order, decrypting and hashing.
struct Walk<'a> {
    key: [u8; 32],
    rules: &'a Rules,
    mac_only_encrypted: bool,
    hash: Sha512,
    path: Vec<String>,
    decrypted: usize,
}

impl Walk<'_> {
    fn value(&mut self, value: &mut Value) -> Result<(), SopsError> {
        match value {
            Value::Object(map) => {
                for (key, item) in map.iter_mut() {
                    self.path.push(key.clone());
                    let walked = self.value(item);
                    self.path.pop();
                    walked?;
                }
                Ok(())
            }
            // sops leaves list indexes out of the key path.
            Value::Array(items) => items.iter_mut().try_for_each(|item| self.value(item)),
            leaf => self.leaf(leaf),
        }
    }

    fn leaf(&mut self, leaf: &mut Value) -> Result<(), SopsError> {
        let shown = self.path.join(".");
        if !self.rules.encrypted(&self.path) {
            if leaftext(leaf).starts_with(cipher::PREFIX) {
                return Err(SopsError::EncryptedWherePlain { path: shown });
            }
            if !self.mac_only_encrypted {
                self.hash.update(leaftext(leaf).as_bytes());
            }
            return Ok(());
        }
        let text = match leaf {
            // sops leaves empty values (and nulls) as they are.
            Value::String(s) if s.is_empty() => return Ok(()),
            Value::Null => return Ok(()),
            Value::String(s) => s.clone(),
            _ => {
                return Err(SopsError::BadValue {
                    path: shown,
                    reason: "it is plain, though the file's rules say it is encrypted: it was \
                             added after sops encrypted the file"
                        .to_string(),
                });
            }
        };
        let aad = format!("{}:", self.path.join(":"));
        let plain = cipher::decrypt(&text, &self.key, &aad).map_err(|err| match err {
            CipherError::Authentication => SopsError::Tampered {
                path: shown.clone(),
            },
            CipherError::Malformed => SopsError::BadValue {
                path: shown.clone(),
                reason: "it is not in the form `ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]`"
                    .to_string(),
            },
            CipherError::Type(what) => SopsError::BadValue {
                path: shown.clone(),
                reason: format!("it decrypts to {what}"),
            },
        })?;
        self.hash.update(&plain.bytes);
        self.decrypted += 1;
        *leaf = plain.value;
        Ok(())
    }
}

/// A plain value as sops hashes it (Go's ToBytes): numbers in decimal, booleans
/// title-cased, null as nothing.
fn leaftext(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        // Go's FormatFloat(f, 'f', -1, 64): `1`, not `1.0`, as Rust's Display writes it.
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => f.to_string(),
            _ => n.to_string(),
        },
        _ => String::new(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    //! The fixtures in testdata/ were written by the real sops (tests/cluster/build.sh
    //! builds it) for the test key in testdata/keys.txt; testdata/README.md says how.
    use super::*;
    use crate::render::yaml_value;
    use serde_json::json;

    const KEY: &str = include_str!("sops/testdata/keys.txt");
    const OTHER_KEY: &str = include_str!("sops/testdata/other-keys.txt");
    const RECIPIENT: &str = include_str!("sops/testdata/recipient.txt");
    const REGEX: &str = include_str!("sops/testdata/secret.regex.yaml");
    const SUFFIX: &str = include_str!("sops/testdata/secret.suffix.yaml");
    const ALL_JSON: &str = include_str!("sops/testdata/secret.all.json");
    const MAC_ONLY: &str = include_str!("sops/testdata/secret.mac-only.yaml");

    fn run(text: &str, key: &str) -> Result<Value, SopsError> {
        let docs = vec![(1, yaml_value(text).unwrap())];
        assert!(is_encrypted(&docs));
        let mut out = decrypt(docs, || Ok(AgeKeys::from_text(key)))?;
        Ok(out.remove(0).1)
    }

    #[test]
    fn decrypts_what_sops_encrypted_with_encrypted_regex() {
        let secret = run(REGEX, KEY).unwrap();
        assert_eq!(
            secret,
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "creds", "labels": {"tier": "db", "replicas": 3}},
                "type": "Opaque",
                "data": {"password": "aHVudGVyMg=="},
                "stringData": {"token": "s3cr3t-token", "port": "5432", "list": ["a", "b"]},
            })
        );
    }

    #[test]
    fn decrypts_unencrypted_suffix_json_and_mac_only_encrypted_files() {
        let secret = run(SUFFIX, KEY).unwrap();
        assert_eq!(secret["stringData"]["token"], json!("s3cr3t-token"));
        assert_eq!(
            secret["stringData"]["note_unencrypted"],
            json!("kept plain")
        );
        assert!(secret.get("sops").is_none());
        let docs = vec![(1, serde_json::from_str(ALL_JSON).unwrap())];
        let all = decrypt(docs, || Ok(AgeKeys::from_text(KEY))).unwrap();
        assert_eq!(all[0].1["metadata"]["name"], json!("creds"));
        assert_eq!(all[0].1["stringData"]["token"], json!("s3cr3t-token"));
        let mac_only = run(MAC_ONLY, KEY).unwrap();
        assert_eq!(mac_only["stringData"]["token"], json!("s3cr3t-token"));
    }

    #[test]
    fn a_changed_value_or_mac_is_refused() {
        // An encrypted value swapped for another's: its key path no longer matches.
        let doc = yaml_value(REGEX).unwrap();
        let mut swapped = doc.clone();
        swapped["stringData"]["token"] = doc["data"]["password"].clone();
        let err = decrypt(vec![(1, swapped)], || Ok(AgeKeys::from_text(KEY))).unwrap_err();
        assert!(
            matches!(&err, SopsError::Tampered { path } if path == "stringData.token"),
            "{err}"
        );
        // A plain value changed: the MAC tells.
        let mut renamed = doc.clone();
        renamed["metadata"]["labels"]["tier"] = json!("web");
        let err = decrypt(vec![(1, renamed)], || Ok(AgeKeys::from_text(KEY))).unwrap_err();
        assert!(matches!(err, SopsError::MacMismatch), "{err}");
        assert!(err.to_string().contains("tampered"), "{err}");
        // The MAC itself changed.
        let mut mac = doc.clone();
        let stored = doc["sops"]["mac"]
            .as_str()
            .unwrap()
            .replacen("data:", "data:A", 1);
        mac["sops"]["mac"] = json!(stored);
        let err = decrypt(vec![(1, mac)], || Ok(AgeKeys::from_text(KEY))).unwrap_err();
        assert!(matches!(err, SopsError::MacMismatch), "{err}");
        // A value added in plain text where values are encrypted.
        let mut added = doc;
        added["stringData"]["extra"] = json!(1);
        let err = decrypt(vec![(1, added)], || Ok(AgeKeys::from_text(KEY))).unwrap_err();
        assert!(matches!(err, SopsError::BadValue { .. }), "{err}");
    }

    #[test]
    fn without_a_matching_key_the_error_names_the_recipients() {
        let err = run(REGEX, OTHER_KEY).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(RECIPIENT.trim()), "{text}");
        assert!(text.starts_with("no age key opens it"), "{text}");
        let err = run(REGEX, "").unwrap_err();
        assert!(matches!(err, SopsError::NoKey { .. }), "{err}");
    }

    #[test]
    fn pgp_only_files_say_gpg_is_not_supported() {
        let mut doc = yaml_value(REGEX).unwrap();
        doc["sops"]["age"] = Value::Null;
        doc["sops"]["pgp"] =
            json!([{"fp": "FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4", "enc": "x"}]);
        let err = decrypt(vec![(1, doc)], || Ok(AgeKeys::from_text(KEY))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "it is encrypted only for PGP (FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4), which \
             needs gpg: decrypting with gpg is not supported yet; add an age recipient to the \
             file (`sops updatekeys`)"
        );
    }

    #[test]
    fn encrypted_values_outside_a_secret_are_refused() {
        let doc = yaml_value(REGEX).unwrap();
        let mut config = doc.clone();
        config["kind"] = json!("ConfigMap");
        // The kind is a plain value, so the MAC would catch it too: the kind check comes
        // first and says what to do.
        let err = decrypt(vec![(1, config)], || Ok(AgeKeys::from_text(KEY))).unwrap_err();
        assert!(matches!(err, SopsError::NotASecret { .. }), "{err}");
    }

    #[test]
    fn leftover_encrypted_values_are_found_by_path() {
        let doc = yaml_value(REGEX).unwrap();
        assert_eq!(leftover_encrypted(&doc), Some("data.password".to_string()));
        assert_eq!(leftover_encrypted(&json!({"a": ["ENC"]})), None);
    }
}
