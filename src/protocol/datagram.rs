//! asyncio's datagram endpoints: [`DatagramProtocol`], [`DatagramTransport`] and
//! [`create_datagram_endpoint`], on [`UdpSocket`](crate::net::UdpSocket) (simulated or real).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Poll, Waker};

use super::ExtraInfo;
use crate::net::{ToSocketAddr, UdpSocket};

/// The largest datagram [`DatagramTransport::sendto`] takes, and the most one
/// `datagram_received` carries: UDP's largest payload over IPv4.
pub const DATAGRAM_MAX: usize = 65_507;

/// How many datagrams may wait in a transport to be sent; `sendto` beyond that is a
/// `WouldBlock` error (the endpoint's task sends them as soon as it runs).
pub const DATAGRAMS_QUEUED_MAX: usize = 1024;

/// The callbacks of a datagram endpoint, as in asyncio. Every method has a default that does
/// nothing.
///
/// They come in this order: [`connection_made`](DatagramProtocol::connection_made), then
/// [`datagram_received`](DatagramProtocol::datagram_received) for each datagram (UDP may
/// lose, duplicate or reorder them, as the link says) and
/// [`error_received`](DatagramProtocol::error_received) for each failed send or receive, and
/// [`connection_lost`](DatagramProtocol::connection_lost) once the transport is closed.
pub trait DatagramProtocol: 'static {
    /// The endpoint is up; keep the transport to send.
    fn connection_made(&mut self, transport: DatagramTransport) {
        let _ = transport;
    }

    /// A datagram arrived from `addr`.
    fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
        let _ = (data, addr);
    }

    /// A send or a receive failed (the endpoint stays open, as asyncio's does).
    fn error_received(&mut self, error: io::Error) {
        let _ = error;
    }

    /// The transport was closed: `None` after [`close`](DatagramTransport::close).
    fn connection_lost(&mut self, error: Option<io::Error>) {
        let _ = error;
    }
}

/// Sends for a [`DatagramProtocol`] (asyncio's `DatagramTransport`). Cheap to clone: every
/// clone is the same endpoint.
#[derive(Clone)]
pub struct DatagramTransport {
    shared: Rc<Shared>,
}

struct Shared {
    local: SocketAddr,
    remote: Option<SocketAddr>,
    queued: RefCell<VecDeque<(Vec<u8>, SocketAddr)>>,
    closing: Cell<bool>,
    /// The endpoint's task, waiting for a datagram, a send or the close.
    driver: RefCell<Option<Waker>>,
}

impl Shared {
    fn wake_driver(&self) {
        if let Some(waker) = self.driver.borrow_mut().take() {
            waker.wake();
        }
    }
}

impl fmt::Debug for DatagramTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatagramTransport")
            .field("local", &self.shared.local)
            .field("remote", &self.shared.remote)
            .field("closing", &self.shared.closing.get())
            .finish()
    }
}

impl DatagramTransport {
    /// Send `data` to `addr`, or, with `None`, to the endpoint's remote address (asyncio's
    /// `sendto`). It never waits: the datagram is queued for the endpoint's task.
    ///
    /// Errors: `InvalidInput` for a datagram over [`DATAGRAM_MAX`] bytes, for no address on
    /// an endpoint without a remote one, or for another address than the remote one;
    /// `NotConnected` once the transport is closing; `WouldBlock` while
    /// [`DATAGRAMS_QUEUED_MAX`] datagrams wait.
    pub fn sendto(&self, data: &[u8], addr: Option<SocketAddr>) -> io::Result<()> {
        let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidInput, message);
        if data.len() > DATAGRAM_MAX {
            return Err(invalid(format!(
                "a datagram of {} bytes is over the limit of {DATAGRAM_MAX}",
                data.len()
            )));
        }
        let target = match (addr, self.shared.remote) {
            (None, Some(remote)) => remote,
            (Some(addr), None) => addr,
            (Some(addr), Some(remote)) if addr == remote => addr,
            (Some(addr), Some(remote)) => {
                return Err(invalid(format!(
                    "this endpoint sends only to its remote address {remote}, not {addr}"
                )))
            }
            (None, None) => {
                return Err(invalid(
                    "sendto needs an address: the endpoint has no remote address".into(),
                ))
            }
        };
        if self.shared.closing.get() {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the datagram transport is closed",
            ));
        }
        let mut queued = self.shared.queued.borrow_mut();
        if queued.len() >= DATAGRAMS_QUEUED_MAX {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{DATAGRAMS_QUEUED_MAX} datagrams already wait to be sent"),
            ));
        }
        queued.push_back((data.to_vec(), target));
        drop(queued);
        self.shared.wake_driver();
        Ok(())
    }

    /// Close the endpoint: the datagrams queued are sent, then the socket closes and
    /// `connection_lost(None)` runs.
    pub fn close(&self) {
        self.shared.closing.set(true);
        self.shared.wake_driver();
    }

    /// Close at once, dropping the datagrams queued.
    pub fn abort(&self) {
        self.shared.queued.borrow_mut().clear();
        self.close();
    }

    /// Whether [`close`](DatagramTransport::close) or [`abort`](DatagramTransport::abort) was
    /// called.
    pub fn is_closing(&self) -> bool {
        self.shared.closing.get()
    }

    /// The bytes of the datagrams waiting to be sent.
    pub fn get_write_buffer_size(&self) -> usize {
        self.shared
            .queued
            .borrow()
            .iter()
            .map(|(data, _)| data.len())
            .sum()
    }

    /// `sockname` (the local address) and, with a remote address, `peername`.
    pub fn get_extra_info(&self, name: &str) -> Option<ExtraInfo> {
        match name {
            "sockname" => Some(ExtraInfo::Addr(self.shared.local)),
            "peername" => self.shared.remote.map(ExtraInfo::Addr),
            _ => None,
        }
    }
}

/// Bind `local_addr` (port 0 for any free port) and drive the endpoint with `protocol`
/// (asyncio's `loop.create_datagram_endpoint`); returns the transport once
/// `connection_made` has run.
///
/// With a `remote_addr`, [`sendto`](DatagramTransport::sendto) without an address goes
/// there, and datagrams from anywhere else are ignored (as a connected socket filters them).
///
/// ```
/// use std::{cell::RefCell, net::SocketAddr, rc::Rc};
/// use roof::net::ToSocketAddr;
/// use roof::protocol::{create_datagram_endpoint, DatagramProtocol, DatagramTransport};
///
/// struct Echo(Option<DatagramTransport>);
/// impl DatagramProtocol for Echo {
///     fn connection_made(&mut self, transport: DatagramTransport) { self.0 = Some(transport) }
///     fn datagram_received(&mut self, data: &[u8], addr: SocketAddr) {
///         self.0.as_ref().unwrap().sendto(&data.to_ascii_uppercase(), Some(addr)).unwrap();
///     }
/// }
/// struct Client(Rc<RefCell<Vec<String>>>);
/// impl DatagramProtocol for Client {
///     fn datagram_received(&mut self, data: &[u8], _: SocketAddr) {
///         self.0.borrow_mut().push(String::from_utf8_lossy(data).into_owned());
///     }
///     fn connection_lost(&mut self, _: Option<std::io::Error>) { self.0.borrow_mut().push("lost".into()) }
/// }
///
/// let lp = roof::EventLoop::new();
/// lp.host("echo", || async {
///     create_datagram_endpoint(Echo(None), "0.0.0.0:9", None).await.unwrap();
/// }).unwrap();
/// let heard = Rc::new(RefCell::new(Vec::new()));
/// lp.run_until_complete({
///     let heard = heard.clone();
///     async move {
///         let echo = "echo:9".to_socket_addr().unwrap();
///         let client = create_datagram_endpoint(Client(heard), "0.0.0.0:0", Some(echo)).await.unwrap();
///         client.sendto(b"ping", None).unwrap();
///         roof::sleep(std::time::Duration::from_secs(1)).await;
///         client.close();
///         roof::sleep(std::time::Duration::from_secs(1)).await;
///     }
/// }).unwrap();
/// assert_eq!(*heard.borrow(), ["PING", "lost"]);
/// ```
pub async fn create_datagram_endpoint<P: DatagramProtocol>(
    protocol: P,
    local_addr: impl ToSocketAddr,
    remote_addr: Option<SocketAddr>,
) -> io::Result<DatagramTransport> {
    let socket = UdpSocket::bind(local_addr).await?;
    let transport = DatagramTransport {
        shared: Rc::new(Shared {
            local: socket.local_addr()?,
            remote: remote_addr,
            queued: RefCell::new(VecDeque::new()),
            closing: Cell::new(false),
            driver: RefCell::new(None),
        }),
    };
    let mut protocol = protocol;
    protocol.connection_made(transport.clone());
    crate::spawn_named(
        "datagram endpoint",
        drive(socket, protocol, transport.shared.clone()),
    )
    .detach();
    Ok(transport)
}

/// What woke the endpoint's task.
enum Turn {
    Received(io::Result<(usize, SocketAddr)>),
    Send,
    Close,
}

/// The endpoint's task: sends what is queued, hands each datagram to the protocol, and
/// closes when asked.
async fn drive<P: DatagramProtocol>(socket: UdpSocket, mut protocol: P, shared: Rc<Shared>) {
    let mut buf = vec![0u8; DATAGRAM_MAX];
    loop {
        loop {
            let next = shared.queued.borrow_mut().pop_front();
            let Some((data, target)) = next else { break };
            if let Err(error) = socket.send_to(&data, target).await {
                protocol.error_received(error);
            }
        }
        let turn = {
            let mut received = pin!(socket.recv_from(&mut buf));
            std::future::poll_fn(|cx| {
                if !shared.queued.borrow().is_empty() {
                    return Poll::Ready(Turn::Send);
                }
                if shared.closing.get() {
                    return Poll::Ready(Turn::Close);
                }
                if let Poll::Ready(result) = received.as_mut().poll(cx) {
                    return Poll::Ready(Turn::Received(result));
                }
                *shared.driver.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            })
            .await
        };
        match turn {
            Turn::Send => {}
            Turn::Close => break,
            Turn::Received(Ok((len, from))) => {
                if shared.remote.is_none_or(|remote| remote == from) {
                    protocol.datagram_received(&buf[..len], from);
                }
            }
            Turn::Received(Err(error)) => protocol.error_received(error),
        }
    }
    drop(socket);
    protocol.connection_lost(None);
}
