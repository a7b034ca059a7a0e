//! The network: hosts, TCP and UDP, the same API on the simulated fabric and (feature
//! `real-net`, `EventLoop::real`) on real sockets.
//!
//! A simulation has named hosts, each with an address (10.0.0.N, in creation order; these
//! addresses exist only inside the simulation). A task runs on the host that spawned it; the
//! default host, for everything else, is `main`. Sockets bind on their task's host.
//!
//! ```
//! use roof::net::{TcpListener, TcpStream};
//! use roof::io::{AsyncReadExt, AsyncWriteExt};
//! let lp = roof::EventLoop::with_config(roof::Config::new(1).echo(false));
//! lp.host("server", || async {
//!     let listener = TcpListener::bind("0.0.0.0:7").await.unwrap();
//!     loop {
//!         let (mut stream, _) = listener.accept().await.unwrap();
//!         roof::spawn(async move {
//!             let mut buf = [0u8; 64];
//!             let n = stream.read(&mut buf).await.unwrap();
//!             stream.write_all(&buf[..n]).await.unwrap();
//!         })
//!         .detach();
//!     }
//! })
//! .unwrap();
//! let echoed = lp
//!     .run_until_complete(async {
//!         let mut stream = TcpStream::connect("server:7").await.unwrap();
//!         stream.write_all(b"ping").await.unwrap();
//!         let mut reply = [0u8; 4];
//!         stream.read_exact(&mut reply).await.unwrap();
//!         reply
//!     })
//!     .unwrap();
//! assert_eq!(&echoed, b"ping");
//! ```

use std::io;
use std::net::{IpAddr, SocketAddr};

use crate::kernel;

mod host;
#[cfg(feature = "real-net")]
pub mod real;
mod tcp;
mod udp;

pub use crate::engine::fabric::{LinkConfig, LinkFault, TCP_RTO};
pub use tcp::{TcpListener, TcpStream};
pub use udp::UdpSocket;

pub use crate::engine::id::HostId;

/// Something that names one socket address: `SocketAddr`, `"host:port"`, `("host", port)`,
/// `(IpAddr, port)`. Host names are resolved by the running simulation.
///
/// ```
/// use roof::net::ToSocketAddr;
/// use std::net::{IpAddr, Ipv4Addr};
/// assert_eq!("10.0.0.9:80".to_socket_addr().unwrap().port(), 80);
/// let local = (IpAddr::from(Ipv4Addr::LOCALHOST), 8080).to_socket_addr().unwrap();
/// assert_eq!(local.to_string(), "127.0.0.1:8080");
/// assert!("no-port".to_socket_addr().is_err());
/// let lp = roof::EventLoop::new();
/// lp.host("db", || async {}).unwrap();
/// // Host names resolve inside the running simulation.
/// let db = lp.run_until_complete(async { ("db", 5432).to_socket_addr() }).unwrap().unwrap();
/// assert_eq!((db.ip(), db.port()), (lp.host_addr("db").unwrap(), 5432));
/// ```
pub trait ToSocketAddr {
    /// Resolve to one address, looking host names up with `lookup`.
    fn to_socket_addr(&self) -> io::Result<SocketAddr>;
}

impl ToSocketAddr for SocketAddr {
    fn to_socket_addr(&self) -> io::Result<SocketAddr> {
        Ok(*self)
    }
}

impl ToSocketAddr for (IpAddr, u16) {
    fn to_socket_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::new(self.0, self.1))
    }
}

impl ToSocketAddr for (&str, u16) {
    fn to_socket_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::new(lookup(self.0)?, self.1))
    }
}

impl ToSocketAddr for str {
    fn to_socket_addr(&self) -> io::Result<SocketAddr> {
        if let Ok(addr) = self.parse::<SocketAddr>() {
            return Ok(addr);
        }
        let (host, port) = self.rsplit_once(':').ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid address {self:?}: expected host:port"),
            )
        })?;
        let port: u16 = port.parse().map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid port in address {self:?}"),
            )
        })?;
        (host, port).to_socket_addr()
    }
}

impl ToSocketAddr for &str {
    fn to_socket_addr(&self) -> io::Result<SocketAddr> {
        (**self).to_socket_addr()
    }
}

impl ToSocketAddr for String {
    fn to_socket_addr(&self) -> io::Result<SocketAddr> {
        self.as_str().to_socket_addr()
    }
}

impl<T: ToSocketAddr + ?Sized> ToSocketAddr for &&T {
    fn to_socket_addr(&self) -> io::Result<SocketAddr> {
        (**self).to_socket_addr()
    }
}

/// The address of a host name (or of a literal address that belongs to a host).
///
/// Fails with `NotFound` for a name no host has. On a real loop the operating system
/// resolves the name. Panics outside a running loop.
///
/// ```
/// let lp = roof::EventLoop::new();
/// lp.host("db", || async {}).unwrap();
/// let (db, missing) = lp.run_until_complete(async {
///     (roof::net::lookup("db").unwrap(), roof::net::lookup("nowhere").unwrap_err())
/// }).unwrap();
/// assert_eq!(db, lp.host_addr("db").unwrap());
/// assert_eq!(db.to_string(), "10.0.0.2", "main is 10.0.0.1, then hosts in creation order");
/// assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
/// ```
pub fn lookup(host: &str) -> io::Result<IpAddr> {
    #[cfg(feature = "real-net")]
    if kernel::with(|kernel| kernel.is_real()) {
        return real::lookup(host);
    }
    kernel::with(|kernel| kernel.net.borrow().lookup(host))
}

/// The host the current task runs on.
///
/// ```
/// let lp = roof::EventLoop::new();
/// let worker = lp.client("worker", async { roof::net::current_host() }).unwrap();
/// let (main, worker) = lp.run_until_complete(async move {
///     (roof::net::current_host(), worker.await.unwrap())
/// }).unwrap();
/// assert_eq!(main.to_string(), "host 0");
/// assert_eq!(worker, lp.host_id("worker").unwrap());
/// ```
pub fn current_host() -> HostId {
    kernel::with(|kernel| HostId(kernel.exec.current_host.get()))
}

/// The name of the host the current task runs on.
///
/// ```
/// let lp = roof::EventLoop::new();
/// let worker = lp.client("worker", async {
///     roof::spawn(async { roof::net::current_host_name() }).await.unwrap()
/// }).unwrap();
/// let names = lp.run_until_complete(async move {
///     (roof::net::current_host_name(), worker.await.unwrap())
/// }).unwrap();
/// assert_eq!(names, ("main".to_string(), "worker".to_string()), "a task runs on its spawner's host");
/// ```
pub fn current_host_name() -> String {
    kernel::with(|kernel| {
        kernel
            .net
            .borrow()
            .host_name(kernel.exec.current_host.get())
            .to_string()
    })
}
