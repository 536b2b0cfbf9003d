//! A forge's push webhook: checked against the shared secret, then read for the branch
//! it names.
//!
//! - GitHub, Gitea and Forgejo sign the raw body: `X-Hub-Signature-256: sha256=<hex
//!   HMAC-SHA256(secret, body)>`; the event is in `X-GitHub-Event` (Gitea and Forgejo
//!   also send `X-Gitea-Event` / `X-Forgejo-Event`): `push` or `ping`.
//! - GitLab sends the secret itself: `X-Gitlab-Token: <secret>`; the event is in
//!   `X-Gitlab-Event`: `Push Hook` or `Tag Push Hook`.
//!
//! Both are compared in constant time. The body is not read here: the caller reads at
//! most [`MAX_BODY`] bytes and refuses a larger one before calling [`verify`]. No error
//! names the secret, the signature or the token.

use http::HeaderMap;
use ring::hmac;

/// The largest webhook body read (GitHub caps its payloads at 25 MB, but a push that
/// only names a branch is far below this; a larger one is refused, not truncated).
pub const MAX_BODY: usize = 1024 * 1024;

/// A push the forge told of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The ref pushed, as the forge wrote it: `refs/heads/main`, `refs/tags/v1.2.0`.
    pub reference: String,
    /// The branch, for a ref under `refs/heads/`; `None` for a tag or another ref, after
    /// which every app is worth a look.
    pub branch: Option<String>,
}

/// What a verified webhook request brought.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Push(Push),
    /// GitHub's test delivery, sent when a webhook is created.
    Ping,
}

/// Why a webhook request was refused, in one sentence a log line can carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the request carries neither an X-Hub-Signature-256 nor an X-Gitlab-Token header")]
    MissingSignature,
    #[error("the X-Hub-Signature-256 header is not \"sha256=\" followed by 64 hex digits")]
    MalformedSignature,
    #[error("the X-Hub-Signature-256 signature does not match the body and the webhook secret")]
    BadSignature,
    #[error("the X-Gitlab-Token header is not the webhook secret")]
    BadToken,
    #[error(
        "the request names no event (X-GitHub-Event, X-Gitea-Event, X-Forgejo-Event or X-Gitlab-Event)"
    )]
    MissingEvent,
    #[error("the event \"{0}\" is neither a push nor a ping: send only push events")]
    UnknownEvent(String),
    #[error(
        "the body is not JSON (line {line}, column {column}): set the webhook's content type to application/json"
    )]
    BodyNotJson { line: usize, column: usize },
    #[error("the push body has no \"ref\" string")]
    NoRef,
}

/// The delivery `headers` and `body` make, once their signature or token shows the
/// sender knows `secret`. Nothing of the request is looked at before that check.
pub fn verify(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<Delivery, WebhookError> {
    authenticate(headers, body, secret)?;
    match event(headers)? {
        Event::Ping => Ok(Delivery::Ping),
        Event::Push => push(body).map(Delivery::Push),
    }
}

/// The `X-Hub-Signature-256` value GitHub would send for `body` with `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), body);
    let mut text = String::from("sha256=");
    for byte in tag.as_ref() {
        text.push(char::from(HEX[usize::from(byte >> 4)]));
        text.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    text
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn authenticate(headers: &HeaderMap, body: &[u8], secret: &[u8]) -> Result<(), WebhookError> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    if let Some(value) = headers.get("x-hub-signature-256") {
        let tag = value
            .to_str()
            .ok()
            .and_then(|text| text.trim().strip_prefix("sha256="))
            .and_then(hex_digest)
            .ok_or(WebhookError::MalformedSignature)?;
        return hmac::verify(&key, body, &tag).map_err(|_| WebhookError::BadSignature);
    }
    if let Some(value) = headers.get("x-gitlab-token") {
        // The MACs of both are compared, not the bytes: the time taken does not depend on
        // where the token differs, nor tell the secret's length.
        let expected = hmac::sign(&key, secret);
        return hmac::verify(&key, value.as_bytes(), expected.as_ref())
            .map_err(|_| WebhookError::BadToken);
    }
    Err(WebhookError::MissingSignature)
}

/// 64 hex digits (either case) as 32 bytes.
fn hex_digest(text: &str) -> Option<[u8; 32]> {
    let digits = text.as_bytes();
    if digits.len() != 64 {
        return None;
    }
    let mut bytes = [0u8; 32];
    for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(bytes)
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

enum Event {
    Push,
    Ping,
}

fn event(headers: &HeaderMap) -> Result<Event, WebhookError> {
    for name in ["x-github-event", "x-gitea-event", "x-forgejo-event"] {
        if let Some(value) = headers.get(name) {
            return match value.as_bytes() {
                b"push" => Ok(Event::Push),
                b"ping" => Ok(Event::Ping),
                other => Err(WebhookError::UnknownEvent(shown(other))),
            };
        }
    }
    match headers.get("x-gitlab-event").map(|value| value.as_bytes()) {
        Some(b"Push Hook" | b"Tag Push Hook") => Ok(Event::Push),
        Some(other) => Err(WebhookError::UnknownEvent(shown(other))),
        None => Err(WebhookError::MissingEvent),
    }
}

/// A header value fit for a log line: at most 64 characters, control characters replaced.
fn shown(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

fn push(body: &[u8]) -> Result<Push, WebhookError> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|error| WebhookError::BodyNotJson {
            line: error.line(),
            column: error.column(),
        })?;
    let reference = json
        .get("ref")
        .and_then(serde_json::Value::as_str)
        .ok_or(WebhookError::NoRef)?;
    let branch = reference
        .strip_prefix("refs/heads/")
        .filter(|branch| !branch.is_empty())
        .map(str::to_string);
    Ok(Push {
        reference: reference.to_string(),
        branch,
    })
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::{Delivery, Push, WebhookError, signature, verify};

    const SECRET: &[u8] = b"s3cr3t-of-the-webhook";

    /// The shape of GitHub's push payload, cut down to a few of its fields.
    const GITHUB_PUSH: &str = r#"{
  "ref": "refs/heads/main",
  "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
  "after": "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5",
  "repository": {
    "id": 186853002,
    "name": "app-config",
    "full_name": "octo-org/app-config",
    "private": true,
    "default_branch": "main"
  },
  "pusher": { "name": "octocat", "email": "octocat@github.com" },
  "created": false,
  "deleted": false,
  "forced": false,
  "base_ref": null,
  "compare": "https://github.com/octo-org/app-config/compare/6113728f27ae...59b20b8d5c6f",
  "commits": [
    {
      "id": "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5",
      "message": "web: 3 replicas",
      "author": { "name": "Octo Cat", "email": "octocat@github.com", "username": "octocat" },
      "added": [],
      "removed": [],
      "modified": ["apps/web/deployment.yaml"]
    }
  ],
  "head_commit": { "id": "59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5" }
}"#;

    const GITHUB_PING: &str = r#"{
  "zen": "Keep it logically awesome.",
  "hook_id": 109948940,
  "hook": { "type": "Repository", "id": 109948940, "events": ["push"], "active": true }
}"#;

    /// The shape of GitLab's push hook payload.
    const GITLAB_PUSH: &str = r#"{
  "object_kind": "push",
  "event_name": "push",
  "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
  "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
  "ref": "refs/heads/release/2.x",
  "ref_protected": true,
  "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
  "user_username": "jsmith",
  "project_id": 15,
  "project": { "id": 15, "name": "Diaspora", "path_with_namespace": "mike/diaspora" },
  "commits": [],
  "total_commits_count": 4
}"#;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn github(event: &str, body: &str, secret: &[u8]) -> HeaderMap {
        let signed = signature(secret, body.as_bytes());
        headers(&[
            ("x-github-event", event),
            ("x-hub-signature-256", signed.as_str()),
            ("content-type", "application/json"),
        ])
    }

    #[test]
    fn githubs_known_answer_vector() {
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert_eq!(signature(secret, body), expected);
        // Checked the other way too: GitHub's own value verifies, upper case as well.
        let delivered = headers(&[
            ("x-github-event", "ping"),
            ("x-hub-signature-256", expected),
        ]);
        assert_eq!(verify(&delivered, body, secret), Ok(Delivery::Ping));
        let upper = format!("sha256={}", expected["sha256=".len()..].to_uppercase());
        let delivered = headers(&[
            ("x-github-event", "ping"),
            ("x-hub-signature-256", upper.as_str()),
        ]);
        assert_eq!(verify(&delivered, body, secret), Ok(Delivery::Ping));
    }

    #[test]
    fn a_signed_github_push_names_its_branch() {
        let delivered = github("push", GITHUB_PUSH, SECRET);
        assert_eq!(
            verify(&delivered, GITHUB_PUSH.as_bytes(), SECRET),
            Ok(Delivery::Push(Push {
                reference: "refs/heads/main".into(),
                branch: Some("main".into()),
            }))
        );
    }

    #[test]
    fn a_signed_ping_is_a_ping() {
        let delivered = github("ping", GITHUB_PING, SECRET);
        assert_eq!(
            verify(&delivered, GITHUB_PING.as_bytes(), SECRET),
            Ok(Delivery::Ping)
        );
    }

    #[test]
    fn a_tag_push_is_a_push_without_a_branch() {
        let body = GITHUB_PUSH.replace("refs/heads/main", "refs/tags/v1.4.0");
        let delivered = github("push", &body, SECRET);
        assert_eq!(
            verify(&delivered, body.as_bytes(), SECRET),
            Ok(Delivery::Push(Push {
                reference: "refs/tags/v1.4.0".into(),
                branch: None,
            }))
        );
    }

    #[test]
    fn gitea_and_forgejo_name_the_event_in_their_own_header() {
        for header in ["x-gitea-event", "x-forgejo-event"] {
            let signed = signature(SECRET, GITHUB_PUSH.as_bytes());
            let delivered = headers(&[(header, "push"), ("x-hub-signature-256", signed.as_str())]);
            let Ok(Delivery::Push(push)) = verify(&delivered, GITHUB_PUSH.as_bytes(), SECRET)
            else {
                panic!("{header}: not a push");
            };
            assert_eq!(push.branch.as_deref(), Some("main"));
        }
    }

    #[test]
    fn a_gitlab_push_with_the_token_names_its_branch() {
        let delivered = headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-token", "s3cr3t-of-the-webhook"),
        ]);
        assert_eq!(
            verify(&delivered, GITLAB_PUSH.as_bytes(), SECRET),
            Ok(Delivery::Push(Push {
                reference: "refs/heads/release/2.x".into(),
                branch: Some("release/2.x".into()),
            }))
        );
    }

    #[test]
    fn a_wrong_gitlab_token_is_refused() {
        for token in [
            "s3cr3t-of-the-webhooK",
            "s3cr3t",
            "",
            "s3cr3t-of-the-webhook-and-more",
        ] {
            let delivered = headers(&[("x-gitlab-event", "Push Hook"), ("x-gitlab-token", token)]);
            assert_eq!(
                verify(&delivered, GITLAB_PUSH.as_bytes(), SECRET),
                Err(WebhookError::BadToken),
                "{token:?}"
            );
        }
    }

    #[test]
    fn a_forged_or_tampered_signature_is_refused() {
        let forged = github("push", GITHUB_PUSH, b"a guess");
        assert_eq!(
            verify(&forged, GITHUB_PUSH.as_bytes(), SECRET),
            Err(WebhookError::BadSignature)
        );
        let signed = github("push", GITHUB_PUSH, SECRET);
        let tampered = GITHUB_PUSH.replace("refs/heads/main", "refs/heads/evil");
        assert_eq!(
            verify(&signed, tampered.as_bytes(), SECRET),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn a_signature_of_the_wrong_shape_is_malformed() {
        let good = signature(SECRET, GITHUB_PUSH.as_bytes());
        let hex = &good["sha256=".len()..];
        for value in [
            format!("sha1={hex}"),
            hex.to_string(),
            format!("sha256={}", &hex[..63]),
            format!("sha256={}g", &hex[..63]),
            "sha256=".to_string(),
        ] {
            let delivered = headers(&[
                ("x-github-event", "push"),
                ("x-hub-signature-256", value.as_str()),
            ]);
            assert_eq!(
                verify(&delivered, GITHUB_PUSH.as_bytes(), SECRET),
                Err(WebhookError::MalformedSignature),
                "{value}"
            );
        }
    }

    #[test]
    fn an_unsigned_request_is_refused_before_anything_else() {
        let delivered = headers(&[("x-github-event", "push")]);
        assert_eq!(
            verify(&delivered, b"not even json", SECRET),
            Err(WebhookError::MissingSignature)
        );
    }

    #[test]
    fn a_signed_request_must_be_a_json_push_or_a_ping() {
        let signed = |event: Option<&str>, body: &str| {
            let value = signature(SECRET, body.as_bytes());
            let mut delivered = headers(&[("x-hub-signature-256", value.as_str())]);
            if let Some(event) = event {
                delivered.insert("x-github-event", HeaderValue::from_str(event).unwrap());
            }
            verify(&delivered, body.as_bytes(), SECRET)
        };
        assert_eq!(
            signed(Some("issues"), "{}"),
            Err(WebhookError::UnknownEvent("issues".into()))
        );
        assert_eq!(signed(None, GITHUB_PUSH), Err(WebhookError::MissingEvent));
        // GitHub's other content type: a form with the JSON in `payload`.
        assert_eq!(
            signed(
                Some("push"),
                "payload=%7B%22ref%22%3A%22refs%2Fheads%2Fmain%22%7D"
            ),
            Err(WebhookError::BodyNotJson { line: 1, column: 1 })
        );
        assert_eq!(
            signed(Some("push"), r#"{"ref": 7}"#),
            Err(WebhookError::NoRef)
        );
        assert_eq!(signed(Some("push"), "[]"), Err(WebhookError::NoRef));
    }

    #[test]
    fn no_refusal_names_the_secret_the_signature_or_the_token() {
        let good = signature(SECRET, GITHUB_PUSH.as_bytes());
        let forged = signature(b"a guess", GITHUB_PUSH.as_bytes());
        let requests = [
            headers(&[
                ("x-github-event", "push"),
                ("x-hub-signature-256", forged.as_str()),
            ]),
            headers(&[
                ("x-github-event", "push"),
                ("x-hub-signature-256", &good[..40]),
            ]),
            headers(&[
                ("x-gitlab-event", "Push Hook"),
                ("x-gitlab-token", "s3cr3t-of-the"),
            ]),
            headers(&[
                ("x-gitlab-event", "Note Hook"),
                ("x-gitlab-token", "s3cr3t-of-the-webhook"),
            ]),
        ];
        for delivered in &requests {
            let message = verify(delivered, GITHUB_PUSH.as_bytes(), SECRET)
                .expect_err("refused")
                .to_string();
            for needle in ["s3cr3t", &good[7..20], &forged[7..20]] {
                assert!(!message.contains(needle), "{message}");
            }
            assert_eq!(message.lines().count(), 1, "{message}");
        }
    }
}
