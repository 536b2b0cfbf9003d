//! What every request must pass before a page is read, and the headers every answer
//! carries. Pure functions over the request's head, so each rule is tested alone:
//! - the Host header must name the address served (a DNS-rebinding page's requests name
//!   its own host);
//! - the token must come in the URL (then it is exchanged for an HttpOnly, SameSite=Strict
//!   cookie and the URL loses it) or in that cookie;
//! - only GET and HEAD read; a POST from another site is refused before anything else is
//!   looked at, and any POST when the dashboard was started without `--allow-actions`
//!   (with it, the action checks the form's CSRF token).

use std::net::SocketAddr;

use http::header::{COOKIE, HOST, ORIGIN};
use http::{HeaderMap, HeaderValue, Method, StatusCode, request};

use super::token::Token;

/// The Content-Security-Policy of every answer: only this server's own script, styles and
/// images, no inline script or style, no frames, forms post only here.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it.
    Pass,
    /// The URL carried the token: set the cookie and send the browser to `location`, the
    /// same page without the token.
    SetCookie { location: String },
    /// Refuse it, saying why.
    Refuse { status: StatusCode, reason: String },
}

/// The rules of one running dashboard.
#[derive(Debug, Clone)]
pub struct Guard {
    token: Token,
    /// The Host header values that name this server.
    hosts: Vec<String>,
    cookie: String,
    /// Started with `--allow-actions`: same-site POSTs go on to the action.
    actions: bool,
}

impl Guard {
    /// The rules for a dashboard listening on `address`.
    pub fn new(token: Token, address: SocketAddr, actions: bool) -> Guard {
        let port = address.port();
        let mut hosts = vec![address.to_string()];
        // Listening everywhere, the loopback names reach it too (the URL printed uses one).
        if address.ip().is_loopback() || address.ip().is_unspecified() {
            hosts.extend([
                format!("localhost:{port}"),
                format!("127.0.0.1:{port}"),
                format!("[::1]:{port}"),
            ]);
        }
        hosts.dedup();
        Guard {
            token,
            hosts,
            // Cookies are not kept apart by port: two dashboards on one machine each keep
            // their own.
            cookie: format!("kubectl_gitops_dashboard_{port}"),
            actions,
        }
    }

    /// The `Set-Cookie` value that lets the browser in from now on.
    pub fn set_cookie(&self) -> String {
        format!(
            "{}={}; HttpOnly; SameSite=Strict; Path=/",
            self.cookie,
            self.token.as_str()
        )
    }

    /// The verdict on a request's head.
    pub fn check(&self, head: &request::Parts) -> Verdict {
        let host = header(&head.headers, HOST).unwrap_or_default();
        if !self.hosts.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return refuse(
                StatusCode::FORBIDDEN,
                "the Host header does not name this dashboard's address; open the URL kubectl release-history printed",
            );
        }
        let reading = head.method == Method::GET || head.method == Method::HEAD;
        if !reading && head.method != Method::POST {
            return refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "the dashboard answers GET only",
            );
        }
        if head.method == Method::POST && self.cross_site(&head.headers, host) {
            return refuse(
                StatusCode::FORBIDDEN,
                "a request from another site is refused",
            );
        }
        let from_url = query_value(head.uri.query(), "token");
        if reading && let Some(given) = &from_url {
            if self.token.matches(given) {
                return Verdict::SetCookie {
                    location: without_token(head.uri.path(), head.uri.query()),
                };
            }
            return refuse(StatusCode::UNAUTHORIZED, "the token in the URL is wrong");
        }
        let from_cookie = cookie_value(&head.headers, &self.cookie);
        if !from_cookie.is_some_and(|given| self.token.matches(&given)) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "open the URL with its token, as kubectl release-history --web printed it",
            );
        }
        if !reading && !self.actions {
            return refuse(
                StatusCode::FORBIDDEN,
                "the dashboard was started without --allow-actions: it takes no action",
            );
        }
        Verdict::Pass
    }

    /// Whether a POST comes from a page of another site. A browser says where it comes
    /// from in `Sec-Fetch-Site`, which then decides (its `Origin` is `null` under our
    /// `Referrer-Policy: no-referrer`); without it the `Origin` must be this server, and a
    /// POST with neither is taken as cross-site.
    fn cross_site(&self, headers: &HeaderMap, host: &str) -> bool {
        if let Some(site) = header(headers, "sec-fetch-site") {
            return site != "same-origin";
        }
        match header(headers, ORIGIN) {
            Some(origin) => !origin.eq_ignore_ascii_case(&format!("http://{host}")),
            None => true,
        }
    }
}

fn refuse(status: StatusCode, reason: &str) -> Verdict {
    Verdict::Refuse {
        status,
        reason: reason.to_string(),
    }
}

fn header(headers: &HeaderMap, name: impl http::header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of `name` in a URL's query, decoded.
pub fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query?.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The path and query without the token.
fn without_token(path: &str, query: Option<&str>) -> String {
    let rest: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(key, _)| key != "token")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if rest.is_empty() {
        return path.to_string();
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(rest)
        .finish();
    format!("{path}?{query}")
}

/// The value of the cookie `name`, if the request carries it.
fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_string())
}

/// The headers of every answer: what it may load (nothing from elsewhere), that it is not
/// cached, framed or sniffed, and that no Referer leaves with a token in it.
pub fn secure_headers(headers: &mut HeaderMap) {
    let fixed = [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn guard() -> Guard {
        Guard::new(
            Token::from_text("secret"),
            "127.0.0.1:8080".parse().unwrap(),
            false,
        )
    }

    fn head(method: &str, uri: &str, headers: &[(&str, &str)]) -> request::Parts {
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    const COOKIE_OK: (&str, &str) = ("cookie", "other=1; kubectl_gitops_dashboard_8080=secret");

    #[test]
    fn the_token_in_the_url_becomes_a_cookie_and_leaves_the_url() {
        let verdict = guard().check(&head(
            "GET",
            "/app?ns=shop&token=secret&app=web",
            &[("host", "127.0.0.1:8080")],
        ));
        assert_eq!(
            verdict,
            Verdict::SetCookie {
                location: "/app?ns=shop&app=web".into()
            }
        );
        assert_eq!(
            guard().set_cookie(),
            "kubectl_gitops_dashboard_8080=secret; HttpOnly; SameSite=Strict; Path=/"
        );
        let pass = guard().check(&head("GET", "/", &[("host", "localhost:8080"), COOKIE_OK]));
        assert_eq!(pass, Verdict::Pass);
    }

    #[test]
    fn no_token_a_wrong_token_or_another_host_is_refused() {
        let status = |verdict: Verdict| match verdict {
            Verdict::Refuse { status, .. } => status,
            other => panic!("not refused: {other:?}"),
        };
        let g = guard();
        let host = ("host", "127.0.0.1:8080");
        assert_eq!(
            status(g.check(&head("GET", "/", &[host]))),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(g.check(&head("GET", "/?token=secreT", &[host]))),
            StatusCode::UNAUTHORIZED
        );
        let wrong_cookie = ("cookie", "kubectl_gitops_dashboard_8080=nope");
        assert_eq!(
            status(g.check(&head("GET", "/", &[host, wrong_cookie]))),
            StatusCode::UNAUTHORIZED
        );
        let rebinding = ("host", "evil.example:8080");
        assert_eq!(
            status(g.check(&head("GET", "/?token=secret", &[rebinding, COOKIE_OK]))),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(g.check(&head("GET", "/", &[COOKIE_OK]))),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn posts_are_refused_cross_site_ones_first() {
        let g = guard();
        let host = ("host", "127.0.0.1:8080");
        let reason = |verdict: Verdict| match verdict {
            Verdict::Refuse { reason, .. } => reason,
            other => panic!("not refused: {other:?}"),
        };
        let forged = head(
            "POST",
            "/",
            &[host, COOKIE_OK, ("origin", "http://evil.example")],
        );
        assert!(reason(g.check(&forged)).contains("another site"));
        let fetch_site = head(
            "POST",
            "/",
            &[
                host,
                COOKIE_OK,
                ("origin", "http://127.0.0.1:8080"),
                ("sec-fetch-site", "cross-site"),
            ],
        );
        assert!(reason(g.check(&fetch_site)).contains("another site"));
        let same_site = head(
            "POST",
            "/",
            &[host, COOKIE_OK, ("origin", "http://127.0.0.1:8080")],
        );
        assert!(reason(g.check(&same_site)).contains("takes no action"));
        let acting = Guard::new(
            Token::from_text("secret"),
            "127.0.0.1:8080".parse().unwrap(),
            true,
        );
        assert_eq!(acting.check(&same_site), Verdict::Pass);
        assert!(reason(acting.check(&forged)).contains("another site"));
        let browser_form = head(
            "POST",
            "/",
            &[
                host,
                COOKIE_OK,
                ("origin", "null"),
                ("sec-fetch-site", "same-origin"),
            ],
        );
        assert_eq!(acting.check(&browser_form), Verdict::Pass);
        let null_origin = head("POST", "/", &[host, COOKIE_OK, ("origin", "null")]);
        assert!(reason(acting.check(&null_origin)).contains("another site"));
        let put = head("PUT", "/", &[host, COOKIE_OK]);
        assert!(matches!(
            g.check(&put),
            Verdict::Refuse {
                status: StatusCode::METHOD_NOT_ALLOWED,
                ..
            }
        ));
    }

    #[test]
    fn every_answer_forbids_loading_from_elsewhere() {
        let mut headers = HeaderMap::new();
        secure_headers(&mut headers);
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"));
        assert!(csp.contains("script-src 'self';"));
        assert!(!csp.contains("unsafe-inline"));
        assert_eq!(headers["referrer-policy"], "no-referrer");
    }
}
