//! Hosts as the kernel sees them: adding one, crashing it (its tasks and callbacks die with
//! it) and restarting it (its start function runs again).

use std::rc::Weak;

use super::{CallbackTimer, HostRecord, HostStart, Kernel};
use crate::engine::task::{TaskMeta, TaskName};
use crate::engine::timer::TimerKey;
use crate::engine::trace::EventKind;

impl Kernel {
    /// Register a host on the network and, with a start function, start it.
    pub(crate) fn add_host(&self, name: &str, start: Option<HostStart>) -> std::io::Result<u32> {
        let host = self.net.borrow_mut().add_host(name)?;
        self.hosts.borrow_mut().push(HostRecord {
            incarnation: 0,
            start: start.clone(),
            clock: crate::engine::clock::WallClock::default(),
        });
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
        drop(hosts);
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

    /// Whether the task belongs to an incarnation of its host that crashed.
    pub(super) fn is_stale(&self, meta: &TaskMeta) -> bool {
        self.hosts.borrow()[meta.host as usize].incarnation != meta.incarnation
    }
}
