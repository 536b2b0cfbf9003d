//! One sops value: `ENC[AES256_GCM,data:<b64>,iv:<b64>,tag:<b64>,type:<t>]`, AES-256-GCM
//! under the file's data key with a 32-byte nonce, the value's key path as additional
//! data.

use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, Payload};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, KeyInit, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

/// sops's cipher: AES-256 in GCM with the 32-byte nonces sops writes.
type SopsGcm = AesGcm<Aes256, U32>;

/// What sops puts before every encrypted value.
pub(crate) const PREFIX: &str = "ENC[AES256_GCM,";

/// Why a value could not be decrypted. Never carries the value itself.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum CipherError {
    /// Not in sops's `ENC[...]` form.
    Malformed,
    /// The tag does not match: another key, or the value or its key path was changed.
    Authentication,
    /// Decrypted, but not what its `type` says (a number that does not parse, ...).
    Type(String),
}

/// A decrypted value: the JSON value it stands for and the bytes sops hashed for the MAC.
pub(super) struct Plain {
    pub value: Value,
    pub bytes: Vec<u8>,
}

/// Decrypts `text` with `key`; `aad` is the key path as sops joins it (`a:b:c:`).
pub(super) fn decrypt(text: &str, key: &[u8; 32], aad: &str) -> Result<Plain, CipherError> {
    let fields = parse(text).ok_or(CipherError::Malformed)?;
    let decode = |b64: &str| STANDARD.decode(b64).map_err(|_| CipherError::Malformed);
    let mut message = decode(fields.data)?;
    let iv = decode(fields.iv)?;
    let tag = decode(fields.tag)?;
    if iv.len() != 32 || tag.len() != 16 {
        return Err(CipherError::Malformed);
    }
    message.extend_from_slice(&tag);
    let cipher = SopsGcm::new_from_slice(key).map_err(|_| CipherError::Malformed)?;
    let nonce = Nonce::<U32>::try_from(iv.as_slice()).map_err(|_| CipherError::Malformed)?;
    let bytes = cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &message,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| CipherError::Authentication)?;
    let value = typed(fields.kind, &bytes)?;
    Ok(Plain { value, bytes })
}

struct Fields<'a> {
    data: &'a str,
    iv: &'a str,
    tag: &'a str,
    kind: &'a str,
}

/// The four fields of `ENC[AES256_GCM,data:...,iv:...,tag:...,type:...]`, in that order.
fn parse(text: &str) -> Option<Fields<'_>> {
    let inner = text.strip_prefix(PREFIX)?.strip_suffix(']')?;
    let mut parts = inner.splitn(4, ',');
    let mut field = |name: &str| parts.next()?.strip_prefix(name);
    Some(Fields {
        data: field("data:")?,
        iv: field("iv:")?,
        tag: field("tag:")?,
        kind: field("type:")?,
    })
}

/// The value sops meant by `kind` (`str`, `int`, `float`, `bool`, `bytes`).
fn typed(kind: &str, bytes: &[u8]) -> Result<Value, CipherError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CipherError::Type(format!("a `{kind}` value that is not UTF-8 text")))?;
    let wrong = || CipherError::Type(format!("a `{kind}` value that does not read as one"));
    Ok(match kind {
        "str" | "bytes" | "comment" => Value::String(text.to_string()),
        "int" => Value::from(text.parse::<i64>().map_err(|_| wrong())?),
        "float" => text
            .parse::<f64>()
            .ok()
            .and_then(|f| serde_json::Number::from_f64(f).map(Value::Number))
            .ok_or_else(wrong)?,
        // sops writes Go's strconv.FormatBool, title-cased.
        "bool" => match text {
            "True" | "true" => Value::Bool(true),
            "False" | "false" => Value::Bool(false),
            _ => return Err(wrong()),
        },
        other => return Err(CipherError::Type(format!("an unknown type `{other}`"))),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn malformed_values_are_named_so() {
        let key = [0u8; 32];
        for text in [
            "ENC[AES256_GCM,data:AAAA]",
            "ENC[AES256_GCM,data:!!,iv:AAAA,tag:AAAA,type:str]",
            "ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]",
            "plain",
        ] {
            assert_eq!(
                decrypt(text, &key, "a:").err(),
                Some(CipherError::Malformed),
                "{text}"
            );
        }
    }
}
