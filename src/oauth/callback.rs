//! The loopback listener the browser is redirected to at the end of a sign-in.
//!
//! It listens on `127.0.0.1:PORT` (the port of the registered redirect URI), answers
//! every request with a small page, and ends at the first redirect that carries
//! this sign-in's `state`: a code, or Looker's refusal. Anything else (a favicon, a
//! stale tab of an earlier sign-in, another local user guessing) gets an error page
//! and changes nothing, so it cannot end or steer the sign-in. The wait is bounded.

use crate::secret::Secret;
use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// How long one connection may take to send its request head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the page that ends the sign-in may take to reach the browser before
/// the listener closes anyway.
const LAST_PAGE_GRACE: Duration = Duration::from_secs(2);

/// Why no code came back.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// The port could not be listened on.
    #[error("cannot listen on 127.0.0.1:{port} for the sign-in's redirect: {source}; {}", bind_hint(*.port, .source))]
    Bind {
        /// The port asked for.
        port: u16,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Nobody came back in time.
    #[error("no sign-in came back within {}s; run `lookerctl login` again (with --timeout for more time), and finish the sign-in in the browser", .0.as_secs())]
    TimedOut(Duration),
    /// Looker (or the person) refused: `access_denied` when Deny was clicked.
    #[error("the sign-in was refused: {error}{}", description_part(.description))]
    Refused {
        /// OAuth's error code.
        error: String,
        /// Its description, if any.
        description: Option<String>,
    },
    /// The listener failed while waiting.
    #[error("the sign-in's redirect listener failed: {0}")]
    Io(#[source] std::io::Error),
}

fn bind_hint(port: u16, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "another program (another `lookerctl login`?) uses port {port}: stop it, or pass --port with the \
             port of a redirect URI registered for the OAuth app"
        ),
        _ => "check that loopback networking works here".into(),
    }
}

fn description_part(d: &Option<String>) -> String {
    d.as_deref().map(|d| format!(" ({d})")).unwrap_or_default()
}

/// What a redirect with the right state brought.
type Outcome = Result<Secret, CallbackError>;

/// A bound listener, waiting to be [`wait`](Callback::wait)ed on.
pub struct Callback {
    listener: TcpListener,
    port: u16,
}

impl Callback {
    /// Listens on `127.0.0.1:port` (0: any free port, for tests).
    pub async fn bind(port: u16) -> Result<Callback, CallbackError> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| CallbackError::Bind { port, source })?;
        let port = listener.local_addr().map_err(CallbackError::Io)?.port();
        Ok(Callback { listener, port })
    }

    /// The port listened on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until a redirect carries `state`, or `timeout` passes; the code it brought.
    pub async fn wait(self, state: &str, timeout: Duration) -> Result<Secret, CallbackError> {
        let (tx, mut rx) = mpsc::channel::<Outcome>(1);
        let state: Arc<str> = state.into();
        let mut builder = http1::Builder::new();
        builder.timer(TokioTimer::new()).header_read_timeout(HEAD_TIMEOUT).keep_alive(false);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                outcome = rx.recv() => {
                    return outcome.unwrap_or(Err(CallbackError::TimedOut(timeout)));
                }
                () = &mut deadline => return Err(CallbackError::TimedOut(timeout)),
                accepted = self.listener.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    let (tx, state, builder) = (tx.clone(), state.clone(), builder.clone());
                    tokio::spawn(async move {
                        // Set by the request that ends the sign-in; sent once its page is out,
                        // so the browser shows it before this process exits.
                        let ended: Arc<Mutex<Option<Outcome>>> = Arc::default();
                        let seen = ended.clone();
                        let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (page, outcome) = answer(&req, &state);
                            if let Some(o) = outcome {
                                *seen.lock().unwrap_or_else(|p| p.into_inner()) = Some(o);
                            }
                            async move { Ok::<_, std::convert::Infallible>(page) }
                        });
                        let conn = builder.serve_connection(TokioIo::new(stream), svc);
                        let _ = tokio::time::timeout(HEAD_TIMEOUT + LAST_PAGE_GRACE, conn).await;
                        let outcome = ended.lock().unwrap_or_else(|p| p.into_inner()).take();
                        if let Some(o) = outcome {
                            let _ = tx.send(o).await;
                        }
                    });
                }
            }
        }
    }
}

/// The page for one request, and the sign-in's outcome if it ends it.
fn answer<B>(req: &Request<B>, state: &str) -> (Response<Full<Bytes>>, Option<Outcome>) {
    if req.method() != Method::GET {
        return (
            page(
                StatusCode::METHOD_NOT_ALLOWED,
                "Not here",
                "This address only takes the sign-in's redirect.",
            ),
            None,
        );
    }
    let pairs: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let get = |name: &str| pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let has_answer = get("code").is_some() || get("error").is_some();
    if !has_answer {
        return (
            page(StatusCode::NOT_FOUND, "Not here", "This address only takes the sign-in's redirect."),
            None,
        );
    }
    // Compared without an early exit: the state is what ties the redirect to this sign-in.
    let same_state = get("state").is_some_and(|s| {
        s.len() == state.len() && s.bytes().zip(state.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
    });
    if !same_state {
        return (
            page(
                StatusCode::BAD_REQUEST,
                "Not this sign-in",
                "This redirect does not belong to the sign-in lookerctl is waiting for (an old tab?). \
                 Nothing was changed; finish the sign-in from the link lookerctl printed.",
            ),
            None,
        );
    }
    match (get("code"), get("error")) {
        (Some(code), None) if !code.is_empty() => (
            page(
                StatusCode::OK,
                "Signed in",
                "lookerctl has the sign-in and is finishing it. You can close this tab and return to the terminal.",
            ),
            Some(Ok(Secret::new(code))),
        ),
        (_, error) => {
            let error = clean(error.unwrap_or("invalid_request"));
            let description = get("error_description").map(clean).filter(|d| !d.is_empty());
            (
                page(
                    StatusCode::OK,
                    "Not signed in",
                    "The sign-in was refused. Nothing was stored; return to the terminal for what to do next.",
                ),
                Some(Err(CallbackError::Refused { error, description })),
            )
        }
    }
}

/// A value from the browser, safe to print: no control characters, capped.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(200).collect()
}

fn page(status: StatusCode, title: &str, text: &str) -> Response<Full<Bytes>> {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1 id=\"title\">{title}</h1><p>{text}</p></body></html>"
    );
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    // The page names no third party, and nothing on it should be sent elsewhere.
    h.insert(hyper::header::REFERRER_POLICY, hyper::header::HeaderValue::from_static("no-referrer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(port: u16, target: &str) -> (u16, String) {
        let resp = reqwest::get(format!("http://127.0.0.1:{port}{target}")).await.expect("get");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    }

    #[tokio::test]
    async fn strays_are_turned_away_and_the_right_state_ends_the_wait() {
        let cb = Callback::bind(0).await.unwrap();
        let port = cb.port();
        let waiting = tokio::spawn(cb.wait("the-state", Duration::from_secs(60)));
        assert_eq!(get(port, "/favicon.ico").await.0, 404);
        assert_eq!(get(port, "/?code=evil&state=other").await.0, 400);
        assert_eq!(get(port, "/?code=evil").await.0, 400);
        let (status, body) = get(port, "/?code=the-code&state=the-state").await;
        assert_eq!(status, 200);
        assert!(body.contains("Signed in"), "{body}");
        assert_eq!(waiting.await.unwrap().unwrap().expose(), "the-code");
    }

    #[tokio::test]
    async fn a_refusal_ends_the_wait_with_its_words() {
        let cb = Callback::bind(0).await.unwrap();
        let port = cb.port();
        let waiting = tokio::spawn(cb.wait("s", Duration::from_secs(60)));
        get(port, "/?error=access_denied&error_description=the+user+said+no&state=s").await;
        let err = waiting.await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "the sign-in was refused: access_denied (the user said no)");
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_bounded() {
        let cb = Callback::bind(0).await.unwrap();
        let err = cb.wait("s", Duration::from_secs(300)).await.unwrap_err();
        assert!(matches!(err, CallbackError::TimedOut(d) if d == Duration::from_secs(300)), "{err}");
    }

    #[tokio::test]
    async fn a_port_in_use_says_what_to_do() {
        let first = Callback::bind(0).await.unwrap();
        let Err(err) = Callback::bind(first.port()).await else { panic!("bound twice") };
        assert!(err.to_string().contains("--port"), "{err}");
    }
}
