//! asyncio's synchronisation toolkit: [`Future`], [`Lock`], [`Event`], [`Condition`], [`Semaphore`],
//! [`BoundedSemaphore`], [`Barrier`], and the queues [`Queue`], [`PriorityQueue`] and
//! [`LifoQueue`], with asyncio's names and semantics (CPython 3.11's; `shutdown` as 3.13's).
//!
//! They are single-threaded, as asyncio's are: share one between tasks with an `Rc`. They work
//! on any loop, simulated or real.
//!
//! # Fairness
//! Waiters are served in the order they started waiting, as asyncio serves them: a released
//! lock goes to the oldest waiter, even if another task asks for it before that waiter runs.
//!
//! # Cancellation
//! Dropping a waiting operation (its task aborted, a [`timeout`](crate::timeout) or a
//! `select` that gave up on it) is asyncio's cancellation: the waiter leaves the queue, takes
//! nothing, and what it was woken for passes to the next waiter. A cancellation request
//! ([`JoinHandle::cancel`](crate::JoinHandle::cancel)) is delivered at a wait, which then
//! gives up the same way (see [`roof::task::catch_cancelled`](crate::task::catch_cancelled)).
//!
//! # Explored by the simulation
//! Every operation is a trace event ([`EventKind::Sync`](crate::trace::EventKind::Sync)).
//! Each operation that can wait (`acquire`, `wait`, `put`, `get`, `join`) starts with a
//! *preemption point*: under [`Policy::Random`](crate::Policy::Random) and
//! [`Policy::Pct`](crate::Policy::Pct), when another task is ready, the scheduler may make
//! the caller yield first (one time in [`PREEMPT_ODDS`](crate::sched::PREEMPT_ODDS)), so the
//! races around the primitive are explored. The decision is one of the run's recorded
//! choices, replayed and shrunk like a task pick. Under [`Policy::Fifo`](crate::Policy::Fifo)
//! there is none, and programs print what CPython prints.
//!
//! ```
//! use std::rc::Rc;
//! use roof::sync::{Lock, Queue};
//! let lp = roof::EventLoop::new();
//! let total = lp.run_until_complete(async {
//!     let queue = Rc::new(Queue::new(2)); // at most two items waiting
//!     let lock = Rc::new(Lock::new());
//!     let producer = roof::spawn({
//!         let queue = queue.clone();
//!         async move {
//!             for n in 1..=5 {
//!                 queue.put(n).await.unwrap(); // waits while the queue is full
//!             }
//!         }
//!     });
//!     let mut total = 0;
//!     for _ in 0..5 {
//!         let _guard = lock.acquire().await;
//!         total += queue.get().await.unwrap();
//!     }
//!     producer.await.unwrap();
//!     total
//! }).unwrap();
//! assert_eq!(total, 15);
//! ```

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use crate::kernel;

mod barrier;
mod event;
mod future;
mod lock;
mod queue;
mod select;
mod semaphore;

pub use crate::cancel::Cancelled;
pub use barrier::{Barrier, BrokenBarrierError};
pub use event::Event;
pub use future::{Future, FutureError, InvalidStateError};
pub use lock::{Condition, ConditionGuard, Lock, LockGuard};
pub use queue::{GetError, LifoQueue, PriorityQueue, PutError, Queue, TaskDoneError};
pub use select::{select, select_all, Either, Select, SelectAll};
pub use semaphore::{BoundedSemaphore, Semaphore, SemaphorePermit, TooManyReleases};

/// A primitive's identity in traces: its kind, and its number in the run that uses it.
struct Traced {
    kind: &'static str,
    /// (loop id, number): numbered at the first traced use in a run.
    object: Cell<(u32, u64)>,
}

impl Traced {
    const fn new(kind: &'static str) -> Traced {
        Traced {
            kind,
            object: Cell::new((0, 0)),
        }
    }

    /// Trace `op` on this primitive, if a loop is running and tracing.
    fn record(&self, op: &'static str) {
        kernel::try_with(|kernel| kernel.record_sync(self.kind, &self.object, op));
    }
}

impl fmt::Debug for Traced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind)
    }
}

/// The preemption point before an operation on `traced` that can wait (see the module
/// documentation): yields once if the scheduler says so, traced as `preempted`.
async fn preemption_point(traced: &Traced) {
    let preempt = kernel::try_with(|kernel| kernel.preempt_here()).unwrap_or(false);
    if preempt {
        traced.record("preempted");
        crate::task::yield_now().await;
    }
}

/// One waiting task: asyncio's waiter future. `done` once woken; dropped (cancelled) by the
/// waiting operation's drop.
#[derive(Default)]
pub(super) struct Waiter {
    done: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl Waiter {
    /// Wake it, unless it was woken already; whether this call woke it.
    fn wake(&self) -> bool {
        if self.done.replace(true) {
            return false;
        }
        if let Some(waker) = self.waker.borrow_mut().take() {
            waker.wake();
        }
        true
    }
}

/// Waiters in the order they started waiting.
#[derive(Default)]
struct Waiters {
    queue: RefCell<VecDeque<Rc<Waiter>>>,
}

impl Waiters {
    /// Start waiting: the entry leaves the queue when dropped.
    fn enqueue(&self) -> Enqueued<'_> {
        let waiter = Rc::new(Waiter::default());
        self.queue.borrow_mut().push_back(waiter.clone());
        Enqueued {
            waiters: self,
            waiter,
        }
    }

    /// Take `waiter` out of the queue, if it is there.
    fn remove(&self, waiter: &Rc<Waiter>) {
        let mut queue = self.queue.borrow_mut();
        if let Some(at) = queue.iter().position(|queued| Rc::ptr_eq(queued, waiter)) {
            queue.remove(at);
        }
    }

    fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }

    fn len(&self) -> usize {
        self.queue.borrow().len()
    }

    /// Wake the first `n` waiters not woken yet (they stay queued until they run); how many.
    fn wake_first(&self, n: usize) -> usize {
        let waiters: Vec<Rc<Waiter>> = self
            .queue
            .borrow()
            .iter()
            .filter(|waiter| !waiter.done.get())
            .take(n)
            .cloned()
            .collect();
        for waiter in &waiters {
            waiter.wake();
        }
        waiters.len()
    }

    /// Wake the oldest waiter if it is not woken yet (a lock's hand-over: only the oldest).
    fn wake_oldest(&self) {
        let oldest = self.queue.borrow().front().cloned();
        if let Some(oldest) = oldest {
            oldest.wake();
        }
    }

    /// Take waiters off the front until one not woken yet is found, and wake it (a queue's
    /// hand-over). Whether one was woken.
    fn pop_and_wake_next(&self) -> bool {
        loop {
            let next = self.queue.borrow_mut().pop_front();
            match next {
                None => return false,
                Some(waiter) if waiter.wake() => return true,
                Some(_) => {}
            }
        }
    }

    /// Take every waiter off, waking those not woken yet.
    fn pop_and_wake_all(&self) {
        let all = std::mem::take(&mut *self.queue.borrow_mut());
        for waiter in all {
            waiter.wake();
        }
    }
}

/// A place in a [`Waiters`] queue; dropping it leaves the queue (asyncio's `finally:
/// waiters.remove(fut)`).
struct Enqueued<'a> {
    waiters: &'a Waiters,
    waiter: Rc<Waiter>,
}

impl Enqueued<'_> {
    /// Wait until woken.
    fn wait(&self) -> WaitWoken<'_> {
        WaitWoken(&self.waiter)
    }
}

impl Drop for Enqueued<'_> {
    fn drop(&mut self) {
        self.waiters.remove(&self.waiter);
    }
}

/// The future of [`Enqueued::wait`].
pub(super) struct WaitWoken<'a>(pub(super) &'a Waiter);

impl std::future::Future for WaitWoken<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // A cancellation request is delivered even to a waiter woken already, as asyncio
        // delivers it where the task waited; the waiter's drop passes on what it was given.
        if crate::engine::cancel::deliver_cancel() {
            return Poll::Pending;
        }
        if self.0.done.get() {
            return Poll::Ready(());
        }
        let mut waker = self.0.waker.borrow_mut();
        match &mut *waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

/// Runs its closure when dropped, unless defused: the cleanup of an operation dropped while
/// it waits (asyncio's `except CancelledError:` branch).
struct OnCancel<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnCancel<F> {
    fn new(cleanup: F) -> Self {
        OnCancel(Some(cleanup))
    }

    /// The operation completed: no cleanup.
    fn defuse(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnCancel<F> {
    fn drop(&mut self) {
        if let Some(cleanup) = self.0.take() {
            cleanup();
        }
    }
}
