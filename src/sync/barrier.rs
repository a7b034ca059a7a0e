//! asyncio's `Barrier` (Python 3.11), built as CPython builds it: on a [`Condition`].

use std::cell::Cell;
use std::fmt;

use super::lock::notify_all_unchecked;
use super::{Condition, OnCancel};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Filling,
    Draining,
    Resetting,
    Broken,
}

/// A meeting point for a fixed number of tasks (asyncio's `Barrier`): each
/// [`wait`](Barrier::wait) blocks until `parties` tasks wait, then all go on, each with its
/// own index from 0 to `parties - 1`. [`abort`](Barrier::abort) breaks it: waiters, present
/// and future, get [`BrokenBarrierError`]; [`reset`](Barrier::reset) breaks the current
/// round and starts afresh.
///
/// ```
/// use std::rc::Rc;
/// let lp = roof::EventLoop::new();
/// let mut indices = lp.run_until_complete(async {
///     let barrier = Rc::new(roof::sync::Barrier::new(3));
///     let tasks: Vec<_> = (0..3).map(|_| {
///         let barrier = barrier.clone();
///         roof::spawn(async move { barrier.wait().await.unwrap() })
///     }).collect();
///     let mut indices = Vec::new();
///     for task in tasks { indices.push(task.await.unwrap()); }
///     indices
/// }).unwrap();
/// indices.sort();
/// assert_eq!(indices, [0, 1, 2]);
/// ```
pub struct Barrier {
    condition: Condition,
    parties: usize,
    state: Cell<State>,
    count: Cell<usize>,
}

impl fmt::Debug for Barrier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Barrier")
            .field("parties", &self.parties)
            .field("waiting", &self.n_waiting())
            .field("broken", &self.broken())
            .finish()
    }
}

impl Barrier {
    /// A barrier for `parties` tasks.
    ///
    /// # Panics
    /// If `parties` is 0 (asyncio raises `ValueError`).
    pub fn new(parties: usize) -> Barrier {
        assert!(parties > 0, "Barrier::new: parties must be at least 1");
        Barrier {
            condition: Condition::new(),
            parties,
            state: Cell::new(State::Filling),
            count: Cell::new(0),
        }
    }

    /// How many tasks the barrier waits for.
    pub fn parties(&self) -> usize {
        self.parties
    }

    /// How many tasks wait at the barrier now.
    pub fn n_waiting(&self) -> usize {
        match self.state.get() {
            State::Filling => self.count.get(),
            _ => 0,
        }
    }

    /// Whether the barrier is broken ([`abort`](Barrier::abort)).
    pub fn broken(&self) -> bool {
        self.state.get() == State::Broken
    }

    /// Wait until `parties` tasks wait; this task's index among them.
    pub async fn wait(&self) -> Result<usize, BrokenBarrierError> {
        let mut guard = self.condition.acquire().await;
        // Block while the barrier drains or resets.
        guard
            .wait_for(|| !matches!(self.state.get(), State::Draining | State::Resetting))
            .await;
        if self.state.get() == State::Broken {
            return Err(BrokenBarrierError);
        }
        let index = self.count.get();
        self.count.set(index + 1);
        // asyncio's `finally`, on the way out or when dropped while waiting; declared after
        // the guard, so it runs while the lock is still held.
        let finally = OnCancel::new(|| {
            self.count.set(self.count.get() - 1);
            if self.count.get() == 0 {
                if matches!(self.state.get(), State::Resetting | State::Draining) {
                    self.state.set(State::Filling);
                }
                notify_all_unchecked(&self.condition);
            }
        });
        let result = if index + 1 == self.parties {
            self.state.set(State::Draining);
            guard.notify_all();
            Ok(index)
        } else {
            guard.wait_for(|| self.state.get() != State::Filling).await;
            match self.state.get() {
                State::Broken | State::Resetting => Err(BrokenBarrierError),
                _ => Ok(index),
            }
        };
        drop(finally);
        result
    }

    /// Break the barrier: every waiting task, and every later `wait`, gets
    /// [`BrokenBarrierError`].
    pub async fn abort(&self) {
        let guard = self.condition.acquire().await;
        self.state.set(State::Broken);
        guard.notify_all();
    }

    /// Back to the initial state: the tasks waiting now get [`BrokenBarrierError`].
    pub async fn reset(&self) {
        let guard = self.condition.acquire().await;
        if self.count.get() > 0 {
            self.state.set(State::Resetting);
        } else {
            self.state.set(State::Filling);
        }
        guard.notify_all();
    }
}

/// The barrier was aborted or reset while (or before) waiting on it.
///
/// ```
/// assert_eq!(roof::sync::BrokenBarrierError.to_string(), "Barrier aborted");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrokenBarrierError;

impl fmt::Display for BrokenBarrierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Barrier aborted")
    }
}

impl std::error::Error for BrokenBarrierError {}
