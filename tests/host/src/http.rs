//! Minimal HTTP/1.1 over `std::net`: a thread-per-connection server and a blocking client.
//!
//! It owns the wire format only (request/status lines, headers, `Content-Length` and chunked
//! framing) and nothing about LLMs, tracing or proxy-wasm. The mock LLM and collector servers use
//! [`serve`]; the host's callouts use [`send`]. Every connection carries one exchange
//! (`Connection: close`), which is also what Kong's dispatches do (hosts.md §4.4 "Wire").
//!
//! Framing follows RFC 9112 §6–7: a body is delimited by `Transfer-Encoding: chunked`, else by
//! `Content-Length`, else (responses only) by the server closing the connection. Chunk extensions
//! and trailers are accepted and ignored. Header parsing is `httparse`'s.
//!
//! # Background
//! Limits keep a misbehaving peer from exhausting memory: a request or response head may be at
//! most [`MAX_HEAD_BYTES`] with at most [`MAX_HEADERS`] headers, and [`send`] buffers at most
//! [`MAX_BODY_BYTES`] of body ([`send_streaming`] buffers nothing).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Largest request or response head (start line plus headers) accepted, in bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Largest number of headers accepted in one head.
pub const MAX_HEADERS: usize = 128;
/// Largest body [`send`] and the server buffer, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// How long a server connection waits for the client's request before giving up.
const SERVER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP request, as received by a server handler or as sent by the client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// Method, e.g. `POST`.
    pub method: String,
    /// Request target, e.g. `/v1/chat/completions?x=1`.
    pub path: String,
    /// Header fields in wire order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunked framing removed).
    pub body: Vec<u8>,
}

impl Request {
    /// Builds a request with no headers and an empty body.
    pub fn new(method: &str, path: &str) -> Self {
        Request {
            method: method.to_string(),
            path: path.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// First value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// An HTTP response, as returned by [`send`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header fields in wire order, names as sent.
    pub headers: Vec<(String, String)>,
    /// The decoded body (chunked framing removed).
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Why a client exchange failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// Nothing listens at the address (connection refused).
    Refused,
    /// The deadline passed before the exchange completed.
    Timeout,
    /// Another I/O error, e.g. `UnexpectedEof` when the peer closed mid-body.
    Io(io::ErrorKind),
    /// The peer sent something that is not valid HTTP/1.1 or exceeds a limit.
    Malformed,
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Refused => f.write_str("connection refused"),
            HttpError::Timeout => f.write_str("timed out"),
            HttpError::Io(kind) => write!(f, "I/O error: {kind}"),
            HttpError::Malformed => f.write_str("malformed HTTP message"),
        }
    }
}

impl std::error::Error for HttpError {}

impl From<io::Error> for HttpError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => HttpError::Refused,
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => HttpError::Timeout,
            io::ErrorKind::InvalidData => HttpError::Malformed,
            kind => HttpError::Io(kind),
        }
    }
}

/// Where the reason phrase for a status comes from; only informative on the wire.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// True when a response with this status never has a body (RFC 9112 §6.3).
fn status_has_no_body(status: u16) -> bool {
    (100..200).contains(&status) || status == 204 || status == 304
}

// ---------------------------------------------------------------------------------------------
// Connection reader: a socket plus the bytes read but not yet consumed, with a deadline.
// ---------------------------------------------------------------------------------------------

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    deadline: Option<Instant>,
}

impl Conn {
    fn new(stream: TcpStream, deadline: Option<Instant>) -> Self {
        Conn {
            stream,
            buf: Vec::with_capacity(8 * 1024),
            deadline,
        }
    }

    /// Reads more bytes into `buf`; returns how many (0 at end of stream).
    fn fill(&mut self) -> Result<usize, HttpError> {
        if let Some(deadline) = self.deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HttpError::Timeout);
            }
            self.stream.set_read_timeout(Some(left))?;
        }
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Fills until `buf` holds a complete head; `parse` returns the head length when complete.
    fn read_head<T>(
        &mut self,
        mut parse: impl FnMut(&[u8]) -> Result<Option<(usize, T)>, HttpError>,
    ) -> Result<Option<T>, HttpError> {
        loop {
            if !self.buf.is_empty() {
                if let Some((len, head)) = parse(&self.buf)? {
                    self.buf.drain(..len);
                    return Ok(Some(head));
                }
                if self.buf.len() > MAX_HEAD_BYTES {
                    return Err(HttpError::Malformed);
                }
            }
            if self.fill()? == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(HttpError::Io(io::ErrorKind::UnexpectedEof));
            }
        }
    }

    /// Reads one CRLF-terminated line (without the CRLF).
    fn read_line(&mut self) -> Result<Vec<u8>, HttpError> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).take(pos).collect();
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(HttpError::Malformed);
            }
            if self.fill()? == 0 {
                return Err(HttpError::Io(io::ErrorKind::UnexpectedEof));
            }
        }
    }

    /// Delivers exactly `n` body bytes to `sink` as they arrive.
    fn read_n(&mut self, mut n: usize, sink: &mut dyn FnMut(&[u8])) -> Result<(), HttpError> {
        while n > 0 {
            if self.buf.is_empty() && self.fill()? == 0 {
                return Err(HttpError::Io(io::ErrorKind::UnexpectedEof));
            }
            let take = n.min(self.buf.len());
            sink(&self.buf[..take]);
            self.buf.drain(..take);
            n -= take;
        }
        Ok(())
    }

    /// Delivers a body framed as `framing` to `sink`, chunk by chunk as read.
    fn read_body(
        &mut self,
        framing: Framing,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), HttpError> {
        match framing {
            Framing::None => Ok(()),
            Framing::Length(n) => self.read_n(n, sink),
            Framing::UntilClose => loop {
                if !self.buf.is_empty() {
                    sink(&self.buf);
                    self.buf.clear();
                }
                if self.fill()? == 0 {
                    return Ok(());
                }
            },
            Framing::Chunked => loop {
                let line = self.read_line()?;
                let size = parse_chunk_size(&line)?;
                if size == 0 {
                    // Trailer section: header lines until an empty line.
                    loop {
                        if self.read_line()?.is_empty() {
                            return Ok(());
                        }
                    }
                }
                self.read_n(size, sink)?;
                if !self.read_line()?.is_empty() {
                    return Err(HttpError::Malformed);
                }
            },
        }
    }
}

/// Parses a chunk-size line (`1a;ext=1`), ignoring extensions.
fn parse_chunk_size(line: &[u8]) -> Result<usize, HttpError> {
    let hex = line.split(|&b| b == b';').next().unwrap_or_default();
    let hex = std::str::from_utf8(hex)
        .map_err(|_| HttpError::Malformed)?
        .trim();
    if hex.is_empty() || hex.len() > 15 {
        return Err(HttpError::Malformed);
    }
    usize::from_str_radix(hex, 16).map_err(|_| HttpError::Malformed)
}

/// Decides the framing of a message from its headers (RFC 9112 §6.3).
fn framing_from_headers(
    headers: &[(String, String)],
    is_response: bool,
) -> Result<Framing, HttpError> {
    if let Some(te) = find_header(headers, "transfer-encoding") {
        if te
            .rsplit(',')
            .next()
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        {
            return Ok(Framing::Chunked);
        }
        return if is_response {
            Ok(Framing::UntilClose)
        } else {
            Err(HttpError::Malformed)
        };
    }
    if let Some(cl) = find_header(headers, "content-length") {
        let n: usize = cl.trim().parse().map_err(|_| HttpError::Malformed)?;
        return Ok(Framing::Length(n));
    }
    Ok(if is_response {
        Framing::UntilClose
    } else {
        Framing::None
    })
}

fn collect_headers(raw: &[httparse::Header<'_>]) -> Result<Vec<(String, String)>, HttpError> {
    raw.iter()
        .map(|h| {
            let v = std::str::from_utf8(h.value).map_err(|_| HttpError::Malformed)?;
            Ok((h.name.to_string(), v.to_string()))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// A running server started by [`serve`]. Dropping it stops the server.
pub struct ServerHandle {
    /// The address the server listens on.
    pub addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

impl ServerHandle {
    /// Stops accepting connections and waits for the accept loop to end.
    ///
    /// Connections already accepted run their handler to completion in their own thread.
    /// Calling it again is a no-op.
    pub fn stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        // The accept loop blocks in accept(); one connection wakes it up so it sees the flag.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        let woke = TcpStream::connect_timeout(&wake, Duration::from_secs(2)).is_ok();
        let handle = match self.acceptor.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let (true, Some(handle)) = (woke, handle) {
            let _ = handle.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .finish()
    }
}

/// A loopback address nothing listens on (bound, then released): connecting to it is refused.
///
/// # Panics
/// When no loopback port can be bound, which only a broken test machine does.
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    drop(listener);
    addr
}

/// Serves HTTP/1.1 on `listener`, one thread per connection, one request per connection.
///
/// `handler` receives the request (body fully read and de-chunked) and writes the response
/// through the [`ResponseWriter`]. If it returns without sending a head, the client gets a
/// 500; if it returns mid-body, the body is finished for it (use [`ResponseWriter::abort`] to
/// cut the connection instead). Malformed requests get a 400 without reaching the handler.
///
/// # Panics
/// Panics if the listener's local address cannot be read or the accept thread cannot be
/// spawned (both are environment failures in a test harness).
pub fn serve<F>(listener: TcpListener, handler: F) -> ServerHandle
where
    F: Fn(Request, &mut ResponseWriter) + Send + Sync + 'static,
{
    let addr = listener
        .local_addr()
        .expect("a bound listener has a local address");
    let stopping = Arc::new(AtomicBool::new(false));
    let handler = Arc::new(handler);
    let stop_flag = Arc::clone(&stopping);
    let acceptor = thread::Builder::new()
        .name(format!("http-accept-{}", addr.port()))
        .spawn(move || {
            for conn in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = conn else { continue };
                let handler = Arc::clone(&handler);
                let _ = thread::Builder::new()
                    .name("http-conn".to_string())
                    .spawn(move || handle_connection(stream, &*handler));
            }
        })
        .expect("spawning the accept thread");
    ServerHandle {
        addr,
        stopping,
        acceptor: Mutex::new(Some(acceptor)),
    }
}

fn read_request(conn: &mut Conn) -> Result<Option<Request>, HttpError> {
    let head = conn.read_head(|buf| {
        let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut storage);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let method = req.method.unwrap_or_default().to_string();
                let path = req.path.unwrap_or_default().to_string();
                let headers = collect_headers(req.headers)?;
                Ok(Some((len, (method, path, headers))))
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(_) => Err(HttpError::Malformed),
        }
    })?;
    let Some((method, path, headers)) = head else {
        return Ok(None);
    };
    let framing = framing_from_headers(&headers, false)?;
    if find_header(&headers, "expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        conn.stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = Vec::new();
    let mut too_big = false;
    conn.read_body(framing, &mut |data| {
        if body.len() + data.len() > MAX_BODY_BYTES {
            too_big = true;
        } else {
            body.extend_from_slice(data);
        }
    })?;
    if too_big {
        return Err(HttpError::Malformed);
    }
    Ok(Some(Request {
        method,
        path,
        headers,
        body,
    }))
}

fn handle_connection(
    stream: TcpStream,
    handler: &(dyn Fn(Request, &mut ResponseWriter) + Send + Sync),
) {
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut conn = Conn::new(stream, Some(Instant::now() + SERVER_READ_TIMEOUT));
    let mut writer = ResponseWriter::new(write_half);
    match read_request(&mut conn) {
        Ok(Some(req)) => {
            handler(req, &mut writer);
            if writer.state == WriterState::Idle {
                let _ = writer.full(500, &[], b"handler sent no response");
            } else {
                let _ = writer.finish();
            }
        }
        Ok(None) => {}
        Err(_) => {
            let _ = writer.full(400, &[], b"bad request");
        }
    }
    let _ = writer.stream.shutdown(Shutdown::Both);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriterState {
    /// Nothing sent yet.
    Idle,
    /// Head sent; body framed with chunked encoding.
    Chunked,
    /// Head sent; body sent raw (Content-Length given, or a status without a body).
    Raw,
    /// Response complete (or aborted); further writes fail.
    Done,
}

/// Writes one response on a server connection; handed to the [`serve`] handler.
pub struct ResponseWriter {
    stream: TcpStream,
    state: WriterState,
}

impl fmt::Debug for ResponseWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseWriter")
            .field("state", &self.state)
            .finish()
    }
}

impl ResponseWriter {
    fn new(stream: TcpStream) -> Self {
        ResponseWriter {
            stream,
            state: WriterState::Idle,
        }
    }

    /// Sends the status line and headers.
    ///
    /// Without a `content-length` (or `transfer-encoding`) header the body is sent with chunked
    /// transfer-encoding. `Connection: close` is added unless given.
    ///
    /// # Errors
    /// I/O errors from the socket; `InvalidInput` if the head was already sent.
    pub fn head(&mut self, status: u16, headers: &[(&str, &str)]) -> io::Result<()> {
        if self.state != WriterState::Idle {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "head already sent",
            ));
        }
        let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (k, v) in headers {
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        let chunked = if status_has_no_body(status) || has("content-length") {
            false
        } else if has("transfer-encoding") {
            true
        } else {
            out.push_str("Transfer-Encoding: chunked\r\n");
            true
        };
        if !has("connection") {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        self.stream.write_all(out.as_bytes())?;
        self.stream.flush()?;
        self.state = if chunked {
            WriterState::Chunked
        } else {
            WriterState::Raw
        };
        Ok(())
    }

    /// Sends body bytes and flushes them at once (one chunk on the wire when chunked).
    ///
    /// An empty `data` sends nothing (an empty chunk would end a chunked body).
    ///
    /// # Errors
    /// I/O errors from the socket; `InvalidInput` before [`head`](Self::head) or after
    /// [`finish`](Self::finish).
    pub fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        match self.state {
            WriterState::Idle | WriterState::Done => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "chunk outside of a response body",
            )),
            _ if data.is_empty() => Ok(()),
            WriterState::Chunked => {
                let mut out = format!("{:x}\r\n", data.len()).into_bytes();
                out.extend_from_slice(data);
                out.extend_from_slice(b"\r\n");
                self.stream.write_all(&out)?;
                self.stream.flush()
            }
            WriterState::Raw => {
                self.stream.write_all(data)?;
                self.stream.flush()
            }
        }
    }

    /// Ends the body (the terminating zero-size chunk when chunked). Idempotent.
    ///
    /// # Errors
    /// I/O errors from the socket; `InvalidInput` before [`head`](Self::head).
    pub fn finish(&mut self) -> io::Result<()> {
        match self.state {
            WriterState::Idle => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "finish before head",
            )),
            WriterState::Done => Ok(()),
            WriterState::Chunked => {
                self.state = WriterState::Done;
                self.stream.write_all(b"0\r\n\r\n")?;
                self.stream.flush()
            }
            WriterState::Raw => {
                self.state = WriterState::Done;
                self.stream.flush()
            }
        }
    }

    /// Sends a complete response with a `content-length` (added unless given).
    ///
    /// # Errors
    /// As [`head`](Self::head), [`chunk`](Self::chunk) and [`finish`](Self::finish).
    pub fn full(&mut self, status: u16, headers: &[(&str, &str)], body: &[u8]) -> io::Result<()> {
        let len = body.len().to_string();
        let mut all: Vec<(&str, &str)> = headers.to_vec();
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            && !status_has_no_body(status)
        {
            all.push(("content-length", &len));
        }
        self.head(status, &all)?;
        if !status_has_no_body(status) {
            self.chunk(body)?;
        }
        self.finish()
    }

    /// Closes the connection at once, without ending the body: the client sees a truncated
    /// response (for tests of aborted streams).
    pub fn abort(&mut self) {
        self.state = WriterState::Done;
        let _ = self.stream.shutdown(Shutdown::Both);
    }

    /// True once the head has been sent.
    pub fn head_sent(&self) -> bool {
        self.state != WriterState::Idle
    }
}

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

/// Sends `req` to `addr` and reads the whole response, all within `timeout`.
///
/// Adds `Host` (the address), `Content-Length` and `Connection: close` unless the request has
/// them. Header names starting with `:` (HTTP/2 pseudo-headers) are not sent.
///
/// # Errors
/// [`HttpError::Refused`] when nothing listens, [`HttpError::Timeout`] when the deadline passes,
/// [`HttpError::Malformed`] for an invalid response or one over [`MAX_BODY_BYTES`],
/// [`HttpError::Io`] otherwise (`UnexpectedEof` for a truncated body).
pub fn send(addr: SocketAddr, req: &Request, timeout: Duration) -> Result<Response, HttpError> {
    let mut status = 0;
    let mut headers = Vec::new();
    let mut body = Vec::new();
    let mut too_big = false;
    send_streaming(
        addr,
        req,
        timeout,
        |s, h| {
            status = s;
            headers = h.to_vec();
        },
        |data| {
            if body.len() + data.len() > MAX_BODY_BYTES {
                too_big = true;
            } else {
                body.extend_from_slice(data);
            }
        },
    )?;
    if too_big {
        return Err(HttpError::Malformed);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Sends `req` to `addr` and delivers the response as it arrives: `on_head` once with the
/// status and headers, then `on_chunk` for each run of body bytes read (chunked framing
/// removed), all within `timeout`.
///
/// Interim `1xx` responses are skipped. Request handling is as in [`send`].
///
/// # Errors
/// As [`send`]; bytes delivered before an error stay delivered.
pub fn send_streaming(
    addr: SocketAddr,
    req: &Request,
    timeout: Duration,
    mut on_head: impl FnMut(u16, &[(String, String)]),
    mut on_chunk: impl FnMut(&[u8]),
) -> Result<(), HttpError> {
    let deadline = Instant::now() + timeout;
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    let _ = stream.set_nodelay(true);
    stream.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
    let mut conn = Conn::new(stream, Some(deadline));
    conn.stream.write_all(&encode_request(addr, req))?;
    conn.stream.flush()?;

    let is_head = req.method.eq_ignore_ascii_case("HEAD");
    loop {
        let head = conn.read_head(|buf| {
            let mut storage = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut resp = httparse::Response::new(&mut storage);
            match resp.parse(buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    Ok(Some((len, (status, collect_headers(resp.headers)?))))
                }
                Ok(httparse::Status::Partial) => Ok(None),
                Err(_) => Err(HttpError::Malformed),
            }
        })?;
        let Some((status, headers)) = head else {
            return Err(HttpError::Io(io::ErrorKind::UnexpectedEof));
        };
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        on_head(status, &headers);
        let framing = if is_head || status_has_no_body(status) {
            Framing::None
        } else {
            framing_from_headers(&headers, true)?
        };
        return conn.read_body(framing, &mut on_chunk);
    }
}

fn encode_request(addr: SocketAddr, req: &Request) -> Vec<u8> {
    let has = |name: &str| find_header(&req.headers, name).is_some();
    let path = if req.path.is_empty() { "/" } else { &req.path };
    let mut out = format!("{} {} HTTP/1.1\r\n", req.method, path);
    if !has("host") {
        out.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in &req.headers {
        if k.starts_with(':') {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has("content-length") && !has("transfer-encoding") {
        let method_expects_body = matches!(
            req.method.to_ascii_uppercase().as_str(),
            "POST" | "PUT" | "PATCH"
        );
        if !req.body.is_empty() || method_expects_body {
            out.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
        }
    }
    if !has("connection") {
        out.push_str("Connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&req.body);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn local() -> TcpListener {
        TcpListener::bind("127.0.0.1:0").expect("bind loopback")
    }

    #[test]
    fn round_trip_content_length() {
        let server = serve(local(), |req, w| {
            let mut body = format!("{} {} ", req.method, req.path).into_bytes();
            body.extend_from_slice(&req.body);
            let ct = req.header("x-echo").unwrap_or("none").to_string();
            w.full(201, &[("x-echo", &ct)], &body).expect("write");
        });
        let mut req = Request::new("POST", "/v1/chat?x=1");
        req.headers.push(("X-Echo".into(), "yes".into()));
        req.body = b"hello".to_vec();
        let resp = send(server.addr, &req, Duration::from_secs(5)).expect("send");
        assert_eq!(resp.status, 201);
        assert_eq!(resp.header("X-ECHO"), Some("yes"));
        assert_eq!(resp.header("content-length"), Some("23"));
        assert_eq!(resp.body, b"POST /v1/chat?x=1 hello");
    }

    #[test]
    fn chunked_response_streams_chunk_by_chunk() {
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        let server = serve(local(), move |_req, w| {
            w.head(200, &[("content-type", "text/event-stream")])
                .expect("head");
            w.chunk(b"data: one\n\n").expect("chunk");
            // The second chunk waits until the client has seen the first.
            let _ = go_rx
                .lock()
                .expect("lock")
                .recv_timeout(Duration::from_secs(5));
            w.chunk(b"data: two\n\n").expect("chunk");
            w.finish().expect("finish");
        });
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        let mut head = None;
        send_streaming(
            server.addr,
            &Request::new("GET", "/stream"),
            Duration::from_secs(5),
            |s, h| head = Some((s, h.to_vec())),
            |c| {
                chunks.push(c.to_vec());
                if chunks.len() == 1 {
                    let _ = go_tx.send(());
                }
            },
        )
        .expect("stream");
        let (status, headers) = head.expect("head seen");
        assert_eq!(status, 200);
        assert_eq!(find_header(&headers, "transfer-encoding"), Some("chunked"));
        assert_eq!(chunks.concat(), b"data: one\n\ndata: two\n\n");
        assert_eq!(chunks[0], b"data: one\n\n");
    }

    #[test]
    fn chunked_request_body_is_decoded() {
        let server = serve(local(), |req, w| {
            w.full(200, &[], &req.body).expect("write");
        });
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        stream
            .write_all(
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n",
            )
            .expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).expect("read");
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nhello world"), "{out}");
    }

    #[test]
    fn malformed_request_gets_400() {
        let server = serve(local(), |_req, w| {
            w.full(200, &[], b"unexpected").expect("write");
        });
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        stream.write_all(b"NOT HTTP\x01\r\n\r\n").expect("write");
        let mut out = String::new();
        stream.read_to_string(&mut out).expect("read");
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    }

    #[test]
    fn handler_without_response_gives_500_and_unfinished_body_is_finished() {
        let server = serve(local(), |req, w| {
            if req.path == "/partial" {
                w.head(200, &[]).expect("head");
                w.chunk(b"abc").expect("chunk");
            }
        });
        let resp = send(
            server.addr,
            &Request::new("GET", "/none"),
            Duration::from_secs(5),
        )
        .expect("send");
        assert_eq!(resp.status, 500);
        let resp = send(
            server.addr,
            &Request::new("GET", "/partial"),
            Duration::from_secs(5),
        )
        .expect("send");
        assert_eq!((resp.status, resp.body.as_slice()), (200, &b"abc"[..]));
    }

    #[test]
    fn aborted_body_is_unexpected_eof() {
        let server = serve(local(), |_req, w| {
            w.head(200, &[]).expect("head");
            w.chunk(b"partial").expect("chunk");
            w.abort();
        });
        let mut got = Vec::new();
        let err = send_streaming(
            server.addr,
            &Request::new("GET", "/"),
            Duration::from_secs(5),
            |_, _| {},
            |c| got.extend_from_slice(c),
        )
        .expect_err("truncated");
        assert_eq!(err, HttpError::Io(io::ErrorKind::UnexpectedEof));
        assert_eq!(got, b"partial");
    }

    #[test]
    fn slow_server_times_out() {
        let server = serve(local(), |_req, w| {
            thread::sleep(Duration::from_millis(800));
            let _ = w.full(200, &[], b"late");
        });
        let started = Instant::now();
        let err = send(
            server.addr,
            &Request::new("GET", "/"),
            Duration::from_millis(150),
        )
        .expect_err("timeout");
        assert_eq!(err, HttpError::Timeout);
        assert!(started.elapsed() < Duration::from_millis(700));
    }

    #[test]
    fn nothing_listening_is_refused() {
        let addr = {
            let l = local();
            l.local_addr().expect("addr")
        };
        let err =
            send(addr, &Request::new("GET", "/"), Duration::from_secs(2)).expect_err("refused");
        assert_eq!(err, HttpError::Refused);
    }

    #[test]
    fn stop_refuses_new_connections() {
        let server = serve(local(), |_req, w| {
            w.full(204, &[], b"").expect("write");
        });
        let addr = server.addr;
        let resp = send(addr, &Request::new("GET", "/"), Duration::from_secs(2)).expect("send");
        assert_eq!((resp.status, resp.body.len()), (204, 0));
        server.stop();
        server.stop();
        drop(server);
        let err =
            send(addr, &Request::new("GET", "/"), Duration::from_secs(2)).expect_err("stopped");
        assert_eq!(err, HttpError::Refused);
    }

    #[test]
    fn response_without_length_reads_until_close() {
        let server = serve(local(), |_req, w| {
            // A raw head with neither content-length nor chunking: body ends at close.
            w.head(200, &[("transfer-encoding", "identity")])
                .expect("head");
            w.state = WriterState::Raw;
            w.chunk(b"until close").expect("chunk");
        });
        let resp = send(
            server.addr,
            &Request::new("GET", "/"),
            Duration::from_secs(5),
        )
        .expect("send");
        assert_eq!(resp.body, b"until close");
    }

    #[test]
    fn chunk_size_parsing() {
        assert_eq!(parse_chunk_size(b"1a"), Ok(26));
        assert_eq!(parse_chunk_size(b"0;x=y"), Ok(0));
        assert_eq!(parse_chunk_size(b""), Err(HttpError::Malformed));
        assert_eq!(parse_chunk_size(b"zz"), Err(HttpError::Malformed));
        assert_eq!(
            parse_chunk_size(b"ffffffffffffffffff"),
            Err(HttpError::Malformed)
        );
    }
}
