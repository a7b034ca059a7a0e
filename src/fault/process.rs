//! Process faults: pausing a host (its tasks and timers stop, its sockets stay open),
//! stalling its `accept`, `connect` and `bind`, and restarting it when a task panics.

use std::io;
use std::time::Duration;

use crate::event_loop::LoopHandle;
use crate::kernel;

/// The longest stall the engine's own fault point (`Config::buggify`) gives an `accept`,
/// `connect` or `bind`.
pub const STALL_BUGGIFY_MAX: Duration = Duration::from_millis(500);

impl LoopHandle {
    /// Pause `host`, as `SIGSTOP` does: none of its tasks, callbacks or timers' wakeups run
    /// until [`resume`](Self::resume); its sockets stay open, data sent to it is buffered
    /// (up to the receive window), and its peers see silence, not a reset. The loop's own
    /// host, `main`, cannot be paused.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// lp.host("ticker", || async {
    ///     loop { roof::sleep(Duration::from_millis(10)).await; roof::println!("tick"); }
    /// }).unwrap();
    /// lp.run_until_complete(async {
    ///     let lp = roof::get_running_loop();
    ///     roof::sleep(Duration::from_millis(25)).await;
    ///     lp.pause("ticker").unwrap();
    ///     roof::sleep(Duration::from_secs(1)).await;
    ///     lp.resume("ticker").unwrap();
    ///     roof::sleep(Duration::from_millis(15)).await;
    /// }).unwrap();
    /// // Two ticks before the pause, none during it, one overdue at the resume and one after.
    /// assert_eq!(lp.report().output.lines().count(), 4);
    /// ```
    pub fn pause(&self, host: &str) -> io::Result<()> {
        let index = self.host_index(host)?;
        if index == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "host \"main\" cannot be paused: the loop's own tasks run there",
            ));
        }
        if !self.kernel.net.borrow().is_up(index) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("host {host:?} is down"),
            ));
        }
        self.kernel.record_fault(|| format!("pause {host}"));
        self.kernel.pause_host(index);
        Ok(())
    }

    /// Resume a paused `host`: what it would have run meanwhile runs now, in order.
    /// Nothing happens if it is not paused.
    pub fn resume(&self, host: &str) -> io::Result<()> {
        let index = self.host_index(host)?;
        if self.kernel.hosts.borrow()[index as usize].paused {
            self.kernel.record_fault(|| format!("resume {host}"));
            self.kernel.resume_host(index);
        }
        Ok(())
    }

    /// Whether `host` is paused.
    pub fn is_paused(&self, host: &str) -> io::Result<bool> {
        let index = self.host_index(host)?;
        Ok(self.kernel.hosts.borrow()[index as usize].paused)
    }

    /// Stall `host`'s `accept`, `connect` and `bind` for `duration` from now: each call on
    /// it (and each already waiting in `accept`) returns no earlier than the stall's end. A
    /// stall delays; it never refuses (connections queue at the listener meanwhile). A crash
    /// ends it.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// lp.run_until_complete(async {
    ///     let lp = roof::get_running_loop();
    ///     lp.stall("main", Duration::from_secs(2)).unwrap();
    ///     let _listener = roof::net::TcpListener::bind("0.0.0.0:80").await.unwrap();
    ///     assert_eq!(roof::time::now().as_secs_f64(), 2.0);
    /// }).unwrap();
    /// ```
    pub fn stall(&self, host: &str, duration: Duration) -> io::Result<()> {
        let index = self.host_index(host)?;
        let until = self
            .kernel
            .time_now()
            .as_nanos()
            .saturating_add(duration.as_nanos().min(u128::from(u64::MAX)) as u64);
        self.kernel
            .record_fault(|| format!("stall {host} for {duration:?}"));
        let record = &mut self.kernel.hosts.borrow_mut()[index as usize];
        record.stalled_until = record.stalled_until.max(until);
        Ok(())
    }

    /// Restart `host` when one of its tasks panics, as a supervisor (systemd, Kubernetes)
    /// restarts a process that died, instead of failing the run: the host crashes (its
    /// unsynced disk writes drawn, its connections reset) and its start function runs again.
    /// For hosts with a start function only (see [`host`](crate::LoopHandle::host)); each
    /// restart is in the trace and in [`Report::injected`](crate::Report::injected).
    ///
    /// ```
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// let starts = std::rc::Rc::new(std::cell::Cell::new(0));
    /// let counted = starts.clone();
    /// lp.host("flaky", move || {
    ///     let starts = counted.clone();
    ///     async move {
    ///         starts.set(starts.get() + 1);
    ///         if starts.get() == 1 { panic!("first start fails") }
    ///     }
    /// }).unwrap();
    /// lp.restart_on_panic("flaky", true).unwrap();
    /// lp.run_until_complete(roof::sleep(std::time::Duration::from_millis(1))).unwrap();
    /// assert_eq!(starts.get(), 2);
    /// assert!(lp.report().injected[0].contains("restart flaky after task"));
    /// ```
    pub fn restart_on_panic(&self, host: &str, on: bool) -> io::Result<()> {
        let index = self.host_index(host)?;
        self.kernel.hosts.borrow_mut()[index as usize].restart_on_panic = on;
        Ok(())
    }
}

/// Wait out a stall of the calling task's host before (or, for `accept`, after) a socket
/// call named `what`; under `Config::buggify`, now and then stall it a little anyway.
pub(crate) async fn stalled(what: &'static str) {
    let Some(until) = kernel::with(|kernel| {
        if kernel.is_real() {
            return None;
        }
        let host = kernel.exec.current_host.get();
        let now = kernel.time_now().as_nanos();
        let mut until = kernel.hosts.borrow()[host as usize].stalled_until;
        if kernel.engine_buggify("roof::net: stall", 8) {
            let extra = kernel
                .buggify_rng
                .borrow_mut()
                .get()
                .below(STALL_BUGGIFY_MAX.as_nanos() as u64);
            until = until.max(now + 1 + extra);
            let name = kernel.net.borrow().host_name(host).to_string();
            kernel.inject(format!(
                "stall {what} on {name} for {:?} (buggify)",
                Duration::from_nanos(until - now)
            ));
        }
        (until > now).then_some(until)
    }) else {
        return;
    };
    // A stall may be extended while it is waited out: look again each time.
    let mut until = until;
    loop {
        crate::time::sleep_until(crate::time::Instant::from_nanos(until)).await;
        let next = kernel::with(|kernel| {
            let host = kernel.exec.current_host.get();
            kernel.hosts.borrow()[host as usize].stalled_until
        });
        if next <= until {
            return;
        }
        until = next;
    }
}
