//! The host as a local HTTP gateway: clients connect to [`Gateway::addr`], each request runs
//! through the filter and on to a real upstream, and the upstream's answer streams back through
//! the filter to the client.
//!
//! One thread owns the [`Host`], as one gateway worker owns its Wasm instance, and serves
//! connections one at a time (one request per connection, `Connection: close`):
//!
//! 1. The request is read whole, then `on_http_request_headers` (with `:method`, `:path`,
//!    `:authority`, `:scheme`) and `on_http_request_body` run.
//! 2. The request as the filter left it goes upstream with [`http::send_streaming`].
//! 3. The upstream's response headers go through `on_http_response_headers`, then every body
//!    chunk through `on_http_response_body` as it arrives; what the filter lets through is
//!    written to the client at once, with chunked transfer-encoding.
//! 4. The stream ends (`on_log`, `on_done`, `on_delete`).
//!
//! A local response (Kong's 500 after a failed `on_configure`, Envoy's fail-closed 503, or one the
//! filter sends) is written instead of contacting the upstream. The clock is real and the root
//! context's ticks run on time, between requests and during a streamed response; callout
//! responses are delivered as soon as they arrive.

use std::cell::RefCell;
use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::clock::ClockMode;
use crate::error::HostError;
use crate::host::{Host, StreamId};
use crate::http::{self, HttpError, Request, MAX_BODY_BYTES, MAX_HEADERS, MAX_HEAD_BYTES};
use crate::options::HostOptions;
use crate::state::LocalResponse;
use crate::WasmModule;

/// Longest pause of the worker loop: how often it looks for a new connection when idle.
const POLL: Duration = Duration::from_millis(5);
/// How long the gateway waits for a client to send its request.
const CLIENT_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one upstream exchange may take, response body included.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(120);
/// The wait per pump while a request is held by the filter for its callouts.
const HELD_REQUEST_PUMP: Duration = Duration::from_millis(50);

/// Hop-by-hop headers (RFC 9110 §7.6.1) and framing headers the gateway sets itself.
const NOT_FORWARDED: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
];

/// Why a [`Gateway`] could not start or answer.
#[derive(Debug)]
pub enum GatewayError {
    /// The listening socket could not be set up.
    Listen(io::Error),
    /// The worker thread could not be spawned.
    Spawn(io::Error),
    /// The filter could not be loaded or configured.
    Host(HostError),
    /// The worker thread has stopped (after [`Gateway::stop`], or a panic).
    Stopped,
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::Listen(e) => write!(f, "cannot listen on 127.0.0.1: {e}"),
            GatewayError::Spawn(e) => write!(f, "cannot spawn the gateway thread: {e}"),
            GatewayError::Host(e) => write!(f, "cannot start the filter: {e}"),
            GatewayError::Stopped => f.write_str("the gateway has stopped"),
        }
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GatewayError::Listen(e) | GatewayError::Spawn(e) => Some(e),
            GatewayError::Host(e) => Some(e),
            GatewayError::Stopped => None,
        }
    }
}

impl From<HostError> for GatewayError {
    fn from(e: HostError) -> Self {
        GatewayError::Host(e)
    }
}

/// Work handed to the worker thread.
type Job = Box<dyn FnOnce(&mut Worker) + Send>;

enum Command {
    Run(Job),
    Stop,
}

/// A running gateway on `127.0.0.1`. Dropping it stops the worker thread.
pub struct Gateway {
    addr: SocketAddr,
    commands: Sender<Command>,
    worker: Option<JoinHandle<()>>,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("addr", &self.addr)
            .field("running", &self.worker.is_some())
            .finish()
    }
}

impl Gateway {
    /// Starts a gateway on an ephemeral port of `127.0.0.1` that runs `module` with `options`
    /// and proxies to `upstream`.
    ///
    /// The clock is forced to [`ClockMode::Real`] (ticks run on wall-clock time) and
    /// `options.upstream_addr` is set to `upstream`.
    ///
    /// # Errors
    /// [`GatewayError::Host`] when the filter does not load or Envoy rejects its
    /// configuration; [`GatewayError::Listen`] / [`GatewayError::Spawn`] for environment
    /// failures.
    pub fn start(
        module: &WasmModule,
        mut options: HostOptions,
        upstream: SocketAddr,
    ) -> Result<Gateway, GatewayError> {
        options.clock = ClockMode::Real;
        options.upstream_addr = upstream;
        let host = Host::new(module, options)?;
        let listener = TcpListener::bind(("127.0.0.1", 0)).map_err(GatewayError::Listen)?;
        listener
            .set_nonblocking(true)
            .map_err(GatewayError::Listen)?;
        let addr = listener.local_addr().map_err(GatewayError::Listen)?;
        let (commands, rx) = mpsc::channel();
        let mut worker = Worker {
            host,
            listener,
            upstream,
            next_tick: None,
        };
        let handle = thread::Builder::new()
            .name(format!("gateway-{}", addr.port()))
            .spawn(move || worker.run(&rx))
            .map_err(GatewayError::Spawn)?;
        Ok(Gateway {
            addr,
            commands,
            worker: Some(handle),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`, to put in front of a request path.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Runs `f` on the worker thread with the [`Host`] and returns its result. It runs between
    /// two connections, never during one.
    ///
    /// # Errors
    /// [`GatewayError::Stopped`] when the worker is gone (or `f` panicked).
    pub fn with_host<R, F>(&self, f: F) -> Result<R, GatewayError>
    where
        F: FnOnce(&mut Host) -> R + Send + 'static,
        R: Send + 'static,
    {
        self.on_worker(move |w| f(&mut w.host))
    }

    /// Waits until every traced exchange has been exported (or dropped) by every sink and no
    /// callout is pending, running ticks on time meanwhile, for at most `timeout`. Returns
    /// whether that point was reached.
    ///
    /// The filter's own metrics tell when it is done (`traced_exchanges_total` against each
    /// sink's sent and dropped records and queue gauge); with metrics off, it waits for three
    /// quiet tick periods instead.
    ///
    /// # Errors
    /// [`GatewayError::Stopped`] when the worker is gone.
    pub fn settle(&self, timeout: Duration) -> Result<bool, GatewayError> {
        self.on_worker(move |w| w.settle(timeout))
    }

    /// Stops the worker thread after the connection it is serving, if any. Idempotent.
    pub fn stop(&mut self) {
        if let Some(handle) = self.worker.take() {
            let _ = self.commands.send(Command::Stop);
            let _ = handle.join();
        }
    }

    fn on_worker<R, F>(&self, f: F) -> Result<R, GatewayError>
    where
        F: FnOnce(&mut Worker) -> R + Send + 'static,
        R: Send + 'static,
    {
        if self.worker.is_none() {
            return Err(GatewayError::Stopped);
        }
        let (tx, rx) = mpsc::channel();
        let job: Job = Box::new(move |w| {
            let _ = tx.send(f(w));
        });
        self.commands
            .send(Command::Run(job))
            .map_err(|_| GatewayError::Stopped)?;
        rx.recv().map_err(|_| GatewayError::Stopped)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The worker thread's state: the filter instance, the listener and the tick schedule.
struct Worker {
    host: Host,
    listener: TcpListener,
    upstream: SocketAddr,
    /// When the next `on_tick` is due (`None` while the filter set no tick period).
    next_tick: Option<Instant>,
}

impl Worker {
    fn run(&mut self, commands: &Receiver<Command>) {
        loop {
            self.service();
            match self.listener.accept() {
                Ok((stream, _peer)) => {
                    self.serve(stream);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => {}
            }
            let wait = self
                .next_tick
                .map_or(POLL, |t| t.saturating_duration_since(Instant::now()))
                .min(POLL);
            match commands.recv_timeout(wait) {
                Ok(Command::Run(job)) => job(self),
                Ok(Command::Stop) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Runs a due tick and delivers finished callouts.
    fn service(&mut self) {
        let now = Instant::now();
        match (self.host.tick_period_ms(), self.next_tick) {
            (None, _) => self.next_tick = None,
            (Some(period), None) => {
                self.next_tick = Some(now + Duration::from_millis(period.max(1)));
            }
            (Some(period), Some(due)) if now >= due => {
                self.host.tick();
                let period = Duration::from_millis(period.max(1));
                let next = due + period;
                // After a long request, skip the missed ticks rather than run them in a burst.
                self.next_tick = Some(if next <= now { now + period } else { next });
            }
            _ => {}
        }
        self.host.pump(Duration::ZERO);
    }

    fn settle(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut quiet_since = Instant::now();
        let mut seen = self.host.callouts().len();
        loop {
            self.service();
            let pending = self.host.pending_callouts() > 0;
            match exports_drained(&self.host) {
                Some(true) if !pending => return true,
                Some(_) => {}
                None => {
                    let total = self.host.callouts().len();
                    if pending || total != seen {
                        seen = total;
                        quiet_since = Instant::now();
                    }
                    let period = self.host.tick_period_ms().unwrap_or(100).max(1);
                    if quiet_since.elapsed() >= Duration::from_millis(3 * period) {
                        return true;
                    }
                }
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// Serves one client connection.
    fn serve(&mut self, stream: TcpStream) {
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(CLIENT_READ_TIMEOUT));
        let Ok(write_half) = stream.try_clone() else {
            return;
        };
        let mut client = Client::new(write_half);
        let mut reader = BufReader::new(stream);
        let request = match read_request(&mut reader, &mut client) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(_) => {
                client.full(400, &[], b"bad request");
                client.close();
                return;
            }
        };
        self.proxy(request, &mut client);
        client.close();
    }

    /// Runs one request through the filter and the upstream.
    fn proxy(&mut self, req: Request, client: &mut Client) {
        let headers = filter_request_headers(&req);
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let id = self.host.begin(&pairs, req.body.is_empty());
        self.hold_while_paused(id);
        if !req.body.is_empty() && self.local_response(id).is_none() {
            self.host.request_body(id, &req.body, true);
            self.hold_while_paused(id);
        }
        let Some(outcome) = self.host.outcome(id) else {
            client.full(500, &[], b"gateway lost the stream");
            return;
        };
        if let Some(local) = outcome.local_response {
            client.local(&local);
            self.host.end(id);
            return;
        }
        if !outcome.reached_upstream || outcome.request_stalled {
            client.full(504, &[], b"the filter did not release the request");
            self.host.end(id);
            return;
        }
        let (up_headers, up_body) = self.host.upstream_request(id);
        let upstream_req = upstream_request(&up_headers, up_body);
        let head_only = upstream_req.method.eq_ignore_ascii_case("HEAD");
        let upstream = self.upstream;

        let relay = RefCell::new(Relay {
            worker: self,
            client,
            id,
            head_only,
            state: RelayState::AwaitingHead,
        });
        let result = http::send_streaming(
            upstream,
            &upstream_req,
            UPSTREAM_TIMEOUT,
            |status, headers| relay.borrow_mut().on_head(status, headers),
            |chunk| relay.borrow_mut().on_chunk(chunk),
        );
        let mut relay = relay.into_inner();
        match result {
            Ok(()) => relay.on_end(),
            Err(e) => relay.on_upstream_error(e),
        }
        relay.worker.host.end(id);
    }

    /// Delivers callouts while the filter holds the request for them (Kong's request-phase
    /// dispatches), up to the callout timeout cap.
    fn hold_while_paused(&mut self, id: StreamId) {
        let deadline = Instant::now() + self.host.options().callout_timeout_cap;
        while self.host.outcome(id).is_some_and(|o| o.request_stalled)
            && self.host.pending_callouts() > 0
            && Instant::now() < deadline
        {
            self.host.pump(HELD_REQUEST_PUMP);
            self.service();
        }
    }

    fn local_response(&self, id: StreamId) -> Option<LocalResponse> {
        self.host.outcome(id).and_then(|o| o.local_response)
    }
}

/// Whether every traced exchange left every sink, by the filter's metrics; `None` when the
/// filter defines no metrics to tell.
fn exports_drained(host: &Host) -> Option<bool> {
    let traced = host.metric_total("llm_tracer_requests_total")?;
    let mut any_sink = false;
    for sink in ["opik", "langfuse"] {
        let metric = |m: &str| host.metric(&format!("llm_tracer_export_{m}_sink={sink}"));
        let Some(sent) = metric("sent_records_total") else {
            continue;
        };
        any_sink = true;
        let dropped = metric("dropped_records_total").unwrap_or(0);
        let queued = metric("queue_records").unwrap_or(0);
        if sent + dropped < traced || queued > 0 {
            return Some(false);
        }
    }
    any_sink.then_some(true)
}

/// Where the relay of a response stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelayState {
    AwaitingHead,
    /// Headers passed; body chunks are relayed.
    Body,
    /// The response headers ended the stream (no body).
    NoBody,
    /// The client got something else (a local response) or the stream was reset.
    Done,
}

/// The response path of one request: upstream → filter → client.
struct Relay<'a> {
    worker: &'a mut Worker,
    client: &'a mut Client,
    id: StreamId,
    head_only: bool,
    state: RelayState,
}

impl Relay<'_> {
    fn on_head(&mut self, status: u16, headers: &[(String, String)]) {
        let declared_empty = headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("content-length") && v.trim() == "0");
        let no_body = self.head_only || !status_has_body(status) || declared_empty;
        let status_text = status.to_string();
        let mut pairs: Vec<(&str, &str)> = vec![(":status", &status_text)];
        pairs.extend(
            headers
                .iter()
                .filter(|(k, _)| !is_hop_by_hop(k))
                .map(|(k, v)| (k.as_str(), v.as_str())),
        );
        self.worker.host.response_headers(self.id, &pairs, no_body);
        self.state = if no_body {
            RelayState::NoBody
        } else {
            RelayState::Body
        };
        self.send_head();
        self.worker.service();
    }

    /// Writes the response head the filter let through, or what replaced it.
    fn send_head(&mut self) {
        let Some(outcome) = self.worker.host.outcome(self.id) else {
            return;
        };
        if let Some(local) = &outcome.local_response {
            self.client.local(local);
            self.state = RelayState::Done;
            return;
        }
        if outcome.response_reset {
            self.client.abort();
            self.state = RelayState::Done;
            return;
        }
        let headers: Vec<(String, String)> = outcome
            .client_headers
            .into_iter()
            .filter(|(k, _)| !NOT_FORWARDED.iter().any(|h| k.eq_ignore_ascii_case(h)))
            .collect();
        let chunked = self.state == RelayState::Body && status_has_body(outcome.client_status);
        self.client.head(outcome.client_status, &headers, chunked);
    }

    fn on_chunk(&mut self, chunk: &[u8]) {
        if self.state != RelayState::Body {
            return;
        }
        let out = self.worker.host.response_body(self.id, chunk, false);
        self.forward(&out);
        self.worker.service();
    }

    /// Writes bytes the filter released, or cuts the client off after a reset.
    fn forward(&mut self, bytes: &[u8]) {
        if self
            .worker
            .host
            .outcome(self.id)
            .is_some_and(|o| o.response_reset)
        {
            self.client.abort();
            self.state = RelayState::Done;
            return;
        }
        self.client.chunk(bytes);
    }

    /// The upstream finished its response.
    fn on_end(&mut self) {
        match self.state {
            RelayState::Body => {
                let out = self.worker.host.response_body(self.id, &[], true);
                self.forward(&out);
                if self.state == RelayState::Body {
                    self.client.finish();
                }
            }
            RelayState::NoBody => self.client.finish(),
            RelayState::AwaitingHead | RelayState::Done => {}
        }
    }

    /// The upstream exchange failed: before its head the gateway answers 502 itself (through
    /// the filter, as Kong's and Envoy's own error responses are); after it, the client's
    /// response is cut short, like the upstream's.
    fn on_upstream_error(&mut self, error: HttpError) {
        match self.state {
            RelayState::AwaitingHead => {
                let body = format!("upstream error: {error}");
                let len = body.len().to_string();
                let headers = [
                    (":status", "502"),
                    ("content-type", "text/plain"),
                    ("content-length", len.as_str()),
                ];
                self.worker.host.response_headers(self.id, &headers, false);
                self.state = RelayState::Body;
                self.send_head();
                if self.state == RelayState::Body {
                    let out = self
                        .worker
                        .host
                        .response_body(self.id, body.as_bytes(), true);
                    self.forward(&out);
                    if self.state == RelayState::Body {
                        self.client.finish();
                    }
                }
            }
            RelayState::Body | RelayState::NoBody => {
                self.client.abort();
                self.state = RelayState::Done;
            }
            RelayState::Done => {}
        }
    }
}

/// True when a response with this status may carry a body (RFC 9112 §6.3).
fn status_has_body(status: u16) -> bool {
    !((100..200).contains(&status) || status == 204 || status == 304)
}

fn is_hop_by_hop(name: &str) -> bool {
    NOT_FORWARDED[..NOT_FORWARDED.len() - 1]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// The request headers the filter sees: pseudo-headers first, then the client's headers
/// without `Host` (it is `:authority`) and without hop-by-hop headers; `content-length` gives
/// the body actually read.
fn filter_request_headers(req: &Request) -> Vec<(String, String)> {
    let authority = req.header("host").unwrap_or("localhost").to_string();
    let path = if req.path.is_empty() {
        "/".to_string()
    } else {
        req.path.clone()
    };
    let mut headers = vec![
        (":method".to_string(), req.method.clone()),
        (":path".to_string(), path),
        (":authority".to_string(), authority),
        (":scheme".to_string(), "http".to_string()),
    ];
    headers.extend(
        req.headers
            .iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("host") && !k.starts_with(':'))
            .filter(|(k, _)| !NOT_FORWARDED.iter().any(|h| k.eq_ignore_ascii_case(h)))
            .cloned(),
    );
    let expects_body = matches!(
        req.method.to_ascii_uppercase().as_str(),
        "POST" | "PUT" | "PATCH"
    );
    if !req.body.is_empty() || expects_body {
        headers.push(("content-length".to_string(), req.body.len().to_string()));
    }
    headers
}

/// The upstream request from the headers and body the filter forwarded.
fn upstream_request(headers: &[(String, String)], body: Vec<u8>) -> Request {
    let pseudo = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut req = Request::new(
        &pseudo(":method").unwrap_or_else(|| "GET".to_string()),
        &pseudo(":path").unwrap_or_else(|| "/".to_string()),
    );
    // `Host` becomes the upstream's address (Kong's default `preserve_host = false`).
    req.headers = headers
        .iter()
        .filter(|(k, _)| !k.starts_with(':') && !k.eq_ignore_ascii_case("host"))
        .filter(|(k, _)| !NOT_FORWARDED.iter().any(|h| k.eq_ignore_ascii_case(h)))
        .cloned()
        .collect();
    req.body = body;
    req
}

/// The client side of a connection: writes one response.
struct Client {
    stream: TcpStream,
    head_sent: bool,
    chunked: bool,
    done: bool,
}

impl Client {
    fn new(stream: TcpStream) -> Self {
        Client {
            stream,
            head_sent: false,
            chunked: false,
            done: false,
        }
    }

    /// Writes raw bytes; a client that went away just stops receiving.
    fn write(&mut self, bytes: &[u8]) {
        if self.done {
            return;
        }
        if self
            .stream
            .write_all(bytes)
            .and_then(|()| self.stream.flush())
            .is_err()
        {
            self.done = true;
        }
    }

    fn head(&mut self, status: u16, headers: &[(String, String)], chunked: bool) {
        if self.head_sent {
            return;
        }
        let mut out = format!("HTTP/1.1 {status} {}\r\n", crate::http::reason(status));
        for (k, v) in headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if chunked {
            out.push_str("transfer-encoding: chunked\r\n");
        } else if status_has_body(status) {
            out.push_str("content-length: 0\r\n");
        }
        out.push_str("connection: close\r\n\r\n");
        self.head_sent = true;
        self.chunked = chunked;
        self.write(out.as_bytes());
    }

    fn chunk(&mut self, data: &[u8]) {
        if data.is_empty() || !self.chunked {
            return;
        }
        let mut out = format!("{:x}\r\n", data.len()).into_bytes();
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
        self.write(&out);
    }

    fn finish(&mut self) {
        if self.chunked {
            self.write(b"0\r\n\r\n");
        }
        self.done = true;
    }

    /// A complete response with a `content-length`.
    fn full(&mut self, status: u16, headers: &[(String, String)], body: &[u8]) {
        if self.head_sent {
            self.abort();
            return;
        }
        let mut out = format!("HTTP/1.1 {status} {}\r\n", crate::http::reason(status));
        for (k, v) in headers {
            if NOT_FORWARDED.iter().any(|h| k.eq_ignore_ascii_case(h)) {
                continue;
            }
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if status_has_body(status) {
            out.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        out.push_str("connection: close\r\n\r\n");
        let mut bytes = out.into_bytes();
        if status_has_body(status) {
            bytes.extend_from_slice(body);
        }
        self.head_sent = true;
        self.write(&bytes);
        self.done = true;
    }

    fn local(&mut self, local: &LocalResponse) {
        self.full(local.status, &local.headers, &local.body);
    }

    /// Cuts the connection without ending the response.
    fn abort(&mut self) {
        self.done = true;
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    fn close(&mut self) {
        self.done = true;
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Reads one request (head and whole body) from a client; `None` when it closed at once.
fn read_request(
    reader: &mut BufReader<TcpStream>,
    client: &mut Client,
) -> Result<Option<Request>, HttpError> {
    let mut head = Vec::new();
    loop {
        let before = head.len();
        let limit = (MAX_HEAD_BYTES + 1).saturating_sub(head.len()) as u64;
        let n = reader.by_ref().take(limit).read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() {
                Ok(None)
            } else {
                Err(HttpError::Io(io::ErrorKind::UnexpectedEof))
            };
        }
        if head.len() > MAX_HEAD_BYTES {
            return Err(HttpError::Malformed);
        }
        let line = &head[before..];
        if (line == b"\r\n" || line == b"\n") && before > 0 {
            break;
        }
    }
    let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut storage);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(HttpError::Malformed),
    }
    let mut req = Request::new(
        parsed.method.unwrap_or_default(),
        parsed.path.unwrap_or_default(),
    );
    for h in parsed.headers.iter() {
        let value = std::str::from_utf8(h.value).map_err(|_| HttpError::Malformed)?;
        req.headers.push((h.name.to_string(), value.to_string()));
    }
    if req
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    {
        client.write(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let chunked = req.header("transfer-encoding").is_some_and(|te| {
        te.rsplit(',')
            .next()
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
    });
    if chunked {
        req.body = read_chunked(reader)?;
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len.trim().parse().map_err(|_| HttpError::Malformed)?;
        if len > MAX_BODY_BYTES {
            return Err(HttpError::Malformed);
        }
        let mut body = vec![0; len];
        reader.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Some(req))
}

/// Reads a chunked body (extensions and trailers ignored).
fn read_chunked(reader: &mut BufReader<TcpStream>) -> Result<Vec<u8>, HttpError> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?;
        let size = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| HttpError::Malformed)?;
        if size == 0 {
            while !read_line(reader)?.is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(HttpError::Malformed);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        if !read_line(reader)?.is_empty() {
            return Err(HttpError::Malformed);
        }
    }
}

/// One CRLF-terminated line, without its terminator.
fn read_line(reader: &mut BufReader<TcpStream>) -> Result<String, HttpError> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take(MAX_HEAD_BYTES as u64)
        .read_until(b'\n', &mut line)?;
    if n == 0 || !line.ends_with(b"\n") {
        return Err(HttpError::Io(io::ErrorKind::UnexpectedEof));
    }
    let text = String::from_utf8(line).map_err(|_| HttpError::Malformed)?;
    Ok(text.trim_end_matches(['\r', '\n']).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_headers_for_the_filter() {
        let mut req = Request::new("POST", "/v1/chat/completions?x=1");
        req.headers = vec![
            ("Host".into(), "gw.local:8000".into()),
            ("Connection".into(), "keep-alive".into()),
            ("Content-Length".into(), "999".into()),
            ("x-user-id".into(), "u1".into()),
        ];
        req.body = b"{}".to_vec();
        let h = filter_request_headers(&req);
        assert_eq!(
            h,
            vec![
                (":method".into(), "POST".into()),
                (":path".into(), "/v1/chat/completions?x=1".into()),
                (":authority".into(), "gw.local:8000".into()),
                (":scheme".into(), "http".into()),
                ("x-user-id".into(), "u1".into()),
                ("content-length".into(), "2".into()),
            ]
        );
        let up = upstream_request(&h, b"{}".to_vec());
        assert_eq!(
            (up.method.as_str(), up.path.as_str()),
            ("POST", "/v1/chat/completions?x=1")
        );
        assert_eq!(
            up.headers,
            vec![("x-user-id".to_string(), "u1".to_string())]
        );
    }

    #[test]
    fn hop_by_hop_keeps_content_length_for_the_filter() {
        assert!(is_hop_by_hop("Transfer-Encoding"));
        assert!(!is_hop_by_hop("content-length"));
        assert!(!status_has_body(204));
        assert!(status_has_body(200));
    }
}
