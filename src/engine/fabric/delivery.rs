//! Delivery: a packet's timer fired. It is held on a cut link, parked behind an earlier
//! segment of its end (so a stream is never reordered), or delivered; and what was parked
//! behind it follows.

use super::buffer::Chunk;
use super::tcp::{End, END_OFFSET};
use super::*;
use crate::engine::trace::{EventKind, PacketOp};

impl Fabric {
    /// Start loading what three upcoming deliveries will touch: the furthest one's packet,
    /// the middle one's connection end, the nearest one's reader task. A hint only.
    pub(crate) fn prefetch_deliveries(&self, [far, middle, near]: [Option<u32>; 3]) {
        use crate::engine::hint::prefetch as prefetch_address;
        let segment = |id: Option<u32>| match self.in_flight.get(id? as usize)? {
            Some(InFlight::Segment(segment)) if (segment.conn as usize) < self.conns.len() => {
                Some(segment)
            }
            _ => None,
        };
        if let Some(id) = far {
            if let Some(slot) = self.in_flight.get(id as usize) {
                prefetch_address(std::ptr::from_ref(slot).cast());
            }
        }
        if let Some(segment) = segment(middle) {
            // The connection's address without reading it (that load would wait for the very
            // line being prefetched): its counters, and both lines of the end.
            let conn = self
                .conns
                .as_ptr()
                .wrapping_add(segment.conn as usize)
                .cast::<u8>();
            let end = conn.wrapping_add(END_OFFSET + segment.to * std::mem::size_of::<End>());
            prefetch_address(conn);
            prefetch_address(end);
            prefetch_address(end.wrapping_add(64));
        }
        if let Some(segment) = segment(near) {
            // The reader the delivery will wake: its task's header (a waker's data word is
            // its task's address), which the wakeup reads first.
            let reader = self.conns[segment.conn as usize]
                .as_ref()
                .and_then(|conn| conn.ends[segment.to].reader.as_ref());
            if let Some(reader) = reader {
                // Both lines: a header is not line-aligned, and its metadata ends it.
                crate::engine::hint::prefetch_lines(reader.data().cast(), 2);
            }
        }
    }

    /// A packet's timer fired: deliver it, hold it on a cut link, or park it behind an
    /// earlier segment of its connection; then take what was parked behind it.
    pub(crate) fn deliver(&mut self, id: u32, now: u64) {
        // Only a clogged host or a partition can cut a link: without either, skip the check.
        let faults = self.faulty_hosts > 0 || !self.partitions.is_empty();
        if faults && self.hold_if_cut(id) {
            return;
        }
        if let Some((conn, to)) = self.deliver_arrived(id, now) {
            if !self.parked.is_empty() {
                self.take_parked(conn, to, now);
            }
        }
    }

    /// Deliver packet `id`, which arrived on an open link, unless it is a segment ahead of
    /// its end's next one (then it is parked). Returns the connection and end a segment was
    /// delivered to, whose parked successors may now follow.
    #[inline(always)]
    pub(super) fn deliver_arrived(&mut self, id: u32, now: u64) -> Option<(u32, usize)> {
        if !self.tracing {
            if let Some(delivered) = self.deliver_inline_data(id) {
                return Some(delivered);
            }
        }
        if self.park_if_early(id) {
            return None;
        }
        if self.tracing {
            self.delivering = self.packet_number(id);
        }
        let packet = self.in_flight[id as usize].take()?;
        self.free_in_flight.push(id);
        match packet {
            InFlight::Segment(segment) => {
                let target = (segment.conn, segment.to);
                self.deliver_segment(segment, now);
                Some(target)
            }
            InFlight::Datagram(datagram) => {
                self.deliver_datagram(*datagram);
                None
            }
        }
    }

    /// Park segment `id` if an earlier segment toward its end has not been delivered yet;
    /// whether it was parked.
    pub(super) fn park_if_early(&mut self, id: u32) -> bool {
        let Some(InFlight::Segment(segment)) = &self.in_flight[id as usize] else {
            return false;
        };
        let (conn, to, seq) = (segment.conn, segment.to, segment.seq);
        let Some(state) = self.conns[conn as usize].as_ref() else {
            return false;
        };
        let next = state.ends[to].next;
        if seq == next {
            return false;
        }
        debug_assert!(
            seq.wrapping_sub(next) < 1 << 31,
            "stream invariant: segment {seq} of c{conn} end {to} arrived twice (next {next})"
        );
        let packet = self.packet_number(id);
        self.note_packet(packet, PacketOp::Park, || {
            format!("c{conn} end {to}: segment {seq} waits for {next}")
        });
        self.parked.insert((conn, to, seq), id);
        true
    }

    /// Deliver the segments parked behind end `to` of `conn`, in order, as long as the next
    /// one is there.
    pub(super) fn take_parked(&mut self, conn: u32, to: usize, now: u64) {
        loop {
            let Some(state) = self.conns[conn as usize].as_ref() else {
                return;
            };
            let next = state.ends[to].next;
            let Some(id) = self.parked.remove(&(conn, to, next)) else {
                return;
            };
            let delivered = self.deliver_arrived(id, now);
            debug_assert!(
                delivered.is_some(),
                "stream invariant: a parked segment is next"
            );
        }
    }

    /// The usual packet, a few bytes of data for an open end and the next it expects,
    /// delivered from its slot in place (as [`deliver_segment`](Fabric::deliver_segment)
    /// would, untraced); the connection and end, if it was. Moved out of the slot first, its
    /// bytes were read back right after the move's narrower stores: a store-forwarding stall
    /// on every delivery.
    #[inline(always)]
    pub(super) fn deliver_inline_data(&mut self, id: u32) -> Option<(u32, usize)> {
        let Some(InFlight::Segment(Segment {
            conn,
            seq,
            to,
            payload: Payload::Data(Chunk::Inline { len, bytes }),
        })) = &self.in_flight[id as usize]
        else {
            return None;
        };
        let (conn, seq, to, len) = (*conn, *seq, *to, usize::from(*len));
        let state = self.conns[conn as usize].as_mut()?;
        let host_up = self.faulty_hosts == 0 || self.hosts[state.hosts[to] as usize].up;
        let end = &mut state.ends[to];
        if end.closed || !host_up || end.next != seq {
            return None;
        }
        end.next = seq.wrapping_add(1);
        state.pending -= 1;
        end.in_flight -= len as u32;
        end.recv.push(&bytes[..len]);
        let reader = end.reader.take();
        self.in_flight[id as usize] = None;
        self.free_in_flight.push(id);
        self.wake(reader);
        self.collect(conn);
        Some((conn, to))
    }

    /// Hold packet `id` if its link is cut (a datagram is dropped instead); whether it was
    /// held or dropped.
    pub(super) fn hold_if_cut(&mut self, id: u32) -> bool {
        let (from, to) = match &self.in_flight[id as usize] {
            Some(InFlight::Segment(segment)) => match self.conns[segment.conn as usize].as_ref() {
                Some(conn) => (conn.hosts[1 - segment.to], conn.hosts[segment.to]),
                // The connection is gone: the delivery retires the packet.
                None => return false,
            },
            Some(InFlight::Datagram(datagram)) => {
                let from = self.host_by_ip(datagram.from.ip()).unwrap_or(0);
                let to = self.host_by_ip(datagram.to.ip()).unwrap_or(0);
                (from, to)
            }
            None => return false,
        };
        if !self.blocked(from, to) {
            return false;
        }
        match &self.in_flight[id as usize] {
            Some(InFlight::Segment(_)) => {
                let packet = self.packet_number(id);
                self.note_packet(packet, PacketOp::Hold, || "on cut link".into());
                self.held.entry((from, to)).or_default().push(id);
            }
            _ => {
                let packet = self.packet_number(id);
                self.note_packet(packet, PacketOp::Drop, || "on cut link".into());
                self.retire_packet(id);
            }
        }
        true
    }

    pub(super) fn retire_packet(&mut self, id: u32) -> Option<InFlight> {
        let packet = self.in_flight[id as usize].take();
        if let Some(packet) = &packet {
            self.free_in_flight.push(id);
            if let InFlight::Segment(segment) = packet {
                if let Some(conn) = self.conns[segment.conn as usize].as_mut() {
                    conn.pending -= 1;
                }
            }
        }
        packet
    }

    pub(super) fn deliver_segment(&mut self, segment: Segment, now: u64) {
        let Segment {
            conn,
            seq,
            to,
            payload,
        } = segment;
        let Some(state) = self.conns[conn as usize].as_mut() else {
            let packet = self.delivering;
            self.note_packet(packet, PacketOp::Drop, || "connection gone".into());
            return;
        };
        debug_assert_eq!(
            state.ends[to].next, seq,
            "stream invariant: c{conn} end {to} takes its segments in order"
        );
        state.ends[to].next = seq.wrapping_add(1);
        state.pending -= 1;
        let host_up = self.faulty_hosts == 0 || self.hosts[state.hosts[to] as usize].up;
        if self.tracing {
            let (op, detail) = if host_up {
                (PacketOp::Deliver, payload_name(&payload))
            } else {
                (PacketOp::Drop, "host down".to_string())
            };
            let packet = self.delivering;
            self.log.push(EventKind::Packet { packet, op, detail });
        }
        let end = &mut state.ends[to];
        if let Payload::Data(bytes) = &payload {
            end.in_flight -= bytes.as_slice().len() as u32;
        }
        match payload {
            Payload::Syn => {
                let addr = state.addr(1);
                let accepted = host_up
                    && self
                        .listeners
                        .get(&addr)
                        .is_some_and(|listener| listener.host == state.hosts[1]);
                if accepted {
                    state.ends[1].established = true;
                    let listener = self.listeners.get_mut(&addr).expect("checked above");
                    listener.backlog.push_back(conn);
                    let acceptor = listener.acceptor.take();
                    self.wake(acceptor);
                    self.send_control(conn, 0, Payload::SynAck, now);
                } else {
                    state.ends[1].closed = true;
                    state.ends[1].reset = true;
                    self.send_control(conn, 0, Payload::Rst, now);
                }
            }
            Payload::SynAck => {
                if end.closed || !host_up {
                    // The connecting socket is gone (given up on, or its host down): as a
                    // real stack does, it answers the late SYN-ACK with a RST, so the
                    // accepted end is not left half-open forever.
                    self.send_control(conn, 1 - to, Payload::Rst, now);
                } else {
                    end.established = true;
                    let reader = end.reader.take();
                    self.wake(reader);
                }
            }
            Payload::Data(bytes) => {
                if end.closed || !host_up {
                    // Data to a closed socket: the peer learns with a RST.
                    self.send_control(conn, 1 - to, Payload::Rst, now);
                } else {
                    end.recv.push(bytes.as_slice());
                    let reader = end.reader.take();
                    self.wake(reader);
                }
            }
            Payload::Fin => {
                end.eof = true;
                let reader = end.reader.take();
                self.wake(reader);
            }
            Payload::Rst => {
                if !end.established && !end.closed && to == 0 {
                    end.refused = true;
                }
                end.reset = true;
                let wakers = [end.reader.take(), end.writer.take()];
                for waker in wakers {
                    self.wake(waker);
                }
            }
        }
        self.collect(conn);
    }
}

pub(super) fn payload_name(payload: &Payload) -> String {
    match payload {
        Payload::Syn => "SYN".into(),
        Payload::SynAck => "SYN-ACK".into(),
        Payload::Data(bytes) => format!("{} bytes", bytes.as_slice().len()),
        Payload::Fin => "FIN".into(),
        Payload::Rst => "RST".into(),
    }
}
