//! The web surface's gate. On loopback (the default) a request must name
//! the bound host in `Host` (a page on another site that rebinds its DNS
//! name to 127.0.0.1 is refused), and a mutation or websocket upgrade
//! coming from a browser must come from the app's own origin. Bound to any
//! other address, every request needs the token (header `x-minivm-token`,
//! cookie `minivm_token`, or `?token=` once, which sets the cookie).

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
    token: Option<Arc<String>>,
}

impl Gate {
    pub fn new(addr: SocketAddr, token: Option<String>) -> Gate {
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
            token: token.map(Arc::new),
        }
    }

    /// Why a request is refused, if it is.
    pub fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<(), &'static str> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h == host) {
            return Err("this server answers only to its own address (Host header refused)");
        }
        let upgrade = headers.get(header::UPGRADE).is_some();
        let mutation = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
        if upgrade || mutation {
            if let Some(origin) = headers.get(header::ORIGIN) {
                let origin = origin.to_str().unwrap_or("");
                if origin != format!("http://{host}") && origin != format!("https://{host}") {
                    return Err("cross-origin request refused");
                }
            }
        }
        if let Some(token) = &self.token {
            let given = headers
                .get("x-minivm-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or_else(|| cookie(headers, "minivm_token"))
                .or_else(|| query_param(query, "token"));
            if given.as_deref() != Some(token.as_str()) {
                return Err("a token is required (printed by `minivm serve` at start)");
            }
        }
        Ok(())
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
    let query_token = query_param(req.uri().query(), "token");
    if let Err(why) = gate.check(req.method(), req.headers(), req.uri().query()) {
        tracing::warn!(method = %req.method(), uri = %req.uri(), why, "refused");
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    if let Err(why) = check_body_size(req.headers()) {
        tracing::warn!(method = %req.method(), uri = %req.uri(), why, "refused");
        return (StatusCode::PAYLOAD_TOO_LARGE, why).into_response();
    }
    let mut resp = next.run(req).await;
    if let (Some(t), Some(_)) = (query_token, &gate.token) {
        if let Ok(v) = format!("minivm_token={t}; Path=/; HttpOnly; SameSite=Strict").parse() {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
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
    fn loopback_checks_host_and_origin() {
        let g = Gate::new("127.0.0.1:3000".parse().unwrap(), None);
        let own = [
            ("host", "127.0.0.1:3000"),
            ("origin", "http://127.0.0.1:3000"),
        ];
        assert!(g.check(&Method::POST, &headers(&own), None).is_ok());
        assert!(g
            .check(&Method::GET, &headers(&[("host", "localhost:3000")]), None)
            .is_ok());
        assert!(
            g.check(&Method::POST, &headers(&[("host", "localhost:3000")]), None)
                .is_ok(),
            "no Origin: not a browser"
        );
        let rebind = g.check(
            &Method::GET,
            &headers(&[("host", "evil.example:3000")]),
            None,
        );
        assert_eq!(
            rebind.unwrap_err(),
            "this server answers only to its own address (Host header refused)"
        );
        let cross = [
            ("host", "127.0.0.1:3000"),
            ("origin", "http://evil.example"),
        ];
        assert_eq!(
            g.check(&Method::POST, &headers(&cross), None).unwrap_err(),
            "cross-origin request refused"
        );
        assert!(
            g.check(&Method::GET, &headers(&cross), None).is_ok(),
            "a cross-origin GET changes nothing"
        );
        let ws = [
            ("host", "127.0.0.1:3000"),
            ("origin", "http://evil.example"),
            ("upgrade", "websocket"),
        ];
        assert!(
            g.check(&Method::GET, &headers(&ws), None).is_err(),
            "a cross-origin websocket is refused"
        );
    }

    #[test]
    fn off_loopback_needs_the_token() {
        let g = Gate::new("0.0.0.0:3000".parse().unwrap(), Some("s3cret".into()));
        let h = [("host", "lab.example:3000")];
        assert!(g.check(&Method::GET, &headers(&h), None).is_err());
        assert!(g
            .check(&Method::GET, &headers(&h), Some("token=s3cret"))
            .is_ok());
        assert!(g
            .check(
                &Method::GET,
                &headers(&[("host", "x:3000"), ("cookie", "a=b; minivm_token=s3cret")]),
                None
            )
            .is_ok());
        assert!(g
            .check(
                &Method::GET,
                &headers(&[("host", "x:3000"), ("x-minivm-token", "wrong")]),
                None
            )
            .is_err());
    }
}
