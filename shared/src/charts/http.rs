//! One blocking HTTP GET, on the hyper + rustls stack the Kubernetes client already
//! uses (no second TLS stack in the binary): connect and read timeouts, a size cap,
//! redirects followed (at most [`MAX_REDIRECTS`]), credentials kept to the host they are
//! for.
//!
//! Rendering is synchronous and is called both from plain threads and from tokio's
//! blocking pool, so each GET runs on a scoped thread of its own with a current-thread
//! runtime: that works from any caller, where `Handle::block_on` would panic when called
//! from inside an async task. A thread and a runtime per request cost well under a
//! millisecond, next to a network round trip.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::error::ChartSourceError;

pub const MAX_REDIRECTS: usize = 10;
/// The largest body read: chart archives are a few MiB, big repository indexes tens.
const MAX_BODY_BYTES: usize = 256 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a read may wait for the next bytes.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// The whole request, body included.
const TOTAL_TIMEOUT: Duration = Duration::from_secs(600);

/// TLS settings for one repository (Helm's `caFile`, `certFile`/`keyFile`,
/// `insecure_skip_tls_verify`). The system's roots (and `SSL_CERT_FILE`) are always trusted.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub insecure: bool,
}

/// Credentials for one request. `Debug` never shows them.
#[derive(Clone)]
pub enum Auth {
    Basic { username: String, password: String },
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::Basic { .. } => "Basic(..)",
            Auth::Bearer(_) => "Bearer(..)",
        })
    }
}

impl Auth {
    fn header(&self) -> String {
        use base64::Engine as _;
        match self {
            Auth::Basic { username, password } => format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            ),
            Auth::Bearer(token) => format!("Bearer {token}"),
        }
    }
}

pub struct Request<'a> {
    pub url: &'a str,
    pub accept: Option<&'a str>,
    pub auth: Option<&'a Auth>,
    pub tls: &'a Tls,
    /// Send `auth` to a host a redirect leads to (Helm's `pass_credentials_all`).
    pub pass_credentials_all: bool,
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub www_authenticate: Option<String>,
    pub link: Option<String>,
    pub body: Vec<u8>,
}

/// `url` without user information, query or fragment: what errors may show.
pub fn display_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    }
}

/// GETs `request.url`, following redirects.
pub fn get(request: &Request<'_>) -> Result<Response, ChartSourceError> {
    let unreachable = |message: String| ChartSourceError::Unreachable {
        url: display_url(request.url),
        message,
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| unreachable(format!("cannot start the HTTP client: {e}")))?;
                runtime.block_on(async {
                    match tokio::time::timeout(TOTAL_TIMEOUT, get_async(request)).await {
                        Ok(result) => result,
                        Err(_) => Err(unreachable(format!(
                            "no complete answer within {}s",
                            TOTAL_TIMEOUT.as_secs()
                        ))),
                    }
                })
            })
            .join()
            .unwrap_or_else(|_| Err(unreachable("the HTTP client failed".to_string())))
    })
}

async fn get_async(request: &Request<'_>) -> Result<Response, ChartSourceError> {
    let shown = display_url(request.url);
    let unreachable = |message: String| ChartSourceError::Unreachable {
        url: shown.clone(),
        message,
    };
    let client = client(request.tls).map_err(&unreachable)?;
    let mut url = url::Url::parse(request.url).map_err(|e| ChartSourceError::Invalid {
        url: shown.clone(),
        message: format!("not a valid URL: {e}"),
    })?;
    let origin = url.host_str().map(str::to_string);
    let first_port = url.port_or_known_default();
    for _ in 0..=MAX_REDIRECTS {
        let same_host = url.host_str().map(str::to_string) == origin
            && url.port_or_known_default() == first_port;
        let mut builder = http::Request::builder()
            .method(http::Method::GET)
            .uri(url.as_str())
            .header(
                http::header::USER_AGENT,
                concat!("kubectl-gitops/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(accept) = request.accept {
            builder = builder.header(http::header::ACCEPT, accept);
        }
        if let Some(auth) = request
            .auth
            .filter(|_| same_host || request.pass_credentials_all)
        {
            builder = builder.header(http::header::AUTHORIZATION, auth.header());
        }
        let http_request = builder
            .body(Full::new(Bytes::new()))
            .map_err(|e| unreachable(format!("cannot build the request: {e}")))?;
        let response = client
            .request(http_request)
            .await
            .map_err(|e| unreachable(crate::error_text::chain(&e)))?;
        let status = response.status();
        let header = |name: http::header::HeaderName| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if status.is_redirection() {
            let Some(location) = header(http::header::LOCATION) else {
                return Err(unreachable(format!(
                    "a redirect ({status}) without a Location"
                )));
            };
            let next = url
                .join(&location)
                .map_err(|_| unreachable("a redirect to an invalid URL".to_string()))?;
            if url.scheme() == "https" && next.scheme() != "https" {
                return Err(unreachable(
                    "a redirect from HTTPS to plain HTTP".to_string(),
                ));
            }
            url = next;
            continue;
        }
        let www_authenticate = header(http::header::WWW_AUTHENTICATE);
        let link = header(http::header::LINK);
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| unreachable(format!("reading the answer: {e}")))?
            .to_bytes()
            .to_vec();
        return Ok(Response {
            status: status.as_u16(),
            www_authenticate,
            link,
            body,
        });
    }
    Err(unreachable(format!("more than {MAX_REDIRECTS} redirects")))
}

type Connector = hyper_timeout::TimeoutConnector<hyper_rustls::HttpsConnector<HttpConnector>>;

fn client(tls: &Tls) -> Result<Client<Connector, Full<Bytes>>, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(tls)?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_read_timeout(Some(READ_TIMEOUT));
    connector.set_write_timeout(Some(READ_TIMEOUT));
    Ok(Client::builder(TokioExecutor::new()).build(connector))
}

/// The system's trusted roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` when set), read once.
fn native_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(system_roots)
}

#[cfg(not(target_os = "macos"))]
fn system_roots() -> Vec<CertificateDer<'static>> {
    rustls_native_certs::load_native_certs().certs
}

/// On macOS the keychain needs Apple's frameworks at link time, which the cross-built
/// release archives cannot link: the roots come from `SSL_CERT_FILE`, else the PEM bundle
/// of the system's roots macOS keeps at /etc/ssl/cert.pem (what its curl and LibreSSL use).
#[cfg(target_os = "macos")]
fn system_roots() -> Vec<CertificateDer<'static>> {
    let file = std::env::var_os("SSL_CERT_FILE").map_or_else(
        || std::path::PathBuf::from("/etc/ssl/cert.pem"),
        std::path::PathBuf::from,
    );
    CertificateDer::pem_file_iter(&file)
        .map(|certs| certs.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(tls: &Tls) -> Result<rustls::ClientConfig, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if tls.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.add_parsable_certificates(native_roots().iter().cloned());
        if let Some(ca) = &tls.ca_file {
            let certs = CertificateDer::pem_file_iter(ca)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read the CA file {}: {e}", ca.display()))?;
            roots.add_parsable_certificates(certs);
        }
        builder.with_root_certificates(roots)
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let certs = CertificateDer::pem_file_iter(cert)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read the certificate file {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("cannot read the key file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("the client certificate: {e}"))
        }
        _ => Ok(builder.with_no_client_auth()),
    }
}

/// `insecure_skip_tls_verify: true`: the server's certificate is not checked (its
/// signatures still are, so the handshake itself is sound).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
