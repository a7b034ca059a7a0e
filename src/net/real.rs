//! The real backend (feature `real-net`): the same program on real sockets and the wall clock.
//!
//! [`EventLoop::real`](crate::EventLoop::real) makes a loop in real mode. Everything else is
//! the API the simulation already has: `spawn`, `sleep`, `timeout`, `call_later`,
//! [`TcpListener`](crate::net::TcpListener), [`TcpStream`](crate::net::TcpStream),
//! [`UdpSocket`](crate::net::UdpSocket), [`create_server`](crate::protocol::create_server),
//! [`create_connection`](crate::protocol::create_connection). In real mode:
//!
//! - time is the wall clock (monotonic, from the loop's creation), and an idle loop sleeps
//!   in [`async_io::block_on`] until a socket is ready, a timer is due, or another thread
//!   wakes one of its tasks;
//! - sockets are [`async_io::Async`] wrappers of `std::net` sockets with `TCP_NODELAY` on
//!   (as asyncio does), names resolve through the operating system, and `abort` resets the
//!   connection (`SO_LINGER` 0);
//! - tasks run in FIFO order (asyncio's), with no step or time limit and no trace;
//! - faults and `buggify!` do nothing: they exist only in simulation.
//!
//! async-io's reactor may wake a task from its own thread. Such a wakeup is posted to the
//! loop's mailbox (a mutex-guarded list, one per real loop) and the loop runs the task on its
//! own thread; a task is never run or dropped anywhere else.
//!
//! ```
//! use roof::io::{AsyncReadExt, AsyncWriteExt};
//! use roof::net::{TcpListener, TcpStream};
//!
//! let lp = roof::EventLoop::real();
//! let echoed = lp
//!     .run_until_complete(async {
//!         let listener = TcpListener::bind("127.0.0.1:0").await?;
//!         let addr = listener.local_addr()?;
//!         roof::spawn(async move {
//!             let (mut stream, _) = listener.accept().await.unwrap();
//!             let mut buf = [0u8; 5];
//!             stream.read_exact(&mut buf).await.unwrap();
//!             stream.write_all(&buf.to_ascii_uppercase()).await.unwrap();
//!         })
//!         .detach();
//!         let mut stream = TcpStream::connect(addr).await?;
//!         stream.write_all(b"hello").await?;
//!         let mut answer = [0u8; 5];
//!         stream.read_exact(&mut answer).await?;
//!         std::io::Result::Ok(answer)
//!     })
//!     .unwrap()
//!     .unwrap();
//! assert_eq!(&echoed, b"HELLO");
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use async_io::Async;

// ----- sockets ---------------------------------------------------------------------------

/// Resolve a host name through the operating system, preferring IPv4 (as `nc localhost`
/// and a server bound to 127.0.0.1 would agree).
pub(crate) fn lookup(host: &str) -> io::Result<IpAddr> {
    let addrs: Vec<SocketAddr> = (host, 0)
        .to_socket_addrs()
        .map_err(|error| {
            io::Error::new(
                error.kind(),
                format!("cannot resolve host {host:?}: {error}"),
            )
        })?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| addrs.first())
        .map(SocketAddr::ip)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("host {host:?} has no address"),
            )
        })
}

pub(crate) fn bind_tcp(addr: SocketAddr) -> io::Result<Async<std::net::TcpListener>> {
    Async::<std::net::TcpListener>::bind(addr)
        .map_err(|error| io::Error::new(error.kind(), format!("cannot listen on {addr}: {error}")))
}

pub(crate) async fn accept(
    listener: &Async<std::net::TcpListener>,
) -> io::Result<(Async<std::net::TcpStream>, SocketAddr)> {
    let (stream, peer) = listener.accept().await?;
    stream.get_ref().set_nodelay(true)?;
    Ok((stream, peer))
}

pub(crate) async fn connect(addr: SocketAddr) -> io::Result<Async<std::net::TcpStream>> {
    let stream = Async::<std::net::TcpStream>::connect(addr).await?;
    stream.get_ref().set_nodelay(true)?;
    Ok(stream)
}

/// Make the socket's close send a RST instead of a FIN.
pub(crate) fn reset(stream: &Async<std::net::TcpStream>) {
    // This fails only on a socket that is already gone, which is what a reset wants.
    let _ = rustix::net::sockopt::set_socket_linger(stream.get_ref(), Some(Duration::ZERO));
}

pub(crate) fn bind_udp(addr: SocketAddr) -> io::Result<Async<std::net::UdpSocket>> {
    Async::<std::net::UdpSocket>::bind(addr)
        .map_err(|error| io::Error::new(error.kind(), format!("cannot bind {addr}: {error}")))
}

/// Wait for Ctrl-C (SIGINT) or SIGTERM, the way a server learns it should close.
///
/// Only in real mode: inside a simulation it is an error, since no signal can reach one.
///
/// ```no_run
/// # let lp = roof::EventLoop::real();
/// lp.run_until_complete(async {
///     roof::net::real::ctrl_c().await.unwrap();
///     roof::println!("bye");
/// })
/// .unwrap();
/// ```
pub async fn ctrl_c() -> io::Result<()> {
    use async_signal::{Signal, Signals};
    use futures_lite::StreamExt;

    if !crate::kernel::with(|kernel| kernel.is_real()) {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "ctrl_c waits for a real signal: use it on a real loop (EventLoop::real)",
        ));
    }
    let mut signals = Signals::new([Signal::Int, Signal::Term])?;
    match signals.next().await {
        Some(result) => result.map(|_| ()),
        None => Err(io::Error::other("the signal stream ended")),
    }
}
