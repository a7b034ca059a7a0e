//! asyncio's `Lock`, and `Condition` on top of it.

use std::fmt;
use std::rc::Rc;

use super::{preemption_point, OnCancel, Traced, Waiters};

/// A mutual-exclusion lock (asyncio's `Lock`): [`acquire`](Lock::acquire) returns a guard
/// that releases the lock when dropped. Waiters get it in the order they asked.
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let order = lp.run_until_complete(async {
///     let lock = Rc::new(roof::sync::Lock::new());
///     let log = Rc::new(std::cell::RefCell::new(Vec::new()));
///     let tasks: Vec<_> = (0..3).map(|n| {
///         let (lock, log) = (lock.clone(), log.clone());
///         roof::spawn(async move {
///             let _held = lock.acquire().await;
///             log.borrow_mut().push(format!("{n} in"));
///             roof::sleep(Duration::from_millis(10)).await; // nobody else gets in meanwhile
///             log.borrow_mut().push(format!("{n} out"));
///         })
///     }).collect();
///     for task in tasks { task.await.unwrap(); }
///     assert!(!lock.locked());
///     log.take()
/// }).unwrap();
/// assert_eq!(order.len(), 6);
/// assert!(order.chunks(2).all(|pair| pair[0].replace("in", "out") == pair[1]));
/// ```
pub struct Lock {
    locked: std::cell::Cell<bool>,
    waiters: Waiters,
    traced: Traced,
}

impl Default for Lock {
    fn default() -> Self {
        Lock::new()
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("locked", &self.locked.get())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl Lock {
    /// An unlocked lock.
    pub fn new() -> Lock {
        Lock {
            locked: std::cell::Cell::new(false),
            waiters: Waiters::default(),
            traced: Traced::new("lock"),
        }
    }

    /// Whether the lock is held.
    pub fn locked(&self) -> bool {
        self.locked.get()
    }

    /// Wait for the lock and take it. Free and with nobody waiting, it is taken at once;
    /// otherwise the caller queues behind the tasks already waiting.
    pub async fn acquire(&self) -> LockGuard<'_> {
        preemption_point(&self.traced).await;
        if !self.locked.get() && self.waiters.is_empty() {
            self.locked.set(true);
            self.traced.record("acquire");
            return LockGuard { lock: self };
        }
        self.traced.record("acquire-wait");
        // Dropped while waiting (declared first, so it runs after the waiter left the
        // queue): a lock handed to this waiter passes on to the next.
        let cancel = OnCancel::new(|| {
            if !self.locked.get() {
                self.waiters.wake_oldest();
            }
        });
        let entry = self.waiters.enqueue();
        entry.wait().await;
        drop(entry);
        cancel.defuse();
        self.locked.set(true);
        self.traced.record("acquire");
        LockGuard { lock: self }
    }

    /// Release the lock and wake the oldest waiter.
    fn release(&self) {
        self.locked.set(false);
        self.traced.record("release");
        self.waiters.wake_oldest();
    }
}

/// Proof that a [`Lock`] is held; dropping it releases the lock.
///
/// ```
/// let lp = roof::EventLoop::new();
/// lp.run_until_complete(async {
///     let lock = roof::sync::Lock::new();
///     let guard: roof::sync::LockGuard<'_> = lock.acquire().await;
///     assert!(lock.locked());
///     drop(guard);
///     assert!(!lock.locked());
/// }).unwrap();
/// ```
#[must_use = "dropping the guard releases the lock at once"]
pub struct LockGuard<'a> {
    lock: &'a Lock,
}

impl fmt::Debug for LockGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockGuard").finish_non_exhaustive()
    }
}

impl Drop for LockGuard<'_> {
    fn drop(&mut self) {
        self.lock.release();
    }
}

/// A condition variable (asyncio's `Condition`): tasks holding its lock wait until another
/// notifies them. [`acquire`](Condition::acquire) returns a [`ConditionGuard`], on which
/// [`wait`](ConditionGuard::wait), [`wait_for`](ConditionGuard::wait_for),
/// [`notify`](ConditionGuard::notify) and [`notify_all`](ConditionGuard::notify_all) are
/// called, so none can be called without the lock.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// let lp = roof::EventLoop::new();
/// let seen = lp.run_until_complete(async {
///     let ready = Rc::new((roof::sync::Condition::new(), Cell::new(0)));
///     let waiter = roof::spawn({
///         let ready = ready.clone();
///         async move {
///             let mut guard = ready.0.acquire().await;
///             guard.wait_for(|| ready.1.get() >= 3).await;
///             ready.1.get()
///         }
///     });
///     for _ in 0..3 {
///         let guard = ready.0.acquire().await;
///         ready.1.set(ready.1.get() + 1);
///         guard.notify_all();
///         drop(guard);
///         roof::sleep(std::time::Duration::from_millis(1)).await;
///     }
///     waiter.await.unwrap()
/// }).unwrap();
/// assert_eq!(seen, 3);
/// ```
pub struct Condition {
    lock: Rc<Lock>,
    waiters: Waiters,
    traced: Traced,
}

impl Default for Condition {
    fn default() -> Self {
        Condition::new()
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Condition")
            .field("locked", &self.lock.locked())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl Condition {
    /// A condition with a lock of its own.
    pub fn new() -> Condition {
        Condition::with_lock(Rc::new(Lock::new()))
    }

    /// A condition on `lock`, which other conditions (or plain users of the lock) may share.
    pub fn with_lock(lock: Rc<Lock>) -> Condition {
        Condition {
            lock,
            waiters: Waiters::default(),
            traced: Traced::new("condition"),
        }
    }

    /// Whether its lock is held.
    pub fn locked(&self) -> bool {
        self.lock.locked()
    }

    /// Take its lock, as [`Lock::acquire`].
    pub async fn acquire(&self) -> ConditionGuard<'_> {
        std::mem::forget(self.lock.acquire().await);
        ConditionGuard {
            condition: self,
            held: true,
        }
    }
}

/// A [`Condition`]'s lock, held; dropping it releases the lock.
///
/// A [`wait`](ConditionGuard::wait) dropped before it returns (its task aborted, a timeout)
/// leaves the guard without the lock ([`is_held`](ConditionGuard::is_held) turns false, and
/// dropping the guard releases nothing): asyncio takes the lock again before the cancellation
/// propagates, which a destructor cannot wait for. [`reacquire`](ConditionGuard::reacquire)
/// takes it back.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// lp.run_until_complete(async {
///     let condition = roof::sync::Condition::new();
///     let mut guard = condition.acquire().await;
///     // Nobody notifies: give up after 5 ms.
///     assert!(roof::timeout(Duration::from_millis(5), guard.wait()).await.is_err());
///     assert!(!guard.is_held() && !condition.locked());
///     guard.reacquire().await;
///     assert!(guard.is_held() && condition.locked());
/// }).unwrap();
/// ```
#[must_use = "dropping the guard releases the lock at once"]
pub struct ConditionGuard<'a> {
    condition: &'a Condition,
    held: bool,
}

impl fmt::Debug for ConditionGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConditionGuard")
            .field("held", &self.held)
            .finish()
    }
}

impl ConditionGuard<'_> {
    /// Whether the guard holds the lock (false only after a cancelled wait).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// Take the lock again after a cancelled [`wait`](ConditionGuard::wait); nothing if held.
    pub async fn reacquire(&mut self) {
        if !self.held {
            std::mem::forget(self.condition.lock.acquire().await);
            self.held = true;
        }
    }

    /// Release the lock, wait until notified, and take the lock again (asyncio's
    /// `Condition.wait`).
    pub async fn wait(&mut self) {
        self.reacquire().await;
        preemption_point(&self.condition.traced).await;
        let condition = self.condition;
        condition.traced.record("wait");
        self.held = false;
        condition.lock.release();
        {
            let entry = condition.waiters.enqueue();
            entry.wait().await;
        }
        condition.traced.record("woken");
        std::mem::forget(condition.lock.acquire().await);
        self.held = true;
    }

    /// Wait until `predicate` holds: checked first, then after every wakeup.
    pub async fn wait_for(&mut self, mut predicate: impl FnMut() -> bool) {
        while !predicate() {
            self.wait().await;
        }
    }

    /// Wake up to `n` waiting tasks (each takes the lock in turn once this guard lets go).
    ///
    /// Panics if a cancelled wait gave up the lock (asyncio raises `RuntimeError`).
    pub fn notify(&self, n: usize) {
        assert!(
            self.held,
            "Condition::notify: the lock was given up by a cancelled wait; reacquire() it first"
        );
        self.condition.traced.record("notify");
        self.condition.waiters.wake_first(n);
    }

    /// Wake every waiting task.
    pub fn notify_all(&self) {
        self.notify(usize::MAX);
    }
}

impl Drop for ConditionGuard<'_> {
    fn drop(&mut self) {
        if self.held {
            self.condition.lock.release();
        }
    }
}

/// For [`Barrier`](super::Barrier): notify without the check (its cleanup runs in a drop,
/// where the lock may be given up already).
pub(super) fn notify_all_unchecked(condition: &Condition) {
    condition.traced.record("notify");
    condition.waiters.wake_first(usize::MAX);
}
