//! Faults: partitions, clogged hosts, crashes and restarts, injected by tests and scenarios.
//!
//! Every fault is recorded in the trace. A partition or a clog holds TCP segments (they are
//! sent again when the link heals, as TCP would keep retransmitting them) and drops UDP
//! datagrams. A crash resets the host's connections (its peers read `ConnectionReset`),
//! unbinds its sockets and cancels all of its tasks; a restart runs its start function again.
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

    /// Restore every link and unclog every host.
    pub fn heal_all(&self) {
        self.kernel.record_fault(|| "heal all".to_string());
        self.kernel.net_call(|net, now| net.heal_all(now));
    }

    /// Clog `host`: nothing it sends or is sent gets through until [`unclog`](Self::unclog).
    pub fn clog(&self, host: &str) -> io::Result<()> {
        let index = self.host_index(host)?;
        self.kernel.record_fault(|| format!("clog {host}"));
        self.kernel
            .net_call(|net, now| net.set_clogged(index, true, now));
        Ok(())
    }

    /// Unclog `host`; held segments are sent again.
    pub fn unclog(&self, host: &str) -> io::Result<()> {
        let index = self.host_index(host)?;
        self.kernel.record_fault(|| format!("unclog {host}"));
        self.kernel
            .net_call(|net, now| net.set_clogged(index, false, now));
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
