//! The fabric's trace: connection lines as text, and one event per step of a packet's life
//! (sent, delivered, held, sent again, parked, dropped, lost), numbered so a timeline can
//! draw each packet as an arrow. Built only when tracing, off the hot paths.

use super::*;
use crate::engine::trace::{EventKind, PacketOp};

impl Fabric {
    #[inline(always)]
    pub(super) fn note(&mut self, line: impl FnOnce(&mut String)) {
        if self.tracing {
            self.note_now(line);
        }
    }

    /// [`note`](Fabric::note) when tracing, kept out of the hot paths that call it.
    #[cold]
    #[inline(never)]
    fn note_now(&mut self, line: impl FnOnce(&mut String)) {
        let mut text = String::new();
        line(&mut text);
        self.log.push(EventKind::Net { text });
    }

    /// Packet `id` (an in-flight slot, just filled) was sent, due at `arrival`: number it
    /// and trace where it goes. Only called when tracing.
    #[cold]
    #[inline(never)]
    pub(super) fn note_send(&mut self, id: u32, arrival: u64) {
        self.packets_sent += 1;
        let packet = self.packets_sent;
        let slot = id as usize;
        if self.packet_numbers.len() <= slot {
            self.packet_numbers.resize(slot + 1, 0);
        }
        self.packet_numbers[slot] = packet;
        let (conn, from, to, what) = match &self.in_flight[slot] {
            Some(InFlight::Segment(segment)) => {
                let hosts = self.conns[segment.conn as usize]
                    .as_ref()
                    .map_or([0, 0], |conn| conn.hosts);
                (
                    Some(segment.conn),
                    hosts[1 - segment.to],
                    hosts[segment.to],
                    delivery::payload_name(&segment.payload),
                )
            }
            Some(InFlight::Datagram(datagram)) => (
                None,
                self.datagram_source,
                self.host_by_ip(datagram.to.ip()).unwrap_or(0),
                format!("{} bytes", datagram.bytes.len()),
            ),
            None => return,
        };
        self.log.push(EventKind::Send {
            packet,
            conn,
            from: self.host_name(from).to_string(),
            to: self.host_name(to).to_string(),
            what,
            arrival_ns: arrival,
        });
    }

    /// A datagram of `bytes` bytes from `from` to `to` was lost on its link: it is numbered
    /// and traced as sent and lost at once. Only called when tracing.
    #[cold]
    #[inline(never)]
    pub(super) fn note_lost(&mut self, from: HostIndex, to: HostIndex, bytes: usize, now: u64) {
        self.packets_sent += 1;
        let packet = self.packets_sent;
        self.log.push(EventKind::Send {
            packet,
            conn: None,
            from: self.host_name(from).to_string(),
            to: self.host_name(to).to_string(),
            what: format!("{bytes} bytes"),
            arrival_ns: now,
        });
        self.log.push(EventKind::Packet {
            packet,
            op: PacketOp::Lost,
            detail: String::new(),
        });
    }

    /// The number of the packet in slot `id` (0 if it was sent before tracing knew it).
    pub(super) fn packet_number(&self, id: u32) -> u64 {
        self.packet_numbers.get(id as usize).copied().unwrap_or(0)
    }

    /// Trace `op` on packet number `packet`, when tracing.
    #[inline(always)]
    pub(super) fn note_packet(
        &mut self,
        packet: u64,
        op: PacketOp,
        detail: impl FnOnce() -> String,
    ) {
        if self.tracing {
            self.log.push(EventKind::Packet {
                packet,
                op,
                detail: detail(),
            });
        }
    }
}
