//! Cancellation a task can observe: asyncio's `Task.cancel()` and `except CancelledError:`.
//!
//! [`JoinHandle::cancel`](crate::JoinHandle::cancel) asks a task to stop. The request reaches
//! the task at its next await on a roof primitive: [`sleep`](crate::sleep) (`sleep(0)` too),
//! [`yield_now`](crate::yield_now), a wait on a lock, condition, semaphore, event, barrier or
//! queue of [`roof::sync`](crate::sync), a [`roof::Future`](crate::Future) (which is
//! cancelled with it, as asyncio cancels the future a cancelled task awaits), a read, accept
//! or connect of a socket, a stream's read, or a [`JoinHandle`](crate::JoinHandle) (the
//! request is passed on to the awaited task, as asyncio does; a
//! [`shield`](crate::task::shield)ed one is not). That await then does not return: the task
//! unwinds to the nearest [`catch_cancelled`], which returns `Err(Cancelled)` so the task can
//! clean up, with awaits, and finish or [`raise`](Cancelled::raise) it again. Uncaught, the
//! task ends cancelled: its future is dropped, and its handle reports
//! [`cancelled`](crate::JoinHandle::cancelled).
//!
//! A request for a task that has not run yet ends it before it runs, as asyncio's does; a
//! request waits while the task awaits something that is not roof's (a `futures` channel),
//! and is delivered at its next roof await. [`abort`](crate::JoinHandle::abort) stays the
//! immediate drop, which the task cannot observe.
//!
//! ```
//! use std::time::Duration;
//! use roof::task::catch_cancelled;
//! let lp = roof::EventLoop::new();
//! let (result, cancelled) = lp.run_until_complete(async {
//!     let worker = roof::spawn(async {
//!         match catch_cancelled(roof::sleep(Duration::from_secs(10))).await {
//!             Ok(()) => "slept",
//!             Err(roof::Cancelled) => {
//!                 roof::sleep(Duration::from_secs(1)).await; // async cleanup
//!                 "cleaned up"
//!             }
//!         }
//!     });
//!     roof::sleep(Duration::from_millis(1)).await; // the worker sleeps
//!     assert!(worker.cancel());
//!     let cancelled = worker.cancelled();
//!     (worker.await, cancelled)
//! }).unwrap();
//! assert_eq!(result, Ok("cleaned up"));
//! assert!(!cancelled, "it caught the request and finished");
//! ```

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::engine::cancel::{cancel_state, set_cancel_state, CancelState};

/// A task or a future was cancelled (asyncio's `CancelledError`).
///
/// ```
/// let lp = roof::EventLoop::new();
/// lp.run_until_complete(async {
///     let future = roof::Future::<u8>::new();
///     future.cancel();
///     assert_eq!((&future).await, Err(roof::Cancelled));
/// }).unwrap();
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

impl Cancelled {
    /// Let a caught cancellation go on (asyncio's bare `raise` in `except CancelledError:`):
    /// the await does not return, and the task unwinds to the next enclosing
    /// [`catch_cancelled`], or, with none, ends cancelled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use roof::task::catch_cancelled;
    /// let lp = roof::EventLoop::new();
    /// let (cancelled, cleaned) = lp.run_until_complete(async {
    ///     let cleaned = std::rc::Rc::new(std::cell::Cell::new(false));
    ///     let flag = cleaned.clone();
    ///     let worker = roof::spawn(async move {
    ///         if let Err(cancelled) = catch_cancelled(roof::sleep(Duration::from_secs(10))).await {
    ///             flag.set(true);
    ///             return cancelled.raise().await;
    ///         }
    ///         "slept"
    ///     });
    ///     roof::sleep(Duration::from_millis(1)).await; // the worker sleeps
    ///     worker.cancel();
    ///     let mut worker = worker;
    ///     let error = (&mut worker).await.unwrap_err();
    ///     (error.is_cancelled() && worker.cancelled(), cleaned.get())
    /// }).unwrap();
    /// assert!(cancelled && cleaned);
    /// ```
    pub fn raise<T>(self) -> Raise<T> {
        Raise(PhantomData)
    }
}

/// The future of [`Cancelled::raise`]: it never completes.
#[must_use = "raise does nothing unless awaited"]
pub struct Raise<T>(PhantomData<fn() -> T>);

impl<T> fmt::Debug for Raise<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Raise")
    }
}

impl<T> Future for Raise<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<T> {
        // Outside a task's poll this state is reset by nobody, and nothing ever wakes it:
        // a raise outside a task waits forever, as an unanswered cancellation would.
        set_cancel_state(CancelState::Delivered);
        Poll::Pending
    }
}

/// Run `future`, catching a cancellation request delivered inside it (asyncio's `try: ...
/// except CancelledError:`): `Err(Cancelled)`, with `future` dropped (its waits given up, as
/// a cancelled asyncio waiter gives them up), or its output.
///
/// A request is consumed by the `catch_cancelled` that catches it; the task may then await
/// again as it likes. Outside a task, it just runs `future`.
///
/// ```
/// use std::{rc::Rc, time::Duration};
/// use roof::sync::Lock;
/// use roof::task::catch_cancelled;
/// let lp = roof::EventLoop::new();
/// let (outcome, locked) = lp.run_until_complete(async {
///     let lock = Rc::new(Lock::new());
///     let held = lock.acquire().await;
///     let waiter = roof::spawn({
///         let lock = lock.clone();
///         async move { catch_cancelled(async { drop(lock.acquire().await) }).await }
///     });
///     roof::sleep(Duration::from_millis(1)).await; // the waiter now waits for the lock
///     waiter.cancel();
///     roof::sleep(Duration::from_millis(1)).await;
///     drop(held);
///     (waiter.await.unwrap(), lock.locked())
/// }).unwrap();
/// assert_eq!(outcome, Err(roof::Cancelled), "the cancelled waiter did not take the lock");
/// assert!(!locked);
/// ```
pub fn catch_cancelled<F: IntoFuture>(future: F) -> CatchCancelled<F::IntoFuture> {
    CatchCancelled {
        future: Some(future.into_future()),
    }
}

pin_project_lite::pin_project! {
    /// The future of [`catch_cancelled`].
    #[must_use = "catch_cancelled does nothing unless awaited"]
    #[derive(Debug)]
    pub struct CatchCancelled<F> {
        #[pin]
        future: Option<F>,
    }
}

impl<F: Future> Future for CatchCancelled<F> {
    type Output = Result<F::Output, Cancelled>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            panic!("roof: catch_cancelled was polled after it completed");
        };
        let polled = future.poll(cx);
        if cancel_state() != CancelState::Delivered {
            return polled.map(Ok);
        }
        match polled {
            Poll::Pending => {
                // Dropped where it lies: its waits leave their queues, passing on what they
                // were woken for.
                this.future.set(None);
                set_cancel_state(CancelState::Caught);
                Poll::Ready(Err(Cancelled))
            }
            Poll::Ready(output) => {
                // It finished anyway (another branch of a join was ready): the request stays
                // for the next await.
                this.future.set(None);
                set_cancel_state(CancelState::Requested);
                Poll::Ready(Ok(output))
            }
        }
    }
}

/// What a gather or a task group does with its awaiter's cancellation request: asyncio
/// cancels every member, waits for them, then raises the cancellation in the awaiter (even
/// if the members caught theirs).
#[derive(Debug, Default)]
pub(crate) struct TakenRequest(bool);

impl TakenRequest {
    /// If the awaiter has a request, take it (so the members' handles do not pass it on one
    /// by one) and return true the first time: the caller then cancels its members.
    pub(crate) fn take(&mut self) -> bool {
        if !crate::engine::cancel::cancel_requested() {
            return false;
        }
        set_cancel_state(CancelState::Caught);
        !std::mem::replace(&mut self.0, true)
    }

    /// Whether a request was taken.
    pub(crate) fn taken(&self) -> bool {
        self.0
    }

    /// The members ended: raise the request taken, if any; whether it was raised (then the
    /// caller returns `Pending`).
    pub(crate) fn raise(&self) -> bool {
        if self.0 {
            set_cancel_state(CancelState::Delivered);
        }
        self.0
    }
}

/// `future`, made a roof await point: a cancellation request of the polling task is
/// delivered at each of its polls (for roof's awaits on other crates' futures, such as
/// async-io's sockets on a real loop).
pub(crate) fn await_point<F: Future>(future: F) -> AwaitPoint<F> {
    AwaitPoint { future }
}

pin_project_lite::pin_project! {
    /// The future of [`await_point`].
    pub(crate) struct AwaitPoint<F> {
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for AwaitPoint<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if crate::engine::cancel::deliver_cancel() {
            return Poll::Pending;
        }
        self.project().future.poll(cx)
    }
}
