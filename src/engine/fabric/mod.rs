//! The simulated fabric: hosts, links, TCP connections and UDP sockets, as plain data.
//!
//! The fabric holds no clock and knows no executor. It is told the time when something
//! happens, and answers with *effects*: segments to deliver at an instant (the event loop arms
//! a timer for each) and wakers to wake (the event loop wakes them once every borrow is
//! released). Every decision (latency jitter, segmentation, loss, duplication, reordering)
//! is drawn from the seed's network stream.
//!
//! # TCP
//! A connection has two ends. A write becomes one or more segments of random size, each
//! delivered after the link's latency plus jitter, normally never before the previous segment
//! toward the same end. The sender may only have as many bytes in flight or unread as the
//! receiving end's buffer holds (its window); past that the writer waits, so memory stays
//! bounded with a reader that never reads. FIN gives the reader EOF; RST (an abort, a crashed
//! peer, data sent to a closed socket) gives `ConnectionReset`.
//!
//! A stream is never reordered, duplicated or holed, whatever the faults: every segment toward
//! an end (data, FIN, RST) carries the end's next sequence number, and the end takes segments
//! only in that order. One that arrives early (a segment before it is held by a partition, or
//! was lost and is being retransmitted) is *parked*, as a real receiver keeps out-of-order
//! segments, and taken as soon as the gap before it fills. A held connection therefore holds
//! everything behind it.
//!
//! # Faults
//! A segment that arrives on a partitioned or clogged link is held, as TCP would keep
//! retransmitting it, and is sent again when the link heals. On a lossy link
//! ([`LinkConfig::loss`]) a TCP segment is retransmitted after [`TCP_RTO`] (doubling each time
//! it is lost again), so it arrives late and the segments behind it wait. UDP datagrams on a
//! cut link are dropped, and lost on a lossy one. A crashed host's connections are reset and
//! its sockets unbound.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use crate::engine::entropy::{LazyRng, Stream};

mod buffer;
mod delivery;
mod fault;
mod link;
mod note;
mod tcp;
mod udp;

use crate::engine::trace;
use buffer::Chunk;
use link::Timing;
pub use link::{LinkConfig, LinkFault};
use tcp::{Conn, Listener};
use udp::UdpBox;

/// A host's index in the fabric (0 is the default host, `main`).
pub(crate) type HostIndex = u32;

/// The first ephemeral port handed out by `bind(…:0)` and `connect`.
const EPHEMERAL_START: u16 = 49_152;

/// A host as the network sees it.
struct Host {
    name: Rc<str>,
    ip: IpAddr,
    up: bool,
    /// Clogged one way or both: what it sends, what it is sent.
    clogged_out: bool,
    clogged_in: bool,
    next_port: u16,
}

/// What a segment carries.
#[derive(Debug)]
enum Payload {
    Syn,
    SynAck,
    Data(Chunk),
    Fin,
    Rst,
}

/// A TCP segment on its way to end `to` of connection `conn`, the `seq`-th sent toward that
/// end: the end takes its segments in that order, whatever order they arrive in.
struct Segment {
    conn: u32,
    seq: u32,
    to: usize,
    payload: Payload,
}

/// A UDP datagram on its way.
struct Datagram {
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

/// A packet in flight. Datagrams are boxed: they are rarer and larger, and TCP segments
/// should stay small.
enum InFlight {
    Segment(Segment),
    Datagram(Box<Datagram>),
}

/// The address of host `host`: 10.0.0.N in creation order, N = index + 1 (never routed
/// anywhere: these addresses exist only inside the simulation).
fn host_ip(host: HostIndex) -> IpAddr {
    let number = host + 1;
    IpAddr::V4(Ipv4Addr::new(
        10,
        (number >> 16) as u8,
        (number >> 8) as u8,
        number as u8,
    ))
}

/// Up to this many hosts, a name is found by scanning the hosts; past it, through a map.
const NAMES_INDEXED_ABOVE: usize = 16;

/// How long a lost TCP segment takes to be sent again (Linux's minimum retransmission
/// timeout); each further loss of the same segment doubles it.
pub const TCP_RTO: Duration = Duration::from_millis(200);

/// Times one TCP segment can be lost in a row before it gets through regardless (RFC 6298's
/// backoff would give up on the connection later; the simulation delivers instead).
const TCP_LOSSES_MAX: u32 = 6;

/// The receive buffer of every TCP end, in bytes.
pub(crate) const TCP_BUFFER: usize = 64 * 1024;
/// Datagrams a UDP socket queues before it drops new ones.
pub(crate) const UDP_QUEUE: usize = 1024;

/// The simulated network of one run.
pub(crate) struct Fabric {
    rng: LazyRng,
    hosts: Vec<Host>,
    /// Hosts that are down or clogged: while 0 (no fault), a delivery need not read the
    /// `Host` entries of its ends.
    faulty_hosts: u32,
    /// Host names to indices, built once there are more than [`NAMES_INDEXED_ABOVE`] hosts
    /// (a few hosts are found faster by a scan, and a short run then builds no map). Keyed by
    /// the name's FNV-1a hash, so that finding one name among thousands compares integers,
    /// not strings; a name is then checked against its host's.
    names: BTreeMap<u64, HostIndex>,
    /// The names whose hash an earlier host's name already holds in `names` (almost never).
    name_collisions: BTreeMap<Rc<str>, HostIndex>,
    default_link: LinkConfig,
    /// The links as they behave now, by (from, to): a link without an entry behaves as the
    /// default. Computed from `own_links` and `link_faults` whenever one changes.
    links: BTreeMap<(HostIndex, HostIndex), LinkConfig>,
    /// The links configured with `set_link`, by (from, to).
    own_links: BTreeMap<(HostIndex, HostIndex), LinkConfig>,
    /// Link faults in force (latency spikes, loss bursts), by id: the two hosts and the fault.
    link_faults: BTreeMap<u64, (HostIndex, HostIndex, LinkFault)>,
    next_link_fault: u64,
    /// Directed pairs (from, to) whose traffic is cut.
    partitions: BTreeSet<(HostIndex, HostIndex)>,
    listeners: BTreeMap<SocketAddr, Listener>,
    udp: BTreeMap<SocketAddr, UdpBox>,
    conns: Vec<Option<Conn>>,
    /// Bumped each time a connection slot is freed, so a stale handle never reaches the
    /// connection that reuses its slot.
    generations: Vec<u32>,
    free_conns: Vec<u32>,
    /// Identities of listeners and UDP sockets, so a stale handle never closes a newer socket
    /// bound to the same address (after a crash and restart).
    next_socket_id: u64,
    in_flight: Vec<Option<InFlight>>,
    free_in_flight: Vec<u32>,
    /// In-flight ids held on a cut link, by (from, to).
    held: BTreeMap<(HostIndex, HostIndex), Vec<u32>>,
    /// Segments that arrived ahead of an earlier one toward the same end, by (connection,
    /// end, sequence number): each waits for the end's `next` to reach it.
    parked: BTreeMap<(u32, usize, u32), u32>,
    /// Effects for the event loop: (in-flight id, arrival time in ns).
    pub(crate) sends: Vec<(u32, u64)>,
    /// Effects for the event loop: wakers to wake.
    pub(crate) wakes: Vec<Waker>,
    /// Trace events, when tracing.
    pub(crate) log: Vec<trace::EventKind>,
    pub(crate) tracing: bool,
    /// When tracing: each in-flight slot's packet number, for the events that follow its send.
    packet_numbers: Vec<u64>,
    /// When tracing: the last packet number handed out.
    packets_sent: u64,
    /// When tracing: the number of the packet being delivered.
    delivering: u64,
    /// When tracing: the host a datagram being launched comes from.
    datagram_source: HostIndex,
    /// The loop is closing: sockets dropped now send nothing and wake nobody.
    pub(crate) shut_down: bool,
}

impl Fabric {
    pub(crate) fn new(seed: u64, tracing: bool) -> Fabric {
        let mut fabric = Fabric {
            rng: LazyRng::new(seed, Stream::Network),
            // Room for a few hosts, so that a small run's setup does not regrow the vector.
            hosts: Vec::with_capacity(8),
            faulty_hosts: 0,
            names: BTreeMap::new(),
            name_collisions: BTreeMap::new(),
            default_link: LinkConfig::default(),
            links: BTreeMap::new(),
            own_links: BTreeMap::new(),
            link_faults: BTreeMap::new(),
            next_link_fault: 1,
            partitions: BTreeSet::new(),
            listeners: BTreeMap::new(),
            udp: BTreeMap::new(),
            conns: Vec::new(),
            generations: Vec::new(),
            free_conns: Vec::new(),
            next_socket_id: 1,
            in_flight: Vec::new(),
            free_in_flight: Vec::new(),
            held: BTreeMap::new(),
            parked: BTreeMap::new(),
            sends: Vec::new(),
            wakes: Vec::new(),
            log: Vec::new(),
            tracing,
            packet_numbers: Vec::new(),
            packets_sent: 0,
            delivering: 0,
            datagram_source: 0,
            shut_down: false,
        };
        fabric
            .add_host("main")
            .expect("fabric invariant: the default host's name is free");
        fabric
    }

    // ----- hosts -------------------------------------------------------------------------

    /// Register a host; its address is 10.0.0.N in creation order (never routed anywhere:
    /// these addresses exist only inside the simulation).
    pub(crate) fn add_host(&mut self, name: &str) -> io::Result<HostIndex> {
        // Only digits and dots can parse as an address once ':' (IPv6) is ruled out, so most
        // names skip the parser.
        let address_like = name
            .bytes()
            .all(|byte| byte.is_ascii_digit() || byte == b'.');
        if name.is_empty() || name.contains(':') || (address_like && name.parse::<IpAddr>().is_ok())
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid host name {name:?}: use a non-empty name without ':' that is not an address"),
            ));
        }
        if self.host_by_name(name).is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("a host named {name:?} already exists"),
            ));
        }
        let id =
            HostIndex::try_from(self.hosts.len()).expect("fabric invariant: fewer than 2^32 hosts");
        let ip = host_ip(id);
        let name: Rc<str> = Rc::from(name);
        self.hosts.push(Host {
            name: Rc::clone(&name),
            ip,
            up: true,
            clogged_out: false,
            clogged_in: false,
            next_port: EPHEMERAL_START,
        });
        if self.hosts.len() > NAMES_INDEXED_ABOVE {
            if self.names.is_empty() {
                for index in 0..=id {
                    self.index_name(index);
                }
            } else {
                self.index_name(id);
            }
        }
        Ok(id)
    }

    /// Enter host `index`'s name (known to be new) in the index.
    fn index_name(&mut self, index: HostIndex) {
        let name = &self.hosts[index as usize].name;
        match self.names.entry(trace::fnv1a_of(name.as_bytes())) {
            Entry::Vacant(slot) => {
                slot.insert(index);
            }
            Entry::Occupied(_) => {
                self.name_collisions.insert(Rc::clone(name), index);
            }
        }
    }

    pub(crate) fn host_by_name(&self, name: &str) -> Option<HostIndex> {
        if self.hosts.len() <= NAMES_INDEXED_ABOVE {
            let index = self.hosts.iter().position(|host| *host.name == *name)?;
            return Some(
                HostIndex::try_from(index).expect("fabric invariant: fewer than 2^32 hosts"),
            );
        }
        // A name whose hash is not in `names` is nobody's: the first host with a given hash
        // is always the one entered there.
        let index = *self.names.get(&trace::fnv1a_of(name.as_bytes()))?;
        if *self.hosts[index as usize].name == *name {
            return Some(index);
        }
        self.name_collisions.get(name).copied()
    }

    pub(crate) fn host_name(&self, host: HostIndex) -> &str {
        &self.hosts[host as usize].name
    }

    /// The name of `host`, shared (for the task named after it).
    pub(crate) fn host_name_shared(&self, host: HostIndex) -> Rc<str> {
        Rc::clone(&self.hosts[host as usize].name)
    }

    pub(crate) fn host_ip(&self, host: HostIndex) -> IpAddr {
        self.hosts[host as usize].ip
    }

    pub(crate) fn host_count(&self) -> usize {
        self.hosts.len()
    }

    /// The address of a host name (or a literal address, checked to belong to a host).
    pub(crate) fn lookup(&self, name: &str) -> io::Result<IpAddr> {
        if let Some(id) = self.host_by_name(name) {
            return Ok(self.hosts[id as usize].ip);
        }
        if let Ok(ip) = name.parse::<IpAddr>() {
            if self.host_by_ip(ip).is_some() || ip.is_loopback() || ip.is_unspecified() {
                return Ok(ip);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("unknown host {name:?}: no simulated host has that name or address"),
        ))
    }

    /// Which host an address belongs to, seen from `from` (loopback is `from` itself).
    fn host_of(&self, from: HostIndex, ip: IpAddr) -> Option<HostIndex> {
        if ip.is_loopback() || ip.is_unspecified() {
            return Some(from);
        }
        self.host_by_ip(ip)
    }

    /// The host whose address is `ip`: addresses are 10.0.0.N by index, so no map is needed.
    fn host_by_ip(&self, ip: IpAddr) -> Option<HostIndex> {
        let IpAddr::V4(v4) = ip else {
            return None;
        };
        let [ten, high, mid, low] = v4.octets();
        let number = (u32::from(high) << 16) | (u32::from(mid) << 8) | u32::from(low);
        let index = number.checked_sub(1)?;
        (ten == 10 && (index as usize) < self.hosts.len()).then_some(index)
    }

    /// Bind an address on `host`: the IP must be the host's own (or unspecified/loopback);
    /// port 0 picks a free ephemeral port.
    fn local_addr(
        &mut self,
        host: HostIndex,
        requested: SocketAddr,
        taken: impl Fn(&Fabric, SocketAddr) -> bool,
    ) -> io::Result<SocketAddr> {
        let own = self.hosts[host as usize].ip;
        let ip = requested.ip();
        if !(ip == own || ip.is_unspecified() || ip.is_loopback()) {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!(
                    "cannot bind {requested}: host {:?} has address {own}",
                    self.hosts[host as usize].name
                ),
            ));
        }
        if requested.port() != 0 {
            let addr = SocketAddr::new(own, requested.port());
            if taken(self, addr) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("address {addr} is already in use"),
                ));
            }
            return Ok(addr);
        }
        for _ in 0..=(u16::MAX - EPHEMERAL_START) {
            let entry = &mut self.hosts[host as usize];
            let port = entry.next_port;
            entry.next_port = if port == u16::MAX {
                EPHEMERAL_START
            } else {
                port + 1
            };
            let addr = SocketAddr::new(own, port);
            if !taken(self, addr) {
                return Ok(addr);
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "no free ephemeral port left",
        ))
    }

    fn blocked(&self, from: HostIndex, to: HostIndex) -> bool {
        (self.faulty_hosts > 0
            && (self.hosts[from as usize].clogged_out || self.hosts[to as usize].clogged_in))
            || (!self.partitions.is_empty() && self.partitions.contains(&(from, to)))
    }

    /// Recount the hosts that are down or clogged, after a fault changed one.
    fn count_faulty_hosts(&mut self) {
        let faulty = self
            .hosts
            .iter()
            .filter(|host| !host.up || host.clogged_out || host.clogged_in)
            .count();
        self.faulty_hosts = u32::try_from(faulty).expect("fabric invariant: fewer than 2^32 hosts");
    }

    /// One-way delay for a packet on `from -> to`.
    fn delay(&mut self, from: HostIndex, to: HostIndex) -> u64 {
        let link = self.link(from, to);
        let (latency, jitter) = (
            link.latency.as_nanos() as u64,
            link.jitter.as_nanos() as u64,
        );
        self.draw_delay(latency, jitter)
    }

    /// `latency` plus a uniform draw from `0..=jitter` (no draw without jitter).
    #[inline(always)]
    fn draw_delay(&mut self, latency: u64, jitter: u64) -> u64 {
        if jitter == 0 {
            latency
        } else {
            latency + self.rng.get().below(jitter + 1)
        }
    }

    fn launch(&mut self, packet: InFlight, arrival: u64) {
        if self.shut_down {
            return;
        }
        if let InFlight::Segment(segment) = &packet {
            if let Some(conn) = self.conns[segment.conn as usize].as_mut() {
                conn.pending += 1;
            }
        }
        self.store(packet, arrival);
    }

    /// Keep a launched packet until its timer fires; the loop arms one at `arrival`.
    #[inline(always)]
    fn store(&mut self, packet: InFlight, arrival: u64) {
        let id = self.free_slot();
        self.in_flight[id as usize] = Some(packet);
        self.sends.push((id, arrival));
        if self.tracing {
            self.note_send(id, arrival);
        }
    }

    /// A free in-flight slot (it holds `None`) for a packet about to be stored.
    #[inline(always)]
    fn free_slot(&mut self) -> u32 {
        match self.free_in_flight.pop() {
            Some(id) => id,
            None => {
                self.in_flight.push(None);
                u32::try_from(self.in_flight.len() - 1)
                    .expect("fabric invariant: fewer than 2^32 packets in flight")
            }
        }
    }

    #[inline(always)]
    fn wake(&mut self, waker: Option<Waker>) {
        if let Some(waker) = waker {
            self.wakes.push(waker);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Fabric, NAMES_INDEXED_ABOVE};
    use crate::engine::trace;

    #[test]
    fn names_are_found_past_the_scan_and_through_a_hash_collision() {
        let mut fabric = Fabric::new(0, false);
        let mut names = vec!["main".to_string()];
        for index in 1..=NAMES_INDEXED_ABOVE * 3 {
            let name = format!("host-{index}");
            fabric.add_host(&name).expect("a new name");
            names.push(name);
        }
        // Make "late" collide: its hash already points at host 3.
        fabric.names.insert(trace::fnv1a_of(b"late"), 3);
        let late = fabric.add_host("late").expect("a new name");
        assert_eq!(fabric.host_by_name("late"), Some(late));
        for (index, name) in names.iter().enumerate() {
            assert_eq!(fabric.host_by_name(name), Some(index as u32), "{name}");
        }
        assert_eq!(fabric.host_by_name("nobody"), None);
        assert!(
            fabric.add_host("late").is_err(),
            "a collided name is still taken"
        );
        assert!(fabric.add_host("host-3").is_err());
    }
}
