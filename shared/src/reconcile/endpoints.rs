//! The reconciler's HTTP/1.1 endpoints, on one listener:
//!
//! - `GET /healthz`: 200 `ok` until the caller says its loop is unhealthy, then 503 and why;
//! - `GET /readyz`: 503 and why until the caller says it is ready (its first round has
//!   finished, or it is a standby that can take over), then 200 `ok`;
//! - `GET /metrics`: the [`Metrics`] in the Prometheus text format;
//! - `POST /webhook`: a push, checked with the webhook secret ([`webhook::verify`]) and
//!   handed to the loop on the [`Webhook::pushes`] channel (202). Refused with 401 for a
//!   missing or wrong signature or token, 400 for another event or a body that is no push,
//!   404 when no secret is configured (webhooks off), 405 for another method, 413 for a
//!   body over [`MAX_BODY`].
//!
//! Nothing here prints: every request to `/webhook` ends in an [`EndpointEvent`] given to
//! the caller's callback, for its log, and is counted in `kubectl_gitops_webhooks_total`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::metrics::Metrics;
use super::webhook::{self, Delivery, MAX_BODY, Push, WebhookError};
use crate::cancel::Cancel;

/// A client gets this long to send its request's headers, and again its body.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
}

/// Webhooks on: the secret pushes are checked with, and where accepted pushes go.
pub struct Webhook {
    /// Shared with the forge: GitHub's HMAC key, GitLab's token. An empty one turns
    /// webhooks off, since anyone could sign with it.
    pub secret: Vec<u8>,
    /// Each accepted push is offered with `try_send`: when the channel is full the loop
    /// has pushes waiting already, and this one is dropped (its event says so).
    pub pushes: mpsc::Sender<Push>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Webhook { secret: ***, .. }")
    }
}

/// What became of a request to `/webhook`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A verified push; `queued` is false when the channel was full or closed.
    Push {
        peer: SocketAddr,
        push: Push,
        queued: bool,
    },
    /// A verified ping (answered 200).
    Ping {
        peer: SocketAddr,
    },
    Refused {
        peer: SocketAddr,
        refusal: Refusal,
    },
}

/// Why a request to `/webhook` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("webhooks are off: no webhook secret is configured")]
    Disabled,
    #[error("{0} is not allowed on /webhook: only POST is")]
    Method(String),
    #[error("the body is larger than 1 MiB")]
    TooLarge,
    #[error("the body could not be read: {0}")]
    Unreadable(String),
    #[error(transparent)]
    Webhook(#[from] WebhookError),
}

impl Refusal {
    /// The status the request is answered with.
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Disabled => StatusCode::NOT_FOUND,
            Refusal::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Unreadable(_) => StatusCode::BAD_REQUEST,
            Refusal::Webhook(
                WebhookError::MissingSignature
                | WebhookError::MalformedSignature
                | WebhookError::BadSignature
                | WebhookError::BadToken,
            ) => StatusCode::UNAUTHORIZED,
            Refusal::Webhook(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// What the endpoints answer from: shared between the loop, which sets the probes and
/// fills the metrics, and [`serve`].
pub struct Endpoints {
    metrics: Arc<Metrics>,
    health: Probe,
    readiness: Probe,
    webhook: Option<Webhook>,
    events: Box<dyn Fn(EndpointEvent) + Send + Sync>,
}

impl Endpoints {
    /// Healthy, not ready yet ("the first round has not finished"); webhooks on when
    /// `webhook` has a non-empty secret. `events` is called once per request to
    /// `/webhook`, on the server's task: it should only log.
    pub fn new(
        metrics: Arc<Metrics>,
        webhook: Option<Webhook>,
        events: impl Fn(EndpointEvent) + Send + Sync + 'static,
    ) -> Arc<Endpoints> {
        Arc::new(Endpoints {
            metrics,
            health: Probe::passing(),
            readiness: Probe::failing("the first round has not finished"),
            webhook: webhook.filter(|webhook| !webhook.secret.is_empty()),
            events: Box::new(events),
        })
    }

    pub fn set_healthy(&self) {
        self.health.set(None);
    }

    /// `/healthz` answers 503 with the first line of `reason`.
    pub fn set_unhealthy(&self, reason: &str) {
        self.health.set(Some(reason));
    }

    pub fn set_ready(&self) {
        self.readiness.set(None);
    }

    /// `/readyz` answers 503 with the first line of `reason`.
    pub fn set_not_ready(&self, reason: &str) {
        self.readiness.set(Some(reason));
    }
}

/// A probe's state: `None` passes, `Some` says why not.
struct Probe(Mutex<Option<String>>);

impl Probe {
    fn passing() -> Probe {
        Probe(Mutex::new(None))
    }

    fn failing(reason: &str) -> Probe {
        let probe = Probe::passing();
        probe.set(Some(reason));
        probe
    }

    fn set(&self, reason: Option<&str>) {
        let reason = reason.map(|text| text.lines().next().unwrap_or_default().to_string());
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = reason;
    }

    fn answer(&self) -> Response<Full<Bytes>> {
        match &*self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            None => text(StatusCode::OK, "ok"),
            Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, reason),
        }
    }
}

/// Listens on `address` (port 0: a free port) and returns the address it got.
pub async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr), EndpointsError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| EndpointsError::Bind { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| EndpointsError::Bind { address, source })?;
    Ok((listener, bound))
}

/// Answers connections until `stop` is cancelled; then accepts no more, and the open
/// connections finish the request they are on and close.
pub async fn serve(listener: TcpListener, endpoints: Arc<Endpoints>, stop: Cancel) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(_) => {
                // Out of file descriptors, every accept fails until a connection closes:
                // wait a little rather than spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (endpoints, stop) = (endpoints.clone(), stop.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(respond(&endpoints, peer, request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            // A client that goes away mid-answer is no error of ours.
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
}

async fn respond(
    endpoints: &Endpoints,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (head, body) = request.into_parts();
    let path = head.uri.path();
    if path == "/webhook" {
        return webhook_answer(endpoints, peer, &head, body).await;
    }
    if !matches!(path, "/healthz" | "/readyz" | "/metrics") {
        return text(
            StatusCode::NOT_FOUND,
            "no such endpoint: /healthz, /readyz, /metrics or /webhook",
        );
    }
    if head.method != Method::GET && head.method != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET is allowed here");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        "/healthz" => endpoints.health.answer(),
        "/readyz" => endpoints.readiness.answer(),
        _ => {
            let mut response = Response::new(Full::new(Bytes::from(endpoints.metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
    }
}

/// Reads, checks and hands on a webhook request, tells the caller and counts it.
async fn webhook_answer(
    endpoints: &Endpoints,
    peer: SocketAddr,
    head: &http::request::Parts,
    body: Incoming,
) -> Response<Full<Bytes>> {
    let received = match &endpoints.webhook {
        None => Err(Refusal::Disabled),
        Some(hook) => receive(hook, head, body)
            .await
            .map(|delivery| (delivery, hook)),
    };
    endpoints.metrics.webhook(received.is_ok());
    let (event, response) = match received {
        Ok((Delivery::Push(push), hook)) => {
            let queued = hook.pushes.try_send(push.clone()).is_ok();
            let event = EndpointEvent::Push { peer, push, queued };
            (event, text(StatusCode::ACCEPTED, "accepted"))
        }
        Ok((Delivery::Ping, _)) => (EndpointEvent::Ping { peer }, text(StatusCode::OK, "pong")),
        Err(refusal) => {
            let mut response = text(refusal.status(), &refusal.to_string());
            if matches!(refusal, Refusal::Method(_)) {
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("POST"));
            }
            (EndpointEvent::Refused { peer, refusal }, response)
        }
    };
    (endpoints.events)(event);
    response
}

async fn receive(
    hook: &Webhook,
    head: &http::request::Parts,
    body: Incoming,
) -> Result<Delivery, Refusal> {
    if head.method != Method::POST {
        return Err(Refusal::Method(head.method.to_string()));
    }
    let body = read_body(body).await?;
    Ok(webhook::verify(&head.headers, &body, &hook.secret)?)
}

/// The whole body, refused unread when its declared length is over [`MAX_BODY`], and
/// refused as soon as more than that arrives otherwise.
async fn read_body<B>(body: B) -> Result<Bytes, Refusal>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if body.size_hint().lower() > MAX_BODY as u64 {
        return Err(Refusal::TooLarge);
    }
    let read = tokio::time::timeout(READ_TIMEOUT, Limited::new(body, MAX_BODY).collect())
        .await
        .map_err(|_| {
            Refusal::Unreadable(format!(
                "it did not arrive within {} seconds",
                READ_TIMEOUT.as_secs()
            ))
        })?;
    match read {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => Err(Refusal::TooLarge),
        Err(error) => Err(Refusal::Unreadable(error.to_string())),
    }
}

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests;
