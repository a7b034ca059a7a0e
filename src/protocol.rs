//! asyncio's `Protocol` and `Transport`, on [`roof::net`](crate::net).
//!
//! A [`Protocol`] reacts to callbacks; a [`Transport`] writes for it. As in asyncio, the
//! callbacks come in this order: [`connection_made`](Protocol::connection_made), then
//! [`data_received`](Protocol::data_received) for each chunk that arrives (chunk boundaries
//! are wherever the network cut the bytes: never assume whole messages),
//! [`eof_received`](Protocol::eof_received) when the peer shuts down its side, and
//! [`connection_lost`](Protocol::connection_lost) last, with the error if there was one.
//! [`Transport::write`] never blocks: bytes are buffered and sent as the peer's window
//! allows. While more than [`WRITE_HIGH_WATER`] bytes wait, the transport stops reading (so
//! `data_received` pauses): a peer that sends and never reads cannot grow the buffer without
//! bound. asyncio would call `pause_writing` and leave the buffer to the protocol instead.
//!
//! The yell-echo server of the asyncio notes:
//!
//! ```
//! use roof::protocol::{create_server, Protocol, Transport};
//!
//! struct YellEchoServer {
//!     transport: Option<Transport>,
//! }
//!
//! impl Protocol for YellEchoServer {
//!     fn connection_made(&mut self, transport: Transport) {
//!         roof::println!("Connection received from: {}", transport.peername());
//!         self.transport = Some(transport);
//!     }
//!     fn data_received(&mut self, data: &[u8]) {
//!         self.transport.as_ref().unwrap().write(&data.to_ascii_uppercase());
//!     }
//!     fn connection_lost(&mut self, _error: Option<std::io::Error>) {
//!         roof::println!("Client disconnected");
//!     }
//! }
//!
//! let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
//! let server = lp
//!     .run_until_complete(create_server(|| YellEchoServer { transport: None }, "127.0.0.1:1234"))
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(server.local_addr().port(), 1234);
//! server.close();
//! lp.run_until_complete(server.wait_closed()).unwrap();
//! ```

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::net::{TcpListener, TcpStream, ToSocketAddr};
use crate::task::JoinHandle;

/// The callbacks of a connection, as in asyncio. Every method has a default that does nothing.
///
/// ```
/// use roof::protocol::{create_server, Protocol, Transport};
/// struct Log;
/// impl Protocol for Log {
///     fn connection_made(&mut self, _: Transport) { roof::println!("made") }
///     fn data_received(&mut self, data: &[u8]) { roof::println!("data {data:?}") }
///     fn eof_received(&mut self) -> bool { roof::println!("eof"); false }
///     fn connection_lost(&mut self, error: Option<std::io::Error>) { roof::println!("lost {error:?}") }
/// }
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
/// lp.run_until_complete(async {
///     let _server = create_server(|| Log, "0.0.0.0:7").await.unwrap();
///     let mut stream = roof::net::TcpStream::connect("main:7").await.unwrap();
///     roof::io::AsyncWriteExt::write_all(&mut stream, &[1]).await.unwrap();
///     drop(stream); // closes it: the server reads EOF
///     roof::sleep(std::time::Duration::from_secs(1)).await;
/// }).unwrap();
/// assert_eq!(lp.report().output, "made\ndata [1]\neof\nlost None\n");
/// ```
pub trait Protocol: 'static {
    /// The connection is up; keep the transport to write.
    fn connection_made(&mut self, transport: Transport) {
        let _ = transport;
    }

    /// Bytes arrived (any amount: the network decides where a chunk ends).
    fn data_received(&mut self, data: &[u8]) {
        let _ = data;
    }

    /// The peer shut down its writing side. Return `true` to keep the transport open for
    /// writing; `false` (the default) closes it.
    fn eof_received(&mut self) -> bool {
        false
    }

    /// The connection is over: `None` after a clean close, else the error.
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Closing {
    Open,
    /// `close()`: flush what is buffered, then close.
    Flush,
    /// `abort()`: drop what is buffered, reset the connection.
    Abort,
}

struct TransportState {
    stream: TcpStream,
    peer: SocketAddr,
    local: SocketAddr,
    buffer: RefCell<Vec<u8>>,
    closing: Cell<Closing>,
    /// `write_eof()` was called: shut down the write half once the buffer is flushed.
    eof_requested: Cell<bool>,
    /// The task driving the connection, to wake when there is something to write.
    driver: RefCell<Option<Waker>>,
    /// Writes dropped because the transport was closing, closed or half-closed.
    dropped_writes: Cell<u32>,
}

/// Writes a closing or lost transport drops with only a trace event; from the next one on,
/// each also logs asyncio's warning, `socket.send() raised exception.` (CPython warns from
/// the fifth: its `LOG_THRESHOLD_FOR_CONNLOST_WRITES`).
pub const DROPPED_WRITES_QUIET: u32 = 4;

/// The writing side of a connection, handed to [`Protocol::connection_made`]; cheap to clone.
///
/// ```
/// use roof::io::AsyncReadExt;
/// use roof::protocol::{create_connection, Protocol, Transport};
/// struct Quiet;
/// impl Protocol for Quiet {}
/// let lp = roof::EventLoop::new();
/// let text = lp.run_until_complete(async {
///     let listener = roof::net::TcpListener::bind("0.0.0.0:7").await.unwrap();
///     let transport: Transport = create_connection(Quiet, "main:7").await.unwrap();
///     transport.write(b"hello, world"); // buffered; never blocks
///     transport.close(); // after sending what is buffered: the peer reads EOF
///     assert!(transport.is_closing());
///     let (mut stream, _) = listener.accept().await.unwrap();
///     let mut text = String::new();
///     stream.read_to_string(&mut text).await.unwrap();
///     text
/// }).unwrap();
/// assert_eq!(text, "hello, world");
/// ```
#[derive(Clone)]
pub struct Transport {
    state: Rc<TransportState>,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("peer", &self.state.peer)
            .field("closing", &self.is_closing())
            .finish()
    }
}

/// What [`Transport::get_extra_info`] knows.
///
/// ```
/// use roof::protocol::{create_connection, create_server, ExtraInfo, Protocol};
/// struct Idle;
/// impl Protocol for Idle {}
/// let lp = roof::EventLoop::new();
/// let (peer, unknown) = lp.run_until_complete(async {
///     let _server = create_server(|| Idle, "0.0.0.0:8000").await.unwrap();
///     let transport = create_connection(Idle, "main:8000").await.unwrap();
///     (transport.get_extra_info("peername"), transport.get_extra_info("socket"))
/// }).unwrap();
/// let Some(ExtraInfo::Addr(addr)) = &peer else { panic!("peername is an address") };
/// assert_eq!(addr.port(), 8000);
/// assert_eq!(peer.unwrap().to_string(), "('10.0.0.1', 8000)", "as Python prints it");
/// assert_eq!(unknown, None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtraInfo {
    /// An address (`peername`, `sockname`).
    Addr(SocketAddr),
}

impl fmt::Display for ExtraInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtraInfo::Addr(addr) => write!(f, "('{}', {})", addr.ip(), addr.port()),
        }
    }
}

impl Transport {
    /// `peer` is the address `accept` reported, when there is one: a real peer may already
    /// have reset the connection, and then the socket no longer knows it.
    fn new(stream: TcpStream, peer: Option<SocketAddr>) -> io::Result<Transport> {
        let peer = match peer {
            Some(peer) => peer,
            None => stream.peer_addr()?,
        };
        Ok(Transport {
            state: Rc::new(TransportState {
                peer,
                local: stream.local_addr()?,
                stream,
                buffer: RefCell::new(Vec::new()),
                closing: Cell::new(Closing::Open),
                eof_requested: Cell::new(false),
                driver: RefCell::new(None),
                dropped_writes: Cell::new(0),
            }),
        })
    }

    fn poke(&self) {
        let driver = self.state.driver.borrow_mut().take();
        if let Some(driver) = driver {
            driver.wake();
        }
    }

    /// Queue `data` to be sent; never blocks.
    ///
    /// Once the transport is closing (`close`, `abort`), half-closed (`write_eof`) or its
    /// connection is lost, the data is dropped, as asyncio drops it, but not silently: each
    /// dropped write is in the trace, and past the first [`DROPPED_WRITES_QUIET`] each one
    /// also logs asyncio's warning (a trace warning; on a real loop, a line on stderr). asyncio raises `RuntimeError` for a write
    /// after `write_eof`; a Rust callback cannot be interrupted that way, so roof drops and
    /// warns there too.
    pub fn write(&self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let state = &self.state;
        if state.closing.get() != Closing::Open || state.eof_requested.get() {
            let dropped = state.dropped_writes.get() + 1;
            state.dropped_writes.set(dropped);
            let why = if state.eof_requested.get() && state.closing.get() == Closing::Open {
                "after write_eof"
            } else {
                "the transport is closing or its connection lost"
            };
            let (peer, bytes) = (state.peer, data.len());
            crate::kernel::try_with(|kernel| {
                kernel.log(format!(
                    "transport to {peer}: write of {bytes} bytes dropped ({why})"
                ));
                if dropped > DROPPED_WRITES_QUIET {
                    kernel.warn(format!(
                        "socket.send() raised exception. (transport to {peer}: {dropped} writes dropped)"
                    ));
                }
            });
            return;
        }
        state.buffer.borrow_mut().extend_from_slice(data);
        self.poke();
    }

    /// Close the write side after the buffered data (the peer reads EOF).
    pub fn write_eof(&self) {
        self.state.eof_requested.set(true);
        self.poke();
    }

    /// Whether half-closing with [`write_eof`](Transport::write_eof) is supported (always, for TCP).
    pub fn can_write_eof(&self) -> bool {
        true
    }

    /// Close after sending what is buffered; then `connection_lost(None)`.
    pub fn close(&self) {
        if self.state.closing.get() == Closing::Open {
            self.state.closing.set(Closing::Flush);
            self.poke();
        }
    }

    /// Close now, dropping what is buffered: the peer sees a reset.
    pub fn abort(&self) {
        self.state.closing.set(Closing::Abort);
        self.state.buffer.borrow_mut().clear();
        self.poke();
    }

    /// Whether `close` or `abort` was called.
    pub fn is_closing(&self) -> bool {
        self.state.closing.get() != Closing::Open
    }

    /// Bytes waiting to be sent.
    pub fn get_write_buffer_size(&self) -> usize {
        self.state.buffer.borrow().len()
    }

    /// The peer's address (asyncio's `get_extra_info('peername')`).
    pub fn peername(&self) -> SocketAddr {
        self.state.peer
    }

    /// The local address (`get_extra_info('sockname')`).
    pub fn sockname(&self) -> SocketAddr {
        self.state.local
    }

    /// asyncio's `get_extra_info`: `"peername"` and `"sockname"`; `None` for anything else.
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            "peername" => Some(ExtraInfo::Addr(self.state.peer)),
            "sockname" => Some(ExtraInfo::Addr(self.state.local)),
            _ => None,
        }
    }
}

/// Run one connection: deliver callbacks to `protocol` and send what the transport buffers.
/// Bytes a transport buffers for writing before it stops reading (asyncio's default
/// high-water mark). The stream is blocked on a write whenever the buffer is this full, so the
/// driver wakes again once the peer's window opens.
pub const WRITE_HIGH_WATER: usize = 64 * 1024;

async fn drive<P: Protocol>(stream: TcpStream, peer: Option<SocketAddr>, mut protocol: P) {
    let transport = match Transport::new(stream, peer) {
        Ok(transport) => transport,
        Err(error) => {
            protocol.connection_lost(Some(error));
            return;
        }
    };
    protocol.connection_made(transport.clone());
    let state = transport.state.clone();
    let mut reading = true;
    let mut write_shut = false;
    let mut chunk = vec![0u8; 16 * 1024];
    // On a real loop, as in asyncio's selector loop, connection_made and each read happen in
    // different turns of the loop: the driver yields after each, so a caller waiting for
    // `create_connection` (and every other task) runs before the next chunk is read. In the
    // simulation data only arrives between polls, so reading on until the socket is empty
    // sees the same callbacks; it keeps its traces.
    let real = crate::kernel::with(|kernel| kernel.is_real());
    let mut just_made = real;
    let lost = poll_fn(|cx: &mut Context<'_>| {
        let mut turn_used = std::mem::replace(&mut just_made, false);
        loop {
            *state.driver.borrow_mut() = Some(cx.waker().clone());
            if state.closing.get() == Closing::Abort {
                state.stream.reset();
                return Poll::Ready(None);
            }
            // Send what is buffered, as far as the peer's window allows.
            let mut blocked = false;
            loop {
                let pending = state.buffer.borrow().len();
                if pending == 0 {
                    break;
                }
                let written = {
                    let buffer = state.buffer.borrow();
                    state.stream.poll_write_ref(cx, &buffer)
                };
                match written {
                    Poll::Ready(Ok(count)) => {
                        state.buffer.borrow_mut().drain(..count);
                    }
                    Poll::Ready(Err(error)) => return Poll::Ready(Some(error)),
                    Poll::Pending => {
                        blocked = true;
                        break;
                    }
                }
            }
            let flushed = !blocked && state.buffer.borrow().is_empty();
            let wants_shutdown = state.eof_requested.get() || state.closing.get() == Closing::Flush;
            if flushed && wants_shutdown && !write_shut {
                write_shut = true;
                if let Err(error) = state.stream.shutdown(Shutdown::Write) {
                    return Poll::Ready(Some(error));
                }
            }
            if state.closing.get() == Closing::Flush && flushed {
                return Poll::Ready(None);
            }
            // Flow control: while the write buffer is over its high-water mark, read nothing, so
            // a peer that sends without reading fills its own TCP window instead of this buffer.
            if !reading || state.buffer.borrow().len() >= WRITE_HIGH_WATER {
                return Poll::Pending;
            }
            if turn_used {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            match state.stream.poll_read_ref(cx, &mut chunk) {
                Poll::Ready(Ok(0)) => {
                    reading = false;
                    turn_used = real;
                    if !protocol.eof_received() {
                        transport.close();
                    }
                }
                Poll::Ready(Ok(count)) => {
                    turn_used = real;
                    protocol.data_received(&chunk[..count]);
                }
                Poll::Ready(Err(error)) => return Poll::Ready(Some(error)),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await;
    state.closing.set(Closing::Abort);
    protocol.connection_lost(lost);
}

struct ServerState {
    addr: SocketAddr,
    accepting: RefCell<Option<JoinHandle<()>>>,
    /// Connections whose driver is still running.
    active: Cell<usize>,
    waiters: RefCell<Vec<Waker>>,
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
enum AcceptFailure {
    /// The listener is gone (closed, or its host crashed): stop accepting.
    Closed,
    /// The one connection went away before it was accepted: accept the next at once.
    Skip,
    /// Out of descriptors or memory, or anything else: say so and retry after a backoff.
    Retry,
}

fn accept_failed(error: &io::Error) -> AcceptFailure {
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

/// Connect to `addr` and drive the connection with `protocol` (asyncio's
/// `loop.create_connection`); returns the transport once connected.
///
/// ```
/// use roof::protocol::{create_connection, Protocol};
/// use std::{cell::RefCell, rc::Rc};
/// struct Collect(Rc<RefCell<Vec<u8>>>);
/// impl Protocol for Collect {
///     fn data_received(&mut self, data: &[u8]) { self.0.borrow_mut().extend_from_slice(data) }
/// }
/// let lp = roof::EventLoop::new();
/// lp.host("server", || async {
///     let listener = roof::net::TcpListener::bind("0.0.0.0:7").await.unwrap();
///     let (mut stream, _) = listener.accept().await.unwrap();
///     roof::io::AsyncWriteExt::write_all(&mut stream, b"welcome").await.unwrap();
/// }).unwrap();
/// let received = Rc::new(RefCell::new(Vec::new()));
/// lp.run_until_complete(create_connection(Collect(received.clone()), "server:7")).unwrap().unwrap();
/// lp.run_until_complete(roof::sleep(std::time::Duration::from_secs(1))).unwrap();
/// assert_eq!(*received.borrow(), b"welcome");
/// ```
pub async fn create_connection<P: Protocol>(
    protocol: P,
    addr: impl ToSocketAddr,
) -> io::Result<Transport> {
    let stream = TcpStream::connect(addr).await?;
    let slot: TransportSlot = Rc::new(RefCell::new((None, None)));
    let receiver = TransportReceiver { slot: slot.clone() };
    crate::spawn_named("connection", drive_reporting(stream, protocol, slot)).detach();
    receiver.await
}

/// A one-shot slot for the transport, filled when `connection_made` is about to run.
type TransportSlot = Rc<RefCell<(Option<io::Result<Transport>>, Option<Waker>)>>;

struct TransportReceiver {
    slot: TransportSlot,
}

impl std::future::Future for TransportReceiver {
    type Output = io::Result<Transport>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.slot.borrow_mut();
        match slot.0.take() {
            Some(result) => Poll::Ready(result),
            None => {
                slot.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Wraps a protocol to hand its transport to the caller of `create_connection` first.
struct Reporting<P> {
    inner: P,
    slot: Option<TransportSlot>,
}

impl<P: Protocol> Protocol for Reporting<P> {
    fn connection_made(&mut self, transport: Transport) {
        if let Some(slot) = self.slot.take() {
            let waker = {
                let mut slot = slot.borrow_mut();
                slot.0 = Some(Ok(transport.clone()));
                slot.1.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        }
        self.inner.connection_made(transport);
    }

    fn data_received(&mut self, data: &[u8]) {
        self.inner.data_received(data);
    }

    fn eof_received(&mut self) -> bool {
        self.inner.eof_received()
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        self.inner.connection_lost(error);
    }
}

async fn drive_reporting<P: Protocol>(stream: TcpStream, protocol: P, slot: TransportSlot) {
    let failed = slot.clone();
    drive(
        stream,
        None,
        Reporting {
            inner: protocol,
            slot: Some(slot),
        },
    )
    .await;
    // If the transport could not even be made, the caller hears why.
    let waker = {
        let mut slot = failed.borrow_mut();
        if slot.0.is_none() && slot.1.is_some() {
            slot.0 = Some(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection closed at once",
            )));
        }
        slot.1.take()
    };
    if let Some(waker) = waker {
        waker.wake();
    }
}
