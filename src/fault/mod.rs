//! Faults: partitions, clogged hosts, crashes and restarts, link faults, pauses, stalls,
//! disk and clock faults, injected by tests, scenarios and fault plans.
//!
//! Every fault is recorded in the trace. A partition or a clog holds TCP segments (they are
//! sent again when the link heals, as TCP would keep retransmitting them) and drops UDP
//! datagrams. A crash resets the host's connections (its peers read `ConnectionReset`),
//! unbinds its sockets and cancels all of its tasks; a restart runs its start function again.
//! A pause stops the host's tasks and timers and keeps its sockets open: its peers see
//! silence. A stall makes `accept`, `connect` and `bind` late, never refused. A lost TCP
//! segment is retransmitted after [`TCP_RTO`](crate::net::TCP_RTO), doubling, with the
//! segments behind it waiting: the stream is late, never holed. Disk faults fail operations
//! with the errors the OS gives (EIO, ENOSPC) or slow them; clock jumps move a host's wall
//! clock, never the monotonic one.
//!
//! ```
//! use std::time::Duration;
//! use roof::net::TcpStream;
//! let lp = roof::EventLoop::with_config(roof::Config::new(3).echo(false));
//! lp.host("server", || async {
//!     let listener = roof::net::TcpListener::bind("0.0.0.0:80").await.unwrap();
//!     loop { drop(listener.accept().await); }
//! }).unwrap();
//! lp.partition("main", "server").unwrap();
//! let attempt = lp.run_until_complete(async {
//!     roof::timeout(Duration::from_secs(1), TcpStream::connect("server:80")).await
//! }).unwrap();
//! assert!(attempt.is_err(), "the SYN is held by the partition");
//! ```

use std::io;

use crate::event_loop::LoopHandle;
use crate::net::LinkFault;

/// A link fault in force, from [`LoopHandle::degrade_link`].
///
/// ```
/// use roof::net::LinkFault;
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
/// lp.host("db", || async {}).unwrap();
/// let burst: roof::fault::LinkFaultId =
///     lp.degrade_link("main", "db", LinkFault::default().loss(0.5)).unwrap();
/// assert_eq!(lp.link("main", "db").unwrap().loss, 0.5);
/// lp.restore_link(burst);
/// lp.restore_link(burst); // ended already: nothing happens
/// assert_eq!(lp.link("main", "db").unwrap().loss, 0.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinkFaultId(u64);

impl LoopHandle {
    /// Cut the link between `a` and `b`, both ways.
    pub fn partition(&self, a: &str, b: &str) -> io::Result<()> {
        self.partition_oneway(a, b)?;
        self.partition_oneway(b, a)
    }

    /// Cut the link from `from` to `to` only: `to` stops hearing `from`.
    pub fn partition_oneway(&self, from: &str, to: &str) -> io::Result<()> {
        let (from_host, to_host) = (self.host_index(from)?, self.host_index(to)?);
        self.kernel
            .record_fault(|| format!("partition {from} -> {to}"));
        self.kernel
            .net_call(|net, _| net.partition(from_host, to_host));
        Ok(())
    }

    /// Restore the link between `a` and `b`, both ways; held segments are sent again.
    pub fn heal(&self, a: &str, b: &str) -> io::Result<()> {
        let (a_host, b_host) = (self.host_index(a)?, self.host_index(b)?);
        self.kernel.record_fault(|| format!("heal {a} <-> {b}"));
        self.kernel.net_call(|net, now| {
            net.heal(a_host, b_host, now);
            net.heal(b_host, a_host, now);
        });
        Ok(())
    }

    /// Restore every link (partitions healed, link faults ended) and unclog every host.
    pub fn heal_all(&self) {
        self.kernel.record_fault(|| "heal all".to_string());
        self.kernel.net_call(|net, now| net.heal_all(now));
    }

    /// Degrade the link between `a` and `b`, both ways, until [`restore_link`] with the
    /// returned id: a latency spike, a loss burst. The fault composes with the link's own
    /// configuration ([`set_link`](Self::set_link), before or during the fault) and with
    /// other faults on the link; restoring it leaves the configuration as it is.
    ///
    /// ```
    /// use roof::net::{LinkConfig, LinkFault};
    /// use std::time::Duration;
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// lp.host("db", || async {}).unwrap();
    /// lp.set_link("main", "db", LinkConfig::default().latency(Duration::from_millis(10))).unwrap();
    /// let spike = lp.degrade_link("main", "db", LinkFault::default().latency(Duration::from_millis(50))).unwrap();
    /// assert_eq!(lp.link("main", "db").unwrap().latency, Duration::from_millis(60));
    /// lp.restore_link(spike);
    /// assert_eq!(lp.link("main", "db").unwrap().latency, Duration::from_millis(10));
    /// ```
    ///
    /// [`restore_link`]: Self::restore_link
    pub fn degrade_link(&self, a: &str, b: &str, fault: LinkFault) -> io::Result<LinkFaultId> {
        let (a_host, b_host) = (self.host_index(a)?, self.host_index(b)?);
        self.kernel
            .record_fault(|| format!("degrade {a} <-> {b}: {fault:?}"));
        let id = self
            .kernel
            .net_call(|net, _| net.degrade_link(a_host, b_host, fault));
        Ok(LinkFaultId(id))
    }

    /// End a link fault of [`degrade_link`](Self::degrade_link); nothing if it ended already.
    pub fn restore_link(&self, fault: LinkFaultId) {
        let restored = self.kernel.net_call(|net, _| net.restore_link(fault.0));
        if let Some((a, b)) = restored {
            self.kernel.record_fault(|| {
                let net = self.kernel.net.borrow();
                format!("restore {} <-> {}", net.host_name(a), net.host_name(b))
            });
        }
    }

    /// Clog `host`: nothing it sends or is sent gets through until [`unclog`](Self::unclog).
    pub fn clog(&self, host: &str) -> io::Result<()> {
        let index = self.host_index(host)?;
        self.kernel.record_fault(|| format!("clog {host}"));
        self.kernel
            .net_call(|net, now| net.set_clogged(index, true, true, now));
        Ok(())
    }

    /// Clog one direction of `host`'s traffic: what it sends (`outgoing`), or what it is
    /// sent, until [`unclog`](Self::unclog). Its peers hear nothing from it while it still
    /// hears them, or the other way round; held TCP segments are sent again at the unclog.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// lp.host("server", || async {
    ///     let listener = roof::net::TcpListener::bind("0.0.0.0:80").await.unwrap();
    ///     loop { drop(listener.accept().await); }
    /// }).unwrap();
    /// lp.clog_direction("server", true).unwrap(); // the server's replies are held
    /// let attempt = lp.run_until_complete(async {
    ///     roof::timeout(Duration::from_secs(1), roof::net::TcpStream::connect("server:80")).await
    /// }).unwrap();
    /// assert!(attempt.is_err(), "the SYN got through, the SYN-ACK is held");
    /// ```
    pub fn clog_direction(&self, host: &str, outgoing: bool) -> io::Result<()> {
        let index = self.host_index(host)?;
        let word = if outgoing { "outgoing" } else { "incoming" };
        self.kernel.record_fault(|| format!("clog {host} {word}"));
        self.kernel
            .net_call(|net, now| net.set_clogged(index, outgoing, !outgoing, now));
        Ok(())
    }

    /// Unclog `host`; held segments are sent again.
    pub fn unclog(&self, host: &str) -> io::Result<()> {
        let index = self.host_index(host)?;
        self.kernel.record_fault(|| format!("unclog {host}"));
        self.kernel
            .net_call(|net, now| net.set_clogged(index, false, false, now));
        Ok(())
    }

    /// Crash `host`: its tasks are cancelled, its sockets vanish and its peers see resets.
    pub fn crash(&self, host: &str) -> io::Result<()> {
        let index = self.host_index(host)?;
        if !self.kernel.net.borrow().is_up(index) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("host {host:?} is already down"),
            ));
        }
        self.kernel.crash_host(index);
        Ok(())
    }

    /// Restart a crashed `host`: its start function runs again with fresh state.
    pub fn restart(&self, host: &str) -> io::Result<()> {
        let index = self.host_index(host)?;
        if self.kernel.net.borrow().is_up(index) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("host {host:?} is up; crash it first"),
            ));
        }
        self.kernel.restart_host(index);
        Ok(())
    }

    /// Whether `host` is up (not crashed).
    pub fn is_up(&self, host: &str) -> io::Result<bool> {
        let index = self.host_index(host)?;
        Ok(self.kernel.net.borrow().is_up(index))
    }
}

// ----- buggify ---------------------------------------------------------------------------------

/// A fault point in user code, FoundationDB style: `if roof::buggify!() { /* misbehave */ }`.
///
/// In a simulation each site (file, line, column) is active in about a quarter of the seeds;
/// an active site is true a quarter of the times it is reached. Outside a simulation it is
/// always false. Decisions come from the seed's own buggify stream, so they replay.
///
/// ```
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
/// assert!(!roof::buggify!(), "outside a running loop");
/// let hits: Vec<u32> = (0..64)
///     .map(|seed| {
///         let lp = roof::EventLoop::with_config(roof::Config::new(seed).echo(false));
///         lp.run_until_complete(async { (0..100).filter(|_| roof::buggify!()).count() as u32 }).unwrap()
///     })
///     .collect();
/// assert!(hits.iter().any(|&hits| hits == 0), "inactive in some seeds");
/// assert!(hits.iter().any(|&hits| hits > 0), "active in others");
/// ```
#[macro_export]
macro_rules! buggify {
    () => {
        $crate::fault::buggify_at(::std::concat!(
            ::std::file!(),
            ":",
            ::std::line!(),
            ":",
            ::std::column!()
        ))
    };
}

/// The engine of [`buggify!`]: whether fault point `site` fires now.
#[doc(hidden)]
pub fn buggify_at(site: &'static str) -> bool {
    crate::kernel::try_with(|kernel| {
        let active = *kernel
            .buggify_sites
            .borrow_mut()
            .entry(site)
            .or_insert_with(|| crate::engine::entropy::site_active(kernel.config.seed, site, 4));
        active && kernel.buggify_rng.borrow_mut().get().below(4) == 0
    })
    .unwrap_or(false)
}

mod disk;
pub(crate) mod plan;
mod process;

pub use disk::DiskFault;
pub use plan::{FaultKind, FaultPlan, FiredFaults, PlannedFault, BURST_LOSS, SPIKE_LATENCY};
pub(crate) use process::stalled;
pub use process::STALL_BUGGIFY_MAX;
