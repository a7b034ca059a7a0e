//! A connection's two sides: the [`Transport`] a protocol writes through, and the driver task
//! that delivers the protocol's callbacks and sends what the transport buffers.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::{ExtraInfo, Protocol};
use crate::net::TcpStream;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Closing {
    Open,
    /// `close()`: flush what is buffered, then close.
    Flush,
    /// `abort()`: drop what is buffered, reset the connection.
    Abort,
}

pub(super) struct TransportState {
    pub(super) stream: TcpStream,
    pub(super) peer: SocketAddr,
    pub(super) local: SocketAddr,
    pub(super) buffer: RefCell<Vec<u8>>,
    pub(super) closing: Cell<Closing>,
    /// `write_eof()` was called: shut down the write half once the buffer is flushed.
    pub(super) eof_requested: Cell<bool>,
    /// The task driving the connection, to wake when there is something to write.
    pub(super) driver: RefCell<Option<Waker>>,
    /// Writes dropped because the transport was closing, closed or half-closed.
    pub(super) dropped_writes: Cell<u32>,
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

pub(super) async fn drive<P: Protocol>(
    stream: TcpStream,
    peer: Option<SocketAddr>,
    mut protocol: P,
) {
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
