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
pub fn lookup(host: &str) -> io::Result<IpAddr> {
    #[cfg(feature = "real-net")]
    if kernel::with(|kernel| kernel.is_real()) {
        return real::lookup(host);
    }
    kernel::with(|kernel| kernel.net.borrow().lookup(host))
}

/// The host the current task runs on.
pub fn current_host() -> HostId {
    kernel::with(|kernel| HostId(kernel.exec.current_host.get()))
}

/// The name of the host the current task runs on.
pub fn current_host_name() -> String {
    kernel::with(|kernel| {
        kernel
            .net
            .borrow()
            .host_name(kernel.exec.current_host.get())
            .to_string()
    })
}
