//! The HTTP stack under the Kubernetes client: kube's own, except that TLS offers HTTP/2
//! as well as HTTP/1.1 (kube's offers HTTP/1.1 only). Over HTTP/2 every request of a
//! command shares one connection, as kubectl's do: one TLS handshake instead of one per
//! concurrent request, and requests sent together reach the server together (a batch of
//! consistent LISTs then waits once for the server's cache, not once per connection).

use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::Config;
use kube::client::{Body, ClientBuilder, ConfigExt, DynBody};
use tower::util::BoxService;
use tower::{BoxError, ServiceBuilder, ServiceExt};

/// The service kube's own builder makes, by the same type.
type Stack = BoxService<http::Request<Body>, http::Response<Box<DynBody>>, BoxError>;

/// A client builder for `config` with HTTP/2 offered over TLS; `None` where kube's own
/// builder decides, as before: a proxy (it knows which kinds it can use), a plain-HTTP
/// server, or an exec credential plugin (it also notes when the plugin's certificate
/// expires).
pub fn builder(config: &Config) -> Option<Result<ClientBuilder<Stack>, kube::Error>> {
    let https = config.cluster_url.scheme_str() == Some("https");
    let plain = https && config.proxy_url.is_none() && config.auth_info.exec.is_none();
    plain.then(|| build(config))
}

fn build(config: &Config) -> Result<ClientBuilder<Stack>, kube::Error> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    // HTTP/2 writes a request's headers and body as separate frames: with Nagle's
    // algorithm the body waits for the server's delayed ACK (40 ms on Linux).
    http.set_nodelay(true);
    let mut tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config.rustls_client_config()?)
        .https_only();
    if let Some(name) = &config.tls_server_name {
        let name = name.clone().try_into().map_err(|_| {
            kube::Error::Service(format!("invalid TLS server name {name:?}").into())
        })?;
        tls = tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = tls.enable_http1().enable_http2().wrap_connector(http);
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let client: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(client)
        .map_response(|response: http::Response<_>| {
            response.map(|body| Box::new(body.map_err(BoxError::from)) as Box<DynBody>)
        })
        .boxed();
    Ok(ClientBuilder::new(
        service,
        config.default_namespace.clone(),
    ))
}
