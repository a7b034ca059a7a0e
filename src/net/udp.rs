//! UDP on the simulated fabric: [`UdpSocket`].

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::task::Poll;

use super::ToSocketAddr;
use crate::runtime;

/// A UDP socket on the current host. Datagrams may be lost, duplicated or reordered, as the
/// link between the hosts says ([`LinkConfig`](super::LinkConfig)).
#[derive(Debug)]
pub struct UdpSocket {
    addr: SocketAddr,
    id: u64,
}

impl UdpSocket {
    /// Bind `addr` (port 0 for any free port). Fails with `AddrInUse` if it is taken.
    pub async fn bind(addr: impl ToSocketAddr) -> io::Result<UdpSocket> {
        let requested = addr.to_socket_addr()?;
        let (addr, id) = runtime::with(|kernel| {
            let host = kernel.exec.current_host.get();
            kernel.net_call(|net, _| net.udp_bind(host, requested))
        })?;
        Ok(UdpSocket { addr, id })
    }

    /// Send one datagram to `target`; returns the bytes sent (a lost datagram still counts).
    pub async fn send_to(&self, bytes: &[u8], target: impl ToSocketAddr) -> io::Result<usize> {
        let target = target.to_socket_addr()?;
        let from = (self.addr, self.id);
        runtime::with(|kernel| kernel.net_call(|net, now| net.udp_send(from, target, bytes, now)))
    }

    /// Wait for a datagram; returns its length (truncated to `buf`) and sender.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let socket = (self.addr, self.id);
        poll_fn(|cx| {
            runtime::with(|kernel| {
                kernel.net_call(|net, _| net.udp_poll_recv(socket, buf, cx.waker()))
            })
            .map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        let (addr, id) = (self.addr, self.id);
        runtime::try_with(|kernel| kernel.net_call(|net, _| net.udp_close(addr, id)));
    }
}
