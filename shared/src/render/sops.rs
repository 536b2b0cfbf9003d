//! SOPS-encrypted manifests, decrypted in memory while rendering, as Flux's
//! kustomize-controller does: a document with a top-level `sops:` block has its values
//! decrypted with the file's data key (unwrapped with an age key, else by the user's gpg
//! for a PGP recipient), the MAC over all values is checked, and the `sops:` block is
//! dropped. Nothing decrypted is written anywhere.
//!
//! The format, as sops writes it: each encrypted value is `ENC[AES256_GCM,...]` with its
//! key path (`a:b:c:`, list indexes left out) as additional data ([`cipher`]); the MAC is
//! the upper-case hex SHA-512 of every value in document order (only the encrypted ones
//! with `mac_only_encrypted`), itself encrypted with `lastmodified` as additional data.
//! A multi-document YAML file is one sops tree: every document carries the same `sops:`
//! block, the first one's counts, and one MAC covers the values of all documents.

mod cipher;
mod keys;
mod pgp;

use regex::Regex;
use serde_json::Value;
use sha2::{Digest as _, Sha512};

pub use keys::{AgeKeys, KeyFileError};
pub use pgp::{Gpg, GpgFailure};

use cipher::CipherError;

/// sops's `MACOnlyEncryptedInitialization`: sha256 of `sops`.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// The keys a file may be opened with: the age identities on this machine, and gpg for
/// PGP recipients.
pub struct Keys {
    pub age: AgeKeys,
    pub gpg: Gpg,
}

impl Keys {
    /// Both found as sops finds them ([`AgeKeys::from_env`], [`Gpg::from_env`]).
    pub fn from_env() -> Result<Keys, KeyFileError> {
        Ok(Keys {
            age: AgeKeys::from_env()?,
            gpg: Gpg::from_env(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    /// No key here opens the file (boxed: errors travel in `Result`s).
    #[error("{0}")]
    NoKey(Box<Unopened>),

    #[error(
        "it is encrypted only for PGP ({}), which needs gpg: {failure}",
        fingerprints.join(", ")
    )]
    GpgMissing {
        fingerprints: Vec<String>,
        failure: GpgFailure,
    },

    #[error(
        "it is encrypted only for {}, {} not supported yet (age and PGP are); add an age \
         or PGP recipient to the file (`sops updatekeys` with a .sops.yaml naming it)",
        recipients.join(", "),
        if recipients.len() == 1 { "which is" } else { "which are" }
    )]
    Unsupported { recipients: Vec<String> },

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

/// A file no key opens: every recipient, where keys were looked for, and what gpg said.
#[derive(Debug)]
pub struct Unopened {
    /// The age recipients, the PGP fingerprints and the recipients of kinds not
    /// supported (described), as the file lists them.
    pub age: Vec<String>,
    pub pgp: Vec<String>,
    pub unsupported: Vec<String>,
    /// Where age keys were looked for.
    pub looked_in: Vec<String>,
    /// The gpg keyring, and why gpg opened none of the PGP recipients' keys.
    pub keyring: String,
    pub gpg: Vec<(String, GpgFailure)>,
}

/// The error names every recipient, where keys were looked for, what gpg said, and what
/// to do.
impl std::fmt::Display for Unopened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Unopened {
            age,
            pgp,
            unsupported,
            looked_in,
            keyring,
            gpg,
        } = self;
        let recipients: Vec<String> = age
            .iter()
            .cloned()
            .chain(pgp.iter().map(|fp| format!("PGP key {fp}")))
            .chain(
                unsupported
                    .iter()
                    .map(|r| format!("{r} (not supported yet)")),
            )
            .collect();
        let mut text = format!(
            "no key opens it: it is encrypted for {}",
            recipients.join(", ")
        );
        if !age.is_empty() {
            let places = if looked_in.is_empty() {
                "no place".to_string()
            } else {
                looked_in.join(", ")
            };
            text.push_str(&format!("; no age key in {places} opens it"));
        }
        if !gpg.is_empty() {
            let first = &gpg[0].1;
            if gpg.iter().all(|(_, failure)| failure == first) {
                text.push_str(&format!("; gpg (keyring {keyring}) opened none: {first}"));
            } else {
                let each: Vec<String> = gpg
                    .iter()
                    .map(|(fp, failure)| format!("{fp}: {failure}"))
                    .collect();
                text.push_str(&format!(
                    "; gpg (keyring {keyring}) opened none: {}",
                    each.join("; ")
                ));
            }
        }
        let mut todo = Vec::new();
        if !pgp.is_empty() {
            todo.push(
                "import one of the PGP secret keys into gpg (`gpg --import`) or set $GNUPGHOME \
                 to the keyring that holds it",
            );
        }
        if !age.is_empty() {
            todo.push("set $SOPS_AGE_KEY_FILE to a key file holding one of the age keys");
        }
        if !todo.is_empty() {
            text.push_str(&format!(". To open it, {}", todo.join(", or ")));
        }
        f.write_str(&text)
    }
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

/// Decrypts a file of documents sops encrypted as one: the first document's `sops:` block
/// counts (sops writes the same one into each), every document's values are walked and
/// hashed into one MAC, as sops does, and the blocks are dropped. `keys` is asked only
/// when there is something to decrypt.
pub(super) fn decrypt(
    documents: Vec<(usize, Value)>,
    keys: impl FnOnce() -> Result<Keys, KeyFileError>,
) -> Result<Vec<(usize, Value)>, SopsError> {
    if !is_encrypted(&documents) {
        return Ok(documents);
    }
    let Some(block) = documents
        .first()
        .and_then(|(_, doc)| doc.get("sops").filter(|_| encrypted_object(doc)))
    else {
        return Err(SopsError::Metadata {
            message: "its first document has no `sops` block, though a later one has: sops \
                      reads the block of the first document only, so this file was not \
                      encrypted by sops as a whole"
                .to_string(),
        });
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
        if let Some(map) = doc.as_object_mut() {
            map.shift_remove("sops");
        }
        let before = walk.decrypted;
        walk.value(&mut doc)?;
        if walk.decrypted > before {
            only_in_a_secret(&doc)?;
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
    /// PGP recipients: fingerprint and wrapped data key.
    pgp: Vec<(String, String)>,
    /// Recipients of kinds not supported (cloud KMS, Vault), described.
    others: Vec<String>,
    lastmodified: String,
    mac: String,
    mac_only_encrypted: bool,
    rules: Rules,
}

/// The recipient kinds not supported, how to name one, and the fields that say which.
const UNSUPPORTED: [(&str, &str, &[&str]); 5] = [
    ("kms", "AWS KMS key", &["arn"]),
    ("gcp_kms", "GCP KMS key", &["resource_id"]),
    (
        "azure_kv",
        "Azure Key Vault key",
        &["vault_url", "name", "version"],
    ),
    (
        "hc_vault",
        "Vault transit key",
        &["vault_address", "engine_path", "key_name"],
    ),
    ("hckms", "HuaweiCloud KMS key", &["key_id"]),
];

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
        let pairs = |kind: &str, field: &str| {
            list(kind)
                .iter()
                .map(|entry| {
                    let name = entry.get(field).and_then(Value::as_str);
                    let enc = entry.get("enc").and_then(Value::as_str);
                    match (name, enc) {
                        (Some(n), Some(e)) => Ok((n.to_string(), e.to_string())),
                        _ => Err(bad(&format!(
                            "a `{kind}` entry without `{field}` and `enc`"
                        ))),
                    }
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let age = pairs("age", "recipient")?;
        let pgp = pairs("pgp", "fp")?;
        let mut others = Vec::new();
        for (kind, what, fields) in UNSUPPORTED {
            for entry in list(kind) {
                let parts: Vec<&str> = fields
                    .iter()
                    .filter_map(|field| entry.get(*field).and_then(Value::as_str))
                    .filter(|part| !part.is_empty())
                    .collect();
                others.push(format!("{what} {}", parts.join(" ")).trim().to_string());
            }
        }
        if age.is_empty() && pgp.is_empty() && others.is_empty() {
            return Err(bad("it names no recipient to unwrap the data key with"));
        }
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

    /// The data key, from the first recipient whose key is here. Every recipient wraps the
    /// same key, so the order changes only what is tried: age first (in process), then
    /// PGP (a gpg run each); sops tries PGP before age, with the same result.
    fn data_key(&self, keys: &Keys) -> Result<[u8; 32], SopsError> {
        if let Some(key) = self.age.iter().find_map(|(_, enc)| keys.age.unwrap(enc)) {
            return Ok(key);
        }
        let mut failures = Vec::new();
        for (fp, enc) in &self.pgp {
            match keys.gpg.unwrap(enc) {
                Ok(key) => return Ok(key),
                Err(failure @ GpgFailure::Missing { .. }) if self.age.is_empty() => {
                    return Err(SopsError::GpgMissing {
                        fingerprints: self.pgp.iter().map(|(fp, _)| fp.clone()).collect(),
                        failure,
                    });
                }
                Err(failure) => {
                    // A missing gpg fails alike for every recipient: once is enough.
                    let missing = matches!(failure, GpgFailure::Missing { .. });
                    failures.push((fp.clone(), failure));
                    if missing {
                        break;
                    }
                }
            }
        }
        if self.age.is_empty() && self.pgp.is_empty() {
            return Err(SopsError::Unsupported {
                recipients: self.others.clone(),
            });
        }
        Err(SopsError::NoKey(Box::new(Unopened {
            age: self.age.iter().map(|(r, _)| r.clone()).collect(),
            pgp: self.pgp.iter().map(|(fp, _)| fp.clone()).collect(),
            unsupported: self.others.clone(),
            looked_in: keys.age.looked_in.clone(),
            keyring: keys.gpg.keyring(),
            gpg: failures,
        })))
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
mod tests;
