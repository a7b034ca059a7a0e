//! asyncio's `Future`: a result that one part of a program sets and any number of tasks wait
//! for.

use std::cell::RefCell;
use std::fmt;
use std::future::IntoFuture;
use std::pin::Pin;
use std::rc::Rc;

use super::{preemption_point, Traced, WaitWoken, Waiter};
use crate::cancel::Cancelled;
use crate::kernel;

enum State<T> {
    Pending,
    Done(T),
    Cancelled,
}

type Callback<T> = Box<dyn FnOnce(&Future<T>)>;

/// What happens when the future is done, in the order it was asked for: asyncio wakes a
/// waiting task through a done callback too, so waiters and callbacks share one order.
enum OnDone<T> {
    Wake(Rc<Waiter>),
    Call(Callback<T>),
}

struct Shared<T> {
    state: RefCell<State<T>>,
    on_done: RefCell<Vec<OnDone<T>>>,
    traced: Traced,
}

/// A result that is set once and awaited by any number of tasks (asyncio's `Future`, made by
/// [`EventLoop::create_future`](crate::LoopHandle::create_future) or [`Future::new`]).
///
/// A clone is another handle to the same future. Awaiting (`(&future).await` or
/// `future.clone().await`) gives `Ok` with a clone of the result, or [`Cancelled`] once the
/// future was cancelled. Setting a result twice, or after a cancel, is an
/// [`InvalidStateError`], not a panic.
///
/// ```
/// let lp = roof::EventLoop::new();
/// let (a, b) = lp.run_until_complete(async {
///     let answer: roof::Future<u32> = roof::Future::new();
///     let waiters: Vec<_> = (0..2).map(|_| {
///         let answer = answer.clone();
///         roof::spawn(async move { (&answer).await })
///     }).collect();
///     answer.set_result(42).unwrap();
///     assert!(answer.set_result(43).is_err(), "set once");
///     assert_eq!(answer.result(), Ok(42));
///     let mut results = Vec::new();
///     for waiter in waiters { results.push(waiter.await.unwrap()); }
///     (results[0], results[1])
/// }).unwrap();
/// assert_eq!((a, b), (Ok(42), Ok(42)));
/// ```
pub struct Future<T> {
    shared: Rc<Shared<T>>,
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        Future {
            shared: self.shared.clone(),
        }
    }
}

impl<T: 'static> Default for Future<T> {
    fn default() -> Self {
        Future::new()
    }
}

impl<T> fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &*self.shared.state.borrow() {
            State::Pending => "pending",
            State::Done(_) => "finished",
            State::Cancelled => "cancelled",
        };
        f.debug_struct("Future").field("state", &state).finish()
    }
}

impl<T: 'static> Future<T> {
    /// A pending future.
    pub fn new() -> Future<T> {
        Future {
            shared: Rc::new(Shared {
                state: RefCell::new(State::Pending),
                on_done: RefCell::new(Vec::new()),
                traced: Traced::new("future"),
            }),
        }
    }

    /// Whether it has a result or was cancelled.
    pub fn done(&self) -> bool {
        !matches!(*self.shared.state.borrow(), State::Pending)
    }

    /// Whether it was cancelled.
    pub fn cancelled(&self) -> bool {
        matches!(*self.shared.state.borrow(), State::Cancelled)
    }

    /// Set the result and wake every waiter; an error if it is done already.
    pub fn set_result(&self, value: T) -> Result<(), InvalidStateError> {
        {
            let mut state = self.shared.state.borrow_mut();
            if !matches!(*state, State::Pending) {
                return Err(InvalidStateError);
            }
            *state = State::Done(value);
        }
        self.shared.traced.record("set-result");
        self.finish();
        Ok(())
    }

    /// Cancel it: waiters get [`Cancelled`]. False if it was done already.
    pub fn cancel(&self) -> bool {
        {
            let mut state = self.shared.state.borrow_mut();
            if !matches!(*state, State::Pending) {
                return false;
            }
            *state = State::Cancelled;
        }
        self.shared.traced.record("cancel");
        self.finish();
        true
    }

    /// Run `callback` with the future once it is done (soon after, as a callback of the
    /// running loop, as asyncio schedules them; at once outside a loop).
    pub fn add_done_callback(&self, callback: impl FnOnce(&Future<T>) + 'static) {
        if self.done() {
            self.schedule(Box::new(callback));
        } else {
            self.shared
                .on_done
                .borrow_mut()
                .push(OnDone::Call(Box::new(callback)));
        }
    }

    fn finish(&self) {
        let on_done = std::mem::take(&mut *self.shared.on_done.borrow_mut());
        for action in on_done {
            match action {
                OnDone::Wake(waiter) => {
                    waiter.wake();
                }
                OnDone::Call(callback) => self.schedule(callback),
            }
        }
    }

    /// Wait until done; the waiter leaves the list if dropped first.
    async fn wait_done(&self) {
        if self.done() {
            return;
        }
        let waiter = Rc::new(Waiter::default());
        self.shared
            .on_done
            .borrow_mut()
            .push(OnDone::Wake(waiter.clone()));
        let _leave = LeaveOnDrop(self, &waiter);
        let mut woken = WaitWoken(&waiter);
        std::future::poll_fn(|cx| {
            // A task cancelled while it awaits a future cancels the future, as asyncio's does
            // (whoever else awaits it sees it cancelled); the request is then delivered.
            if crate::engine::cancel::cancel_requested() {
                self.cancel();
            }
            std::future::Future::poll(Pin::new(&mut woken), cx)
        })
        .await;
    }

    fn schedule(&self, callback: Callback<T>) {
        let future = self.clone();
        let run = move || callback(&future);
        let mut run = Some(run);
        kernel::try_with(|kernel| {
            if let Some(run) = run.take() {
                let host = kernel.exec.current_host.get();
                kernel.spawn_callback(host, Box::new(run), None).1.detach();
            }
        });
        if let Some(run) = run {
            run();
        }
    }
}

impl<T: Clone> Future<T> {
    /// The result, once set; [`FutureError::Cancelled`] after a cancel,
    /// [`FutureError::InvalidState`] while pending.
    pub fn result(&self) -> Result<T, FutureError> {
        match &*self.shared.state.borrow() {
            State::Done(value) => Ok(value.clone()),
            State::Cancelled => Err(FutureError::Cancelled),
            State::Pending => Err(FutureError::InvalidState),
        }
    }
}

impl<'a, T: Clone + 'static> IntoFuture for &'a Future<T> {
    type Output = Result<T, Cancelled>;
    type IntoFuture = Pin<Box<dyn std::future::Future<Output = Result<T, Cancelled>> + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            preemption_point(&self.shared.traced).await;
            if !self.done() {
                self.shared.traced.record("wait-wait");
                self.wait_done().await;
            }
            self.shared.traced.record("wait");
            match &*self.shared.state.borrow() {
                State::Done(value) => Ok(value.clone()),
                _ => Err(Cancelled),
            }
        })
    }
}

impl<T: Clone + 'static> IntoFuture for Future<T> {
    type Output = Result<T, Cancelled>;
    type IntoFuture = Pin<Box<dyn std::future::Future<Output = Result<T, Cancelled>>>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { (&self).await })
    }
}

/// Takes a dropped waiter out of the future's list.
struct LeaveOnDrop<'a, T>(&'a Future<T>, &'a Rc<Waiter>);

impl<T> Drop for LeaveOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0
            .shared
            .on_done
            .borrow_mut()
            .retain(|action| !matches!(action, OnDone::Wake(waiter) if Rc::ptr_eq(waiter, self.1)));
    }
}

/// A result was set on a future that is done already (asyncio's `InvalidStateError`).
///
/// ```
/// let future = roof::Future::new();
/// future.set_result(1).unwrap();
/// assert_eq!(future.set_result(2), Err(roof::sync::InvalidStateError));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidStateError;

impl fmt::Display for InvalidStateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid state: the future is done already")
    }
}

impl std::error::Error for InvalidStateError {}

/// Why [`Future::result`] has no result.
///
/// ```
/// let future = roof::Future::<u8>::new();
/// assert_eq!(future.result(), Err(roof::sync::FutureError::InvalidState));
/// future.cancel();
/// assert_eq!(future.result(), Err(roof::sync::FutureError::Cancelled));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FutureError {
    /// It is still pending (asyncio's `InvalidStateError`).
    InvalidState,
    /// It was cancelled (asyncio's `CancelledError`).
    Cancelled,
}

impl fmt::Display for FutureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FutureError::InvalidState => "invalid state: the result is not set yet",
            FutureError::Cancelled => "the future was cancelled",
        })
    }
}

impl std::error::Error for FutureError {}
