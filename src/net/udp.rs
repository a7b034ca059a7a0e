//! UDP: [`UdpSocket`], on the simulated fabric or (feature `real-net`) on a real socket.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::task::Poll;

use super::ToSocketAddr;
use crate::cancel::await_point;
use crate::kernel;

/// A UDP socket on the current host. Datagrams may be lost, duplicated or reordered, as the
/// link between the hosts says ([`LinkConfig`](super::LinkConfig)).
///
/// ```
/// use roof::net::UdpSocket;
/// let lp = roof::EventLoop::new();
/// lp.host("echo", || async {
///     let socket = UdpSocket::bind("0.0.0.0:9").await.unwrap();
///     let mut buf = [0u8; 64];
///     let (n, from) = socket.recv_from(&mut buf).await.unwrap();
///     socket.send_to(&buf[..n], from).await.unwrap();
/// }).unwrap();
/// let reply = lp.run_until_complete(async {
///     let socket = UdpSocket::bind("0.0.0.0:0").await.unwrap();
///     socket.send_to(b"ping", "echo:9").await.unwrap();
///     let mut buf = [0u8; 64];
///     let (n, from) = socket.recv_from(&mut buf).await.unwrap();
///     (buf[..n].to_vec(), from.port())
/// }).unwrap();
/// assert_eq!(reply, (b"ping".to_vec(), 9));
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    inner: Socket,
}

#[derive(Debug)]
enum Socket {
    Sim {
        addr: SocketAddr,
        id: u64,
    },
    #[cfg(feature = "real-net")]
    Real(async_io::Async<std::net::UdpSocket>),
}

impl UdpSocket {
    /// Bind `addr` (port 0 for any free port). Fails with `AddrInUse` if it is taken.
    pub async fn bind(addr: impl ToSocketAddr) -> io::Result<UdpSocket> {
        let requested = addr.to_socket_addr()?;
        #[cfg(feature = "real-net")]
        if kernel::with(|kernel| kernel.is_real()) {
            return Ok(UdpSocket {
                inner: Socket::Real(super::real::bind_udp(requested)?),
            });
        }
        crate::fault::stalled("bind").await;
        let (addr, id) = kernel::with(|kernel| {
            let host = kernel.exec.current_host.get();
            kernel.net_call(|net, _| net.udp_bind(host, requested))
        })?;
        Ok(UdpSocket {
            inner: Socket::Sim { addr, id },
        })
    }

    /// Send one datagram to `target`; returns the bytes sent (a lost datagram still counts).
    pub async fn send_to(&self, bytes: &[u8], target: impl ToSocketAddr) -> io::Result<usize> {
        let target = target.to_socket_addr()?;
        let from = match &self.inner {
            Socket::Sim { addr, id } => (*addr, *id),
            #[cfg(feature = "real-net")]
            Socket::Real(socket) => return socket.send_to(bytes, target).await,
        };
        kernel::with(|kernel| kernel.net_call(|net, now| net.udp_send(from, target, bytes, now)))
    }

    /// Wait for a datagram; returns its length (truncated to `buf`) and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let socket = match &self.inner {
            Socket::Sim { addr, id } => (*addr, *id),
            #[cfg(feature = "real-net")]
            Socket::Real(socket) => return await_point(socket.recv_from(buf)).await,
        };
        await_point(poll_fn(|cx| {
            kernel::with(|kernel| {
                kernel.net_call(|net, _| net.udp_poll_recv(socket, buf, cx.waker()))
            })
            .map_or(Poll::Pending, Poll::Ready)
        }))
        .await
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        match &self.inner {
            Socket::Sim { addr, .. } => Ok(*addr),
            #[cfg(feature = "real-net")]
            Socket::Real(socket) => socket.get_ref().local_addr(),
        }
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        match self.inner {
            Socket::Sim { addr, id } => {
                kernel::try_with(|kernel| kernel.net_call(|net, _| net.udp_close(addr, id)));
            }
            #[cfg(feature = "real-net")]
            _ => {}
        }
    }
}
