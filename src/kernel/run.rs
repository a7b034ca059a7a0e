//! The run loop: batches as asyncio's `_run_once` runs them (fire the timers due, then run
//! as many steps as there were ready tasks, each one the scheduler's pick), and closing.

use std::rc::Rc;

use async_task::Runnable;

use super::registry::Running;
use super::{Kernel, Phase, Stop};
use crate::engine::hint;
use crate::engine::id::{Instant, TaskId};
use crate::engine::report::{ExceptionContext, Failure};
use crate::engine::sched::RANDOM_WINDOW;
use crate::engine::task::{Ready, TaskMeta};
use crate::engine::trace::EventKind;

impl Kernel {
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

    pub(super) fn run_batches(&self, done: &dyn Fn() -> bool) -> Result<(), Failure> {
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
                let (id, host) = (runnable.metadata().id(), runnable.metadata().host());
                runnable.metadata().cancel();
                crate::engine::task::run(runnable);
                self.fail_if_panicked(id, host)?;
                continue;
            }
            if self.paused_hosts.get() > 0 && self.is_parked(runnable.metadata()) {
                // Its host is paused: it runs when the host resumes.
                self.parked.borrow_mut().push(runnable);
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
    pub(super) fn begin_batch(&self) -> Result<(), Failure> {
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
                    blocked: self.exec.tasks.borrow().list(),
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
    pub(super) fn begin_real_batch(&self, real: &crate::kernel::real::Real) {
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
    pub(super) fn take_foreign(&self, real: &crate::kernel::real::Real) {
        for runnable in real.take_foreign() {
            self.schedule(runnable);
        }
    }

    pub(super) fn pick(&self) -> Option<Runnable<TaskMeta>> {
        let mut ready = self.exec.ready.borrow_mut();
        let len = ready.len();
        if len <= 1 {
            return ready.pop_front().map(|ready| ready.runnable);
        }
        // The task that just entered the random window will be picked within the next few
        // dozen steps: start loading its header (and the start of its future) now; and, in
        // a long queue, the header of the task a window's length behind it (the queue there
        // is FIFO). With a million tasks each first read of a picked task's header was a miss
        // (spawn-join: 92% of the loop's own samples on that load). Hints only.
        if len > RANDOM_WINDOW {
            let behind = &ready[len.min(2 * RANDOM_WINDOW) - 1].runnable;
            hint::prefetch(std::ptr::from_ref(behind.metadata()).cast());
        }
        let entering = &ready[len.min(RANDOM_WINDOW) - 1];
        hint::prefetch_lines(std::ptr::from_ref(entering.runnable.metadata()).cast(), 2);
        // In a long queue its header was loaded a window's length ago (above): its table
        // entry, which its end writes, can be loaded now (spawn-join: 83% of the samples of
        // `TaskTable::unregister` on that load).
        if len > 2 * RANDOM_WINDOW {
            if let Ok(tasks) = self.exec.tasks.try_borrow() {
                tasks.prefetch(entering.runnable.metadata().slot());
            }
        }
        let step = self.steps.get();
        let choice = self.scheduler.borrow_mut().choose(
            len,
            ready.iter().map(|ready| ready.runnable.metadata().id()),
            step,
        );
        // The ends, the usual picks among a few ready tasks, without `remove`'s general shift.
        let picked = if choice == 0 {
            ready.pop_front()
        } else if choice == len - 1 {
            ready.pop_back()
        } else {
            // Bring the pick to the front, the ones before it one place back (the order
            // `remove` leaves), with one short shift instead of `remove`'s general one, which
            // handles a wrapped buffer (spawn-join: 1.9% fewer instructions, callgrind).
            match ready.as_mut_slices() {
                (front, _) if choice < front.len() => {
                    front[..=choice].rotate_right(1);
                    ready.pop_front()
                }
                _ => ready.remove(choice),
            }
        };
        picked.map(|ready| ready.runnable)
    }

    pub(super) fn step(&self, runnable: Runnable<TaskMeta>) -> Result<(), Failure> {
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        if steps > self.config.steps_max {
            self.exec
                .ready
                .borrow_mut()
                .push_front(Ready::new(runnable));
            return Err(self.fail_now(Failure::StepLimit {
                limit: self.config.steps_max,
                time: self.now(),
            }));
        }
        let meta = runnable.metadata();
        let (id, host) = (meta.id(), meta.host());
        self.refresh_clock();
        if self.trace.enabled() {
            self.record(EventKind::Poll { task: TaskId(id) });
        }
        self.exec.current.set(Some(TaskId(id)));
        self.exec.current_host.set(host);
        // A panic is caught by the task's guard, which drops the future and reports it here;
        // a task woken during its own poll is queued again by `run` itself.
        crate::engine::task::run(runnable);
        self.exec.current.set(None);
        self.exec.current_host.set(0);
        self.fail_if_panicked(id, host)
    }

    /// If the task `id` of `host` just run panicked (its guard said so), fail the run.
    #[inline(always)]
    pub(super) fn fail_if_panicked(&self, id: u64, host: u32) -> Result<(), Failure> {
        if self.panicked.borrow().is_none() {
            return Ok(());
        }
        self.fail_panicked(id, host)
    }

    #[cold]
    #[inline(never)]
    fn fail_panicked(&self, id: u64, host: u32) -> Result<(), Failure> {
        let panicked = self.panicked.borrow_mut().take();
        let Some(message) = panicked else {
            return Ok(());
        };
        let name = self.exec.tasks.borrow_mut().take_name(id);
        if self.trace.enabled() {
            self.record(EventKind::Panic {
                task: TaskId(id),
                message: message.clone(),
            });
        }
        let host_index = host;
        let host = self.net.borrow().host_name(host).to_string();
        let handler = self.exception_handler.borrow().clone();
        if !self.is_real() && self.restarts_on_panic(host_index) {
            // A supervisor would restart the process: crash the host and start it again.
            self.inject(format!(
                "restart {host} after task {name:?} panicked: {message}"
            ));
            self.crash_host(host_index);
            self.restart_host(host_index);
            return Ok(());
        }
        if handler.is_none() && !self.is_real() {
            // In simulation, by default, a panic fails the run: what a test wants.
            return Err(self.fail_now(Failure::Panic {
                task: TaskId(id),
                name,
                host,
                time: self.now(),
                message,
            }));
        }
        let context = ExceptionContext {
            message,
            task: Some(TaskId(id)),
            task_name: Some(name),
            host: Some(host),
            time: self.now(),
        };
        self.handle_exception(handler, &context)
    }

    /// Tell `handler` of `context`, or, with none, warn (asyncio's default handler logs). A
    /// handler that panics fails the run.
    pub(crate) fn handle_exception(
        &self,
        handler: Option<super::ExceptionHandler>,
        context: &ExceptionContext,
    ) -> Result<(), Failure> {
        let Some(handler) = handler else {
            let task = match (&context.task, &context.task_name) {
                (Some(task), Some(name)) => format!("task {task} ({name}): "),
                _ => String::new(),
            };
            self.warn(format!("{task}{}", context.message));
            return Ok(());
        };
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(context)));
        match handled {
            Ok(()) => Ok(()),
            Err(payload) => Err(self.fail_now(Failure::Panic {
                task: context.task.unwrap_or(TaskId(0)),
                name: "exception handler".into(),
                host: context.host.clone().unwrap_or_else(|| "main".into()),
                time: self.now(),
                message: super::panic_message(payload.as_ref()),
            })),
        }
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
            let mut ran = 0;
            loop {
                let next = self.exec.ready.borrow_mut().pop_front();
                let Some(Ready { runnable, .. }) = next else {
                    break;
                };
                // Cancelled (a task spawned by a drop just now too): its future is dropped,
                // not polled. A panic in a drop now fails nothing: the loop is closing.
                runnable.metadata().cancel();
                crate::engine::task::run(runnable);
                self.panicked.borrow_mut().take();
                ran += 1;
            }
            let left = self.exec.tasks.borrow().len();
            if left == 0 && self.timers.borrow().len() == 0 {
                break;
            }
            if ran == 0 && self.timers.borrow().len() == 0 {
                // Every live task was woken and none came to be run: a broken invariant (a
                // task ended without reporting it). Leaking beats spinning forever.
                debug_assert_eq!(
                    left, 0,
                    "task invariant: every live task runs once more at close"
                );
                break;
            }
        }
        // No other thread may post to this loop any more; what it posted is dropped here.
        #[cfg(feature = "real-net")]
        if let Some(real) = &self.real {
            real.unregister();
        }
    }
}
