//! The server side: [`create_server`]'s accept loop (retrying what the system refuses) and
//! the [`Server`] that closes it.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::Duration;

use super::transport::drive;
use super::Protocol;
use crate::net::{TcpListener, ToSocketAddr};
use crate::task::JoinHandle;

pub(super) struct ServerState {
    pub(super) addr: SocketAddr,
    pub(super) accepting: RefCell<Option<JoinHandle<()>>>,
    /// Connections whose driver is still running.
    pub(super) active: Cell<usize>,
    pub(super) waiters: RefCell<Vec<Waker>>,
}

impl ServerState {
    fn notify(&self) {
        for waker in self.waiters.take() {
            waker.wake();
        }
    }
}

/// A listening server made by [`create_server`].
///
/// ```
/// use roof::protocol::{create_server, Protocol};
/// struct Idle;
/// impl Protocol for Idle {}
/// let lp = roof::EventLoop::new();
/// lp.run_until_complete(async {
///     let server = create_server(|| Idle, "0.0.0.0:0").await.unwrap();
///     assert!(server.is_serving());
///     assert_ne!(server.local_addr().port(), 0, "port 0 picks a free port");
///     server.close();
///     server.wait_closed().await;
///     assert!(!server.is_serving());
/// }).unwrap();
/// ```
pub struct Server {
    state: Rc<ServerState>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("addr", &self.state.addr)
            .finish()
    }
}

impl Server {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.state.addr
    }

    /// Stop accepting; connections already made go on.
    pub fn close(&self) {
        let accepting = self.state.accepting.borrow_mut().take();
        if let Some(mut accepting) = accepting {
            accepting.abort();
        }
        self.state.notify();
    }

    /// Whether the server still accepts connections.
    pub fn is_serving(&self) -> bool {
        self.state.accepting.borrow().is_some()
    }

    /// Wait until the server is closed and every connection it accepted is over (as asyncio
    /// 3.12 does). The future does not borrow the server.
    pub fn wait_closed(&self) -> impl std::future::Future<Output = ()> + 'static {
        let state = self.state.clone();
        poll_fn(move |cx| {
            if state.accepting.borrow().is_none() && state.active.get() == 0 {
                Poll::Ready(())
            } else {
                state.waiters.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
        })
    }
}

/// The first wait after `accept` fails for want of resources (EMFILE, ENFILE, ENOMEM, ...).
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait between `accept` retries (asyncio waits its `ACCEPT_RETRY_DELAY`, 1 s).
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What a server does after `accept` failed.
pub(super) enum AcceptFailure {
    /// The listener is gone (closed, or its host crashed): stop accepting.
    Closed,
    /// The one connection went away before it was accepted: accept the next at once.
    Skip,
    /// Out of descriptors or memory, or anything else: say so and retry after a backoff.
    Retry,
}

pub(super) fn accept_failed(error: &io::Error) -> AcceptFailure {
    match error.kind() {
        io::ErrorKind::NotConnected => AcceptFailure::Closed,
        io::ErrorKind::ConnectionAborted
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::Interrupted
        | io::ErrorKind::WouldBlock => AcceptFailure::Skip,
        _ => AcceptFailure::Retry,
    }
}

/// Listen on `addr` and serve each connection with a fresh protocol from `factory` (asyncio's
/// `loop.create_server`). The server runs on the current host.
///
/// ```
/// use roof::io::{AsyncReadExt, AsyncWriteExt};
/// use roof::protocol::{create_server, Protocol, Transport};
/// struct Upper(Option<Transport>);
/// impl Protocol for Upper {
///     fn connection_made(&mut self, transport: Transport) { self.0 = Some(transport) }
///     fn data_received(&mut self, data: &[u8]) { self.0.as_ref().unwrap().write(&data.to_ascii_uppercase()) }
/// }
/// let lp = roof::EventLoop::new();
/// let reply = lp.run_until_complete(async {
///     let _server = create_server(|| Upper(None), "0.0.0.0:7").await.unwrap();
///     let mut stream = roof::net::TcpStream::connect("main:7").await.unwrap();
///     stream.write_all(b"hi").await.unwrap();
///     let mut reply = [0u8; 2];
///     stream.read_exact(&mut reply).await.unwrap();
///     reply
/// }).unwrap();
/// assert_eq!(&reply, b"HI");
/// ```
///
/// # Errors while serving
/// An `accept` that fails for want of resources (too many open files, no memory) is logged
/// (a trace warning; on a real loop, a line on stderr) and retried after a backoff from
/// [`ACCEPT_BACKOFF_MIN`] doubling up to [`ACCEPT_BACKOFF_MAX`], so the server recovers once
/// descriptors are free; a connection that went away before it was accepted is skipped. On
/// a real loop a connection whose protocol panics is dropped and the panic logged with the
/// peer's address, and the server goes on serving the others; in a simulation the panic
/// fails the run, as every panic does.
pub async fn create_server<P, F>(factory: F, addr: impl ToSocketAddr) -> io::Result<Server>
where
    P: Protocol,
    F: Fn() -> P + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let state = Rc::new(ServerState {
        addr: listener.local_addr()?,
        accepting: RefCell::new(None),
        active: Cell::new(0),
        waiters: RefCell::new(Vec::new()),
    });
    let server_state = state.clone();
    let accepting = crate::spawn_named("server", async move {
        let mut backoff = ACCEPT_BACKOFF_MIN;
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    accepted
                }
                Err(error) => match accept_failed(&error) {
                    AcceptFailure::Closed => return,
                    AcceptFailure::Skip => continue,
                    AcceptFailure::Retry => {
                        let addr = server_state.addr;
                        crate::kernel::with(|kernel| {
                            kernel.warn(format!(
                                "accept on {addr} failed: {error}; retrying in {backoff:?}"
                            ))
                        });
                        crate::sleep(backoff).await;
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                        continue;
                    }
                },
            };
            server_state.active.set(server_state.active.get() + 1);
            let connection_state = server_state.clone();
            let protocol = factory();
            crate::spawn_named("connection", async move {
                /// Counts the connection out however its driver ends (even cancelled).
                struct Active(Rc<ServerState>);
                impl Drop for Active {
                    fn drop(&mut self) {
                        self.0.active.set(self.0.active.get() - 1);
                        self.0.notify();
                    }
                }
                let _active = Active(connection_state);
                if !crate::kernel::with(|kernel| kernel.is_real()) {
                    // A simulated run fails on a panic, as on any other.
                    drive(stream, Some(peer), protocol).await;
                    return;
                }
                // A real server goes on serving the others, as asyncio's exception handler
                // lets it: the connection is dropped and the panic logged with it.
                let driven = std::panic::AssertUnwindSafe(drive(stream, Some(peer), protocol));
                if let Err(panic) = futures_lite::FutureExt::catch_unwind(driven).await {
                    let message = crate::kernel::panic_message(panic.as_ref());
                    crate::kernel::with(|kernel| {
                        kernel.warn(format!(
                            "the handler of the connection from {peer} panicked: {message}; connection dropped"
                        ))
                    });
                }
            })
            .detach();
        }
    });
    *state.accepting.borrow_mut() = Some(accepting);
    Ok(Server { state })
}
