//! Adding hosts to a simulation, and shaping the links between them.

use std::future::Future;
use std::io;
use std::rc::Rc;

use super::{HostId, LinkConfig};
use crate::engine::task::TaskName;
use crate::event_loop::LoopHandle;
use crate::kernel::HostStart;
use crate::task::JoinHandle;

impl LoopHandle {
    /// Add a host named `name` running `start`: a server, say. `start` runs now (as the task
    /// `name` on the new host) and again each time the host restarts after a crash, with fresh
    /// state.
    ///
    /// Fails if the name is taken or invalid.
    ///
    /// ```
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// lp.host("server", || async { roof::println!("up on {}", roof::net::current_host_name()) }).unwrap();
    /// lp.run_until_complete(roof::sleep(std::time::Duration::from_millis(1))).unwrap();
    /// assert_eq!(lp.report().output, "up on server\n");
    /// ```
    pub fn host<F, Fut>(&self, name: &str, start: F) -> io::Result<HostId>
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let start: HostStart = Rc::new(move || Box::pin(start()));
        self.kernel.add_host(name, Some(start)).map(HostId)
    }

    /// Add a host named `name` that runs `future` once (a client), and return its handle.
    pub fn client<Fut>(&self, name: &str, future: Fut) -> io::Result<JoinHandle<Fut::Output>>
    where
        Fut: Future + 'static,
        Fut::Output: 'static,
    {
        let host = self.kernel.add_host(name, None)?;
        let name = self.kernel.net.borrow().host_name_shared(host);
        let spawned = self
            .kernel
            .spawn_on(host, future, Some(TaskName::Shared(name)));
        Ok(JoinHandle::spawned(spawned))
    }

    /// The host called `name`.
    pub fn host_id(&self, name: &str) -> io::Result<HostId> {
        self.host_index(name).map(HostId)
    }

    pub(crate) fn host_index(&self, name: &str) -> io::Result<u32> {
        self.kernel.net.borrow().host_by_name(name).ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("unknown host {name:?}"))
        })
    }

    /// Shape the link between hosts `a` and `b` (both directions).
    pub fn set_link(&self, a: &str, b: &str, config: LinkConfig) -> io::Result<()> {
        let (a, b) = (self.host_index(a)?, self.host_index(b)?);
        self.kernel.net.borrow_mut().set_link(a, b, config);
        Ok(())
    }

    /// How the link from `from` to `to` behaves now: its configuration (its own, or the
    /// default), with the link faults in force on it.
    pub fn link(&self, from: &str, to: &str) -> io::Result<LinkConfig> {
        let (from, to) = (self.host_index(from)?, self.host_index(to)?);
        Ok(self.kernel.net.borrow().link(from, to).clone())
    }

    /// Shape every link without a configuration of its own.
    pub fn set_default_link(&self, config: LinkConfig) {
        self.kernel.net.borrow_mut().set_default_link(config);
    }

    /// The address of the host called `name`.
    pub fn host_addr(&self, name: &str) -> io::Result<std::net::IpAddr> {
        let index = self.host_index(name)?;
        Ok(self.kernel.net.borrow().host_ip(index))
    }

    /// The hosts added with [`host`](LoopHandle::host), in creation order: those a crash
    /// can hit, since a restart brings them back (a [`client`](LoopHandle::client) runs
    /// once).
    pub fn restartable_hosts(&self) -> Vec<String> {
        let records = self.kernel.hosts.borrow();
        let net = self.kernel.net.borrow();
        (0..net.host_count() as u32)
            .filter(|&host| records[host as usize].start.is_some())
            .map(|host| net.host_name(host).to_string())
            .collect()
    }

    /// The names of the hosts, in creation order (`main` first).
    pub fn hosts(&self) -> Vec<String> {
        let net = self.kernel.net.borrow();
        (0..net.host_count() as u32)
            .map(|host| net.host_name(host).to_string())
            .collect()
    }
}
