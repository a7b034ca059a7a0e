//! TCP: [`TcpListener`] and [`TcpStream`], on the simulated fabric or (feature `real-net`) on
//! real sockets.

use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(feature = "real-net")]
use super::real;
use super::ToSocketAddr;
use crate::cancel::await_point;
use crate::kernel;

/// A TCP socket listening on the current host.
///
/// Dropping it stops listening; connections not yet accepted are reset.
///
/// ```
/// use roof::net::{TcpListener, TcpStream};
/// use std::io::ErrorKind;
/// let lp = roof::EventLoop::new();
/// let (peer, client_addr) = lp.run_until_complete(async {
///     let listener = TcpListener::bind("0.0.0.0:80").await.unwrap();
///     let taken = TcpListener::bind("0.0.0.0:80").await.unwrap_err();
///     assert_eq!(taken.kind(), ErrorKind::AddrInUse);
///     let client = roof::spawn(TcpStream::connect("main:80"));
///     let (_stream, peer) = listener.accept().await.unwrap();
///     (peer, client.await.unwrap().unwrap().local_addr().unwrap())
/// }).unwrap();
/// assert_eq!(peer, client_addr, "accept reports the client's address");
/// ```
#[derive(Debug)]
pub struct TcpListener {
    inner: Listener,
}

#[derive(Debug)]
enum Listener {
    Sim {
        addr: SocketAddr,
        id: u64,
    },
    #[cfg(feature = "real-net")]
    Real(async_io::Async<std::net::TcpListener>),
}

impl TcpListener {
    /// Listen on `addr` (`0.0.0.0:1234`, `"server:1234"`, port 0 for any free port).
    ///
    /// Fails with `AddrInUse` if something already listens there, and `AddrNotAvailable` for
    /// an address of another host.
    pub async fn bind(addr: impl ToSocketAddr) -> io::Result<TcpListener> {
        let requested = addr.to_socket_addr()?;
        #[cfg(feature = "real-net")]
        if kernel::with(|kernel| kernel.is_real()) {
            return Ok(TcpListener {
                inner: Listener::Real(real::bind_tcp(requested)?),
            });
        }
        crate::fault::stalled("bind").await;
        let (addr, id) = kernel::with(|kernel| {
            let host = kernel.exec.current_host.get();
            kernel.net_call(|net, _| net.listen(host, requested))
        })?;
        Ok(TcpListener {
            inner: Listener::Sim { addr, id },
        })
    }

    /// Wait for a connection; returns the stream and the peer's address.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (addr, id) = match &self.inner {
            Listener::Sim { addr, id } => (*addr, *id),
            #[cfg(feature = "real-net")]
            Listener::Real(listener) => {
                let (stream, peer) = await_point(real::accept(listener)).await?;
                return Ok((
                    TcpStream {
                        inner: Stream::Real(stream),
                    },
                    peer,
                ));
            }
        };
        let (conn, peer) = await_point(poll_fn(|cx| {
            kernel::with(|kernel| kernel.net_call(|net, _| net.poll_accept(addr, id, cx.waker())))
                .map_or(Poll::Pending, Poll::Ready)
        }))
        .await?;
        let stream = TcpStream {
            inner: Stream::Sim { conn, side: 1 },
        };
        // A stalled accept returns late, never refuses: the connection waits meanwhile.
        crate::fault::stalled("accept").await;
        Ok((stream, peer))
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Listener::Sim { addr, .. } => Ok(*addr),
            #[cfg(feature = "real-net")]
            Listener::Real(listener) => listener.get_ref().local_addr(),
        }
    }
}

impl Drop for TcpListener {
    fn drop(&mut self) {
        match self.inner {
            Listener::Sim { addr, id } => {
                kernel::try_with(|kernel| kernel.net_call(|net, now| net.unlisten(addr, id, now)));
            }
            #[cfg(feature = "real-net")]
            _ => {}
        }
    }
}

/// A TCP connection: `futures` `AsyncRead` and `AsyncWrite`.
///
/// Bytes arrive in order, cut into segments of random size. Writes wait while the peer's
/// receive buffer is full. Dropping the stream closes it gracefully (the peer reads EOF);
/// [`abort`](TcpStream::abort) resets it.
///
/// ```
/// use roof::{io::{AsyncReadExt, AsyncWriteExt}, net::{TcpListener, TcpStream}};
/// let lp = roof::EventLoop::new();
/// lp.host("server", || async {
///     let listener = TcpListener::bind("0.0.0.0:7").await.unwrap();
///     let (mut stream, _) = listener.accept().await.unwrap();
///     stream.write_all(b"hello").await.unwrap();
/// }).unwrap(); // the stream is dropped: closed, and the client reads EOF after the data
/// let received = lp.run_until_complete(async {
///     let mut stream = TcpStream::connect("server:7").await.unwrap();
///     assert_eq!(stream.peer_addr().unwrap().port(), 7);
///     let mut text = String::new();
///     stream.read_to_string(&mut text).await.unwrap();
///     text
/// }).unwrap();
/// assert_eq!(received, "hello");
/// ```
#[derive(Debug)]
pub struct TcpStream {
    inner: Stream,
}

#[derive(Debug)]
enum Stream {
    Sim {
        /// The connection's handle in the fabric (slot and generation).
        conn: u64,
        side: usize,
    },
    #[cfg(feature = "real-net")]
    Real(async_io::Async<std::net::TcpStream>),
}

impl TcpStream {
    /// Connect to `addr`. Fails with `ConnectionRefused` when nothing listens there, and with
    /// `NotFound` for an unknown host name.
    pub async fn connect(addr: impl ToSocketAddr) -> io::Result<TcpStream> {
        let target = addr.to_socket_addr()?;
        #[cfg(feature = "real-net")]
        if kernel::with(|kernel| kernel.is_real()) {
            return Ok(TcpStream {
                inner: Stream::Real(await_point(real::connect(target)).await?),
            });
        }
        crate::fault::stalled("connect").await;
        let conn = kernel::with(|kernel| {
            let host = kernel.exec.current_host.get();
            kernel.net_call(|net, now| net.connect(host, target, now))
        })?;
        // From here on the stream owns the connection: dropping it (say, on a timeout) closes it.
        let stream = TcpStream {
            inner: Stream::Sim { conn, side: 0 },
        };
        await_point(poll_fn(|cx| {
            kernel::with(|kernel| kernel.net_call(|net, _| net.poll_connected(conn, cx.waker())))
                .map_or(Poll::Pending, Poll::Ready)
        }))
        .await?;
        Ok(stream)
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Stream::Sim { conn, side } => {
                kernel::with(|kernel| kernel.net.borrow().addrs(*conn, *side)).map(|addrs| addrs.0)
            }
            #[cfg(feature = "real-net")]
            Stream::Real(stream) => stream.get_ref().local_addr(),
        }
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Stream::Sim { conn, side } => {
                kernel::with(|kernel| kernel.net.borrow().addrs(*conn, *side)).map(|addrs| addrs.1)
            }
            #[cfg(feature = "real-net")]
            Stream::Real(stream) => stream.get_ref().peer_addr(),
        }
    }

    /// Shut down the write half (the peer reads EOF after the data already sent). Shutting
    /// down the read half is accepted and does nothing.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match how {
            Shutdown::Read => Ok(()),
            Shutdown::Write | Shutdown::Both => match &self.inner {
                Stream::Sim { conn, side } => {
                    let (conn, side) = (*conn, *side);
                    kernel::with(|kernel| kernel.net_call(|net, now| net.shutdown(conn, side, now)))
                }
                #[cfg(feature = "real-net")]
                Stream::Real(stream) => stream.get_ref().shutdown(Shutdown::Write),
            },
        }
    }

    /// Reset the connection: the peer's next read or write fails with `ConnectionReset`.
    pub fn abort(self) {
        self.reset();
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        match self.inner {
            Stream::Sim { conn, side } => {
                kernel::try_with(|kernel| kernel.net_call(|net, now| net.close(conn, side, now)));
            }
            #[cfg(feature = "real-net")]
            _ => {}
        }
    }
}

impl TcpStream {
    pub(crate) fn poll_read_ref(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if crate::engine::cancel::deliver_cancel() {
            return Poll::Pending;
        }
        match &self.inner {
            Stream::Sim { conn, side } => {
                let (conn, side) = (*conn, *side);
                kernel::with(|kernel| {
                    kernel.net_call(|net, _| net.poll_read(conn, side, buf, cx.waker()))
                })
                .map_or(Poll::Pending, Poll::Ready)
            }
            #[cfg(feature = "real-net")]
            Stream::Real(stream) => {
                futures_io::AsyncRead::poll_read(Pin::new(&mut &*stream), cx, buf)
            }
        }
    }

    pub(crate) fn poll_write_ref(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &self.inner {
            Stream::Sim { conn, side } => {
                let (conn, side) = (*conn, *side);
                kernel::with(|kernel| {
                    kernel.net_call(|net, now| net.poll_write(conn, side, buf, cx.waker(), now))
                })
                .map_or(Poll::Pending, Poll::Ready)
            }
            #[cfg(feature = "real-net")]
            Stream::Real(stream) => {
                futures_io::AsyncWrite::poll_write(Pin::new(&mut &*stream), cx, buf)
            }
        }
    }

    /// Reset without consuming the stream (for a transport's `abort`). On a real socket the
    /// RST goes out when the socket closes.
    pub(crate) fn reset(&self) {
        match &self.inner {
            Stream::Sim { conn, side } => {
                let (conn, side) = (*conn, *side);
                kernel::try_with(|kernel| kernel.net_call(|net, now| net.abort(conn, side, now)));
            }
            #[cfg(feature = "real-net")]
            Stream::Real(stream) => real::reset(stream),
        }
    }
}

/// Reading and writing need only a shared reference: a stream can be read by one task and
/// written by another (`&TcpStream` implements both traits, as in async-io and tokio).
macro_rules! stream_io {
    ($stream:ty) => {
        impl futures_io::AsyncRead for $stream {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_read_ref(cx, buf)
            }
        }

        impl futures_io::AsyncWrite for $stream {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                self.poll_write_ref(cx, buf)
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                // Writes are handed to the fabric at once; nothing is buffered here.
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(self.shutdown(Shutdown::Write))
            }
        }
    };
}

stream_io!(TcpStream);
stream_io!(&TcpStream);
