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
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::Waker;
use std::time::Duration;

use async_task::Runnable;

use crate::engine::entropy::{LazyRng, Stream};
use crate::engine::fabric::Fabric;
use crate::engine::hint;
use crate::engine::report::{Failure, Report};
use crate::engine::sched::{Choices, Policy, Scheduler, RANDOM_WINDOW};
use crate::engine::task::{display_name, Executor, Hooks, Spawn, TaskEnd, TaskMeta, TaskName};
use crate::engine::timer::{TimerKey, TimerQueue};
use crate::engine::trace::{EventKind, Recorder, TraceMode};
use crate::task::JoinHandle;
use crate::time::Instant;

/// The default virtual-time limit: one simulated day.
pub const TIME_MAX_DEFAULT: Duration = Duration::from_secs(24 * 60 * 60);

/// The default step limit: ten million task polls.
pub const STEPS_MAX_DEFAULT: u64 = 10_000_000;

/// How one run is set up. Every field is printed with a failing seed, so a run can be rebuilt
/// from its report.
///
/// ```
/// use roof::{Config, Policy, TraceMode};
/// use std::time::Duration;
/// let config = Config::new(42)
///     .policy(Policy::Fifo)
///     .time_max(Duration::from_secs(60))
///     .steps_max(1_000)
///     .trace(TraceMode::Record);
/// assert_eq!(config.seed, 42);
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    /// The seed every random decision derives from.
    pub seed: u64,
    /// The scheduling policy (default [`Policy::Random`]).
    pub policy: Policy,
    /// The virtual-time limit (default [`TIME_MAX_DEFAULT`], one day).
    pub time_max: Duration,
    /// The step limit (default [`STEPS_MAX_DEFAULT`]).
    pub steps_max: u64,
    /// How much trace to keep (default [`TraceMode::Hash`]).
    pub trace: TraceMode,
    /// A recorded choice sequence to replay instead of asking the policy.
    pub choices: Option<Choices>,
    /// Whether to record the scheduler's choices in the report.
    pub record_choices: bool,
    /// Whether [`println!`](crate::println) also writes to stdout (default true); the text is
    /// captured in the report either way.
    pub echo: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config::new(0)
    }
}

impl Config {
    /// The defaults for `seed`.
    pub fn new(seed: u64) -> Config {
        Config {
            seed,
            policy: Policy::Random,
            time_max: TIME_MAX_DEFAULT,
            steps_max: STEPS_MAX_DEFAULT,
            trace: TraceMode::Hash,
            choices: None,
            record_choices: false,
            echo: true,
        }
    }

    /// Set the scheduling policy.
    pub fn policy(mut self, policy: Policy) -> Config {
        self.policy = policy;
        self
    }

    /// Set the virtual-time limit.
    pub fn time_max(mut self, limit: Duration) -> Config {
        self.time_max = limit;
        self
    }

    /// Set the step limit.
    pub fn steps_max(mut self, limit: u64) -> Config {
        self.steps_max = limit;
        self
    }

    /// Set the trace mode.
    pub fn trace(mut self, mode: TraceMode) -> Config {
        self.trace = mode;
        self
    }

    /// Replay a recorded choice sequence (past its end the run continues in FIFO order).
    pub fn choices(mut self, choices: Choices) -> Config {
        self.choices = Some(choices);
        self
    }

    /// Record the scheduler's choices into the report.
    pub fn record_choices(mut self, record: bool) -> Config {
        self.record_choices = record;
        self
    }

    /// Whether printed lines also go to stdout.
    pub fn echo(mut self, echo: bool) -> Config {
        self.echo = echo;
        self
    }
}

/// A `call_soon`/`call_later` callback.
pub(crate) type Callback = Box<dyn FnOnce()>;

/// A `call_later`/`call_at` callback waiting for its timer. It belongs to the host (and the
/// incarnation of it) that scheduled it: it runs as that host, and a crash of the host
/// cancels it.
struct TimedCallback {
    callback: Callback,
    host: u32,
    incarnation: u16,
    key: TimerKey,
    /// The timer's handle, if one is still held: told the task that runs the callback, so
    /// that cancelling after the timer fell due still stops it.
    handle: Weak<CallbackTimer>,
}

/// What a [`TimerHandle`](crate::TimerHandle) shares with the loop about its callback.
pub(crate) struct CallbackTimer {
    pub(crate) key: TimerKey,
    /// `cancel()` was called (or the host crashed): the callback will not run.
    pub(crate) cancelled: Cell<bool>,
    /// Once the timer fell due: the task that runs the callback.
    pub(crate) task: RefCell<Option<JoinHandle<()>>>,
}

impl CallbackTimer {
    /// Cancel the callback: disarm its timer, or stop the task that was about to run it
    /// (asyncio skips a cancelled handle that is already in its ready queue). Returns
    /// whether this call cancelled it.
    pub(crate) fn cancel(&self, kernel: Option<&Kernel>) -> bool {
        if self.cancelled.replace(true) {
            return false;
        }
        let task = self.task.borrow_mut().take();
        match (task, kernel) {
            (Some(mut task), _) => task.abort(),
            (None, Some(kernel)) => kernel.disarm_timer(self.key),
            (None, None) => {}
        }
        true
    }
}

/// A timer's payload as the timer queue holds it: a struct, not an enum, so that arming a
/// delivery (every packet sent) and firing one move it in registers. As an enum it went
/// through the stack, where a wide load of narrow fresh stores stalled on store forwarding.
/// A callback, rare, waits in the kernel's `timer_callbacks` by the timer's slot.
pub(crate) struct TimerToken {
    /// The packet id, or `WAKE` or `CALLBACK`.
    what: u64,
    /// The task to wake, for `WAKE`.
    waker: Option<Waker>,
}

impl TimerToken {
    const WAKE: u64 = u64::MAX;
    const CALLBACK: u64 = u64::MAX - 1;

    #[inline(always)]
    fn deliver(packet: u32) -> TimerToken {
        TimerToken {
            what: u64::from(packet),
            waker: None,
        }
    }

    fn wake(waker: Waker) -> TimerToken {
        TimerToken {
            what: TimerToken::WAKE,
            waker: Some(waker),
        }
    }

    const CALLBACK_TOKEN: TimerToken = TimerToken {
        what: TimerToken::CALLBACK,
        waker: None,
    };

    /// The packet this timer delivers, if it is a delivery.
    #[inline(always)]
    fn packet(&self) -> Option<u32> {
        (self.what < TimerToken::CALLBACK).then_some(self.what as u32)
    }
}

impl crate::engine::timer::Prefetch for TimerToken {
    /// The timer is among the next to fire: start loading the header of the task it will
    /// wake (a task waker's data word is its task's address), which waking reads first.
    /// Timers fire in deadline order, which is no order of the tasks: without this, waking
    /// was a miss on every timer (timers: 19% of samples in `RawTask::wake`). A hint only.
    fn prefetch(&self) {
        if let Some(waker) = &self.waker {
            hint::prefetch(waker.data().cast());
        }
    }
}

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
    /// The panic of the task being run, reported by its guard, for `step` to fail the run.
    panicked: RefCell<Option<String>>,
    /// Per host (by index; 0 is `main`): its incarnation and how to start it again.
    pub(crate) hosts: RefCell<Vec<HostRecord>>,
    /// Crashes so far: while 0, no task can be stale and the check is skipped.
    crashes: Cell<u32>,
    /// Real mode (feature `real-net`): the wall clock and the cross-thread mailbox.
    #[cfg(feature = "real-net")]
    pub(crate) real: Option<crate::net::real::Real>,
}

/// What the kernel keeps about a host (the network keeps its name and address).
pub(crate) struct HostRecord {
    /// Bumped (wrapping) by every crash; tasks of an older incarnation are cancelled.
    pub(crate) incarnation: u16,
    /// The host's start function, run when it is added and again on every restart.
    pub(crate) start: Option<HostStart>,
}

/// A host's start function.
pub(crate) type HostStart = Rc<dyn Fn() -> Pin<Box<dyn Future<Output = ()>>>>;

thread_local! {
    /// Every live kernel of this thread (usually one).
    static KERNELS: RefCell<Vec<Rc<Kernel>>> = const { RefCell::new(Vec::new()) };
    /// The kernel whose loop is running on this thread.
    static RUNNING: RefCell<Option<Rc<Kernel>>> = const { RefCell::new(None) };
}

/// Loop ids, unique in the process so that a waker woken on a foreign thread never finds a
/// loop of that thread by mistake; never visible in traces.
static NEXT_LOOP_ID: AtomicU32 = AtomicU32::new(1);

/// Run `f` with the running kernel. Panics outside a running loop, naming the rule.
pub(crate) fn with<R>(f: impl FnOnce(&Rc<Kernel>) -> R) -> R {
    try_with(f).expect("roof: this must be called from inside a running EventLoop (run_until_complete or run_forever)")
}

/// The running kernel. Panics outside a running loop, naming the rule.
///
/// For `spawn`: a future passed through [`with`]'s closures was copied at each level, and a
/// task's future can be large (a server task's buffer).
#[inline(always)]
pub(crate) fn running() -> Rc<Kernel> {
    with(Rc::clone)
}

/// Run `f` with the running kernel, if there is one.
///
/// `f` runs while the running-loop slot is borrowed (no reference count is touched on this
/// hot path), so it must not start or end a run; `Running::enter` reports that as misuse.
pub(crate) fn try_with<R>(f: impl FnOnce(&Rc<Kernel>) -> R) -> Option<R> {
    RUNNING
        .try_with(|running| running.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// Whether a loop is running on this thread (a panic now is a simulated task's, or the engine's).
pub fn is_running_here() -> bool {
    RUNNING
        .try_with(|running| {
            running
                .try_borrow()
                .map(|running| running.is_some())
                .unwrap_or(true)
        })
        .unwrap_or(false)
}

/// Run `f` with the running kernel, or else the newest open one of this thread (asyncio's
/// "current event loop" for code that runs between `run_*` calls).
pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<Kernel>) -> R) -> Option<R> {
    let kernel = RUNNING
        .try_with(|running| running.borrow().clone())
        .ok()
        .flatten()
        .or_else(|| {
            KERNELS
                .try_with(|kernels| {
                    kernels
                        .borrow()
                        .iter()
                        .rev()
                        .find(|kernel| !kernel.is_closed())
                        .cloned()
                })
                .ok()
                .flatten()
        })?;
    Some(f(&kernel))
}

fn find(loop_id: u32) -> Option<Rc<Kernel>> {
    find_where(|id| id == loop_id)
}

/// The first kernel of this thread whose loop id satisfies `is_it`.
fn find_where(is_it: impl Fn(u32) -> bool) -> Option<Rc<Kernel>> {
    KERNELS
        .try_with(|kernels| {
            kernels
                .borrow()
                .iter()
                .find(|kernel| is_it(kernel.id))
                .cloned()
        })
        .ok()
        .flatten()
}

/// A task was woken (on any thread): queue it on its loop.
///
/// The running loop is the usual owner; then another loop of this thread. No loop of this
/// thread owning the task means the waker was used on a foreign thread: a real loop's task
/// woken by async-io's reactor goes to that loop's mailbox. Otherwise the runnable is leaked,
/// never dropped here: dropping it would drop a future on a thread that is not its loop's.
/// (A closed loop's tasks are all finished, and a finished task is never scheduled, so that
/// takes a waker sent to another thread by the program itself.)
fn schedule(runnable: Runnable<TaskMeta>) {
    let loop_id = runnable.metadata().loop_id;
    let mut runnable = Some(runnable);
    with_loop(loop_id, |kernel| {
        if let Some(runnable) = runnable.take() {
            kernel.schedule(runnable);
        }
    });
    if let Some(runnable) = runnable {
        #[cfg(feature = "real-net")]
        crate::net::real::deliver_foreign(runnable);
        #[cfg(not(feature = "real-net"))]
        std::mem::forget(runnable);
    }
}

/// Abort a task: mark it cancelled and wake it, for the loop to drop its future. Nothing if
/// it is gone or cancelled already.
pub(crate) fn abort_task(meta: &TaskMeta) {
    let waker = with_loop(meta.loop_id, |kernel| {
        kernel.exec.tasks.borrow().cancel_one(meta)
    })
    .flatten();
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// What the kernel does with its tasks (see [`Hooks`]).
pub(crate) struct KernelHooks;

impl Hooks for KernelHooks {
    fn schedule(runnable: Runnable<TaskMeta>) {
        schedule(runnable);
    }

    /// A task ended (its guard reports it before the future is dropped): forget it.
    fn ended(meta: &TaskMeta, end: TaskEnd) {
        with_loop(meta.loop_id, |kernel| kernel.task_ended(meta, end));
    }
}

/// Run `f` with the kernel of loop `loop_id` (the running one, without touching a reference
/// count, in the common case).
fn with_loop<R>(loop_id: u32, f: impl FnOnce(&Kernel) -> R) -> Option<R> {
    let mut f = Some(f);
    let running = RUNNING
        .try_with(|running| {
            let running = running.borrow();
            let kernel = running.as_deref().filter(|kernel| kernel.id == loop_id)?;
            f.take().map(|f| f(kernel))
        })
        .ok()
        .flatten();
    match (running, f) {
        (Some(result), _) => Some(result),
        (None, Some(f)) => find(loop_id).map(|kernel| f(&kernel)),
        (None, None) => None,
    }
}

impl Kernel {
    pub(crate) fn new(config: Config) -> Rc<Kernel> {
        Kernel::create(config, false)
    }

    /// A kernel in real mode: FIFO, no trace, no limits, the wall clock and real sockets.
    #[cfg(feature = "real-net")]
    pub(crate) fn new_real() -> Rc<Kernel> {
        let config = Config {
            policy: Policy::Fifo,
            time_max: Duration::MAX,
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
        let scheduler = Scheduler::new(
            config.policy,
            config.seed,
            config.choices.clone(),
            config.record_choices,
        );
        let kernel = Rc::new(Kernel {
            id,
            exec: Executor::new(id),
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
            panicked: RefCell::new(None),
            hosts: RefCell::new({
                // Room for a few hosts, so that a small run's setup does not regrow the vector.
                let mut hosts = Vec::with_capacity(8);
                hosts.push(HostRecord {
                    incarnation: 0,
                    start: None,
                });
                hosts
            }),
            crashes: Cell::new(0),
            #[cfg(feature = "real-net")]
            real: real.then(|| crate::net::real::Real::new(id)),
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
    pub(crate) fn spawn<F>(&self, future: F, name: Option<TaskName>) -> JoinHandle<F::Output>
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
    ) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let traced_name = self.trace.enabled().then(|| name.clone());
        let incarnation = self.hosts.borrow()[host as usize].incarnation;
        let spawn = Spawn {
            host,
            incarnation,
            traced: self.trace.enabled(),
            name,
        };
        let (id, task) = self.exec.spawn::<F, KernelHooks>(future, spawn);
        if let Some(name) = traced_name {
            let host = (host != 0).then(|| self.net.borrow().host_name(host).to_string());
            self.record(EventKind::Spawn {
                task: id,
                name: display_name(id, name.as_ref()),
                host,
                parent: self.exec.current.get(),
            });
        }
        JoinHandle::new(id, task)
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
        for text in log {
            self.record(EventKind::Net { text });
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

    /// Register a host on the network and, with a start function, start it.
    pub(crate) fn add_host(&self, name: &str, start: Option<HostStart>) -> std::io::Result<u32> {
        let host = self.net.borrow_mut().add_host(name)?;
        self.hosts.borrow_mut().push(HostRecord {
            incarnation: 0,
            start: start.clone(),
        });
        if let Some(start) = start {
            let name = self.net.borrow().host_name_shared(host);
            self.spawn_on(host, start(), Some(TaskName::Shared(name)))
                .detach();
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
            self.spawn_on(host, start(), Some(TaskName::Shared(name)))
                .detach();
        }
    }

    /// Whether the task belongs to an incarnation of its host that crashed.
    fn is_stale(&self, meta: &TaskMeta) -> bool {
        self.hosts.borrow()[meta.host as usize].incarnation != meta.incarnation
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
        if let Ok(tasks) = self.exec.tasks.try_borrow() {
            tasks.prefetch(meta.slot);
        }
        if self.trace.enabled() {
            self.record(EventKind::Wake {
                task: runnable.metadata().id,
                by: self.exec.current.get(),
            });
        }
        self.exec.ready.borrow_mut().push_back(runnable);
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
        tasks.unregister(meta.slot);
        if meta.named() && !panicked {
            tasks.forget_name(meta.id);
        }
        drop(tasks);
        let kind = match end {
            TaskEnd::Completed => EventKind::Complete { task: meta.id },
            TaskEnd::Cancelled => EventKind::Cancel { task: meta.id },
            TaskEnd::Panicked(payload) => {
                *self.panicked.borrow_mut() = Some(panic_message(payload.as_ref()));
                return;
            }
            TaskEnd::PanickedInDrop(_) => unreachable!("handled above"),
        };
        if meta.traced() {
            self.record(kind);
        }
    }

    /// Wake `waker` when the clock reads `deadline` (a sleep). The network's deliveries arm
    /// their timers directly; callbacks go through [`call_at`](Kernel::call_at).
    pub(crate) fn arm_timer(&self, deadline: Instant, waker: Waker) -> TimerKey {
        self.insert_timer(deadline, TimerToken::wake(waker))
    }

    fn insert_timer(&self, deadline: Instant, token: TimerToken) -> TimerKey {
        let key = self.timers.borrow_mut().insert(deadline, token);
        if self.trace.enabled() {
            self.record(EventKind::TimerSet {
                timer: key.seq,
                deadline_ns: deadline.as_nanos(),
                by: self.exec.current.get(),
            });
        }
        key
    }

    /// Run `callback` when the clock reads `deadline`, as the host of the running task (or
    /// `main`, outside a task): asyncio's `call_at`.
    pub(crate) fn call_at(&self, deadline: Instant, callback: Callback) -> Rc<CallbackTimer> {
        let key = self.insert_timer(deadline, TimerToken::CALLBACK_TOKEN);
        let host = self.exec.current_host.get();
        let timer = Rc::new(CallbackTimer {
            key,
            cancelled: Cell::new(false),
            task: RefCell::new(None),
        });
        let entry = TimedCallback {
            callback,
            host,
            incarnation: self.hosts.borrow()[host as usize].incarnation,
            key,
            handle: Rc::downgrade(&timer),
        };
        let mut callbacks = self.timer_callbacks.borrow_mut();
        let slot = key.slot() as usize;
        if callbacks.len() <= slot {
            callbacks.resize_with(slot + 1, || None);
        }
        callbacks[slot] = Some(entry);
        timer
    }

    /// Take the callback of the timer `key` named (it fired or was cancelled), if it has one.
    fn take_callback(&self, key: TimerKey) -> Option<TimedCallback> {
        self.timer_callbacks
            .borrow_mut()
            .get_mut(key.slot() as usize)
            .and_then(Option::take)
    }

    pub(crate) fn disarm_timer(&self, key: TimerKey) {
        let mut timers = self.timers.borrow_mut();
        if !timers.cancel(key) {
            return;
        }
        let garbage = timers.take_garbage();
        drop(timers);
        let callback = self.take_callback(key);
        if self.trace.enabled() {
            self.record(EventKind::TimerCancel { timer: key.seq });
        }
        drop(garbage);
        drop(callback);
    }

    /// Keep the waker of a pending sleep current (a task may be polled with a new waker);
    /// returns the key that now names the timer.
    pub(crate) fn refresh_timer_waker(
        &self,
        key: TimerKey,
        deadline: Instant,
        waker: &Waker,
    ) -> TimerKey {
        let mut timers = self.timers.borrow_mut();
        let renewed = timers.replace(key, deadline, TimerToken::wake(waker.clone()));
        let garbage = timers.take_garbage();
        drop(timers);
        drop(garbage);
        renewed.unwrap_or(key)
    }

    /// Queue `callback` to run as its own small task on `host` (asyncio's `Handle`).
    pub(crate) fn spawn_callback(
        &self,
        host: u32,
        callback: Callback,
        timer: Option<u64>,
    ) -> JoinHandle<()> {
        let handle = self.spawn_on(
            host,
            async move { callback() },
            Some(TaskName::Static("callback")),
        );
        if self.trace.enabled() {
            self.record(EventKind::Callback {
                task: handle.id().as_u64(),
                timer,
            });
        }
        handle
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

    /// Run the loop until `done()` says so (checked after each step), `stop()`, or a failure.
    pub(crate) fn run(self: &Rc<Self>, done: &dyn Fn() -> bool) -> Result<(), Failure> {
        if let Some(failure) = self.failure() {
            return Err(failure);
        }
        if self.is_closed() {
            return Err(Failure::Misuse {
                message: "the event loop is closed".into(),
            });
        }
        let _running = Running::enter(self)?;
        self.phase.set(Phase::Running);
        self.stop.set(Stop::No);
        self.batch_left.set(0);
        let result = self.run_batches(done);
        self.phase.set(Phase::Idle);
        result
    }

    fn run_batches(&self, done: &dyn Fn() -> bool) -> Result<(), Failure> {
        let mut main_done = done();
        if main_done {
            self.stop.set(Stop::AfterNextBatch);
        }
        loop {
            if self.batch_left.get() == 0 {
                match self.stop.get() {
                    Stop::AtBoundary => return Ok(()),
                    Stop::AfterNextBatch => self.stop.set(Stop::AtBoundary),
                    Stop::No => {}
                }
                self.begin_batch()?;
                if self.batch_left.get() == 0 {
                    // Only a stop can leave a batch empty: the queue stayed empty and no time passed.
                    continue;
                }
            }
            self.batch_left.set(self.batch_left.get() - 1);
            let Some(runnable) = self.pick() else {
                self.batch_left.set(0);
                continue;
            };
            if self.crashes.get() > 0 && self.is_stale(runnable.metadata()) {
                // Its host crashed: the task is cancelled, its future dropped unpolled.
                let (id, host) = (runnable.metadata().id, runnable.metadata().host);
                runnable.metadata().cancel();
                runnable.run();
                self.fail_if_panicked(id, host)?;
                continue;
            }
            self.step(runnable)?;
            if !main_done && done() {
                main_done = true;
                if self.stop.get() == Stop::No {
                    self.stop.set(Stop::AfterNextBatch);
                }
            }
        }
    }

    /// If nothing is ready, advance the clock to the next deadline; then fire the due timers.
    fn begin_batch(&self) -> Result<(), Failure> {
        #[cfg(feature = "real-net")]
        if let Some(real) = &self.real {
            self.begin_real_batch(real);
            return Ok(());
        }
        if self.exec.ready.borrow().is_empty() && self.stop.get() == Stop::No {
            let next = self.timers.borrow_mut().next_deadline();
            let Some(deadline) = next else {
                return Err(self.fail_now(Failure::Deadlock {
                    time: self.now(),
                    blocked: self
                        .exec
                        .tasks
                        .borrow()
                        .list()
                        .into_iter()
                        .map(|(id, name)| (crate::TaskId(id), name))
                        .collect(),
                }));
            };
            if deadline > Instant::ORIGIN + self.config.time_max {
                return Err(self.fail_now(Failure::TimeLimit {
                    limit: self.config.time_max,
                    time: self.now(),
                }));
            }
            self.clock.set(deadline.max(self.now()));
        }
        self.fire_due();
        self.batch_left.set(self.exec.ready.borrow().len());
        Ok(())
    }

    /// Real mode: take the wakeups of other threads; if nothing is ready, sleep until
    /// something is or the next timer is due; then fire the due timers.
    #[cfg(feature = "real-net")]
    fn begin_real_batch(&self, real: &crate::net::real::Real) {
        self.take_foreign(real);
        if self.exec.ready.borrow().is_empty() && self.stop.get() == Stop::No {
            let next = self.timers.borrow_mut().next_deadline();
            if next.is_none_or(|deadline| deadline > real.now()) {
                real.wait(&self.exec.ready, next);
                self.take_foreign(real);
            }
        }
        self.refresh_clock();
        self.fire_due();
        self.batch_left.set(self.exec.ready.borrow().len());
    }

    #[cfg(feature = "real-net")]
    fn take_foreign(&self, real: &crate::net::real::Real) {
        for runnable in real.take_foreign() {
            self.schedule(runnable);
        }
    }

    fn fire_due(&self) {
        let now = self.now();
        loop {
            // One timer at a time, acted on with no borrow held: waking may re-enter.
            let (due, garbage, ahead) = {
                let mut timers = self.timers.borrow_mut();
                let due = timers.pop_due(now);
                // Deliveries come in long runs (every connection's packet of a round): start
                // loading what the ones a few places ahead will touch, in three stages.
                let packet = |ahead| timers.soon_ahead(ahead).and_then(TimerToken::packet);
                let ahead = [
                    packet(PREFETCH_AHEAD[0]),
                    packet(PREFETCH_AHEAD[1]),
                    packet(PREFETCH_AHEAD[2]),
                ];
                (due, timers.take_garbage(), ahead)
            };
            drop(garbage);
            if ahead.iter().any(Option::is_some) {
                self.net.borrow().prefetch_deliveries(ahead);
            }
            let Some((key, token)) = due else { return };
            if let Some(packet) = token.packet() {
                // A packet's delivery is traced by the network itself, not as a timer.
                self.net_call(|net, now| net.deliver(packet, now));
                continue;
            }
            // Taken at once: the slot is free for the next timer armed.
            let callback = match token.what {
                TimerToken::CALLBACK => self.take_callback(key),
                _ => None,
            };
            if self.trace.enabled() {
                self.record(EventKind::TimerFire { timer: key.seq });
            }
            if let Some(waker) = token.waker {
                waker.wake();
            } else if let Some(entry) = callback {
                self.run_timed_callback(entry);
            }
        }
    }

    /// A callback's timer fell due: queue its task on the host that scheduled it, unless
    /// that incarnation of the host is gone (a crash disarms its timers, so this is a guard).
    fn run_timed_callback(&self, entry: TimedCallback) {
        let TimedCallback {
            callback,
            host,
            incarnation,
            key,
            handle,
        } = entry;
        if self.hosts.borrow()[host as usize].incarnation != incarnation {
            return;
        }
        let task = self.spawn_callback(host, callback, Some(key.seq));
        match handle.upgrade() {
            Some(handle) => *handle.task.borrow_mut() = Some(task),
            None => task.detach(),
        }
    }

    fn pick(&self) -> Option<Runnable<TaskMeta>> {
        let mut ready = self.exec.ready.borrow_mut();
        let len = ready.len();
        if len <= 1 {
            return ready.pop_front();
        }
        // The task that just entered the random window will be picked within the next few
        // dozen steps: start loading its header (and the start of its future) now; and, in
        // a long queue, the header of the task a window's length behind it (the queue there
        // is FIFO). With a million tasks each first read of a picked task's header was a miss
        // (spawn-join: 92% of the loop's own samples on that load). Hints only.
        if len > RANDOM_WINDOW {
            let behind = &ready[len.min(2 * RANDOM_WINDOW) - 1];
            hint::prefetch(std::ptr::from_ref(behind.metadata()).cast());
        }
        let entering = &ready[len.min(RANDOM_WINDOW) - 1];
        hint::prefetch_lines(std::ptr::from_ref(entering.metadata()).cast(), 2);
        // Its table entry too, which its end reads (timers: 13% of samples in
        // `TaskTable::unregister`).
        if let Ok(tasks) = self.exec.tasks.try_borrow() {
            tasks.prefetch(entering.metadata().slot);
        }
        let step = self.steps.get();
        let choice = self.scheduler.borrow_mut().choose(
            len,
            ready.iter().map(|runnable| runnable.metadata().id),
            step,
        );
        // The ends, the usual picks among a few ready tasks, without `remove`'s general shift.
        if choice == 0 {
            ready.pop_front()
        } else if choice == len - 1 {
            ready.pop_back()
        } else {
            ready.remove(choice)
        }
    }

    fn step(&self, runnable: Runnable<TaskMeta>) -> Result<(), Failure> {
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        if steps > self.config.steps_max {
            self.exec.ready.borrow_mut().push_front(runnable);
            return Err(self.fail_now(Failure::StepLimit {
                limit: self.config.steps_max,
                time: self.now(),
            }));
        }
        let meta = runnable.metadata();
        let (id, host) = (meta.id, meta.host);
        self.refresh_clock();
        if self.trace.enabled() {
            self.record(EventKind::Poll { task: id });
        }
        self.exec.current.set(Some(id));
        self.exec.current_host.set(host);
        // A panic is caught by the task's guard, which drops the future and reports it here;
        // a task woken during its own poll is queued again by `run` itself.
        runnable.run();
        self.exec.current.set(None);
        self.exec.current_host.set(0);
        self.fail_if_panicked(id, host)
    }

    /// If the task `id` of `host` just run panicked (its guard said so), fail the run.
    fn fail_if_panicked(&self, id: u64, host: u32) -> Result<(), Failure> {
        let panicked = self.panicked.borrow_mut().take();
        let Some(message) = panicked else {
            return Ok(());
        };
        let name = self.exec.tasks.borrow_mut().take_name(id);
        if self.trace.enabled() {
            self.record(EventKind::Panic {
                task: id,
                message: message.clone(),
            });
        }
        Err(self.fail_now(Failure::Panic {
            task: crate::TaskId(id),
            name,
            host: self.net.borrow().host_name(host).to_string(),
            time: self.now(),
            message,
        }))
    }

    fn fail_now(&self, failure: Failure) -> Failure {
        self.fail(failure.clone());
        failure
    }

    /// Cancel every task and timer. Cancelling drops futures, which may wake or cancel others,
    /// so this drains until nothing is left.
    pub(crate) fn close(self: &Rc<Self>) {
        if self.is_closed() {
            return;
        }
        let Ok(_running) = Running::enter(self) else {
            return;
        };
        // Tasks are about to be dropped with their sockets: nothing they send could arrive.
        self.net.borrow_mut().shut_down = true;
        self.phase.set(Phase::Closed);
        loop {
            drop(self.timers.borrow_mut().drain());
            let callbacks = std::mem::take(&mut *self.timer_callbacks.borrow_mut());
            drop(callbacks);
            let wakers = self.exec.tasks.borrow().cancel_all(None);
            for waker in wakers {
                waker.wake();
            }
            #[cfg(feature = "real-net")]
            if let Some(real) = &self.real {
                self.take_foreign(real);
            }
            loop {
                let next = self.exec.ready.borrow_mut().pop_front();
                let Some(runnable) = next else { break };
                // Cancelled (a task spawned by a drop just now too): its future is dropped,
                // not polled. A panic in a drop now fails nothing: the loop is closing.
                runnable.metadata().cancel();
                runnable.run();
                self.panicked.borrow_mut().take();
            }
            if self.exec.tasks.borrow().len() == 0 && self.timers.borrow().len() == 0 {
                break;
            }
        }
        // No other thread may post to this loop any more; what it posted is dropped here.
        #[cfg(feature = "real-net")]
        if let Some(real) = &self.real {
            real.unregister();
        }
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
        }
    }

    pub(crate) fn policy(&self) -> Policy {
        self.scheduler.borrow().policy()
    }
}

/// Marks a kernel as the running one for as long as it lives.
struct Running;

impl Running {
    fn enter(kernel: &Rc<Kernel>) -> Result<Running, Failure> {
        RUNNING.with(|running| {
            let Ok(mut running) = running.try_borrow_mut() else {
                return Err(Failure::Misuse {
                    message: "an event loop cannot be started or closed from inside the engine"
                        .into(),
                });
            };
            if running.is_some() {
                return Err(Failure::Misuse {
                    message: "another event loop is already running on this thread".into(),
                });
            }
            *running = Some(kernel.clone());
            Ok(Running)
        })
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let previous = RUNNING
            .try_with(|running| running.borrow_mut().take())
            .ok()
            .flatten();
        drop(previous);
    }
}

/// How far ahead in the timer list deliveries are prefetched: the packet, then its
/// connection, then its reader's task.
const PREFETCH_AHEAD: [usize; 3] = [24, 12, 4];

/// The text of a panic's payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic payload that is not a string)".to_string()
    }
}
