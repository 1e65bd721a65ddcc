//! A TCP relay in front of a local server that can be taken down and brought back on the same
//! address, to play a backend outage: while down nothing listens on its port, so callouts are
//! refused exactly as they are when a collector is not running; while up every connection is
//! forwarded byte for byte to the target.
//!
//! Going down and coming back are synchronous: when [`Relay::set_up`] returns, the port is
//! closed (connections are refused) or open again.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How long the accept loop sleeps when there is nothing to accept.
const POLL: Duration = Duration::from_millis(2);

struct Shared {
    listener: Mutex<Option<TcpListener>>,
    stopping: AtomicBool,
    forwarded: AtomicUsize,
}

fn lock(shared: &Shared) -> MutexGuard<'_, Option<TcpListener>> {
    shared
        .listener
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
}

/// A switchable relay on `127.0.0.1` forwarding to one target address. Dropping it stops it.
pub struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("addr", &self.addr)
            .field("target", &self.target)
            .field("up", &self.is_up())
            .finish()
    }
}

impl Relay {
    /// Starts a relay, up, on an ephemeral loopback port, forwarding to `target`.
    ///
    /// # Errors
    /// The bind error, or a failure to start the accept thread.
    pub fn start(target: SocketAddr) -> io::Result<Relay> {
        let listener = open(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            listener: Mutex::new(Some(listener)),
            stopping: AtomicBool::new(false),
            forwarded: AtomicUsize::new(0),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name(format!("relay-{}", addr.port()))
                .spawn(move || accept_loop(&shared, target))?
        };
        Ok(Relay {
            addr,
            target,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Whether the relay is listening.
    pub fn is_up(&self) -> bool {
        lock(&self.shared).is_some()
    }

    /// Connections forwarded to the target so far.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    /// Brings the relay up (listening again on the same port) or takes it down (the port is
    /// closed; connections waiting to be accepted are reset). Connections already forwarded run
    /// to completion either way.
    ///
    /// # Errors
    /// When the port cannot be bound again (another process took it meanwhile).
    pub fn set_up(&self, up: bool) -> io::Result<()> {
        let mut listener = lock(&self.shared);
        match (up, listener.is_some()) {
            (true, false) => *listener = Some(open(self.addr)?),
            (false, true) => *listener = None,
            _ => {}
        }
        Ok(())
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        lock(&self.shared).take();
        if let Some(handle) = self.acceptor.take() {
            let _ = handle.join();
        }
    }
}

/// A non-blocking listener, so the accept loop can notice it being closed.
fn open(addr: impl std::net::ToSocketAddrs) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn accept_loop(shared: &Shared, target: SocketAddr) {
    while !shared.stopping.load(Ordering::SeqCst) {
        let accepted = lock(shared).as_ref().map(TcpListener::accept);
        match accepted {
            Some(Ok((client, _))) => {
                shared.forwarded.fetch_add(1, Ordering::SeqCst);
                let _ = thread::Builder::new()
                    .name("relay-conn".to_string())
                    .spawn(move || forward(client, target));
            }
            // Nothing waiting (WouldBlock), an aborted connection, or the relay is down.
            _ => thread::sleep(POLL),
        }
    }
}

/// Copies both directions until each side has finished writing.
fn forward(client: TcpStream, target: SocketAddr) {
    let Ok(upstream) = TcpStream::connect(target) else {
        return; // the client sees the connection close, as with a crashed backend
    };
    let _ = client.set_nonblocking(false);
    let (Ok(client_read), Ok(upstream_write)) = (client.try_clone(), upstream.try_clone()) else {
        return;
    };
    let requests = thread::Builder::new()
        .name("relay-up".to_string())
        .spawn(move || pipe(client_read, upstream_write));
    pipe(upstream, client);
    if let Ok(handle) = requests {
        let _ = handle.join();
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(buf.get(..n).unwrap_or_default()).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{self, Request, ResponseWriter};

    fn echo_server() -> http::ServerHandle {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        http::serve(listener, |req: Request, w: &mut ResponseWriter| {
            let _ = w.full(200, &[], &req.body);
        })
    }

    #[test]
    fn forwards_refuses_and_comes_back_on_the_same_port() {
        let server = echo_server();
        let relay = Relay::start(server.addr).expect("relay");
        let addr = relay.addr();
        let send = |body: &[u8]| {
            let mut req = Request::new("POST", "/echo");
            req.body = body.to_vec();
            http::send(addr, &req, Duration::from_secs(5))
        };

        let reply = send(b"first").expect("forwarded while up");
        assert_eq!(reply.body, b"first");

        relay.set_up(false).expect("down");
        assert!(!relay.is_up());
        assert_eq!(send(b"lost"), Err(http::HttpError::Refused));

        relay.set_up(true).expect("up again");
        assert_eq!(relay.addr(), addr);
        let reply = send(b"second").expect("forwarded after coming back");
        assert_eq!(reply.body, b"second");
        assert_eq!(relay.forwarded(), 2);
    }
}
