//! Helm's own release records, read without the helm binary.
//!
//! Helm 3 keeps release `N` of `web` as the Secret `sh.helm.release.v1.web.vN` of type
//! [`RELEASE_TYPE`], labelled `owner=helm`, `name`, `status` and `version`. Its `release`
//! key holds base64(gzip(JSON)): Helm base64-encodes the bytes itself, and the Secret's own
//! encoding comes on top (so `kubectl get -o yaml` shows it base64 twice). Releases written
//! without compression hold base64(JSON). As with our records, the Secret's name is the
//! record's identity: a body that disagrees with it is reported as unreadable.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::read::GzDecoder;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::{Deserialize, Deserializer};

use crate::api_error::{ApiError, CallFailure, from_call_failure, scope};
use crate::error_text::one_line;
use crate::release::record::MAX_DECODED_BYTES;
use crate::release::store::UnreadableRecord;

/// The Secret type of Helm 3 releases.
pub const RELEASE_TYPE: &str = "helm.sh/release.v1";
/// Every release Secret's name starts with this.
pub const SECRET_PREFIX: &str = "sh.helm.release.v1.";
pub const OWNER_LABEL: &str = "owner";
pub const OWNER: &str = "helm";
pub const NAME_LABEL: &str = "name";
/// The data key holding the encoded release.
pub const DATA_KEY: &str = "release";
/// What starts a gzip stream (with the deflate method), as Helm checks it.
const GZIP_MAGIC: [u8; 3] = [0x1f, 0x8b, 0x08];
/// How many release Secrets are fetched at once. Each may expand to
/// [`MAX_DECODED_BYTES`], so this also bounds memory.
const CONCURRENCY: usize = 4;

/// A Helm release as Helm stores it; only the fields the history shows are kept.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct HelmRelease {
    #[serde(default, deserialize_with = "or_default")]
    pub name: String,
    #[serde(default, deserialize_with = "or_default")]
    pub namespace: String,
    #[serde(default, deserialize_with = "or_default")]
    pub version: u32,
    #[serde(default, deserialize_with = "or_default")]
    pub info: Info,
    #[serde(default, deserialize_with = "or_default")]
    pub chart: Chart,
    /// The rendered templates (hooks excluded), multi-document YAML.
    #[serde(default, deserialize_with = "or_default")]
    pub manifest: String,
    /// The user-supplied values (`--values`, `--set`); can hold credentials.
    #[serde(default, deserialize_with = "or_default")]
    pub config: serde_json::Value,
}

/// `info`: the release's status and times. Times are Go's RFC 3339 strings; Go's zero
/// time (`0001-01-01T00:00:00Z`) means unset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Info {
    #[serde(default, deserialize_with = "or_default")]
    pub first_deployed: String,
    #[serde(default, deserialize_with = "or_default")]
    pub last_deployed: String,
    #[serde(default, deserialize_with = "or_default")]
    pub deleted: String,
    #[serde(default, deserialize_with = "or_default")]
    pub description: String,
    /// `deployed`, `superseded`, `failed`, `uninstalled`, `uninstalling`,
    /// `pending-install`, `pending-upgrade`, `pending-rollback` or `unknown`.
    #[serde(default, deserialize_with = "or_default")]
    pub status: String,
    #[serde(default, deserialize_with = "or_default")]
    pub notes: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Chart {
    #[serde(default, deserialize_with = "or_default")]
    pub metadata: ChartMetadata,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ChartMetadata {
    #[serde(default, deserialize_with = "or_default")]
    pub name: String,
    #[serde(default, deserialize_with = "or_default")]
    pub version: String,
    #[serde(default, rename = "appVersion", deserialize_with = "or_default")]
    pub app_version: String,
}

/// `null` reads as the default, as Go's encoder writes nil maps and pointers that way.
fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A Go time string as a timestamp; empty, zero (year 1) or malformed is `None`.
pub fn timestamp(text: &str) -> Option<jiff::Timestamp> {
    let ts: jiff::Timestamp = text.parse().ok()?;
    (ts.as_second() > GO_ZERO_TIME_LIMIT).then_some(ts)
}

/// Go's zero time is 0001-01-01; anything before 1900 is treated as unset.
const GO_ZERO_TIME_LIMIT: i64 = -2_208_988_800;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the Helm release is not valid base64: {0}")]
    Base64(String),
    #[error("the Helm release is not valid gzip: {0}")]
    Gzip(String),
    #[error(
        "the Helm release expands to more than {} MiB; refusing to read it",
        MAX_DECODED_BYTES / (1024 * 1024)
    )]
    TooLarge,
    #[error("the Helm release is not valid JSON: {0}")]
    Json(String),
}

/// Reads the bytes of a release Secret's `release` key (the Secret's own base64 already
/// undone): base64 of gzip or of plain JSON, as Helm writes them. Raw gzip or JSON is
/// accepted too, for records written by other tools.
pub fn decode(data: &[u8]) -> Result<HelmRelease, DecodeError> {
    let json = payload(data)?;
    // serde quotes what it could not read as it is: keep the message one line.
    serde_json::from_slice(&json).map_err(|e| DecodeError::Json(one_line(&e.to_string())))
}

fn payload(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let data = data.trim_ascii();
    let inner: Cow<'_, [u8]> = if data.starts_with(&GZIP_MAGIC) || data.starts_with(b"{") {
        Cow::Borrowed(data)
    } else {
        // Go's decoder refuses line breaks; tolerating them costs nothing.
        let compact: Vec<u8> = data
            .iter()
            .copied()
            .filter(|b| !b.is_ascii_whitespace())
            .collect();
        Cow::Owned(
            STANDARD
                .decode(&compact)
                .map_err(|e| DecodeError::Base64(e.to_string()))?,
        )
    };
    if inner.starts_with(&GZIP_MAGIC) {
        gunzip_bounded(&inner, MAX_DECODED_BYTES)
    } else if inner.len() as u64 > MAX_DECODED_BYTES {
        Err(DecodeError::TooLarge)
    } else {
        Ok(inner.into_owned())
    }
}

/// Decompresses at most `limit` bytes: a gzip bomb stops at the limit.
fn gunzip_bounded(bytes: &[u8], limit: u64) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    GzDecoder::new(bytes)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Gzip(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(DecodeError::TooLarge);
    }
    Ok(out)
}

/// The Secret name of version `version` of release `name`.
pub fn secret_name(name: &str, version: u32) -> String {
    format!("{SECRET_PREFIX}{name}.v{version}")
}

/// The release name and version a Secret's name gives.
pub fn parse_secret_name(secret: &str) -> Option<(&str, u32)> {
    let (name, version) = secret.strip_prefix(SECRET_PREFIX)?.rsplit_once(".v")?;
    if name.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name, version.parse().ok()?))
}

/// Whether `name` can be a label value, so a selector on it is well formed (Helm's
/// release names always can).
fn is_label_value(name: &str) -> bool {
    name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name
            .bytes()
            .next()
            .is_none_or(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_none_or(|b| b.is_ascii_alphanumeric())
}

/// Reads a release Secret living in `namespace`; anything wrong becomes an
/// [`UnreadableRecord`].
pub fn read_secret(secret: &Secret, namespace: &str) -> Result<HelmRelease, UnreadableRecord> {
    let name = secret.name_any();
    let parsed = parse_secret_name(&name);
    let unreadable = |reason: String| UnreadableRecord {
        namespace: namespace.to_string(),
        secret: name.clone(),
        revision: parsed.map(|(_, version)| version),
        reason,
    };
    if secret.type_.as_deref() != Some(RELEASE_TYPE) {
        return Err(unreadable(format!(
            "its type is {}, not {RELEASE_TYPE}",
            secret.type_.as_deref().unwrap_or("empty")
        )));
    }
    let Some((release_name, version)) = parsed else {
        return Err(unreadable(format!(
            "its name is not {SECRET_PREFIX}<release>.v<version>"
        )));
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|data| data.get(DATA_KEY))
        .ok_or_else(|| unreadable(format!("it has no \"{DATA_KEY}\" key")))?;
    let mut release = decode(&bytes.0).map_err(|e| unreadable(e.to_string()))?;
    if release.name != release_name || release.version != version {
        return Err(unreadable(format!(
            "it holds version {} of release \"{}\", which does not match its name",
            release.version,
            one_line(&release.name)
        )));
    }
    // Where it is stored is where it was installed; an empty field means the same.
    release.namespace = namespace.to_string();
    Ok(release)
}

#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    #[error("cannot {verb} Secrets in {}: {message}", scope(namespace.as_deref()))]
    Forbidden {
        verb: String,
        /// None when the call spanned all namespaces.
        namespace: Option<String>,
        message: String,
    },
    #[error("cannot {action}: {source}")]
    Api { action: String, source: ApiError },
    #[error(transparent)]
    Unreadable(UnreadableRecord),
}

fn failure(error: kube::Error, verb: &str, what: &str, namespace: Option<&str>) -> HelmError {
    CallFailure::new(error, verb, what, namespace).into()
}

from_call_failure!(HelmError);

fn selector(name: Option<&str>) -> ListParams {
    let labels = match name {
        Some(name) => format!("{OWNER_LABEL}={OWNER},{NAME_LABEL}={name}"),
        None => format!("{OWNER_LABEL}={OWNER},{NAME_LABEL}"),
    };
    ListParams::default()
        .labels(&labels)
        .fields(&format!("type={RELEASE_TYPE}"))
}

/// Fetches one release Secret; a Secret deleted since it was listed is reported as
/// unreadable rather than failing the listing.
async fn fetch(
    client: Client,
    namespace: String,
    secret: String,
    revision: Option<u32>,
) -> Result<Result<HelmRelease, UnreadableRecord>, HelmError> {
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let found = api
        .get_opt(&secret)
        .await
        .map_err(|e| failure(e, "get", &format!("Secret {secret}"), Some(&namespace)))?;
    Ok(match found {
        Some(found) => read_secret(&found, &namespace),
        None => Err(UnreadableRecord {
            namespace,
            secret,
            revision,
            reason: "it was deleted while being listed".into(),
        }),
    })
}

/// The versions of release `name` in `namespace`, newest first, read from the Secrets'
/// metadata: (version from the name, Secret name). Secrets whose name gives no version
/// come last.
async fn versions(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<(Option<u32>, String)>, HelmError> {
    if !is_label_value(name) {
        return Ok(Vec::new());
    }
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list_metadata(&selector(Some(name)))
        .await
        .map_err(|e| {
            let what = format!("the Helm releases of {name}");
            failure(e, "list", &what, Some(namespace))
        })?;
    let mut found: Vec<(Option<u32>, String)> = list
        .items
        .iter()
        .map(|meta| {
            let secret = meta.name_any();
            let version = parse_secret_name(&secret)
                .filter(|(n, _)| *n == name)
                .map(|(_, v)| v);
            (version, secret)
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(found)
}

/// Every release Secret of `name` in `namespace`, newest first, at most `max` of them;
/// unreadable ones as `Err` entries (one bad record never fails the listing).
pub async fn list(
    client: &Client,
    namespace: &str,
    name: &str,
    max: Option<usize>,
) -> Result<Vec<Result<HelmRelease, UnreadableRecord>>, HelmError> {
    let found = versions(client, namespace, name).await?;
    stream::iter(found.into_iter().take(max.unwrap_or(usize::MAX)))
        .map(|(version, secret)| fetch(client.clone(), namespace.to_string(), secret, version))
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

/// One release; an unreadable one is an error.
pub async fn get(
    client: &Client,
    namespace: &str,
    name: &str,
    version: u32,
) -> Result<Option<HelmRelease>, HelmError> {
    let secret = secret_name(name, version);
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let found = api
        .get_opt(&secret)
        .await
        .map_err(|e| failure(e, "get", &format!("Secret {secret}"), Some(namespace)))?;
    match found {
        None => Ok(None),
        Some(found) => read_secret(&found, namespace)
            .map(Some)
            .map_err(HelmError::Unreadable),
    }
}

/// One Helm release seen from afar: how many versions it has, and its newest.
#[derive(Debug, Clone)]
pub struct HelmAppReleases {
    pub namespace: String,
    pub name: String,
    /// How many release Secrets it has.
    pub records: usize,
    pub newest: Result<HelmRelease, UnreadableRecord>,
}

/// Every Helm release in one namespace or (None) all of them, sorted by namespace and
/// name, each with its newest version. Lists metadata only, then reads one Secret per
/// release (a release Secret can be close to 1 MiB).
pub async fn list_all(
    client: &Client,
    namespace: Option<&str>,
) -> Result<Vec<HelmAppReleases>, HelmError> {
    let api: Api<Secret> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let list = api
        .list_metadata(&selector(None))
        .await
        .map_err(|e| failure(e, "list", "Helm releases", namespace))?;
    /// Per release: how many Secrets, and the newest (version, Secret name).
    #[derive(Default)]
    struct Tally {
        records: usize,
        newest: Option<(Option<u32>, String)>,
    }
    let mut releases: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for meta in &list.items {
        let (Some(ns), Some(name)) = (meta.namespace(), meta.labels().get(NAME_LABEL)) else {
            continue;
        };
        let secret = meta.name_any();
        let version = parse_secret_name(&secret)
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v);
        let tally = releases.entry((ns, name.clone())).or_default();
        tally.records += 1;
        if tally
            .newest
            .as_ref()
            .is_none_or(|(newest, _)| version > *newest)
        {
            tally.newest = Some((version, secret));
        }
    }
    stream::iter(releases)
        .filter_map(|((ns, name), Tally { records, newest })| {
            let client = client.clone();
            async move {
                let (version, secret) = newest?;
                Some(async move {
                    let newest = fetch(client, ns.clone(), secret, version).await?;
                    Ok::<_, HelmError>(HelmAppReleases {
                        namespace: ns,
                        name,
                        records,
                        newest,
                    })
                })
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

#[cfg(test)]
mod tests;
