//! The HTTP/1.1 server: every request passes the [`Guard`], then is routed to a page.
//! Pages are read from the clusters when asked, so each shows the cluster as it is.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use http::{Request, Response, StatusCode, header};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::broadcast;

use super::actions::{self, Actions};
use super::data::{self, AppRef, Cluster};
use super::guard::{Guard, Verdict, query_value, secure_headers};
use super::html::{escape, href, page};
use super::pages::{self, overview::Filters};
use super::states::States;
use super::token::Token;
use super::{DashboardError, live};
use crate::objects::ObjectKey;
use crate::release::history::Source;

type Body = BoxBody<Bytes, Infallible>;

const STYLESHEET: &str = include_str!("assets/dashboard.css");
/// The largest action form read.
const MAX_FORM: usize = 16 * 1024;
const SCRIPT: &str = include_str!("assets/dashboard.js");

/// A running dashboard's state: the clusters it shows, its rules, and the channel its
/// watches tell of changes on.
pub struct Dashboard {
    pub clusters: Vec<Cluster>,
    guard: Guard,
    changes: broadcast::Sender<live::Change>,
    /// Started with `--allow-actions`.
    actions: Option<Actions>,
    states: Arc<States>,
}

impl Dashboard {
    /// The dashboard of `clusters` served on `address` to whoever has `token`; with
    /// `actions`, it offers them.
    pub fn new(
        clusters: Vec<Cluster>,
        token: Token,
        address: SocketAddr,
        actions: Option<Actions>,
    ) -> Arc<Dashboard> {
        let (changes, _) = broadcast::channel(64);
        Arc::new(Dashboard {
            clusters,
            guard: Guard::new(token, address, actions.is_some()),
            changes,
            actions,
            states: Arc::new(States::default()),
        })
    }

    /// Starts the watches that keep open pages current.
    pub async fn watch(&self) {
        let watched = live::watched(&self.clusters).await;
        live::start(&self.clusters, watched, &self.changes);
        let (states, mut changes) = (self.states.clone(), self.changes.subscribe());
        tokio::spawn(async move {
            loop {
                match changes.recv().await {
                    Ok(change) => states.changed(&change),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        states.changed(&live::Change::Unknown)
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
}

/// Listens on `address` (port 0: a free port) and returns the address it got.
pub async fn bind(address: SocketAddr) -> Result<(TcpListener, SocketAddr), DashboardError> {
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| DashboardError::Bind { address, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| DashboardError::Bind { address, source })?;
    Ok((listener, bound))
}

/// Answers connections until the task is dropped. The drift check's futures are not
/// `Send`, so connections are served on this thread's local task set.
pub async fn serve(listener: TcpListener, dashboard: Arc<Dashboard>) {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let dashboard = dashboard.clone();
                tokio::task::spawn_local(async move {
                    let service = service_fn(move |request| {
                        let dashboard = dashboard.clone();
                        async move { Ok::<_, Infallible>(respond(&dashboard, request).await) }
                    });
                    // A client that goes away mid-answer is no error of ours.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        })
        .await;
}

/// The answer to one request, with the security headers on it. Runs on [`serve`]'s local
/// task set, where the overview starts its background checks.
async fn respond(dashboard: &Arc<Dashboard>, request: Request<Incoming>) -> Response<Body> {
    let (head, body) = request.into_parts();
    let mut response = match dashboard.guard.check(&head) {
        Verdict::Pass if head.method == http::Method::POST => act(dashboard, &head, body).await,
        Verdict::Pass => route(dashboard, &head).await,
        Verdict::SetCookie { location } => {
            let mut response = empty(StatusCode::SEE_OTHER);
            if let Ok(value) = location.parse() {
                response.headers_mut().insert(header::LOCATION, value);
            }
            if let Ok(value) = dashboard.guard.set_cookie().parse() {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Verdict::Refuse { status, reason } => text(status, &reason),
    };
    secure_headers(response.headers_mut());
    response
}

async fn route(dashboard: &Arc<Dashboard>, head: &http::request::Parts) -> Response<Body> {
    let query = head.uri.query();
    let result = match head.uri.path() {
        "/" => Ok(overview(dashboard, query).await),
        "/app" => app_page(dashboard, query).await,
        "/object" => object_page(dashboard, query).await,
        "/history" => history_page(dashboard, query).await,
        "/diff" => diff_page(dashboard, query).await,
        "/rollback" => rollback_page(dashboard, query).await,
        "/heal" => heal_page(dashboard, query).await,
        "/events" => return events(dashboard),
        "/assets/dashboard.css" => return asset("text/css; charset=utf-8", STYLESHEET),
        "/assets/dashboard.js" => return asset("text/javascript; charset=utf-8", SCRIPT),
        _ => Err(Failure::NotFound("no such page".into())),
    };
    page_or_failure(result)
}

fn page_or_failure(result: Result<String, Failure>) -> Response<Body> {
    match result {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(failure) => {
            let (status, message) = match failure {
                Failure::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
                Failure::NotFound(m) => (StatusCode::NOT_FOUND, m),
                Failure::Cluster(m) => (StatusCode::BAD_GATEWAY, m),
            };
            let body = format!(
                "<h1>{}</h1>\n<p class=\"error\">{}</p>\n<p><a href=\"/\">All apps</a></p>\n",
                status.as_u16(),
                escape(&message)
            );
            html_response(status, page("Error", &body))
        }
    }
}

/// Why a page cannot be shown.
enum Failure {
    BadRequest(String),
    NotFound(String),
    /// The cluster could not be read.
    Cluster(String),
}

/// The overview, answered at once from the release records: an app whose state is not
/// known yet says `checking`, its check runs after the answer, and the open pages are
/// told (server-sent events) as each one is known.
async fn overview(dashboard: &Arc<Dashboard>, query: Option<&str>) -> String {
    let filters = Filters {
        namespace: param(query, "ns"),
        status: param(query, "status"),
        health: param(query, "health"),
    };
    let clusters = super::overview::overview(&dashboard.clusters, &dashboard.states).await;
    for cluster in &clusters {
        let apps: Vec<AppRef> = cluster.checking().cloned().collect();
        if let Some(index) = apps.first().map(|app| app.cluster) {
            let dashboard = dashboard.clone();
            tokio::task::spawn_local(async move {
                let Some(cluster) = dashboard.clusters.get(index) else {
                    return;
                };
                let told = || {
                    // No page open: nobody to tell, which is fine.
                    let _ = dashboard.changes.send(live::Change::Checked);
                };
                dashboard.states.check(cluster, apps, told).await;
            });
        }
    }
    pages::overview::render(&clusters, &filters)
}

async fn app_page(dashboard: &Dashboard, query: Option<&str>) -> Result<String, Failure> {
    let (app, cluster) = app_ref(dashboard, query)?;
    let state = dashboard
        .states
        .get(cluster, &app)
        .await
        .map_err(Failure::Cluster)?;
    Ok(pages::app::render(
        &app,
        &cluster.context,
        &state,
        dashboard.actions.is_some(),
    ))
}

async fn object_page(dashboard: &Dashboard, query: Option<&str>) -> Result<String, Failure> {
    let (app, cluster) = app_ref(dashboard, query)?;
    let key = ObjectKey {
        group: param(query, "g").unwrap_or_default(),
        kind: required(query, "k")?,
        namespace: param(query, "on"),
        name: required(query, "n")?,
    };
    let state = dashboard
        .states
        .get(cluster, &app)
        .await
        .map_err(Failure::Cluster)?;
    // Only the app's own objects and what they own: the page is no general object reader.
    if !state.tree.walk().iter().any(|(_, node)| node.key == key) {
        return Err(Failure::NotFound(format!(
            "{key} is not in the resource tree of app {}",
            app.app
        )));
    }
    let detail = data::object_detail(cluster, &state, &key)
        .await
        .map_err(Failure::Cluster)?;
    Ok(pages::app::render_object(&app, &detail))
}

async fn history_page(dashboard: &Dashboard, query: Option<&str>) -> Result<String, Failure> {
    let (app, cluster) = app_ref(dashboard, query)?;
    let history = data::releases(cluster, &app)
        .await
        .map_err(Failure::Cluster)?;
    Ok(pages::history::render(
        &app,
        &history,
        dashboard.actions.is_some(),
    ))
}

/// The run's actions, or the page's answer when it was started without them.
fn allowed(dashboard: &Dashboard) -> Result<&Actions, Failure> {
    dashboard.actions.as_ref().ok_or_else(|| {
        Failure::NotFound(
            "the dashboard was started without --allow-actions: it takes no action".into(),
        )
    })
}

/// The page that asks before a rollback, with what it would change.
async fn rollback_page(dashboard: &Dashboard, query: Option<&str>) -> Result<String, Failure> {
    let actions = allowed(dashboard)?;
    let (app, cluster) = app_ref(dashboard, query)?;
    let revision = revision(query, "rev")?;
    let preview = actions::preview_rollback(cluster, &app, revision)
        .await
        .map_err(Failure::Cluster)?;
    Ok(pages::history::render_rollback(
        &app,
        &preview,
        actions.csrf(),
    ))
}

/// The page that asks before a heal, with what a drift check finds now.
async fn heal_page(dashboard: &Dashboard, query: Option<&str>) -> Result<String, Failure> {
    let actions = allowed(dashboard)?;
    let (app, cluster) = app_ref(dashboard, query)?;
    let checked = actions::check_drift(cluster, &app)
        .await
        .map_err(Failure::Cluster)?;
    Ok(pages::app::render_heal(
        &app,
        &checked.report,
        actions.csrf(),
    ))
}

/// A POST (the guard let it through: actions are allowed, and it is not from another
/// site): its form must carry the run's CSRF token.
async fn act(dashboard: &Dashboard, head: &http::request::Parts, body: Incoming) -> Response<Body> {
    let Some(actions) = &dashboard.actions else {
        return text(StatusCode::FORBIDDEN, "the dashboard takes no action");
    };
    let path = head.uri.path();
    if path != "/rollback" && path != "/heal" {
        return text(StatusCode::NOT_FOUND, "no such action");
    }
    let form = match Limited::new(body, MAX_FORM).collect().await {
        Ok(collected) => String::from_utf8_lossy(&collected.to_bytes()).into_owned(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large"),
    };
    let form = Some(form.as_str());
    if !param(form, "csrf").is_some_and(|given| actions.csrf_matches(&given)) {
        return text(
            StatusCode::FORBIDDEN,
            "the form's CSRF token is missing or wrong: open the page again and resend it",
        );
    }
    let done = async {
        let (app, cluster) = app_ref(dashboard, form)?;
        let params = pages::app_params(&app);
        // What the action wrote is read again at once, not when its watch events come in.
        let acted = live::Change::Release {
            cluster: app.cluster,
            namespace: app.namespace.clone(),
            app: app.app.clone(),
        };
        if path == "/heal" {
            let healed = actions::heal_drift(cluster, &app).await;
            dashboard.states.changed(&acted);
            healed.map_err(Failure::Cluster)?;
            return Ok(href("/app", &pages::pairs(&params)));
        }
        let revision = revision(form, "rev")?;
        let rolled_back = actions::rollback(cluster, &app, revision).await;
        dashboard.states.changed(&acted);
        rolled_back.map_err(Failure::Cluster)?;
        Ok::<_, Failure>(href("/history", &pages::pairs(&params)))
    };
    match done.await {
        Ok(location) => {
            let mut response = empty(StatusCode::SEE_OTHER);
            if let Ok(value) = location.parse() {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        Err(failure) => page_or_failure(Err(failure)),
    }
}

async fn diff_page(dashboard: &Dashboard, query: Option<&str>) -> Result<String, Failure> {
    let (app, cluster) = app_ref(dashboard, query)?;
    let before = revision(query, "a")?;
    let after = revision(query, "b")?;
    let diff = data::release_diff(cluster, &app, before, after)
        .await
        .map_err(Failure::Cluster)?;
    Ok(pages::history::render_diff(&app, &diff))
}

fn events(dashboard: &Dashboard) -> Response<Body> {
    let stream = live::events_body(dashboard.changes.subscribe())
        .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/event-stream"),
    );
    response
}

/// The app a query names, and its cluster.
fn app_ref<'d>(
    dashboard: &'d Dashboard,
    query: Option<&str>,
) -> Result<(AppRef, &'d Cluster), Failure> {
    let index = match param(query, "c") {
        None => 0,
        Some(c) => c
            .parse::<usize>()
            .map_err(|_| Failure::BadRequest(format!("\"{c}\" is not a cluster number")))?,
    };
    let cluster = dashboard
        .clusters
        .get(index)
        .ok_or_else(|| Failure::NotFound(format!("no cluster number {index}")))?;
    let source = match param(query, "src").as_deref() {
        Some("helm") => Source::Helm,
        Some("kubectl-gitops") | None => Source::Gitops,
        Some(other) => {
            return Err(Failure::BadRequest(format!(
                "\"{other}\" is no source: kubectl-gitops or helm"
            )));
        }
    };
    let app = AppRef {
        cluster: index,
        namespace: required(query, "ns")?,
        app: required(query, "app")?,
        source,
    };
    Ok((app, cluster))
}

/// A query parameter; an empty one counts as absent.
fn param(query: Option<&str>, name: &str) -> Option<String> {
    query_value(query, name).filter(|v| !v.is_empty())
}

fn required(query: Option<&str>, name: &str) -> Result<String, Failure> {
    param(query, name).ok_or_else(|| Failure::BadRequest(format!("the page needs \"{name}\"")))
}

fn revision(query: Option<&str>, name: &str) -> Result<u32, Failure> {
    let text = required(query, name)?;
    text.parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| Failure::BadRequest(format!("\"{text}\" is not a release number")))
}

fn full(body: impl Into<Bytes>) -> Body {
    BodyExt::boxed(Full::new(body.into()))
}

fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = status;
    response
}

fn text(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(full(format!("{message}\n")));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn html_response(status: StatusCode, html: String) -> Response<Body> {
    let mut response = Response::new(full(html));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    response
}
