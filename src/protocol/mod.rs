//! asyncio's `Protocol` and `Transport`, on [`roof::net`](crate::net); and its datagram
//! endpoints: [`DatagramProtocol`], [`DatagramTransport`], [`create_datagram_endpoint`].
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

use std::fmt;
use std::io;
use std::net::SocketAddr;

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

mod client;
mod datagram;
mod server;
mod transport;

pub use client::create_connection;
pub use datagram::{
    create_datagram_endpoint, DatagramProtocol, DatagramTransport, DATAGRAMS_QUEUED_MAX,
    DATAGRAM_MAX,
};
pub use server::{create_server, Server, ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN};
pub use transport::{Transport, DROPPED_WRITES_QUIET, WRITE_HIGH_WATER};

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
