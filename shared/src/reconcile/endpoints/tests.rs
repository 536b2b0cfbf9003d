//! The endpoints over real TCP on loopback, spoken to with hand-written HTTP/1.1.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::stream;
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{EndpointEvent, Endpoints, Refusal, Webhook, bind, read_body, serve};
use crate::cancel::Cancel;
use crate::reconcile::metrics::{Metrics, SyncOutcome};
use crate::reconcile::webhook::{MAX_BODY, Push, WebhookError, signature};

const SECRET: &[u8] = b"webhook-secret-for-tests";

const PUSH: &str = r#"{"ref":"refs/heads/main","before":"6113728f27ae82c7b1a177c8d03f9e96e0adf246","after":"59b20b8d5c6ff8d09518454d4dd8b7a30f095ab5","repository":{"full_name":"octo-org/app-config"},"pusher":{"name":"octocat"},"commits":[]}"#;

struct Running {
    address: SocketAddr,
    endpoints: Arc<Endpoints>,
    metrics: Arc<Metrics>,
    events: Arc<Mutex<Vec<EndpointEvent>>>,
    pushes: mpsc::Receiver<Push>,
    stop: Cancel,
    server: JoinHandle<()>,
}

impl Running {
    fn events(&self) -> Vec<EndpointEvent> {
        self.events.lock().unwrap().clone()
    }
}

/// Endpoints on a free loopback port, webhooks on when `secret` is given.
async fn start(secret: Option<&[u8]>, capacity: usize) -> Running {
    let metrics = Arc::new(Metrics::default());
    let (sender, pushes) = mpsc::channel(capacity);
    let webhook = secret.map(|secret| Webhook {
        secret: secret.to_vec(),
        pushes: sender,
    });
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let endpoints = Endpoints::new(metrics.clone(), webhook, move |event| {
        sink.lock().unwrap().push(event)
    });
    let (listener, address) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let stop = Cancel::new();
    let server = tokio::spawn(serve(listener, endpoints.clone(), stop.clone()));
    Running {
        address,
        endpoints,
        metrics,
        events,
        pushes,
        stop,
        server,
    }
}

struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }
}

/// Sends `request` as it is and reads the answer until the server closes.
async fn send(address: SocketAddr, request: &[u8]) -> Answer {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    };
    let text = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("answered in time");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

async fn get(address: SocketAddr, path: &str) -> Answer {
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    send(address, request.as_bytes()).await
}

async fn post(address: SocketAddr, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    send(address, request.as_bytes()).await
}

async fn github_push(address: SocketAddr, body: &str, secret: &[u8]) -> Answer {
    let signed = signature(secret, body.as_bytes());
    let headers = [
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ("X-Hub-Signature-256", signed.as_str()),
        ("User-Agent", "GitHub-Hookshot/044aadd"),
    ];
    post(address, "/webhook", &headers, body).await
}

fn peer_of(event: &EndpointEvent) -> SocketAddr {
    match event {
        EndpointEvent::Push { peer, .. }
        | EndpointEvent::Ping { peer }
        | EndpointEvent::Refused { peer, .. } => *peer,
    }
}

fn refusals(running: &Running) -> Vec<Refusal> {
    running
        .events()
        .into_iter()
        .filter_map(|event| match event {
            EndpointEvent::Refused { refusal, .. } => Some(refusal),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn healthz_answers_ok_until_the_loop_is_unhealthy() {
    let running = start(None, 1).await;
    let answer = get(running.address, "/healthz").await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok\n"));
    running
        .endpoints
        .set_unhealthy("the loop has not finished a round for 10 minutes\nmore detail");
    let answer = get(running.address, "/healthz").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (503, "the loop has not finished a round for 10 minutes\n")
    );
    running.endpoints.set_healthy();
    assert_eq!(get(running.address, "/healthz").await.status, 200);
}

#[tokio::test]
async fn readyz_answers_503_with_a_reason_until_ready() {
    let running = start(None, 1).await;
    let answer = get(running.address, "/readyz").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (503, "the first round has not finished\n")
    );
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    running.endpoints.set_ready();
    let answer = get(running.address, "/readyz").await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok\n"));
    running
        .endpoints
        .set_not_ready("the cluster's API cannot be reached");
    let answer = get(running.address, "/readyz").await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (503, "the cluster's API cannot be reached\n")
    );
}

#[tokio::test]
async fn metrics_serves_the_registry_in_the_text_format() {
    let running = start(None, 1).await;
    running
        .metrics
        .sync_finished("web", SyncOutcome::Synced, 1.5, 1_765_100_000.0);
    running.metrics.set_leader(true);
    let answer = get(running.address, "/metrics").await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert_eq!(answer.body, running.metrics.render());
    assert!(answer.body.contains("kubectl_gitops_leader 1\n"));
    assert!(
        answer
            .body
            .contains("kubectl_gitops_syncs_total{app=\"web\",outcome=\"synced\"} 1\n")
    );
}

#[tokio::test]
async fn probes_refuse_other_methods_and_other_paths_are_not_found() {
    let running = start(Some(SECRET), 1).await;
    let answer = post(running.address, "/metrics", &[], "{}").await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("GET, HEAD"));
    assert_eq!(get(running.address, "/").await.status, 404);
    assert_eq!(get(running.address, "/webhooks").await.status, 404);
    // None of these was a webhook request.
    assert!(running.events().is_empty());
}

#[tokio::test]
async fn a_signed_github_push_is_accepted_and_handed_to_the_loop() {
    let mut running = start(Some(SECRET), 4).await;
    let answer = github_push(running.address, PUSH, SECRET).await;
    assert_eq!((answer.status, answer.body.as_str()), (202, "accepted\n"));
    let push = running.pushes.try_recv().expect("the push was handed on");
    assert_eq!(push.branch.as_deref(), Some("main"));
    let events = running.events();
    assert_eq!(events.len(), 1);
    assert!(peer_of(&events[0]).ip().is_loopback());
    assert!(matches!(
        &events[0],
        EndpointEvent::Push { push: told, queued: true, .. } if *told == push
    ));
    assert!(
        running
            .metrics
            .render()
            .contains("kubectl_gitops_webhooks_total{result=\"accepted\"} 1\n")
    );
}

#[tokio::test]
async fn a_gitlab_push_with_the_token_is_accepted() {
    let mut running = start(Some(SECRET), 4).await;
    let body = r#"{"object_kind":"push","ref":"refs/heads/release/2.x","project":{"id":15}}"#;
    let headers = [
        ("X-Gitlab-Event", "Push Hook"),
        ("X-Gitlab-Token", "webhook-secret-for-tests"),
    ];
    let answer = post(running.address, "/webhook", &headers, body).await;
    assert_eq!(answer.status, 202);
    let push = running.pushes.try_recv().expect("the push was handed on");
    assert_eq!(push.branch.as_deref(), Some("release/2.x"));
}

#[tokio::test]
async fn a_ping_is_answered_and_hands_nothing_on() {
    let mut running = start(Some(SECRET), 4).await;
    let body = r#"{"zen":"Design for failure.","hook_id":1}"#;
    let signed = signature(SECRET, body.as_bytes());
    let headers = [
        ("X-GitHub-Event", "ping"),
        ("X-Hub-Signature-256", signed.as_str()),
    ];
    let answer = post(running.address, "/webhook", &headers, body).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "pong\n"));
    assert!(running.pushes.try_recv().is_err());
    assert!(matches!(running.events()[..], [EndpointEvent::Ping { .. }]));
}

#[tokio::test]
async fn a_forged_or_missing_signature_is_refused_with_401() {
    let mut running = start(Some(SECRET), 4).await;
    let forged = github_push(running.address, PUSH, b"a guess").await;
    assert_eq!(forged.status, 401);
    assert_eq!(
        forged.body,
        "the X-Hub-Signature-256 signature does not match the body and the webhook secret\n"
    );
    let unsigned = post(
        running.address,
        "/webhook",
        &[("X-GitHub-Event", "push")],
        PUSH,
    )
    .await;
    assert_eq!(unsigned.status, 401);
    let token = [
        ("X-Gitlab-Event", "Push Hook"),
        ("X-Gitlab-Token", "webhook"),
    ];
    assert_eq!(
        post(running.address, "/webhook", &token, PUSH).await.status,
        401
    );
    assert!(running.pushes.try_recv().is_err());
    assert_eq!(
        refusals(&running),
        [
            Refusal::Webhook(WebhookError::BadSignature),
            Refusal::Webhook(WebhookError::MissingSignature),
            Refusal::Webhook(WebhookError::BadToken),
        ]
    );
    assert!(
        running
            .metrics
            .render()
            .contains("kubectl_gitops_webhooks_total{result=\"refused\"} 3\n")
    );
}

#[tokio::test]
async fn another_event_is_refused_with_400() {
    let running = start(Some(SECRET), 4).await;
    let body = r#"{"action":"opened","issue":{"number":1}}"#;
    let signed = signature(SECRET, body.as_bytes());
    let headers = [
        ("X-GitHub-Event", "issues"),
        ("X-Hub-Signature-256", signed.as_str()),
    ];
    assert_eq!(
        post(running.address, "/webhook", &headers, body)
            .await
            .status,
        400
    );
    assert_eq!(
        refusals(&running),
        [Refusal::Webhook(WebhookError::UnknownEvent(
            "issues".into()
        ))]
    );
}

#[tokio::test]
async fn webhooks_are_not_found_without_a_secret() {
    for secret in [None, Some(&b""[..])] {
        let running = start(secret, 4).await;
        let answer = github_push(running.address, PUSH, SECRET).await;
        assert_eq!(answer.status, 404, "{secret:?}");
        assert_eq!(refusals(&running), [Refusal::Disabled]);
    }
}

#[tokio::test]
async fn other_methods_on_the_webhook_are_refused_with_405() {
    let running = start(Some(SECRET), 4).await;
    let answer = get(running.address, "/webhook").await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.header("allow"), Some("POST"));
    assert_eq!(refusals(&running), [Refusal::Method("GET".into())]);
}

#[tokio::test]
async fn a_body_over_the_limit_is_refused_with_413_unread() {
    let running = start(Some(SECRET), 4).await;
    // The declared length is enough: the body is never sent.
    let request = format!(
        "POST /webhook HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-GitHub-Event: push\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY + 1
    );
    let answer = send(running.address, request.as_bytes()).await;
    assert_eq!(answer.status, 413);
    assert_eq!(refusals(&running), [Refusal::TooLarge]);
}

#[tokio::test]
async fn a_body_without_a_length_is_cut_at_the_limit() {
    let chunks = |sizes: &[usize]| {
        let frames: Vec<Result<Frame<Bytes>, Infallible>> = sizes
            .iter()
            .map(|size| Ok(Frame::data(Bytes::from(vec![b'x'; *size]))))
            .collect();
        StreamBody::new(stream::iter(frames))
    };
    let exact = read_body(chunks(&[MAX_BODY / 2, MAX_BODY / 2])).await;
    assert_eq!(exact.map(|bytes| bytes.len()), Ok(MAX_BODY));
    let over = read_body(chunks(&[MAX_BODY / 2, MAX_BODY / 2, 1])).await;
    assert_eq!(over, Err(Refusal::TooLarge));
    let declared = read_body(Full::new(Bytes::from(vec![0u8; MAX_BODY + 1]))).await;
    assert_eq!(declared, Err(Refusal::TooLarge));
}

#[tokio::test]
async fn a_push_the_full_channel_cannot_take_is_accepted_and_told_as_not_queued() {
    let running = start(Some(SECRET), 1).await;
    assert_eq!(github_push(running.address, PUSH, SECRET).await.status, 202);
    assert_eq!(github_push(running.address, PUSH, SECRET).await.status, 202);
    let queued: Vec<bool> = running
        .events()
        .iter()
        .filter_map(|event| match event {
            EndpointEvent::Push { queued, .. } => Some(*queued),
            _ => None,
        })
        .collect();
    assert_eq!(queued, [true, false]);
}

#[tokio::test]
async fn serving_ends_when_stopped() {
    let running = start(None, 1).await;
    assert_eq!(get(running.address, "/healthz").await.status, 200);
    running.stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), running.server)
        .await
        .expect("serve returned")
        .expect("serve did not panic");
    assert!(TcpStream::connect(running.address).await.is_err());
}
