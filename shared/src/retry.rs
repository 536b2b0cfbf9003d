//! Retrying API requests that failed for a passing reason, and the request log behind `-v`.
//!
//! One tower layer ([`layer`]) wraps every client the plugins build (the connection adds it
//! when it builds a client), so no call site has a loop of its own:
//! - 429 Too Many Requests: the server refused before doing anything, so any request is
//!   sent again, after the server's `Retry-After` when it gives one;
//! - 503, 504 and a request timeout: the request may or may not have been carried out, so
//!   only a request that is safe to repeat is sent again: reads, server-side apply and
//!   merge patches (they set values, they do not add to them), PUT (it carries the
//!   resourceVersion it read, so a repeat of one that went through gets 409) and DELETE (a
//!   repeat finds the object gone). A create (POST) or a JSON patch is never repeated.
//!
//! Waits grow exponentially with jitter; retrying stops once the next attempt would start
//! after the budget (sync: its `--timeout`; read-only commands: [`DEFAULT_BUDGET`]).
//! Conflicts (409) of our own conditional writes are not retried here: only the caller can
//! re-read and decide (see `lock.rs` and `ReleaseStore::create_pending`).

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode, Uri};
use kube::client::Body;
use tower::{BoxError, Layer, Service};

/// How long a read-only command keeps retrying one request.
pub const DEFAULT_BUDGET: Duration = Duration::from_secs(30);
const FIRST_DELAY: Duration = Duration::from_millis(200);
const MAX_DELAY: Duration = Duration::from_secs(8);
/// Requests a client queues for the connection pool (kube's own client uses the same).
const BUFFER: usize = 1024;

/// Why a request is sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryReason {
    /// The server answered with this status (429, 503, 504).
    Status(StatusCode),
    /// No answer within the request timeout.
    Timeout,
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::Status(status) => write!(f, "{status}"),
            RetryReason::Timeout => f.write_str("no answer within the request timeout"),
        }
    }
}

/// Something the request log reports.
#[derive(Debug)]
pub enum RequestEvent<'a> {
    /// A request failed for a passing reason and will be sent again after `delay`.
    Retrying {
        method: &'a Method,
        url: &'a str,
        reason: &'a RetryReason,
        /// The attempt about to be made (2 for the first retry).
        attempt: u32,
        delay: Duration,
    },
    /// One attempt finished: the status, or the transport error.
    Finished {
        method: &'a Method,
        url: &'a str,
        status: Result<StatusCode, &'a str>,
        elapsed: Duration,
    },
}

impl RequestEvent<'_> {
    pub fn is_retry(&self) -> bool {
        matches!(self, RequestEvent::Retrying { .. })
    }
}

/// One line each, as kubectl's `-v=6` prints requests. Headers (the Authorization header
/// with them) are never part of it.
impl fmt::Display for RequestEvent<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestEvent::Retrying {
                method,
                url,
                reason,
                attempt,
                delay,
            } => write!(
                f,
                "retrying {method} {url} in {} (attempt {attempt}): {reason}",
                humantime::format_duration(round_ms(*delay))
            ),
            RequestEvent::Finished {
                method,
                url,
                status,
                elapsed,
            } => {
                let ms = elapsed.as_millis();
                match status {
                    Ok(status) => write!(f, "{method} {url} {status} in {ms} milliseconds"),
                    Err(error) => write!(f, "{method} {url} failed in {ms} milliseconds: {error}"),
                }
            }
        }
    }
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX))
}

type LogFn = dyn Fn(&RequestEvent<'_>) + Send + Sync;

/// Where request events go (the plugins print them on stderr); the library never prints.
#[derive(Clone)]
pub struct RequestLog(Arc<LogFn>);

impl RequestLog {
    pub fn new(log: impl Fn(&RequestEvent<'_>) + Send + Sync + 'static) -> RequestLog {
        RequestLog(Arc::new(log))
    }

    fn emit(&self, event: &RequestEvent<'_>) {
        (self.0)(event);
    }
}

impl fmt::Debug for RequestLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RequestLog")
    }
}

/// What [`layer`] makes of a client's service.
pub type RetryingService<S> = tower::retry::Retry<
    RetryPolicy,
    Logged<tower::buffer::Buffer<Request<Body>, <S as Service<Request<Body>>>::Future>>,
>;

/// The layer every client gets: retries outside, the request log inside (each attempt is
/// logged). `server` prefixes the paths in log lines.
pub fn layer<S, B>(
    budget: Duration,
    server: String,
    log: Option<RequestLog>,
) -> impl Layer<S, Service = RetryingService<S>>
where
    S: Service<Request<Body>, Response = Response<B>, Error = BoxError> + Send + 'static,
    S::Future: Send + 'static,
{
    let server: Arc<str> = Arc::from(server.trim_end_matches('/'));
    tower::layer::layer_fn(move |inner: S| {
        let policy = RetryPolicy {
            budget,
            server: server.clone(),
            log: log.clone(),
            started: None,
            attempt: 1,
            jitter: std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish(),
        };
        // The retry needs a service it can call again; a buffer is one over the pool.
        let logged = Logged {
            inner: tower::buffer::Buffer::new(inner, BUFFER),
            server: server.clone(),
            log: log.clone(),
        };
        tower::retry::Retry::new(policy, logged)
    })
}

/// Decides whether and when a request is sent again.
#[derive(Clone)]
pub struct RetryPolicy {
    budget: Duration,
    server: Arc<str>,
    log: Option<RequestLog>,
    /// When the first attempt started (set as the request is first cloned).
    started: Option<Instant>,
    attempt: u32,
    jitter: u64,
}

impl RetryPolicy {
    /// The wait before the next attempt: the server's `Retry-After`, else exponential
    /// backoff with up to 50% jitter, so parallel requests do not come back in step.
    fn delay(&mut self, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait;
        }
        let exp = FIRST_DELAY.saturating_mul(1 << self.attempt.saturating_sub(1).min(10));
        let base = exp.min(MAX_DELAY);
        self.jitter = self
            .jitter
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let half = base.as_millis() as u64 / 2;
        let jitter_ms = if half == 0 {
            0
        } else {
            (self.jitter >> 33) % half
        };
        base - Duration::from_millis(jitter_ms)
    }
}

/// Why `result` deserves another attempt of `request`, if it does.
pub fn retry_reason<B>(
    method: &Method,
    content_type: Option<&str>,
    result: &Result<Response<B>, BoxError>,
) -> Option<RetryReason> {
    match result {
        Ok(response) => match response.status() {
            StatusCode::TOO_MANY_REQUESTS => Some(RetryReason::Status(response.status())),
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
                if safe_to_repeat(method, content_type) =>
            {
                Some(RetryReason::Status(response.status()))
            }
            _ => None,
        },
        Err(error) if is_timeout(error.as_ref()) && safe_to_repeat(method, content_type) => {
            Some(RetryReason::Timeout)
        }
        Err(_) => None,
    }
}

/// Whether sending a request twice has the same effect as sending it once.
pub fn safe_to_repeat(method: &Method, content_type: Option<&str>) -> bool {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE => true,
        Method::PATCH => content_type.is_some_and(|t| {
            t.starts_with("application/apply-patch") || t.starts_with("application/merge-patch")
        }),
        _ => false,
    }
}

/// A request timeout (the client's read timeout), found anywhere in the error's chain.
fn is_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        let text = e.to_string().to_lowercase();
        if text.contains("timed out") || text.contains("deadline has elapsed") {
            return true;
        }
        current = e.source();
    }
    false
}

/// `Retry-After` in seconds (the API server sends whole seconds).
fn retry_after<B>(result: &Result<Response<B>, BoxError>) -> Option<Duration> {
    let response = result.as_ref().ok()?;
    let value = response.headers().get(http::header::RETRY_AFTER)?;
    let seconds: u64 = value.to_str().ok()?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds.min(3600)))
}

impl<B> tower::retry::Policy<Request<Body>, Response<B>, BoxError> for RetryPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        request: &mut Request<Body>,
        result: &mut Result<Response<B>, BoxError>,
    ) -> Option<Self::Future> {
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let reason = retry_reason(request.method(), content_type, result)?;
        let delay = self.delay(retry_after(result));
        let started = *self.started.get_or_insert_with(Instant::now);
        if started.elapsed() + delay > self.budget {
            return None;
        }
        self.attempt += 1;
        if let Some(log) = &self.log {
            let url = url(&self.server, request.uri());
            log.emit(&RequestEvent::Retrying {
                method: request.method(),
                url: &url,
                reason: &reason,
                attempt: self.attempt,
                delay,
            });
        }
        Some(tokio::time::sleep(delay))
    }

    fn clone_request(&mut self, request: &Request<Body>) -> Option<Request<Body>> {
        self.started.get_or_insert_with(Instant::now);
        // Bodies the client builds from bytes can be copied; a streamed one cannot, and
        // such a request is simply not retried.
        let body = request.body().try_clone()?;
        let mut copy = Request::builder()
            .method(request.method().clone())
            .uri(request.uri().clone())
            .version(request.version())
            .body(body)
            .ok()?;
        *copy.headers_mut() = request.headers().clone();
        *copy.extensions_mut() = request.extensions().clone();
        Some(copy)
    }
}

fn url(server: &str, uri: &Uri) -> String {
    if uri.scheme().is_some() {
        uri.to_string()
    } else {
        format!(
            "{server}{}",
            uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")
        )
    }
}

/// Reports each attempt (method, URL, status, duration) to the request log.
#[derive(Clone)]
pub struct Logged<S> {
    inner: S,
    server: Arc<str>,
    log: Option<RequestLog>,
}

impl<S, B> Service<Request<Body>> for Logged<S>
where
    S: Service<Request<Body>, Response = Response<B>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let Some(log) = self.log.clone() else {
            return Box::pin(self.inner.call(request));
        };
        let method = request.method().clone();
        let url = url(&self.server, request.uri());
        let start = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            let error = result
                .as_ref()
                .err()
                .map(|e| crate::error_text::chain(e.as_ref()));
            log.emit(&RequestEvent::Finished {
                method: &method,
                url: &url,
                status: match (&result, &error) {
                    (Ok(response), _) => Ok(response.status()),
                    (Err(_), Some(e)) => Err(e.as_str()),
                    (Err(_), None) => Err("failed"),
                },
                elapsed: start.elapsed(),
            });
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16) -> Result<Response<()>, BoxError> {
        Ok(Response::builder()
            .status(status)
            .body(())
            .unwrap_or_default())
    }

    fn timeout() -> Result<Response<()>, BoxError> {
        Err(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "read timed out",
        )))
    }

    const APPLY: Option<&str> = Some("application/apply-patch+yaml");
    const JSON_PATCH: Option<&str> = Some("application/json-patch+json");

    #[test]
    fn too_many_requests_is_retried_for_every_method() {
        for method in [Method::GET, Method::POST, Method::PATCH, Method::DELETE] {
            assert_eq!(
                retry_reason(&method, JSON_PATCH, &answer(429)),
                Some(RetryReason::Status(StatusCode::TOO_MANY_REQUESTS))
            );
        }
    }

    #[test]
    fn unavailable_and_timeouts_are_retried_only_when_safe_to_repeat() {
        assert!(retry_reason(&Method::GET, None, &answer(503)).is_some());
        assert!(retry_reason(&Method::PATCH, APPLY, &answer(504)).is_some());
        assert_eq!(
            retry_reason(&Method::DELETE, None, &timeout()),
            Some(RetryReason::Timeout)
        );
        // A create may have happened; a JSON patch may add twice.
        assert_eq!(retry_reason(&Method::POST, None, &answer(503)), None);
        assert_eq!(retry_reason(&Method::POST, None, &timeout()), None);
        assert_eq!(retry_reason(&Method::PATCH, JSON_PATCH, &timeout()), None);
    }

    #[test]
    fn answers_that_will_not_change_are_not_retried() {
        for status in [200, 400, 403, 404, 409, 422, 500] {
            assert_eq!(retry_reason(&Method::GET, None, &answer(status)), None);
        }
        let refused: Result<Response<()>, BoxError> = Err("connection refused".into());
        assert_eq!(retry_reason(&Method::GET, None, &refused), None);
    }

    #[test]
    fn waits_follow_retry_after_else_grow_with_jitter_up_to_a_cap() {
        let mut policy = RetryPolicy {
            budget: DEFAULT_BUDGET,
            server: Arc::from("https://x"),
            log: None,
            started: None,
            attempt: 1,
            jitter: 7,
        };
        assert_eq!(
            policy.delay(Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        let first = policy.delay(None);
        assert!(
            first <= FIRST_DELAY && first >= FIRST_DELAY / 2,
            "{first:?}"
        );
        policy.attempt = 30;
        let late = policy.delay(None);
        assert!(late <= MAX_DELAY && late >= MAX_DELAY / 2, "{late:?}");
    }

    #[tokio::test]
    async fn retrying_stops_when_the_next_attempt_would_start_after_the_budget() {
        use tower::retry::Policy as _;
        let mut policy = RetryPolicy {
            budget: Duration::from_secs(2),
            server: Arc::from("https://x"),
            log: None,
            started: None,
            attempt: 1,
            jitter: 7,
        };
        let mut request = Request::new(Body::empty());
        assert!(
            tower::retry::Policy::<Request<Body>, Response<()>, BoxError>::clone_request(
                &mut policy,
                &request
            )
            .is_some()
        );
        let mut throttled: Result<Response<()>, BoxError> = Ok(Response::builder()
            .status(429)
            .header("Retry-After", "1")
            .body(())
            .unwrap_or_default());
        assert!(policy.retry(&mut request, &mut throttled).is_some());
        assert_eq!(policy.attempt, 2);
        // A Retry-After beyond what is left of the budget: give up now, not later.
        let mut too_late: Result<Response<()>, BoxError> = Ok(Response::builder()
            .status(429)
            .header("Retry-After", "5")
            .body(())
            .unwrap_or_default());
        assert!(policy.retry(&mut request, &mut too_late).is_none());
    }

    #[test]
    fn log_lines_name_method_url_and_reason_on_one_line() {
        let reason = RetryReason::Status(StatusCode::TOO_MANY_REQUESTS);
        let line = RequestEvent::Retrying {
            method: &Method::GET,
            url: "https://127.0.0.1:6443/api/v1/namespaces/a/secrets",
            reason: &reason,
            attempt: 2,
            delay: Duration::from_millis(1500),
        }
        .to_string();
        assert_eq!(
            line,
            "retrying GET https://127.0.0.1:6443/api/v1/namespaces/a/secrets in 1s 500ms (attempt 2): 429 Too Many Requests"
        );
        let done = RequestEvent::Finished {
            method: &Method::PATCH,
            url: "https://h/apis/apps/v1/x",
            status: Ok(StatusCode::OK),
            elapsed: Duration::from_millis(12),
        }
        .to_string();
        assert_eq!(
            done,
            "PATCH https://h/apis/apps/v1/x 200 OK in 12 milliseconds"
        );
    }
}
