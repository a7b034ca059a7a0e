//! The asyncio facade: [`EventLoop`] and its callbacks ([`gather`](crate::gather()) has a module of its own).
//!
//! Names follow asyncio where the behaviour matches: `run_until_complete`, `run_forever`,
//! `stop`, `close`, `time`, `create_task`, `call_soon`, `call_later`, `call_at`, `gather`.
//! Callbacks run as small tasks named `callback`, so the scheduler interleaves them with the
//! other ready tasks; under [`Policy::Fifo`](crate::Policy::Fifo) they run in asyncio's order,
//! and callbacks due at the same instant run in the order they were scheduled.
//!
//! # Caveats
//! In asyncio a task woken by a timer resumes one loop iteration after the timer fires (the
//! timer's callback schedules the task's next step). Here the timer wakes the task directly,
//! so it resumes in the same iteration. The seed's programs print the same either way.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::engine::report::ExceptionContext;
use crate::engine::report::{Failure, Report};
use crate::engine::task::TaskName;
use crate::kernel::{self, CallbackTimer, Config, Kernel};
use crate::task::JoinHandle;
use crate::time::Instant;

/// An asyncio-style event loop running a deterministic simulation.
///
/// The loop owns the clock, the tasks and the timers of one run. It is configured once
/// ([`Config`]: seed, policy, limits, trace) and may be run several times; state carries over
/// between runs, as in asyncio. Dropping it closes it, cancelling every task.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let answer = lp.run_until_complete(async {
///     roof::sleep(Duration::from_millis(100)).await;
///     42
/// }).unwrap();
/// assert_eq!(answer, 42);
/// assert_eq!(lp.time(), 0.1);
/// ```
pub struct EventLoop {
    handle: LoopHandle,
}

impl Default for EventLoop {
    fn default() -> Self {
        EventLoop::new()
    }
}

impl EventLoop {
    /// A loop with the default [`Config`] (seed 0, [`Policy::Random`](crate::Policy::Random)).
    pub fn new() -> EventLoop {
        EventLoop::with_config(Config::default())
    }

    /// A loop with the given configuration.
    pub fn with_config(config: Config) -> EventLoop {
        EventLoop {
            handle: LoopHandle {
                kernel: Kernel::new(config),
            },
        }
    }

    /// A loop on real sockets and the wall clock (feature `real-net`): the same program, now
    /// serving real clients. See [`net::real`](crate::net::real) for what changes.
    ///
    /// ```
    /// let lp = roof::EventLoop::real();
    /// lp.run_until_complete(async {
    ///     roof::sleep(std::time::Duration::from_millis(10)).await; // 10 ms of wall time
    /// })
    /// .unwrap();
    /// ```
    #[cfg(feature = "real-net")]
    pub fn real() -> EventLoop {
        EventLoop {
            handle: LoopHandle {
                kernel: Kernel::new_real(),
            },
        }
    }

    /// Whether this loop runs on real sockets and the wall clock.
    pub fn is_real(&self) -> bool {
        self.handle.kernel.is_real()
    }

    /// A handle to this loop that tasks and callbacks can keep.
    pub fn handle(&self) -> LoopHandle {
        self.handle.clone()
    }

    /// Run `future` as the task `main` until it completes, and return its output.
    ///
    /// Returns a [`Failure`] when the run fails: a task panicked, a deadlock, a limit was
    /// reached, or `stop()` was called before the future completed.
    pub fn run_until_complete<F>(&self, future: F) -> Result<F::Output, Failure>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let kernel = &self.handle.kernel;
        let mut main = JoinHandle::spawned(kernel.spawn(future, Some(TaskName::Static("main"))));
        kernel.run(&|| main.is_finished())?;
        if !main.is_finished() {
            let failure = Failure::Error {
                message: "the event loop stopped before the future completed".into(),
                time: kernel.clock.get(),
            };
            kernel.fail(failure.clone());
            return Err(failure);
        }
        let mut context = Context::from_waker(Waker::noop());
        match Pin::new(&mut main).poll(&mut context) {
            Poll::Ready(Ok(value)) => Ok(value),
            Poll::Ready(Err(error)) => Err(Failure::Error {
                message: error.to_string(),
                time: kernel.clock.get(),
            }),
            Poll::Pending => unreachable!("a finished task is ready"),
        }
    }

    /// Run until [`stop`](LoopHandle::stop) is called. Running dry (nothing ready, no timer
    /// pending) is a deadlock, where asyncio would wait forever.
    pub fn run_forever(&self) -> Result<(), Failure> {
        self.handle.kernel.run(&|| false)
    }

    /// Cancel every task and timer; the loop cannot run again. Also done on drop.
    pub fn close(&self) {
        self.handle.kernel.close();
    }

    /// Record that the scenario failed (for example an assertion on a result); the report's
    /// outcome becomes [`Failure::Error`]. The first failure of a run is the one kept.
    pub fn fail(&self, message: impl Into<String>) {
        let kernel = &self.handle.kernel;
        kernel.fail(Failure::Error {
            message: message.into(),
            time: kernel.clock.get(),
        });
    }

    /// The report of the run so far: seed, outcome, virtual time, steps, trace and output.
    pub fn report(&self) -> Report {
        self.handle.kernel.report()
    }
}

impl Deref for EventLoop {
    type Target = LoopHandle;

    fn deref(&self) -> &LoopHandle {
        &self.handle
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.handle.kernel.close();
        self.handle.kernel.unregister();
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.fmt(f)
    }
}

/// A cloneable handle to an [`EventLoop`], for use inside tasks and callbacks.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let handle: roof::LoopHandle = lp.handle();
/// let seen = lp.run_until_complete(async move {
///     roof::sleep(Duration::from_secs(1)).await;
///     (handle.is_running(), handle.time())
/// }).unwrap();
/// assert_eq!(seen, (true, 1.0));
/// assert!(!lp.is_running());
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    pub(crate) kernel: Rc<Kernel>,
}

/// The loop running on this thread (asyncio's `get_running_loop`).
///
/// Panics outside a running loop.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::with_config(roof::Config::new(7));
/// let (seed, time) = lp.run_until_complete(async {
///     roof::sleep(Duration::from_millis(250)).await;
///     let running = roof::get_running_loop();
///     (running.seed(), running.time())
/// }).unwrap();
/// assert_eq!((seed, time), (7, 0.25));
/// ```
pub fn get_running_loop() -> LoopHandle {
    kernel::with(|kernel| LoopHandle {
        kernel: kernel.clone(),
    })
}

impl LoopHandle {
    /// The loop's time in seconds since the origin (asyncio's `loop.time()`).
    pub fn time(&self) -> f64 {
        self.kernel.time_now().as_secs_f64()
    }

    /// The loop's time as an [`Instant`].
    pub fn now(&self) -> Instant {
        self.kernel.time_now()
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.kernel.config.seed
    }

    /// The run's scheduling policy.
    pub fn policy(&self) -> crate::Policy {
        self.kernel.policy()
    }

    /// Stop the loop at the end of the current iteration.
    pub fn stop(&self) {
        self.kernel.request_stop();
    }

    /// Whether the loop is running.
    pub fn is_running(&self) -> bool {
        self.kernel.is_running()
    }

    /// Whether the loop has been closed.
    pub fn is_closed(&self) -> bool {
        self.kernel.is_closed()
    }

    /// Handle panics of tasks and callbacks with `handler` (asyncio's
    /// `set_exception_handler`): the handler is told of each, with an [`ExceptionContext`],
    /// and the loop goes on; the panicking task ends (awaiting it gives a
    /// [`JoinError`](crate::JoinError)). `None` restores the default: in simulation a panic
    /// fails the run, on a real loop it is reported on stderr and the loop goes on.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
    /// let seen = Rc::new(RefCell::new(Vec::new()));
    /// let log = seen.clone();
    /// lp.set_exception_handler(Some(move |context: &roof::ExceptionContext| {
    ///     log.borrow_mut().push(context.message.clone());
    /// }));
    /// let after = lp.run_until_complete(async {
    ///     let doomed = roof::spawn_named("doomed", async { panic!("boom") });
    ///     assert!(doomed.await.is_err());
    ///     "the loop went on"
    /// }).unwrap();
    /// assert_eq!(after, "the loop went on");
    /// assert_eq!(seen.borrow().as_slice(), ["boom"]);
    /// ```
    pub fn set_exception_handler<H>(&self, handler: Option<H>)
    where
        H: Fn(&ExceptionContext) + 'static,
    {
        *self.kernel.exception_handler.borrow_mut() =
            handler.map(|handler| Rc::new(handler) as kernel::ExceptionHandler);
    }

    /// Whether an exception handler is set.
    pub fn has_exception_handler(&self) -> bool {
        self.kernel.exception_handler.borrow().is_some()
    }

    /// Tell the exception handler of `context` (asyncio's `call_exception_handler`); with
    /// none set, a warning (in the trace, and on stderr on a real loop). A handler that
    /// panics fails the run.
    ///
    /// ```
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).trace(roof::TraceMode::Record).echo(false));
    /// lp.call_exception_handler(&roof::ExceptionContext::new("disk nearly full"));
    /// assert!(lp.report().trace.unwrap().render().contains("warning \"disk nearly full\""));
    /// ```
    pub fn call_exception_handler(&self, context: &ExceptionContext) {
        let handler = self.kernel.exception_handler.borrow().clone();
        // A handler that panicked failed the run already (the loop reports it).
        let _ = self.kernel.handle_exception(handler, context);
    }

    /// A pending [`Future`](crate::Future) (asyncio's `loop.create_future`).
    ///
    /// ```
    /// let lp = roof::EventLoop::new();
    /// let future = lp.create_future::<&str>();
    /// let setter = future.clone();
    /// lp.call_soon(move || setter.set_result("done").unwrap());
    /// assert_eq!(lp.run_until_complete(async move { (&future).await }).unwrap(), Ok("done"));
    /// ```
    pub fn create_future<T: 'static>(&self) -> crate::Future<T> {
        crate::Future::new()
    }

    /// Schedule `future` as a task (asyncio's `loop.create_task`).
    pub fn create_task<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        JoinHandle::spawned(self.kernel.spawn(future, None))
    }

    /// Schedule `future` as a task with a name, shown in traces and reports.
    pub fn create_task_named<F>(
        &self,
        name: impl Into<Cow<'static, str>>,
        future: F,
    ) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        JoinHandle::spawned(self.kernel.spawn(future, Some(TaskName::from(name.into()))))
    }

    /// Run `callback` soon, after the tasks already ready.
    ///
    /// The callback runs as a small task named `callback` on the host of the task that
    /// scheduled it (`main` outside a task), so what it spawns belongs to that host too, and a
    /// crash of the host cancels it.
    pub fn call_soon(&self, callback: impl FnOnce() + 'static) -> Handle {
        let host = self.kernel.exec.current_host.get();
        Handle {
            task: Some(JoinHandle::spawned(self.kernel.spawn_callback(
                host,
                Box::new(callback),
                None,
            ))),
            cancelled: false,
        }
    }

    /// Run `callback` once `delay` has passed.
    ///
    /// The callback belongs to the host of the task that scheduled it (`main` outside a
    /// task): it runs as that host, as a small task named `callback`, and a crash of the host
    /// cancels it, so it never runs after the crash nor in the restarted incarnation.
    ///
    /// # Equal deadlines
    /// Callbacks (and sleeps) due at the same instant fall due in the order they were
    /// scheduled. What runs them first is the policy's choice among the ready tasks:
    /// [`Policy::Fifo`](crate::Policy::Fifo) runs them in scheduling order, as asyncio does;
    /// [`Policy::Random`](crate::Policy::Random) in an order drawn from the seed (and replayed
    /// by it), which is what finds the bugs that depend on a tie's order;
    /// [`Policy::Pct`](crate::Policy::Pct) by its task priorities.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = roof::EventLoop::new();
    /// let handle = lp.handle();
    /// lp.call_later(Duration::from_secs(2), move || handle.stop());
    /// lp.run_forever().unwrap();
    /// assert_eq!(lp.time(), 2.0);
    /// ```
    pub fn call_later(&self, delay: Duration, callback: impl FnOnce() + 'static) -> TimerHandle {
        self.call_at(self.now() + delay, callback)
    }

    /// Run `callback` when the clock reads `when`; as [`call_later`](LoopHandle::call_later)
    /// otherwise.
    pub fn call_at(&self, when: Instant, callback: impl FnOnce() + 'static) -> TimerHandle {
        TimerHandle {
            kernel: Rc::downgrade(&self.kernel),
            timer: self.kernel.call_at(when, Box::new(callback)),
            when,
        }
    }
}

impl fmt::Debug for LoopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("seed", &self.seed())
            .field("time", &self.now())
            .field("running", &self.is_running())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// A callback queued with [`call_soon`](LoopHandle::call_soon).
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// let lp = roof::EventLoop::new();
/// let ran = Rc::new(Cell::new(0));
/// let (a, b) = (ran.clone(), ran.clone());
/// let _kept: roof::Handle = lp.call_soon(move || a.set(a.get() + 1));
/// let mut cancelled = lp.call_soon(move || b.set(b.get() + 10));
/// cancelled.cancel();
/// assert!(cancelled.cancelled());
/// lp.run_until_complete(roof::sleep(std::time::Duration::from_millis(1))).unwrap();
/// assert_eq!(ran.get(), 1, "only the first callback ran");
/// ```
#[derive(Debug)]
pub struct Handle {
    task: Option<JoinHandle<()>>,
    cancelled: bool,
}

impl Handle {
    /// Cancel the callback if it has not run yet.
    pub fn cancel(&mut self) {
        self.cancelled = true;
        if let Some(task) = self.task.as_mut() {
            task.abort();
        }
    }

    /// Whether [`cancel`](Handle::cancel) was called (asyncio's `Handle.cancelled()`).
    pub fn cancelled(&self) -> bool {
        self.cancelled
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

/// A callback scheduled with [`call_later`](LoopHandle::call_later) or
/// [`call_at`](LoopHandle::call_at).
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
/// let timer: roof::TimerHandle = lp.call_later(Duration::from_secs(5), || roof::println!("too late"));
/// assert_eq!(timer.when(), 5.0);
/// timer.cancel();
/// assert!(timer.cancelled());
/// lp.run_until_complete(roof::sleep(Duration::from_secs(10))).unwrap();
/// assert_eq!(lp.report().output, "", "a cancelled callback never runs");
/// ```
pub struct TimerHandle {
    kernel: Weak<Kernel>,
    timer: Rc<CallbackTimer>,
    when: Instant,
}

impl fmt::Debug for TimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TimerHandle")
            .field("when", &self.when)
            .field("cancelled", &self.cancelled())
            .finish()
    }
}

impl TimerHandle {
    /// Cancel the callback if it has not run yet: before its deadline, or after it, while
    /// it waits its turn among the ready tasks (asyncio skips a cancelled handle in its ready
    /// queue). A callback that ran already stays run.
    pub fn cancel(&self) {
        let kernel = self.kernel.upgrade();
        self.timer.cancel(kernel.as_deref());
    }

    /// Whether [`cancel`](TimerHandle::cancel) was called, or the host that scheduled the
    /// callback crashed first (asyncio's `TimerHandle.cancelled()`).
    pub fn cancelled(&self) -> bool {
        self.timer.cancelled.get()
    }

    /// When the callback is due, in loop seconds (asyncio's `TimerHandle.when()`).
    pub fn when(&self) -> f64 {
        self.when.as_secs_f64()
    }

    /// When the callback is due.
    pub fn deadline(&self) -> Instant {
        self.when
    }
}

impl fmt::Debug for Kernel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kernel").field("id", &self.id).finish()
    }
}
