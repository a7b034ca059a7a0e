//! Hosts as the kernel sees them: adding one, crashing it (its tasks and callbacks die with
//! it) and restarting it (its start function runs again).

use std::rc::Weak;

use super::{CallbackTimer, HostRecord, HostStart, Kernel};
use crate::engine::task::{TaskMeta, TaskName, HOSTS_MAX};
use crate::engine::timer::TimerKey;
use crate::engine::trace::EventKind;

impl Kernel {
    /// Register a host on the network and, with a start function, start it.
    pub(crate) fn add_host(&self, name: &str, start: Option<HostStart>) -> std::io::Result<u32> {
        if self.hosts.borrow().len() >= HOSTS_MAX {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("cannot add host {name:?}: a simulation holds at most {HOSTS_MAX} hosts"),
            ));
        }
        let host = self.net.borrow_mut().add_host(name)?;
        self.hosts.borrow_mut().push(HostRecord::new(start.clone()));
        if let Some(start) = start {
            let name = self.net.borrow().host_name_shared(host);
            let (_, task) = self.spawn_on(host, start(), Some(TaskName::Shared(name)));
            task.detach();
        }
        Ok(host)
    }

    /// Crash `host`: its connections reset, its sockets unbound, every one of its tasks
    /// cancelled (a task is dropped, not run, the next time the scheduler picks it).
    pub(crate) fn crash_host(&self, host: u32) {
        if self.trace.enabled() {
            let name = self.net.borrow().host_name(host).to_string();
            self.record(EventKind::Fault {
                text: format!("crash {name}"),
            });
        }
        self.net_call(|net, now| net.crash(host, now));
        // The disk survives; of what was not synced, a seeded part does.
        let outcomes = self.disks.borrow_mut().crash(host);
        if self.trace.enabled() {
            let name = self.net.borrow().host_name(host).to_string();
            for outcome in outcomes {
                self.record(EventKind::Disk {
                    task: None,
                    text: format!("crash {name}: {outcome}"),
                });
            }
        }
        let mut hosts = self.hosts.borrow_mut();
        let record = &mut hosts[host as usize];
        record.incarnation = record.incarnation.wrapping_add(1);
        record.stalled_until = 0;
        let was_paused = std::mem::take(&mut record.paused);
        drop(hosts);
        if was_paused {
            // Its parked tasks go back to the queue, where they are found stale and dropped.
            self.unpark(host);
        }
        self.crashes.set(self.crashes.get() + 1);
        // Each is dropped, not polled, when the scheduler gets to it.
        let wakers = self.exec.tasks.borrow().cancel_all(Some(host));
        for waker in wakers {
            waker.wake();
        }
        // What the host scheduled dies with it: its pending callbacks never fire.
        let timers: Vec<(TimerKey, Weak<CallbackTimer>)> = self
            .timer_callbacks
            .borrow()
            .iter()
            .flatten()
            .filter(|entry| entry.host == host)
            .map(|entry| (entry.key, entry.handle.clone()))
            .collect();
        for (key, handle) in timers {
            if let Some(handle) = handle.upgrade() {
                handle.cancelled.set(true);
            }
            self.disarm_timer(key);
        }
    }

    /// Bring a crashed host back with fresh state: its start function runs again.
    pub(crate) fn restart_host(&self, host: u32) {
        if self.trace.enabled() {
            let name = self.net.borrow().host_name(host).to_string();
            self.record(EventKind::Fault {
                text: format!("restart {name}"),
            });
        }
        self.net_call(|net, _| net.restart(host));
        let start = self.hosts.borrow()[host as usize].start.clone();
        if let Some(start) = start {
            let name = self.net.borrow().host_name_shared(host);
            let (_, task) = self.spawn_on(host, start(), Some(TaskName::Shared(name)));
            task.detach();
        }
    }

    /// Pause `host`: its tasks are parked when picked, until [`resume_host`](Self::resume_host).
    pub(crate) fn pause_host(&self, host: u32) {
        let mut hosts = self.hosts.borrow_mut();
        if !std::mem::replace(&mut hosts[host as usize].paused, true) {
            self.paused_hosts.set(self.paused_hosts.get() + 1);
        }
    }

    /// Resume a paused `host`: its parked tasks are queued again, in the order they parked.
    pub(crate) fn resume_host(&self, host: u32) {
        let was_paused = std::mem::take(&mut self.hosts.borrow_mut()[host as usize].paused);
        if was_paused {
            self.unpark(host);
        }
    }

    /// `host` is no longer paused: queue its parked tasks.
    fn unpark(&self, host: u32) {
        self.paused_hosts.set(self.paused_hosts.get() - 1);
        let parked = std::mem::take(&mut *self.parked.borrow_mut());
        let (mine, others): (Vec<_>, Vec<_>) = parked
            .into_iter()
            .partition(|runnable| runnable.metadata().host() == host);
        *self.parked.borrow_mut() = others;
        let mut ready = self.exec.ready.borrow_mut();
        for runnable in mine {
            ready.push_back(crate::engine::task::Ready::new(runnable));
        }
    }

    /// Whether a panic in a task of `host` restarts it (it asked to, and it can restart).
    pub(super) fn restarts_on_panic(&self, host: u32) -> bool {
        let hosts = self.hosts.borrow();
        let record = &hosts[host as usize];
        record.restart_on_panic && record.start.is_some()
    }

    /// The engine injected a fault: trace it, and keep it for the report.
    pub(crate) fn inject(&self, what: String) {
        let line = format!("{} {what}", self.now());
        if self.trace.enabled() {
            self.record(EventKind::Fault { text: what });
        }
        self.injected.borrow_mut().push(line);
    }

    /// Whether the engine's fault point `site` fires now (`Config::buggify`): a site is
    /// active in half the seeds, and fires once in `one_in` times it is reached.
    pub(crate) fn engine_buggify(&self, site: &'static str, one_in: u64) -> bool {
        if !self.config.buggify || self.is_real() {
            return false;
        }
        let active = *self
            .buggify_sites
            .borrow_mut()
            .entry(site)
            .or_insert_with(|| crate::engine::entropy::site_active(self.config.seed, site, 2));
        active && self.buggify_rng.borrow_mut().get().below(one_in.max(1)) == 0
    }

    /// Whether the task's host is paused (then it is parked instead of run).
    pub(super) fn is_parked(&self, meta: &TaskMeta) -> bool {
        self.hosts.borrow()[meta.host() as usize].paused
    }

    /// Whether the task belongs to an incarnation of its host that crashed.
    pub(super) fn is_stale(&self, meta: &TaskMeta) -> bool {
        !meta.of_incarnation(self.hosts.borrow()[meta.host() as usize].incarnation)
    }
}
