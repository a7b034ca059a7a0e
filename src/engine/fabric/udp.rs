//! UDP: sockets, datagrams sent through a link's loss, duplication and reordering, and
//! their delivery into a socket's bounded queue.

use crate::engine::trace::PacketOp;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::task::Waker;

use super::*;

pub(super) struct UdpBox {
    pub(super) id: u64,
    pub(super) host: HostIndex,
    pub(super) queue: VecDeque<(Vec<u8>, SocketAddr)>,
    pub(super) reader: Option<Waker>,
}

impl Fabric {
    pub(crate) fn udp_bind(
        &mut self,
        host: HostIndex,
        requested: SocketAddr,
    ) -> io::Result<(SocketAddr, u64)> {
        let addr = self.local_addr(host, requested, |fabric, addr| {
            fabric.udp.contains_key(&addr)
        })?;
        let id = self.socket_id();
        self.udp.insert(
            addr,
            UdpBox {
                id,
                host,
                queue: VecDeque::new(),
                reader: None,
            },
        );
        Ok((addr, id))
    }

    pub(crate) fn udp_close(&mut self, addr: SocketAddr, id: u64) {
        if self.udp.get(&addr).is_some_and(|socket| socket.id == id) {
            self.udp.remove(&addr);
        }
    }

    pub(crate) fn udp_send(
        &mut self,
        (from, id): (SocketAddr, u64),
        to: SocketAddr,
        bytes: &[u8],
        now: u64,
    ) -> io::Result<usize> {
        let Some(source) = self
            .udp
            .get(&from)
            .filter(|socket| socket.id == id)
            .map(|socket| socket.host)
        else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the socket is closed",
            ));
        };
        let Some(target) = self.host_of(source, to.ip()) else {
            return Err(io::Error::new(
                io::ErrorKind::HostUnreachable,
                format!("no simulated host has address {}", to.ip()),
            ));
        };
        let to = SocketAddr::new(self.hosts[target as usize].ip, to.port());
        let link = self.link(source, target).clone();
        if link.loss > 0.0 && self.rng.get().unit_f64() < link.loss {
            if self.tracing {
                self.note_lost(source, target, bytes.len(), now);
            }
            return Ok(bytes.len());
        }
        let copies = if link.duplicate > 0.0 && self.rng.get().unit_f64() < link.duplicate {
            2
        } else {
            1
        };
        self.datagram_source = source;
        for _ in 0..copies {
            let mut delay = self.delay(source, target);
            if link.reorder > 0.0 && self.rng.get().unit_f64() < link.reorder {
                delay += self.rng.get().below(link.latency.as_nanos() as u64 + 1);
            }
            self.launch(
                InFlight::Datagram(Box::new(Datagram {
                    from,
                    to,
                    bytes: bytes.to_vec(),
                })),
                now + delay,
            );
        }
        Ok(bytes.len())
    }

    pub(crate) fn udp_poll_recv(
        &mut self,
        (addr, id): (SocketAddr, u64),
        buf: &mut [u8],
        waker: &Waker,
    ) -> Option<io::Result<(usize, SocketAddr)>> {
        let Some(socket) = self.udp.get_mut(&addr).filter(|socket| socket.id == id) else {
            return Some(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the socket is closed",
            )));
        };
        match socket.queue.pop_front() {
            Some((bytes, from)) => {
                let count = buf.len().min(bytes.len());
                buf[..count].copy_from_slice(&bytes[..count]);
                Some(Ok((count, from)))
            }
            None => {
                socket.reader = Some(waker.clone());
                None
            }
        }
    }

    pub(super) fn deliver_datagram(&mut self, datagram: Datagram) {
        let packet = self.delivering;
        let Some(socket) = self.udp.get_mut(&datagram.to) else {
            self.note_packet(packet, PacketOp::Drop, || "no socket".into());
            return;
        };
        if socket.queue.len() >= UDP_QUEUE {
            self.note_packet(packet, PacketOp::Drop, || "queue full".into());
            return;
        }
        let bytes = datagram.bytes.len();
        self.note_packet(packet, PacketOp::Deliver, || format!("{bytes} bytes"));
        let Some(socket) = self.udp.get_mut(&datagram.to) else {
            return;
        };
        socket.queue.push_back((datagram.bytes, datagram.from));
        let reader = socket.reader.take();
        self.wake(reader);
    }
}
