//! The web surface's gate. Every request but `/healthz` and the published
//! schema needs the server's token, on loopback too: any local user's
//! process can reach a loopback port, and the API starts VMs, reads
//! consoles and writes files as root. The token comes as a header
//! (`x-minivm-token`, for scripts and the CLI), a cookie (`minivm_token`,
//! HttpOnly, SameSite=Strict), or once in the login URL `minivm serve`
//! prints (`?token=`), which sets the cookie and redirects to the same page
//! without it. A missing or wrong token is 401. On loopback a request must
//! also name the bound host in `Host` (a page on another site that rebinds
//! its DNS name to 127.0.0.1 is refused), and a mutation or websocket
//! upgrade coming from a browser must come from the app's own origin
//! (403).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

#[derive(Clone)]
pub struct Gate {
    /// `Host` values accepted (loopback only; empty: any, the token guards).
    hosts: Arc<Vec<String>>,
    token: Arc<String>,
}

/// Why a request is refused: 403 for where it comes from, 401 without the
/// token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Forbidden(&'static str),
    Unauthorized,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Forbidden(_) => StatusCode::FORBIDDEN,
            Refusal::Unauthorized => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::Forbidden(why) => why,
            Refusal::Unauthorized => "a token is required: open the login URL that `minivm serve` printed (root can read it in the state directory's run/serve.json)",
        }
    }
}

/// Paths answered without the token: they say nothing of the labs.
fn public(path: &str) -> bool {
    matches!(path, "/healthz" | "/schema/topology.v1.json")
}

impl Gate {
    pub fn new(addr: SocketAddr, token: String) -> Gate {
        let port = addr.port();
        let hosts = if addr.ip().is_loopback() {
            vec![
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
                addr.to_string(),
            ]
        } else {
            Vec::new()
        };
        Gate {
            hosts: Arc::new(hosts),
            token: Arc::new(token),
        }
    }

    /// Why a request for `path` is refused, if it is.
    pub fn check(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), Refusal> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h == host) {
            return Err(Refusal::Forbidden(
                "this server answers only to its own address (Host header refused)",
            ));
        }
        let upgrade = headers.get(header::UPGRADE).is_some();
        let mutation = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if upgrade || mutation {
            if let Some(origin) = headers.get(header::ORIGIN) {
                let origin = origin.to_str().unwrap_or("");
                if origin != format!("http://{host}") && origin != format!("https://{host}") {
                    return Err(Refusal::Forbidden("cross-origin request refused"));
                }
            }
        }
        if public(path) {
            return Ok(());
        }
        let given = [
            headers
                .get("x-minivm-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            cookie(headers, "minivm_token"),
            query_param(query, "token"),
        ];
        if given
            .iter()
            .flatten()
            .any(|t| same(t.as_bytes(), self.token.as_bytes()))
        {
            Ok(())
        } else {
            Err(Refusal::Unauthorized)
        }
    }
}

/// Compares in time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// `uri` without its `token` parameter (where the login URL redirects).
fn without_token(path: &str, query: Option<&str>) -> String {
    let rest: Vec<&str> = query
        .unwrap_or("")
        .split('&')
        .filter(|kv| !kv.is_empty() && kv.split('=').next() != Some("token"))
        .collect();
    if rest.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", rest.join("&"))
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| v.to_string())
    })
}

pub async fn middleware(State(gate): State<Gate>, req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path().to_string();
    // The token is never logged: a refused request's query is left out.
    if let Err(r) = gate.check(req.method(), &path, req.headers(), req.uri().query()) {
        tracing::warn!(method = %req.method(), %path, why = r.message(), "refused");
        return (r.status(), r.message()).into_response();
    }
    if let Err(why) = check_body_size(req.headers()) {
        tracing::warn!(method = %req.method(), %path, why, "refused");
        return (StatusCode::PAYLOAD_TOO_LARGE, why).into_response();
    }
    // The login URL: the token becomes a cookie, and the page is opened
    // again without it (out of the address bar and the history).
    let query = req.uri().query();
    if req.method() == Method::GET
        && query_param(query, "token").is_some_and(|t| same(t.as_bytes(), gate.token.as_bytes()))
    {
        let to = without_token(&path, query);
        let cookie = format!(
            "minivm_token={}; Path=/; HttpOnly; SameSite=Strict",
            gate.token
        );
        return (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, to), (header::SET_COOKIE, cookie)],
        )
            .into_response();
    }
    next.run(req).await
}

/// The largest request body read (serve.rs gives axum the same limit, so a
/// body sent without a length stops there too). A lab of hundreds of VMs
/// is a few hundred KiB.
pub const MAX_BODY: u64 = 2 * 1024 * 1024;

/// Refuses a body whose declared length is over [`MAX_BODY`], before it is
/// read, with both sizes in the message.
fn check_body_size(headers: &HeaderMap) -> Result<(), String> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(len) if len > MAX_BODY => Err(format!(
            "the request body is {len} bytes, over the limit of {MAX_BODY} bytes ({} MiB)",
            MAX_BODY / (1024 * 1024)
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_over_the_limit_is_refused_with_both_sizes() {
        let big = (MAX_BODY + 1).to_string();
        let e = check_body_size(&headers(&[("content-length", big.as_str())])).unwrap_err();
        assert!(e.contains(&big) && e.contains("2 MiB"), "{e}");
        let fits = MAX_BODY.to_string();
        assert!(check_body_size(&headers(&[("content-length", fits.as_str())])).is_ok());
        assert!(check_body_size(&headers(&[])).is_ok());
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn loopback_checks_host_and_origin_and_wants_the_token() {
        let g = Gate::new("127.0.0.1:3000".parse().unwrap(), "s3cret".into());
        let own = [
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3000"),
            ("x-minivm-token", "s3cret"),
        ];
        assert!(g
            .check(&Method::POST, "/api/x", &headers(&own), None)
            .is_ok());
        let local = |extra: &[(&'static str, &str)]| {
            let mut h = vec![("host", "localhost:3000")];
            h.extend_from_slice(extra);
            headers(&h)
        };
        assert!(g
            .check(
                &Method::GET,
                "/",
                &local(&[("cookie", "minivm_token=s3cret")]),
                None
            )
            .is_ok());
        assert!(
            g.check(
                &Method::POST,
                "/api/x",
                &local(&[("x-minivm-token", "s3cret")]),
                None
            )
            .is_ok(),
            "no Origin: not a browser"
        );
        // Any other local user's process: no token, 401; only the health
        // check and the schema answer.
        assert_eq!(
            g.check(&Method::POST, "/api/list_labs", &local(&[]), None),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(
            g.check(
                &Method::GET,
                "/",
                &local(&[("x-minivm-token", "s3cre")]),
                None
            ),
            Err(Refusal::Unauthorized)
        );
        assert_eq!(Refusal::Unauthorized.status(), StatusCode::UNAUTHORIZED);
        assert!(g.check(&Method::GET, "/healthz", &local(&[]), None).is_ok());
        assert!(g
            .check(&Method::GET, "/schema/topology.v1.json", &local(&[]), None)
            .is_ok());
        let rebind = g.check(
            &Method::GET,
            "/",
            &headers(&[("host", "evil.example:3000"), ("x-minivm-token", "s3cret")]),
            None,
        );
        assert_eq!(
            rebind.unwrap_err(),
            Refusal::Forbidden("this server answers only to its own address (Host header refused)")
        );
        let cross = [
            ("host", "127.0.0.1:3000"),
            ("origin", "http://evil.example"),
            ("cookie", "minivm_token=s3cret"),
        ];
        assert_eq!(
            g.check(&Method::POST, "/api/x", &headers(&cross), None)
                .unwrap_err(),
            Refusal::Forbidden("cross-origin request refused")
        );
        let ws = [
            ("host", "127.0.0.1:3000"),
            ("origin", "http://evil.example"),
            ("upgrade", "websocket"),
            ("cookie", "minivm_token=s3cret"),
        ];
        assert!(
            g.check(&Method::GET, "/ws/events", &headers(&ws), None)
                .is_err(),
            "a cross-origin websocket is refused"
        );
    }

    #[test]
    fn the_login_url_loses_its_token_on_redirect() {
        assert_eq!(without_token("/", Some("token=abc")), "/");
        assert_eq!(without_token("/", Some("lab=x&token=abc")), "/?lab=x");
        assert_eq!(
            without_token("/", Some("token=abc&lab=x&a=b")),
            "/?lab=x&a=b"
        );
        assert_eq!(without_token("/p", None), "/p");
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }

    #[test]
    fn off_loopback_needs_the_token() {
        let g = Gate::new("0.0.0.0:3000".parse().unwrap(), "s3cret".into());
        let h = [("host", "lab.example:3000")];
        assert!(g.check(&Method::GET, "/", &headers(&h), None).is_err());
        assert!(g
            .check(&Method::GET, "/", &headers(&h), Some("token=s3cret"))
            .is_ok());
        assert!(g
            .check(
                &Method::GET,
                "/",
                &headers(&[("host", "x:3000"), ("cookie", "a=b; minivm_token=s3cret")]),
                None
            )
            .is_ok());
        assert!(g
            .check(
                &Method::GET,
                "/",
                &headers(&[("host", "x:3000"), ("x-minivm-token", "wrong")]),
                None
            )
            .is_err());
    }
}
