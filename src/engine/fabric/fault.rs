//! Faults as data: partitions, clogs, crashes and restarts; a segment on a cut link is held
//! and sent again when the link heals.

use super::*;
use crate::engine::trace::PacketOp;

impl Fabric {
    pub(crate) fn partition(&mut self, from: HostIndex, to: HostIndex) {
        self.partitions.insert((from, to));
        self.note(|line| line.push_str("partition"));
    }

    pub(crate) fn heal(&mut self, from: HostIndex, to: HostIndex, now: u64) {
        self.partitions.remove(&(from, to));
        self.release_held(now);
    }

    pub(crate) fn heal_all(&mut self, now: u64) {
        let degraded: Vec<u64> = self.link_faults.keys().copied().collect();
        for id in degraded {
            self.restore_link(id);
        }
        self.partitions.clear();
        for host in &mut self.hosts {
            host.clogged_out = false;
            host.clogged_in = false;
        }
        self.count_faulty_hosts();
        self.release_held(now);
    }

    /// Clog (or unclog) what `host` sends and what it is sent.
    pub(crate) fn set_clogged(&mut self, host: HostIndex, out: bool, incoming: bool, now: u64) {
        let entry = &mut self.hosts[host as usize];
        let opened = (entry.clogged_out && !out) || (entry.clogged_in && !incoming);
        entry.clogged_out = out;
        entry.clogged_in = incoming;
        self.count_faulty_hosts();
        if opened {
            self.release_held(now);
        }
    }

    /// Send again every held segment whose link is open now.
    pub(super) fn release_held(&mut self, now: u64) {
        let open: Vec<(HostIndex, HostIndex)> = self
            .held
            .keys()
            .copied()
            .filter(|&(from, to)| !self.blocked(from, to))
            .collect();
        for (from, to) in open {
            for id in self.held.remove(&(from, to)).unwrap_or_default() {
                let target = match &self.in_flight[id as usize] {
                    Some(InFlight::Segment(segment)) => Some((segment.conn, segment.to)),
                    _ => None,
                };
                let mut arrival = now + self.delay(from, to);
                if let Some((conn, to_end)) = target {
                    // Still in order behind everything sent toward that end since.
                    if let Some(conn) = self.conns[conn as usize].as_mut() {
                        let end = &mut conn.ends[to_end];
                        arrival = arrival.max(end.last_arrival);
                        end.last_arrival = arrival;
                    }
                }
                self.sends.push((id, arrival));
                let packet = self.packet_number(id);
                self.note_packet(packet, PacketOp::Resend, || {
                    format!(
                        "arriving {}",
                        crate::engine::id::Instant::from_nanos(arrival)
                    )
                });
            }
        }
    }

    pub(crate) fn is_up(&self, host: HostIndex) -> bool {
        self.faulty_hosts == 0 || self.hosts[host as usize].up
    }

    /// Crash `host`: its connections are reset (the peers get a RST), its sockets unbound.
    pub(crate) fn crash(&mut self, host: HostIndex, now: u64) {
        self.hosts[host as usize].up = false;
        self.count_faulty_hosts();
        self.listeners.retain(|_, listener| listener.host != host);
        self.udp.retain(|_, socket| socket.host != host);
        for index in 0..self.conns.len() {
            for side in 0..2 {
                let Some(conn) = self.conns[index].as_mut() else {
                    continue;
                };
                if conn.hosts[side] != host || conn.ends[side].closed {
                    continue;
                }
                let end = &mut conn.ends[side];
                end.closed = true;
                end.reset = true;
                let stale = [end.reader.take(), end.writer.take()];
                drop(stale);
                self.send_control(index as u32, 1 - side, Payload::Rst, now);
            }
            self.collect(index as u32);
        }
    }

    pub(crate) fn restart(&mut self, host: HostIndex) {
        let entry = &mut self.hosts[host as usize];
        entry.up = true;
        entry.clogged_out = false;
        entry.clogged_in = false;
        self.count_faulty_hosts();
    }
}
