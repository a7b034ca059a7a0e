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
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::task::Waker;
use std::time::Duration;

use crate::engine::entropy::{LazyRng, Stream};
use crate::engine::trace;

/// A host's index in the fabric (0 is the default host, `main`).
pub(crate) type HostIndex = u32;

/// The first ephemeral port handed out by `bind(…:0)` and `connect`.
const EPHEMERAL_START: u16 = 49_152;

/// How a link between two hosts behaves; every random draw comes from the seed.
///
/// ```
/// use roof::net::LinkConfig;
/// use std::time::Duration;
/// let lossy = LinkConfig::default().latency(Duration::from_millis(5)).loss(0.1);
/// assert_eq!(lossy.latency, Duration::from_millis(5));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// One-way latency.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` for every segment or datagram.
    pub jitter: Duration,
    /// Probability that a UDP datagram is lost, or that a TCP segment is lost and has to be
    /// retransmitted (it arrives [`TCP_RTO`] later, doubling with each further loss; the
    /// segments behind it wait for it, as TCP's receiver does).
    pub loss: f64,
    /// Probability that a UDP datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a UDP datagram is held back by up to `latency` more (reordering it).
    pub reorder: f64,
    /// Probability that a TCP write is cut into several segments (at random points).
    pub split: f64,
    /// The largest TCP segment, in bytes.
    pub mss: usize,
}

impl Default for LinkConfig {
    /// 1 ms latency, up to 1 ms jitter, a quarter of writes split, no UDP loss.
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::from_millis(1),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            split: 0.25,
            mss: 1460,
        }
    }
}

impl LinkConfig {
    /// Set the one-way latency.
    pub fn latency(mut self, latency: Duration) -> LinkConfig {
        self.latency = latency;
        self
    }

    /// Set the jitter bound.
    pub fn jitter(mut self, jitter: Duration) -> LinkConfig {
        self.jitter = jitter;
        self
    }

    /// Set the UDP loss probability.
    pub fn loss(mut self, probability: f64) -> LinkConfig {
        self.loss = probability;
        self
    }

    /// Set the UDP duplication probability.
    pub fn duplicate(mut self, probability: f64) -> LinkConfig {
        self.duplicate = probability;
        self
    }

    /// Set the UDP reordering probability.
    pub fn reorder(mut self, probability: f64) -> LinkConfig {
        self.reorder = probability;
        self
    }

    /// Set the probability that a TCP write is split into several segments.
    pub fn split(mut self, probability: f64) -> LinkConfig {
        self.split = probability;
        self
    }
}

/// A fault on a link, on top of what the link does: extra latency and jitter (a latency
/// spike), extra loss (a loss burst). It composes with the link's own configuration, and
/// ending it leaves that configuration as it is.
///
/// ```
/// use roof::net::{LinkConfig, LinkFault};
/// use std::time::Duration;
/// let spike = LinkFault::default().latency(Duration::from_millis(50));
/// let link = spike.apply(LinkConfig::default().latency(Duration::from_millis(10)));
/// assert_eq!(link.latency, Duration::from_millis(60));
/// let burst = LinkFault::default().loss(0.5).apply(LinkConfig::default().loss(0.5));
/// assert_eq!(burst.loss, 0.75);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct LinkFault {
    /// Latency added to the link's own.
    pub extra_latency: Duration,
    /// Jitter added to the link's own.
    pub extra_jitter: Duration,
    /// A loss probability on top of the link's own: a packet gets through only if neither
    /// loses it.
    pub extra_loss: f64,
}

impl LinkFault {
    /// Add `latency` to the link's latency.
    pub fn latency(mut self, latency: Duration) -> LinkFault {
        self.extra_latency = latency;
        self
    }

    /// Add `jitter` to the link's jitter.
    pub fn jitter(mut self, jitter: Duration) -> LinkFault {
        self.extra_jitter = jitter;
        self
    }

    /// Lose packets with probability `probability` on top of the link's own loss.
    pub fn loss(mut self, probability: f64) -> LinkFault {
        self.extra_loss = probability;
        self
    }

    /// `link` with this fault on it.
    pub fn apply(&self, link: LinkConfig) -> LinkConfig {
        let extra_loss = self.extra_loss.clamp(0.0, 1.0);
        LinkConfig {
            latency: link.latency.saturating_add(self.extra_latency),
            jitter: link.jitter.saturating_add(self.extra_jitter),
            loss: 1.0 - (1.0 - link.loss.clamp(0.0, 1.0)) * (1.0 - extra_loss),
            ..link
        }
    }
}

/// What a TCP segment's arrival time is drawn from: a link's latency and jitter, in
/// nanoseconds, and its loss probability.
#[derive(Clone, Copy)]
struct Timing {
    latency: u64,
    jitter: u64,
    loss: f64,
}

/// A host as the network sees it.
struct Host {
    name: Rc<str>,
    ip: IpAddr,
    up: bool,
    clogged: bool,
    next_port: u16,
}

/// A segment's bytes: small ones (most of them) inline, so sending allocates nothing.
#[derive(Debug)]
enum Chunk {
    Inline { len: u8, bytes: [u8; CHUNK_INLINE] },
    Heap(Vec<u8>),
}

/// Copy `src`, at most 32 bytes, to the front of `dst`. A `copy_from_slice` of a length known
/// only at run time is a call to `memcpy`, which costs more than copying a small message; two
/// overlapping fixed-size copies cover any length in a range.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let len = src.len();
    debug_assert!(len <= 32 && len <= dst.len(), "copy_short of {len} bytes");
    if len >= 16 {
        dst[..16].copy_from_slice(&src[..16]);
        dst[len - 16..len].copy_from_slice(&src[len - 16..]);
    } else if len >= 8 {
        dst[..8].copy_from_slice(&src[..8]);
        dst[len - 8..len].copy_from_slice(&src[len - 8..]);
    } else if len >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[len - 4..len].copy_from_slice(&src[len - 4..]);
    } else if len > 0 {
        // First, middle and last byte: every one of 1 to 3 bytes.
        dst[0] = src[0];
        dst[len / 2] = src[len / 2];
        dst[len - 1] = src[len - 1];
    }
}

/// Bytes a segment carries inline.
const CHUNK_INLINE: usize = 22;

impl Chunk {
    fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Chunk::Heap(bytes) => bytes,
        }
    }
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

/// Bytes a receive buffer keeps inline before it moves to the heap.
const RECV_INLINE: usize = 30;

/// The bytes delivered to a TCP end and not yet read. Most reads take whole small messages,
/// so up to [`RECV_INLINE`] bytes sit inside the end itself: delivering and reading them
/// touches no separate allocation (with thousands of connections, that allocation was a
/// cache miss on every delivery and every read). More moves them to a `VecDeque`, which
/// stays.
enum RecvBuf {
    Inline { len: u8, bytes: [u8; RECV_INLINE] },
    Heap(VecDeque<u8>),
}

impl Default for RecvBuf {
    fn default() -> Self {
        RecvBuf::Inline {
            len: 0,
            bytes: [0; RECV_INLINE],
        }
    }
}

impl RecvBuf {
    fn len(&self) -> usize {
        match self {
            RecvBuf::Inline { len, .. } => usize::from(*len),
            RecvBuf::Heap(queue) => queue.len(),
        }
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append `data` after the bytes already here.
    fn push(&mut self, data: &[u8]) {
        match self {
            RecvBuf::Inline { len, bytes } => {
                let held = usize::from(*len);
                if held + data.len() <= RECV_INLINE {
                    copy_short(&mut bytes[held..], data);
                    *len = (held + data.len()) as u8;
                } else {
                    let mut queue = VecDeque::with_capacity(held + data.len());
                    queue.extend(&bytes[..held]);
                    queue.extend(data);
                    *self = RecvBuf::Heap(queue);
                }
            }
            RecvBuf::Heap(queue) => queue.extend(data),
        }
    }

    /// Move the oldest bytes into `buf`, as many as fit; returns how many.
    fn take_into(&mut self, buf: &mut [u8]) -> usize {
        match self {
            RecvBuf::Inline { len, bytes } => {
                let held = usize::from(*len);
                let count = buf.len().min(held);
                copy_short(buf, &bytes[..count]);
                if count < held {
                    bytes.copy_within(count..held, 0);
                }
                *len = (held - count) as u8;
                count
            }
            RecvBuf::Heap(queue) => {
                let count = buf.len().min(queue.len());
                let (front, back) = queue.as_slices();
                let from_front = count.min(front.len());
                buf[..from_front].copy_from_slice(&front[..from_front]);
                buf[from_front..count].copy_from_slice(&back[..count - from_front]);
                queue.drain(..count);
                count
            }
        }
    }
}

/// One end of a TCP connection. The fields a delivery and a read touch come first.
#[derive(Default)]
struct End {
    reader: Option<Waker>,
    writer: Option<Waker>,
    /// The arrival time of the latest segment sent toward this end (arrivals never go back).
    last_arrival: u64,
    /// Bytes sent toward this end and not yet delivered (at most [`TCP_BUFFER`]).
    in_flight: u32,
    /// The sequence number of the next segment sent toward this end.
    sent: u32,
    /// The sequence number of the next segment this end takes: one that arrives before it
    /// (its predecessor held by a fault, or retransmitted) is parked until the gap fills.
    next: u32,
    /// A FIN arrived: after `recv` drains, reads return 0.
    eof: bool,
    /// A RST arrived, or this end aborted.
    reset: bool,
    /// This end shut down its write half.
    write_closed: bool,
    /// This end's socket was dropped.
    closed: bool,
    /// The handshake completed for this end.
    established: bool,
    /// A connect was refused (no listener).
    refused: bool,
    /// Bytes delivered and not yet read.
    recv: RecvBuf,
}

/// A TCP connection. Its addresses are its hosts' addresses with these ports, so they are
/// not stored (a `SocketAddr` is 32 bytes, and this is read on every delivery).
struct Conn {
    hosts: [HostIndex; 2],
    ports: [u16; 2],
    /// Segments of this connection in flight or held.
    pending: u32,
    ends: [End; 2],
}

/// Where a connection's ends start within its slot of `Fabric::conns` (a prefetch hint).
const END_OFFSET: usize = std::mem::offset_of!(Conn, ends);

impl Conn {
    /// The address of end `side`.
    fn addr(&self, side: usize) -> SocketAddr {
        SocketAddr::new(host_ip(self.hosts[side]), self.ports[side])
    }
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

struct Listener {
    id: u64,
    host: HostIndex,
    backlog: VecDeque<u32>,
    acceptor: Option<Waker>,
}

struct UdpBox {
    id: u64,
    host: HostIndex,
    queue: VecDeque<(Vec<u8>, SocketAddr)>,
    reader: Option<Waker>,
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
    /// With a single waker in `wakes`: the connection it was woken for (an address to
    /// prefetch before the task runs), or 0.
    pub(crate) wake_hint: usize,
    /// Trace lines, when tracing.
    pub(crate) log: Vec<String>,
    pub(crate) tracing: bool,
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
            wake_hint: 0,
            log: Vec::new(),
            tracing,
            shut_down: false,
        };
        fabric
            .add_host("main")
            .expect("fabric invariant: the default host's name is free");
        fabric
    }

    #[inline(always)]
    fn note(&mut self, line: impl FnOnce(&mut String)) {
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
        self.log.push(text);
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
            clogged: false,
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

    /// The link `from -> to` as it behaves now: its own configuration (or the default), with
    /// the link faults on it.
    pub(crate) fn link(&self, from: HostIndex, to: HostIndex) -> &LinkConfig {
        self.links.get(&(from, to)).unwrap_or(&self.default_link)
    }

    /// Configure the link between `a` and `b`, both ways. Link faults on it stay, on top of
    /// the new configuration.
    pub(crate) fn set_link(&mut self, a: HostIndex, b: HostIndex, config: LinkConfig) {
        self.own_links.insert((a, b), config.clone());
        self.own_links.insert((b, a), config);
        self.refresh_link((a, b));
        self.refresh_link((b, a));
    }

    pub(crate) fn set_default_link(&mut self, config: LinkConfig) {
        self.default_link = config;
        let faulty: BTreeSet<(HostIndex, HostIndex)> = self
            .link_faults
            .values()
            .flat_map(|(a, b, _)| [(*a, *b), (*b, *a)])
            .collect();
        for pair in faulty {
            self.refresh_link(pair);
        }
    }

    /// Degrade the link between `a` and `b` (both ways) until [`restore_link`] with the
    /// returned id; it composes with the link's own configuration and with other faults.
    ///
    /// [`restore_link`]: Fabric::restore_link
    pub(crate) fn degrade_link(&mut self, a: HostIndex, b: HostIndex, fault: LinkFault) -> u64 {
        let id = self.next_link_fault;
        self.next_link_fault += 1;
        self.link_faults.insert(id, (a, b, fault));
        self.refresh_link((a, b));
        self.refresh_link((b, a));
        id
    }

    /// End the link fault `id` (nothing if it ended already): the link behaves as configured
    /// again, with whatever other faults remain. Returns the hosts it was on.
    pub(crate) fn restore_link(&mut self, id: u64) -> Option<(HostIndex, HostIndex)> {
        let (a, b, _) = self.link_faults.remove(&id)?;
        self.refresh_link((a, b));
        self.refresh_link((b, a));
        Some((a, b))
    }

    /// Recompute what link `pair` does: its own configuration or the default, then each
    /// fault on it, oldest first.
    fn refresh_link(&mut self, pair: (HostIndex, HostIndex)) {
        let own = self.own_links.get(&pair);
        let mut faults = self
            .link_faults
            .values()
            .filter(|(a, b, _)| (*a, *b) == pair || (*b, *a) == pair)
            .map(|(_, _, fault)| fault)
            .peekable();
        if own.is_none() && faults.peek().is_none() {
            self.links.remove(&pair);
            return;
        }
        let mut link = own.unwrap_or(&self.default_link).clone();
        for fault in faults {
            link = fault.apply(link);
        }
        self.links.insert(pair, link);
    }

    fn blocked(&self, from: HostIndex, to: HostIndex) -> bool {
        (self.faulty_hosts > 0
            && (self.hosts[from as usize].clogged || self.hosts[to as usize].clogged))
            || (!self.partitions.is_empty() && self.partitions.contains(&(from, to)))
    }

    /// Recount the hosts that are down or clogged, after a fault changed one.
    fn count_faulty_hosts(&mut self) {
        let faulty = self
            .hosts
            .iter()
            .filter(|host| !host.up || host.clogged)
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

    // ----- faults ------------------------------------------------------------------------

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
            host.clogged = false;
        }
        self.count_faulty_hosts();
        self.release_held(now);
    }

    pub(crate) fn set_clogged(&mut self, host: HostIndex, clogged: bool, now: u64) {
        self.hosts[host as usize].clogged = clogged;
        self.count_faulty_hosts();
        if !clogged {
            self.release_held(now);
        }
    }

    /// Send again every held segment whose link is open now.
    fn release_held(&mut self, now: u64) {
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
        entry.clogged = false;
        self.count_faulty_hosts();
    }

    // ----- TCP ---------------------------------------------------------------------------

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

    fn socket_id(&mut self) -> u64 {
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
    fn handle(&self, slot: u32) -> u64 {
        (u64::from(self.generations[slot as usize]) << 32) | u64::from(slot)
    }

    /// The slot of a live connection's handle (`None` once it is gone).
    fn resolve(&self, handle: u64) -> Option<u32> {
        let slot = handle as u32;
        let generation = (handle >> 32) as u32;
        let live = self.conns.get(slot as usize).is_some_and(Option::is_some);
        (live && self.generations[slot as usize] == generation).then_some(slot)
    }

    /// The slot and state of a live connection's handle (`None` once it is gone): one lookup
    /// for the hot paths that go on to use the state.
    #[inline(always)]
    fn conn_mut(&mut self, handle: u64) -> Option<(u32, &mut Conn)> {
        let slot = handle as u32;
        let generation = (handle >> 32) as u32;
        if self.generations.get(slot as usize) != Some(&generation) {
            return None;
        }
        let state = self.conns.get_mut(slot as usize)?.as_mut()?;
        Some((slot, state))
    }

    fn gone() -> io::Error {
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

    fn send_control(&mut self, conn: u32, to: usize, payload: Payload, now: u64) {
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

    /// How much later than planned a TCP segment arrives on a link that loses with
    /// probability `loss`: [`TCP_RTO`] for its first loss, doubling for each further one.
    /// Nothing is drawn on a lossless link (the usual case). The arrival planned without the
    /// losses stays the end's `last_arrival`: the segments sent after it arrive on time and
    /// are parked until it gets through.
    #[inline(always)]
    fn retransmit_delay(&mut self, loss: f64) -> u64 {
        if loss <= 0.0 {
            return 0;
        }
        let mut extra = 0;
        let mut timeout = TCP_RTO.as_nanos() as u64;
        for _ in 0..TCP_LOSSES_MAX {
            if self.rng.get().unit_f64() >= loss {
                break;
            }
            extra += timeout;
            timeout *= 2;
        }
        extra
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
    fn send_data(&mut self, conn: u32, side: usize, bytes: &[u8], now: u64) {
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
    fn send_pieces(
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
    fn send_piece(&mut self, conn: u32, side: usize, timing: Timing, piece: &[u8], now: u64) {
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
        self.note(|line| {
            let _ = write!(
                line,
                "send c{conn} {} bytes to end {} arriving {arrival}ns",
                piece.len(),
                1 - side
            );
        });
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

    fn abort_slot(&mut self, conn: u32, side: usize, now: u64) {
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
    fn collect(&mut self, conn: u32) {
        let Some(state) = self.conns[conn as usize].as_ref() else {
            return;
        };
        if state.pending == 0 && state.ends.iter().all(|end| end.closed) {
            self.conns[conn as usize] = None;
            self.generations[conn as usize] = self.generations[conn as usize].wrapping_add(1);
            self.free_conns.push(conn);
        }
    }

    // ----- UDP ---------------------------------------------------------------------------

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
            self.note(|line| {
                let _ = write!(line, "udp lost {from} -> {to} {} bytes", bytes.len());
            });
            return Ok(bytes.len());
        }
        let copies = if link.duplicate > 0.0 && self.rng.get().unit_f64() < link.duplicate {
            2
        } else {
            1
        };
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

    // ----- delivery ----------------------------------------------------------------------

    /// Start loading what three upcoming deliveries will touch: the furthest one's packet,
    /// the middle one's connection end, the nearest one's reader task. A hint only.
    pub(crate) fn prefetch_deliveries(&self, [far, middle, _near]: [Option<u32>; 3]) {
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
    fn deliver_arrived(&mut self, id: u32, now: u64) -> Option<(u32, usize)> {
        if !self.tracing {
            if let Some(delivered) = self.deliver_inline_data(id) {
                return Some(delivered);
            }
        }
        if self.park_if_early(id) {
            return None;
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
    fn park_if_early(&mut self, id: u32) -> bool {
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
        self.note(|line| {
            let _ = write!(
                line,
                "park packet {id} c{conn} end {to}: segment {seq} waits for {next}"
            );
        });
        self.parked.insert((conn, to, seq), id);
        true
    }

    /// Deliver the segments parked behind end `to` of `conn`, in order, as long as the next
    /// one is there.
    fn take_parked(&mut self, conn: u32, to: usize, now: u64) {
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
    fn deliver_inline_data(&mut self, id: u32) -> Option<(u32, usize)> {
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
        if reader.is_some() {
            self.wake_hint = std::ptr::from_ref(state).addr();
        }
        self.in_flight[id as usize] = None;
        self.free_in_flight.push(id);
        self.wake(reader);
        self.collect(conn);
        Some((conn, to))
    }

    /// Hold packet `id` if its link is cut (a datagram is dropped instead); whether it was
    /// held or dropped.
    fn hold_if_cut(&mut self, id: u32) -> bool {
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
                self.note(|line| {
                    let _ = write!(line, "hold packet {id} on cut link");
                });
                self.held.entry((from, to)).or_default().push(id);
            }
            _ => {
                self.note(|line| {
                    let _ = write!(line, "drop datagram {id} on cut link");
                });
                self.retire_packet(id);
            }
        }
        true
    }

    fn retire_packet(&mut self, id: u32) -> Option<InFlight> {
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

    fn deliver_datagram(&mut self, datagram: Datagram) {
        let Some(socket) = self.udp.get_mut(&datagram.to) else {
            return;
        };
        if socket.queue.len() >= UDP_QUEUE {
            return;
        }
        socket.queue.push_back((datagram.bytes, datagram.from));
        let reader = socket.reader.take();
        self.wake(reader);
    }

    fn deliver_segment(&mut self, segment: Segment, now: u64) {
        let Segment {
            conn,
            seq,
            to,
            payload,
        } = segment;
        let Some(state) = self.conns[conn as usize].as_mut() else {
            return;
        };
        debug_assert_eq!(
            state.ends[to].next, seq,
            "stream invariant: c{conn} end {to} takes its segments in order"
        );
        state.ends[to].next = seq.wrapping_add(1);
        state.pending -= 1;
        let host_up = self.faulty_hosts == 0 || self.hosts[state.hosts[to] as usize].up;
        let trace = self.tracing;
        let mut line = String::new();
        if trace {
            let _ = write!(line, "deliver c{conn} end {to} {}", payload_name(&payload));
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
                end.established = true;
                let reader = end.reader.take();
                self.wake(reader);
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
        if trace {
            self.log.push(line);
        }
        self.collect(conn);
    }
}

fn payload_name(payload: &Payload) -> String {
    match payload {
        Payload::Syn => "SYN".into(),
        Payload::SynAck => "SYN-ACK".into(),
        Payload::Data(bytes) => format!("{} bytes", bytes.as_slice().len()),
        Payload::Fin => "FIN".into(),
        Payload::Rst => "RST".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::{copy_short, Fabric, NAMES_INDEXED_ABOVE};
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

    #[test]
    fn copy_short_copies_every_length() {
        let source: Vec<u8> = (1..=32).collect();
        for len in 0..=32 {
            let mut target = [0u8; 32];
            copy_short(&mut target, &source[..len]);
            assert_eq!(&target[..len], &source[..len], "length {len}");
            assert!(target[len..].iter().all(|&byte| byte == 0), "length {len}");
        }
    }
}
