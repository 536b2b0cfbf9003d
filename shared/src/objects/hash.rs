//! The hash a release records of each object it applied.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// A hash of an object as the sync applies it (labels included).
pub fn applied_hash(object: &Value) -> String {
    // serde_json keeps the manifest's key order, and the same revision renders the same
    // order, so the bytes are stable for the same desired object.
    let bytes = serde_json::to_vec(object).unwrap_or_default();
    short_hex(&Sha256::digest(&bytes))
}

/// The first 16 bytes of a digest in hex: enough to tell objects apart, half the size in
/// a record of 10,000 of them.
pub fn short_hex(digest: &[u8]) -> String {
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}
