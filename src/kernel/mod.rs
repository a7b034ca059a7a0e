//! The kernel of one event loop: it composes the executor, the clock and timers, the
//! scheduler, the entropy streams and the trace, and runs the loop.
//!
//! # The loop
//! The loop runs in *batches*, as asyncio's `_run_once` does: at the start of a batch every
//! timer due now fires (in deadline, then creation order); if nothing is ready the clock jumps
//! to the next deadline first. The batch then runs as many steps as there were ready tasks
//! when it began; each step asks the scheduler which ready task to poll. `stop()` takes effect
//! at the end of the current batch, and a finished `run_until_complete` main task stops the
//! loop one batch later, where asyncio's done-callback would call `stop()`.
//!
//! Kernels live in a thread-local list so that a waker can find the loop of its task even when
//! that loop is not running; the running one is also kept apart for the free functions
//! (`spawn`, `sleep`, `now`, ...).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use async_task::Runnable;

use crate::engine::entropy::{LazyRng, Stream};
use crate::engine::fabric::Fabric;
use crate::engine::hint;
use crate::engine::id::{Instant, TaskId};
use crate::engine::report::{Failure, Report};
use crate::engine::sched::{Policy, Scheduler};
use crate::engine::task::{
    display_name, Executor, LoopTag, Ready, Spawn, TaskEnd, TaskHandle, TaskMeta, TaskName,
};
use crate::engine::timer::TimerQueue;
use crate::engine::trace::{EventKind, Recorder, TraceMode};
use registry::{KERNELS, NEXT_LOOP_ID};
use std::sync::atomic::Ordering;

/// A task just spawned: its id and its handle (the facades wrap it in a `JoinHandle`).
pub(crate) type Spawned<T> = (u64, TaskHandle<T>);

mod config;
mod host;
#[cfg(feature = "real-net")]
pub(crate) mod real;
mod registry;
mod run;
mod timers;
mod toolkit;

pub use config::{Config, STEPS_MAX_DEFAULT, TIME_MAX_DEFAULT};
pub(crate) use registry::{
    abort_task, is_running_here, panic_message, request_cancel, running, try_with, with,
    with_current, KernelHooks,
};
pub(crate) use timers::CallbackTimer;
use timers::{TimedCallback, TimerToken};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Running,
    Closed,
}

/// When the loop should stop, counted in batch boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    No,
    /// Stop at the next batch boundary (`stop()` was called).
    AtBoundary,
    /// Stop one batch after the next boundary (the main task finished).
    AfterNextBatch,
}

pub(crate) struct Kernel {
    pub(crate) id: u32,
    pub(crate) config: Config,
    /// Real mode (feature `real-net`): the wall clock and the cross-thread mailbox. Declared
    /// before `exec` so that it is dropped first: the mailbox, found by the loop's tag, goes
    /// before the tag returns to the pool for another loop to take.
    #[cfg(feature = "real-net")]
    pub(crate) real: Option<crate::kernel::real::Real>,
    pub(crate) exec: Executor,
    pub(crate) clock: Cell<Instant>,
    timers: RefCell<TimerQueue<TimerToken>>,
    /// The callbacks of armed `call_later` timers, by timer slot.
    timer_callbacks: RefCell<Vec<Option<TimedCallback>>>,
    scheduler: RefCell<Scheduler>,
    pub(crate) trace: Recorder,
    pub(crate) user_rng: RefCell<LazyRng>,
    /// `buggify!()`: the stream, and each site's activation for this seed.
    pub(crate) buggify_rng: RefCell<LazyRng>,
    pub(crate) buggify_sites: RefCell<std::collections::BTreeMap<&'static str, bool>>,
    output: RefCell<String>,
    phase: Cell<Phase>,
    stop: Cell<Stop>,
    failure: RefCell<Option<Failure>>,
    steps: Cell<u64>,
    batch_left: Cell<usize>,
    /// The simulated network.
    pub(crate) net: RefCell<Fabric>,
    /// The simulated disks, one per host.
    pub(crate) disks: RefCell<crate::engine::disk::Disks>,
    /// The panic of the task being run, reported by its guard, for `step` to fail the run.
    panicked: RefCell<Option<String>>,
    /// Per host (by index; 0 is `main`): its incarnation and how to start it again.
    pub(crate) hosts: RefCell<Vec<HostRecord>>,
    /// Crashes so far: while 0, no task can be stale and the check is skipped.
    crashes: Cell<u32>,
    /// Hosts paused now: while 0, no task is parked and the check is skipped.
    pub(crate) paused_hosts: Cell<u32>,
    /// The tasks of paused hosts, picked while their host was paused, in that order.
    pub(crate) parked: RefCell<Vec<Runnable<TaskMeta>>>,
    /// Faults the engine itself injected (`Config::buggify`, restarts on panic), as
    /// `<time> <what>` lines for the report.
    pub(crate) injected: RefCell<Vec<String>>,
    /// The toolkit's primitives numbered so far in this run (for their trace events).
    sync_objects: Cell<u64>,
    /// `set_exception_handler`'s handler: told of panics instead of failing the run.
    pub(crate) exception_handler: RefCell<Option<ExceptionHandler>>,
}

/// What the kernel keeps about a host (the network keeps its name and address).
pub(crate) struct HostRecord {
    /// Bumped (wrapping) by every crash; tasks of an older incarnation are cancelled.
    pub(crate) incarnation: u16,
    /// The host's start function, run when it is added and again on every restart.
    pub(crate) start: Option<HostStart>,
    /// Its wall clock (kept through crashes: the hardware clock runs on).
    pub(crate) clock: crate::engine::clock::WallClock,
    /// Paused (`LoopHandle::pause`): its tasks are parked, not run, until it resumes.
    pub(crate) paused: bool,
    /// Until when (virtual nanoseconds) its `accept`, `connect` and `bind` stall.
    pub(crate) stalled_until: u64,
    /// A panic in one of its tasks crashes and restarts it instead of failing the run.
    pub(crate) restart_on_panic: bool,
    /// On a real loop, the directory its files live under (`LoopHandle::set_disk_dir`).
    pub(crate) disk_dir: Option<std::path::PathBuf>,
}

impl HostRecord {
    pub(crate) fn new(start: Option<HostStart>) -> HostRecord {
        HostRecord {
            incarnation: 0,
            start,
            clock: crate::engine::clock::WallClock::default(),
            paused: false,
            stalled_until: 0,
            restart_on_panic: false,
            disk_dir: None,
        }
    }
}

/// An exception handler (see `LoopHandle::set_exception_handler`).
pub(crate) type ExceptionHandler = Rc<dyn Fn(&crate::engine::report::ExceptionContext)>;

/// A host's start function.
pub(crate) type HostStart = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = ()>>>>;

impl Kernel {
    pub(crate) fn new(config: Config) -> Rc<Kernel> {
        Kernel::create(config, false)
    }

    /// A kernel in real mode: FIFO, no trace, no limits, the wall clock and real sockets.
    #[cfg(feature = "real-net")]
    pub(crate) fn new_real() -> Rc<Kernel> {
        let config = Config {
            policy: Policy::Fifo,
            time_max: std::time::Duration::MAX,
            steps_max: u64::MAX,
            trace: TraceMode::Off,
            ..Config::new(0)
        };
        Kernel::create(config, true)
    }

    fn create(config: Config, real: bool) -> Rc<Kernel> {
        #[cfg(not(feature = "real-net"))]
        let _ = real;
        let id = NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed);
        let loop_tag = LoopTag::take();
        #[cfg(feature = "real-net")]
        let tag = loop_tag.get();
        let scheduler = Scheduler::new(
            config.policy,
            config.seed,
            config.choices.clone(),
            config.record_choices,
        );
        let kernel = Rc::new(Kernel {
            id,
            exec: Executor::new(loop_tag),
            clock: Cell::new(Instant::ORIGIN),
            timers: RefCell::new(TimerQueue::default()),
            timer_callbacks: RefCell::new(Vec::new()),
            scheduler: RefCell::new(scheduler),
            trace: Recorder::new(config.trace),
            user_rng: RefCell::new(LazyRng::new(config.seed, Stream::User)),
            buggify_rng: RefCell::new(LazyRng::new(config.seed, Stream::Buggify)),
            buggify_sites: RefCell::new(std::collections::BTreeMap::new()),
            output: RefCell::new(String::new()),
            phase: Cell::new(Phase::Idle),
            stop: Cell::new(Stop::No),
            failure: RefCell::new(None),
            steps: Cell::new(0),
            batch_left: Cell::new(0),
            net: RefCell::new(Fabric::new(config.seed, config.trace != TraceMode::Off)),
            disks: RefCell::new(crate::engine::disk::Disks::new(config.seed)),
            panicked: RefCell::new(None),
            hosts: RefCell::new({
                // Room for a few hosts, so that a small run's setup does not regrow the vector.
                let mut hosts = Vec::with_capacity(8);
                hosts.push(HostRecord::new(None));
                hosts
            }),
            crashes: Cell::new(0),
            paused_hosts: Cell::new(0),
            parked: RefCell::new(Vec::new()),
            injected: RefCell::new(Vec::new()),
            sync_objects: Cell::new(0),
            exception_handler: RefCell::new(None),
            #[cfg(feature = "real-net")]
            real: real.then(|| crate::kernel::real::Real::new(tag)),
            config,
        });
        KERNELS.with(|kernels| kernels.borrow_mut().push(kernel.clone()));
        kernel
    }

    fn now(&self) -> Instant {
        self.clock.get()
    }

    /// The loop's time: the virtual clock, or in real mode the wall clock read now.
    #[inline]
    pub(crate) fn time_now(&self) -> Instant {
        self.refresh_clock();
        self.now()
    }

    /// Real mode: bring the clock up to the wall clock (it never goes back). The virtual clock
    /// moves only when the loop jumps to a deadline.
    #[inline]
    fn refresh_clock(&self) {
        #[cfg(feature = "real-net")]
        if let Some(real) = &self.real {
            self.clock.set(real.now().max(self.now()));
        }
    }

    /// Whether this loop runs on real sockets and the wall clock (feature `real-net`).
    #[inline]
    pub(crate) fn is_real(&self) -> bool {
        #[cfg(feature = "real-net")]
        return self.real.is_some();
        #[cfg(not(feature = "real-net"))]
        false
    }

    fn record(&self, kind: EventKind) {
        self.trace.record(self.now(), kind);
    }

    pub(crate) fn is_running(&self) -> bool {
        self.phase.get() == Phase::Running
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.phase.get() == Phase::Closed
    }

    #[inline(always)]
    pub(crate) fn spawn<F>(&self, future: F, name: Option<TaskName>) -> Spawned<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.spawn_on(self.exec.current_host.get(), future, name)
    }

    /// Spawn a task owned by `host`.
    #[inline(always)]
    pub(crate) fn spawn_on<F>(
        &self,
        host: u32,
        future: F,
        name: Option<TaskName>,
    ) -> Spawned<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let traced_name = self.trace.enabled().then(|| name.clone());
        let incarnation = self.hosts.borrow()[host as usize].incarnation;
        let spawn = Spawn {
            host,
            incarnation,
            name,
        };
        let (id, task) = self.exec.spawn::<F, KernelHooks>(future, spawn);
        if let Some(name) = traced_name {
            let host = (host != 0).then(|| self.net.borrow().host_name(host).to_string());
            self.record(EventKind::Spawn {
                task: TaskId(id),
                name: display_name(id, name.as_ref()),
                host,
                parent: self.exec.current.get(),
            });
        }
        (id, task)
    }

    /// Call into the network, then act on what it asks for with no borrow held: arm a timer
    /// per packet sent, wake the tasks it woke, and trace what it did.
    pub(crate) fn net_call<R>(&self, f: impl FnOnce(&mut Fabric, u64) -> R) -> R {
        let now = self.clock.get().as_nanos();
        let mut net = self.net.borrow_mut();
        let result = f(&mut net, now);
        // Arming timers touches only the timer queue, so it can happen under the network's
        // borrow; waking and tracing wait until it is released.
        if !net.sends.is_empty() {
            let mut timers = self.timers.borrow_mut();
            for (packet, arrival) in net.sends.drain(..) {
                timers.insert(Instant::from_nanos(arrival), TimerToken::deliver(packet));
            }
        }
        if net.log.is_empty() {
            match net.wakes.len() {
                0 => return result,
                // The common case (a delivery wakes its reader): no buffer changes hands.
                1 => {
                    let waker = net.wakes.pop().expect("one waker");
                    drop(net);
                    waker.wake();
                    return result;
                }
                _ => {}
            }
        }
        let mut wakes = std::mem::take(&mut net.wakes);
        let log = std::mem::take(&mut net.log);
        drop(net);
        for kind in log {
            self.record(kind);
        }
        for waker in wakes.drain(..) {
            waker.wake();
        }
        // Hand the (empty) buffer back, so the next call allocates nothing.
        let mut net = self.net.borrow_mut();
        if net.wakes.capacity() == 0 {
            net.wakes = wakes;
        }
        result
    }

    /// Trace a disk event of the running task.
    pub(crate) fn record_disk(&self, text: impl FnOnce() -> String) {
        if self.trace.enabled() {
            let text = text();
            if !text.is_empty() {
                let task = self.exec.current.get();
                self.record(EventKind::Disk { task, text });
            }
        }
    }

    pub(crate) fn record_fault(&self, text: impl FnOnce() -> String) {
        if self.trace.enabled() {
            self.record(EventKind::Fault { text: text() });
        }
    }

    /// Queue a woken task (async-task calls this once per wakeup of an idle task, and when
    /// a task woken during its own poll returns).
    fn schedule(&self, runnable: Runnable<TaskMeta>) {
        // It will be run soon: start loading its future (right after the header, which the
        // wakeup just read) and its table entry, which its poll and its end read (timers:
        // 9% and 12% of samples on those first reads). Hints only.
        let meta = runnable.metadata();
        hint::prefetch_lines(std::ptr::from_ref(meta).cast(), 3);
        // And the end of a large future, where its state often sits past a buffer (yell-echo
        // at 100,000 clients: the benchmark server's 1 KiB buffer).
        let tail = meta.tail_lines();
        if tail != 0 {
            let start = std::ptr::from_ref(meta).cast::<u8>();
            hint::prefetch_lines(start.wrapping_add(64 * tail - 64), 2);
        }
        if let Ok(tasks) = self.exec.tasks.try_borrow() {
            tasks.prefetch(meta.slot());
        }
        if self.trace.enabled() {
            self.record(EventKind::Wake {
                task: TaskId(runnable.metadata().id()),
                by: self.exec.current.get(),
            });
        }
        self.exec.ready.borrow_mut().push_back(Ready { runnable });
        #[cfg(feature = "real-net")]
        if let Some(real) = &self.real {
            real.notify();
        }
    }

    /// A task ended: forget it, and trace how (a panic is the run's failure instead, which
    /// `step` reports).
    fn task_ended(&self, meta: &TaskMeta, end: TaskEnd) {
        if let TaskEnd::PanickedInDrop(payload) = end {
            // It ended already (cancelled); its drop panicked. A closing loop drops this.
            *self.panicked.borrow_mut() = Some(panic_message(payload.as_ref()));
            return;
        }
        let panicked = matches!(end, TaskEnd::Panicked(_));
        let mut tasks = self.exec.tasks.borrow_mut();
        tasks.unregister(meta.slot());
        if !panicked {
            tasks.forget_name(meta.id());
        }
        drop(tasks);
        let kind = match end {
            TaskEnd::Completed => EventKind::Complete {
                task: TaskId(meta.id()),
            },
            TaskEnd::Cancelled => EventKind::Cancel {
                task: TaskId(meta.id()),
            },
            TaskEnd::Panicked(payload) => {
                *self.panicked.borrow_mut() = Some(panic_message(payload.as_ref()));
                return;
            }
            TaskEnd::PanickedInDrop(_) => unreachable!("handled above"),
        };
        if self.trace.enabled() {
            self.record(kind);
        }
    }

    pub(crate) fn print(&self, text: String) {
        if self.trace.enabled() {
            self.record(EventKind::Output {
                task: self.exec.current.get(),
                text: text.clone(),
            });
        }
        if self.config.echo {
            // Never a panic: a closed stdout must not fail the simulated task that printed
            // (the report keeps the text either way).
            use std::io::Write as _;
            let _ = writeln!(std::io::stdout().lock(), "{text}");
        }
        if self.is_real() {
            // A server runs for days: its output is not kept.
            return;
        }
        let mut output = self.output.borrow_mut();
        output.push_str(&text);
        output.push('\n');
    }

    pub(crate) fn log(&self, text: String) {
        if self.trace.enabled() {
            self.record(EventKind::Log {
                task: self.exec.current.get(),
                text,
            });
        }
    }

    /// Something worth a warning that does not end the run (asyncio would log it): in the
    /// trace, and on stderr on a real loop.
    pub(crate) fn warn(&self, text: String) {
        if self.is_real() {
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr().lock(), "roof: warning: {text}");
        }
        if self.trace.enabled() {
            self.record(EventKind::Warning {
                task: self.exec.current.get(),
                text,
            });
        }
    }

    /// A client of the test harness returned an error, now: a trace event, and the run's
    /// failure unless an earlier one came first (so the failure reported is the earliest).
    pub(crate) fn client_failed(&self, client: &str, message: &str) {
        if self.trace.enabled() {
            self.record(EventKind::ClientError {
                task: self.exec.current.get(),
                client: client.to_string(),
                message: message.to_string(),
            });
        }
        self.fail(Failure::Error {
            message: format!("client {client:?} failed: {message}"),
            time: self.now(),
        });
    }

    pub(crate) fn request_stop(&self) {
        if self.trace.enabled() {
            self.record(EventKind::Stop);
        }
        self.stop.set(Stop::AtBoundary);
    }

    pub(crate) fn fail(&self, failure: Failure) {
        let mut slot = self.failure.borrow_mut();
        if slot.is_none() {
            *slot = Some(failure);
        }
    }

    pub(crate) fn failure(&self) -> Option<Failure> {
        self.failure.borrow().clone()
    }

    fn fail_now(&self, failure: Failure) -> Failure {
        self.fail(failure.clone());
        failure
    }

    pub(crate) fn unregister(self: &Rc<Self>) {
        let _ = KERNELS.try_with(|kernels| {
            kernels
                .borrow_mut()
                .retain(|kernel| !Rc::ptr_eq(kernel, self))
        });
    }

    pub(crate) fn report(&self) -> Report {
        Report {
            seed: self.config.seed,
            policy: self.scheduler.borrow().policy(),
            outcome: match self.failure() {
                Some(failure) => Err(failure),
                None => Ok(()),
            },
            virtual_time: self.now(),
            steps: self.steps.get(),
            events: self.trace.len(),
            trace_hash: self.trace.hash(),
            trace: self.trace.snapshot(),
            output: self.output.borrow().clone(),
            choices: self.scheduler.borrow().recorded().map(<[u32]>::to_vec),
            arities: self.scheduler.borrow().arities().map(<[u32]>::to_vec),
            injected: self.injected.borrow().clone(),
        }
    }

    pub(crate) fn policy(&self) -> Policy {
        self.scheduler.borrow().policy()
    }
}
