//! TCP: connections and their two ends, listeners, and the calls the sockets make (listen,
//! accept, connect, read, write, shutdown, close, abort). Every segment toward an end takes
//! that end's next sequence number (see the module above for why).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::task::Waker;

use super::buffer::{copy_short, Chunk, RecvBuf, CHUNK_INLINE};
use super::*;

/// One end of a TCP connection. The fields a delivery and a read touch come first.
#[derive(Default)]
pub(super) struct End {
    pub(super) reader: Option<Waker>,
    pub(super) writer: Option<Waker>,
    /// The arrival time of the latest segment sent toward this end (arrivals never go back).
    pub(super) last_arrival: u64,
    /// Bytes sent toward this end and not yet delivered (at most [`TCP_BUFFER`]).
    pub(super) in_flight: u32,
    /// The sequence number of the next segment sent toward this end.
    pub(super) sent: u32,
    /// The sequence number of the next segment this end takes: one that arrives before it
    /// (its predecessor held by a fault, or retransmitted) is parked until the gap fills.
    pub(super) next: u32,
    /// A FIN arrived: after `recv` drains, reads return 0.
    pub(super) eof: bool,
    /// A RST arrived, or this end aborted.
    pub(super) reset: bool,
    /// This end shut down its write half.
    pub(super) write_closed: bool,
    /// This end's socket was dropped.
    pub(super) closed: bool,
    /// The handshake completed for this end.
    pub(super) established: bool,
    /// A connect was refused (no listener).
    pub(super) refused: bool,
    /// Bytes delivered and not yet read.
    pub(super) recv: RecvBuf,
}

/// A TCP connection. Its addresses are its hosts' addresses with these ports, so they are
/// not stored (a `SocketAddr` is 32 bytes, and this is read on every delivery).
pub(super) struct Conn {
    pub(super) hosts: [HostIndex; 2],
    pub(super) ports: [u16; 2],
    /// Segments of this connection in flight or held.
    pub(super) pending: u32,
    pub(super) ends: [End; 2],
}

/// Where a connection's ends start within its slot of `Fabric::conns` (a prefetch hint).
pub(super) const END_OFFSET: usize = std::mem::offset_of!(Conn, ends);

impl Conn {
    /// The address of end `side`.
    pub(super) fn addr(&self, side: usize) -> SocketAddr {
        SocketAddr::new(host_ip(self.hosts[side]), self.ports[side])
    }
}

pub(super) struct Listener {
    pub(super) id: u64,
    pub(super) host: HostIndex,
    pub(super) backlog: VecDeque<u32>,
    pub(super) acceptor: Option<Waker>,
}

impl Fabric {
    pub(crate) fn listen(
        &mut self,
        host: HostIndex,
        requested: SocketAddr,
    ) -> io::Result<(SocketAddr, u64)> {
        let addr = self.local_addr(host, requested, |fabric, addr| {
            fabric.listeners.contains_key(&addr)
        })?;
        let id = self.socket_id();
        self.listeners.insert(
            addr,
            Listener {
                id,
                host,
                backlog: VecDeque::new(),
                acceptor: None,
            },
        );
        Ok((addr, id))
    }

    pub(super) fn socket_id(&mut self) -> u64 {
        let id = self.next_socket_id;
        self.next_socket_id += 1;
        id
    }

    pub(crate) fn unlisten(&mut self, addr: SocketAddr, id: u64, now: u64) {
        if self
            .listeners
            .get(&addr)
            .is_some_and(|listener| listener.id == id)
        {
            let listener = self.listeners.remove(&addr).expect("checked above");
            for conn in listener.backlog {
                self.abort_slot(conn, 1, now);
            }
        }
    }

    /// Take an accepted connection, or remember `waker`.
    pub(crate) fn poll_accept(
        &mut self,
        addr: SocketAddr,
        id: u64,
        waker: &Waker,
    ) -> Option<io::Result<(u64, SocketAddr)>> {
        let Some(listener) = self
            .listeners
            .get_mut(&addr)
            .filter(|listener| listener.id == id)
        else {
            return Some(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the listener is closed",
            )));
        };
        match listener.backlog.pop_front() {
            Some(conn) => match self.conns[conn as usize].as_ref() {
                Some(state) => Some(Ok((self.handle(conn), state.addr(0)))),
                None => Some(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "the connection was gone before it was accepted",
                ))),
            },
            None => {
                listener.acceptor = Some(waker.clone());
                None
            }
        }
    }

    /// Start a connection from `host` to `to`: a SYN is on its way.
    pub(crate) fn connect(&mut self, host: HostIndex, to: SocketAddr, now: u64) -> io::Result<u64> {
        let Some(target) = self.host_of(host, to.ip()) else {
            return Err(io::Error::new(
                io::ErrorKind::HostUnreachable,
                format!("no simulated host has address {}", to.ip()),
            ));
        };
        let local = self.local_addr(
            host,
            SocketAddr::new(self.hosts[host as usize].ip, 0),
            |fabric, addr| fabric.listeners.contains_key(&addr),
        )?;
        let remote = SocketAddr::new(self.hosts[target as usize].ip, to.port());
        let conn = Conn {
            hosts: [host, target],
            ports: [local.port(), remote.port()],
            pending: 0,
            ends: [End::default(), End::default()],
        };
        let id = match self.free_conns.pop() {
            Some(id) => {
                self.conns[id as usize] = Some(conn);
                id
            }
            None => {
                self.conns.push(Some(conn));
                self.generations.push(0);
                u32::try_from(self.conns.len() - 1)
                    .expect("fabric invariant: fewer than 2^32 connections")
            }
        };
        self.note(|line| {
            let _ = write!(line, "connect c{id} {local} -> {remote}");
        });
        self.send_control(id, 1, Payload::Syn, now);
        Ok(self.handle(id))
    }

    /// The handle of connection slot `slot`: its generation and slot.
    pub(super) fn handle(&self, slot: u32) -> u64 {
        (u64::from(self.generations[slot as usize]) << 32) | u64::from(slot)
    }

    /// The slot of a live connection's handle (`None` once it is gone).
    pub(super) fn resolve(&self, handle: u64) -> Option<u32> {
        let slot = handle as u32;
        let generation = (handle >> 32) as u32;
        let live = self.conns.get(slot as usize).is_some_and(Option::is_some);
        (live && self.generations[slot as usize] == generation).then_some(slot)
    }

    /// The slot and state of a live connection's handle (`None` once it is gone): one lookup
    /// for the hot paths that go on to use the state.
    #[inline(always)]
    pub(super) fn conn_mut(&mut self, handle: u64) -> Option<(u32, &mut Conn)> {
        let slot = handle as u32;
        let generation = (handle >> 32) as u32;
        if self.generations.get(slot as usize) != Some(&generation) {
            return None;
        }
        let state = self.conns.get_mut(slot as usize)?.as_mut()?;
        Some((slot, state))
    }

    pub(super) fn gone() -> io::Error {
        io::Error::new(io::ErrorKind::NotConnected, "the connection is gone")
    }

    /// Whether the connect of `conn` finished: `Some(Ok)` established, `Some(Err)` refused.
    pub(crate) fn poll_connected(&mut self, handle: u64, waker: &Waker) -> Option<io::Result<()>> {
        let Some(state) = self
            .resolve(handle)
            .and_then(|conn| self.conns[conn as usize].as_mut())
        else {
            return Some(Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                "connection refused",
            )));
        };
        let end = &mut state.ends[0];
        if end.established {
            Some(Ok(()))
        } else if end.refused {
            Some(Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!(
                    "connection to {} refused: nothing listens there",
                    state.addr(1)
                ),
            )))
        } else if end.reset {
            Some(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset during the handshake",
            )))
        } else {
            end.reader = Some(waker.clone());
            None
        }
    }

    pub(crate) fn addrs(&self, handle: u64, side: usize) -> io::Result<(SocketAddr, SocketAddr)> {
        let conn = self.resolve(handle).ok_or_else(Self::gone)?;
        let conn = self.conns[conn as usize].as_ref().ok_or_else(Self::gone)?;
        Ok((conn.addr(side), conn.addr(1 - side)))
    }

    pub(super) fn send_control(&mut self, conn: u32, to: usize, payload: Payload, now: u64) {
        if self.shut_down {
            return;
        }
        let Some(state) = self.conns[conn as usize].as_ref() else {
            return;
        };
        let (from_host, to_host) = (state.hosts[1 - to], state.hosts[to]);
        let delay = self.delay(from_host, to_host);
        let retransmit = self.retransmit_delay(self.link(from_host, to_host).loss);
        let state = self.conns[conn as usize].as_mut().expect("checked above");
        let end = &mut state.ends[to];
        let arrival = (now + delay).max(end.last_arrival);
        end.last_arrival = arrival;
        let seq = end.sent;
        end.sent = seq.wrapping_add(1);
        let segment = Segment {
            conn,
            seq,
            to,
            payload,
        };
        self.launch(InFlight::Segment(segment), arrival + retransmit);
    }

    /// Write from end `side`: as many bytes as the peer's window takes, or remember `waker`.
    pub(crate) fn poll_write(
        &mut self,
        handle: u64,
        side: usize,
        bytes: &[u8],
        waker: &Waker,
        now: u64,
    ) -> Option<io::Result<usize>> {
        let Some((conn, state)) = self.conn_mut(handle) else {
            return Some(Err(Self::gone()));
        };
        let end = &state.ends[side];
        if end.reset {
            return Some(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            )));
        }
        if end.write_closed || end.closed {
            return Some(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "write after shutdown",
            )));
        }
        if !end.established {
            return Some(Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is not established",
            )));
        }
        if bytes.is_empty() {
            return Some(Ok(0));
        }
        let peer = &state.ends[1 - side];
        let window = TCP_BUFFER.saturating_sub(peer.recv.len() + peer.in_flight as usize);
        if window == 0 {
            state.ends[side].writer = Some(waker.clone());
            return None;
        }
        let count = window.min(bytes.len());
        self.send_data(conn, side, &bytes[..count], now);
        Some(Ok(count))
    }

    /// Send `bytes` from end `side`: one segment in the usual case (a write that fits the MSS
    /// and is not split), inlined into `poll_write`.
    #[inline(always)]
    pub(super) fn send_data(&mut self, conn: u32, side: usize, bytes: &[u8], now: u64) {
        let state = self.conns[conn as usize].as_ref().expect("caller checked");
        let (from, to) = (state.hosts[side], state.hosts[1 - side]);
        let link = self.link(from, to);
        let (split, mss) = (link.split, link.mss.max(1));
        let timing = Timing {
            latency: link.latency.as_nanos() as u64,
            jitter: link.jitter.as_nanos() as u64,
            loss: link.loss,
        };
        // Cut points: the MSS always, and a few random ones for a split write. A write that
        // fits one segment and is not split (the common case) needs no list.
        let split_this = bytes.len() > 1 && split > 0.0 && self.rng.get().unit_f64() < split;
        if bytes.len() <= mss && !split_this {
            self.send_piece(conn, side, timing, bytes, now);
        } else {
            self.send_pieces(conn, side, timing, mss, split_this, bytes, now);
        }
    }

    /// [`send_data`](Fabric::send_data) past its usual case: cut `bytes` at the MSS and, for a
    /// split write, at a few random points.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_pieces(
        &mut self,
        conn: u32,
        side: usize,
        timing: Timing,
        mss: usize,
        split_this: bool,
        bytes: &[u8],
        now: u64,
    ) {
        let mut cuts: Vec<usize> = (1..bytes.len().div_ceil(mss))
            .map(|index| index * mss)
            .collect();
        if split_this {
            for _ in 0..=self.rng.get().below(3) {
                cuts.push(1 + self.rng.get().below(bytes.len() as u64 - 1) as usize);
            }
            cuts.sort_unstable();
            cuts.dedup();
        }
        let mut start = 0;
        for cut in cuts.into_iter().chain(std::iter::once(bytes.len())) {
            self.send_piece(conn, side, timing, &bytes[start..cut], now);
            start = cut;
        }
    }

    /// Send one segment of data from end `side` toward the other end, on a link of the given
    /// timing.
    #[inline(always)]
    pub(super) fn send_piece(
        &mut self,
        conn: u32,
        side: usize,
        timing: Timing,
        piece: &[u8],
        now: u64,
    ) {
        let delay = self.draw_delay(timing.latency, timing.jitter);
        let retransmit = self.retransmit_delay(timing.loss);
        let shut_down = self.shut_down;
        let state = self.conns[conn as usize].as_mut().expect("caller checked");
        let end = &mut state.ends[1 - side];
        let planned = (now + delay).max(end.last_arrival);
        end.last_arrival = planned;
        let arrival = planned + retransmit;
        // At most the window, which is at most `TCP_BUFFER`: it fits.
        end.in_flight += piece.len() as u32;
        let seq = end.sent;
        if !shut_down {
            end.sent = seq.wrapping_add(1);
            state.pending += 1;
        }
        if shut_down {
            return;
        }
        if piece.len() > CHUNK_INLINE {
            let payload = Payload::Data(Chunk::Heap(piece.to_vec()));
            let to = 1 - side;
            let segment = Segment {
                conn,
                seq,
                to,
                payload,
            };
            self.store(InFlight::Segment(segment), arrival);
            return;
        }
        // A small piece is written straight into its free slot. Built on the stack and then
        // moved, its narrow stores were read back at once by the move's wide loads: a
        // store-forwarding stall on every send.
        let id = self.free_slot();
        let packet = self.in_flight[id as usize].get_or_insert_with(|| {
            InFlight::Segment(Segment {
                conn,
                seq,
                to: 1 - side,
                payload: Payload::Data(Chunk::Inline {
                    len: piece.len() as u8,
                    bytes: [0; CHUNK_INLINE],
                }),
            })
        });
        if let InFlight::Segment(Segment {
            payload: Payload::Data(Chunk::Inline { bytes, .. }),
            ..
        }) = packet
        {
            copy_short(bytes, piece);
        }
        self.sends.push((id, arrival));
        if self.tracing {
            self.note_send(id, arrival);
        }
    }

    /// Read at end `side`, or remember `waker`. `Ok(0)` is EOF.
    pub(crate) fn poll_read(
        &mut self,
        handle: u64,
        side: usize,
        buf: &mut [u8],
        waker: &Waker,
    ) -> Option<io::Result<usize>> {
        let Some((_, state)) = self.conn_mut(handle) else {
            return Some(Err(Self::gone()));
        };
        let end = &mut state.ends[side];
        if !end.recv.is_empty() {
            let count = end.recv.take_into(buf);
            // The window toward this end opened: let the peer's writer go on.
            let writer = state.ends[1 - side].writer.take();
            self.wake(writer);
            return Some(Ok(count));
        }
        if end.reset {
            return Some(Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            )));
        }
        if end.eof || buf.is_empty() {
            return Some(Ok(0));
        }
        end.reader = Some(waker.clone());
        None
    }

    /// Shut down the write half of end `side`: a FIN follows the data already sent.
    pub(crate) fn shutdown(&mut self, handle: u64, side: usize, now: u64) -> io::Result<()> {
        let conn = self.resolve(handle).ok_or_else(Self::gone)?;
        let Some(state) = self.conns[conn as usize].as_mut() else {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is gone",
            ));
        };
        let end = &mut state.ends[side];
        if end.reset {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "connection reset by peer",
            ));
        }
        if !end.write_closed {
            end.write_closed = true;
            if end.established {
                self.send_control(conn, 1 - side, Payload::Fin, now);
            }
        }
        Ok(())
    }

    /// The socket of end `side` was dropped: a graceful close (FIN) unless reset.
    pub(crate) fn close(&mut self, handle: u64, side: usize, now: u64) {
        let Some(conn) = self.resolve(handle) else {
            return;
        };
        let Some(state) = self.conns[conn as usize].as_mut() else {
            return;
        };
        let end = &mut state.ends[side];
        if end.closed {
            return;
        }
        end.closed = true;
        end.reader = None;
        end.writer = None;
        if !end.reset && !end.write_closed && end.established {
            end.write_closed = true;
            self.send_control(conn, 1 - side, Payload::Fin, now);
        }
        self.collect(conn);
    }

    /// Abort end `side`: a RST to the peer, this end is done.
    pub(crate) fn abort(&mut self, handle: u64, side: usize, now: u64) {
        if let Some(conn) = self.resolve(handle) {
            self.abort_slot(conn, side, now);
        }
    }

    pub(super) fn abort_slot(&mut self, conn: u32, side: usize, now: u64) {
        let Some(state) = self.conns[conn as usize].as_mut() else {
            return;
        };
        let end = &mut state.ends[side];
        if end.closed {
            return;
        }
        end.closed = true;
        end.reset = true;
        end.reader = None;
        end.writer = None;
        self.send_control(conn, 1 - side, Payload::Rst, now);
        self.collect(conn);
    }

    /// Free a connection once both ends are closed and nothing is in flight toward them.
    #[inline(always)]
    pub(super) fn collect(&mut self, conn: u32) {
        let Some(state) = self.conns[conn as usize].as_ref() else {
            return;
        };
        if state.pending == 0 && state.ends.iter().all(|end| end.closed) {
            self.conns[conn as usize] = None;
            self.generations[conn as usize] = self.generations[conn as usize].wrapping_add(1);
            self.free_conns.push(conn);
        }
    }
}
