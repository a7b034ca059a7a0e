//! asyncio's `Semaphore` and `BoundedSemaphore`.

use std::cell::Cell;
use std::fmt;

use super::{preemption_point, OnCancel, Traced, Waiters};

/// A counter of permits (asyncio's `Semaphore`): [`acquire`](Semaphore::acquire) takes one,
/// waiting while there is none; [`release`](Semaphore::release) gives one back. Waiters get
/// permits in the order they asked.
///
/// [`acquire`](Semaphore::acquire) returns a [`SemaphorePermit`] that gives the permit back
/// when dropped; [`SemaphorePermit::forget`] keeps it taken, for a later
/// [`release`](Semaphore::release), as asyncio's bare `acquire()` and `release()` pair.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let most = lp.run_until_complete(async {
///     let slots = Rc::new(roof::sync::Semaphore::new(2));
///     let inside = Rc::new((Cell::new(0), Cell::new(0))); // now, most ever
///     let tasks: Vec<_> = (0..6).map(|_| {
///         let (slots, inside) = (slots.clone(), inside.clone());
///         roof::spawn(async move {
///             let _permit = slots.acquire().await;
///             inside.0.set(inside.0.get() + 1);
///             inside.1.set(inside.1.get().max(inside.0.get()));
///             roof::sleep(Duration::from_millis(5)).await;
///             inside.0.set(inside.0.get() - 1);
///         })
///     }).collect();
///     for task in tasks { task.await.unwrap(); }
///     inside.1.get()
/// }).unwrap();
/// assert_eq!(most, 2);
/// ```
pub struct Semaphore {
    value: Cell<usize>,
    /// `BoundedSemaphore`'s initial value, past which releasing is an error.
    bound: Option<usize>,
    waiters: Waiters,
    traced: Traced,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore")
            .field("value", &self.value.get())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl Semaphore {
    /// A semaphore with `value` permits.
    pub fn new(value: usize) -> Semaphore {
        Semaphore {
            value: Cell::new(value),
            bound: None,
            waiters: Waiters::default(),
            traced: Traced::new("semaphore"),
        }
    }

    /// Permits free now.
    pub fn value(&self) -> usize {
        self.value.get()
    }

    /// Whether an [`acquire`](Semaphore::acquire) would wait: no permit is free, or others
    /// wait already.
    pub fn locked(&self) -> bool {
        self.value.get() == 0 || !self.waiters.is_empty()
    }

    /// Take a permit, waiting (behind the tasks already waiting) while none is free.
    pub async fn acquire(&self) -> SemaphorePermit<'_> {
        preemption_point(&self.traced).await;
        if !self.locked() {
            self.value.set(self.value.get() - 1);
            self.traced.record("acquire");
            return SemaphorePermit { semaphore: self };
        }
        self.traced.record("acquire-wait");
        let entry = self.waiters.enqueue();
        let woken = entry.waiter.clone();
        // Dropped while waiting, after a release had handed it a permit: give the permit on.
        let cancel = OnCancel::new(move || {
            if woken.done.get() {
                self.value.set(self.value.get() + 1);
                self.wake_next();
            }
        });
        entry.wait().await;
        drop(entry);
        cancel.defuse();
        if self.value.get() > 0 {
            self.wake_next();
        }
        self.traced.record("acquire");
        SemaphorePermit { semaphore: self }
    }

    /// Give a permit back and wake the oldest waiter. A [`BoundedSemaphore`] refuses a permit
    /// it never gave: [`TooManyReleases`].
    pub fn release(&self) -> Result<(), TooManyReleases> {
        if self.bound.is_some_and(|bound| self.value.get() >= bound) {
            return Err(TooManyReleases);
        }
        self.traced.record("release");
        self.value.set(self.value.get() + 1);
        self.wake_next();
        Ok(())
    }

    /// Hand a permit to the oldest waiter not woken yet (taken from the count now).
    fn wake_next(&self) {
        if self.value.get() > 0 && self.waiters.wake_first(1) == 1 {
            self.value.set(self.value.get() - 1);
        }
    }
}

/// A permit of a [`Semaphore`], given back when dropped.
///
/// ```
/// let lp = roof::EventLoop::new();
/// lp.run_until_complete(async {
///     let semaphore = roof::sync::Semaphore::new(1);
///     let permit: roof::sync::SemaphorePermit<'_> = semaphore.acquire().await;
///     assert!(semaphore.locked());
///     permit.forget(); // keep it taken
///     assert!(semaphore.locked());
///     semaphore.release().unwrap();
///     assert!(!semaphore.locked());
/// }).unwrap();
/// ```
#[must_use = "dropping the permit gives it back at once"]
pub struct SemaphorePermit<'a> {
    semaphore: &'a Semaphore,
}

impl SemaphorePermit<'_> {
    /// Keep the permit taken; a later [`Semaphore::release`] gives it back.
    pub fn forget(self) {
        std::mem::forget(self);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit").finish_non_exhaustive()
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        // A bounded semaphore's own permit always fits under its bound.
        let _ = self.semaphore.release();
    }
}

/// A [`Semaphore`] that refuses to be released past its initial value (asyncio's
/// `BoundedSemaphore`, whose `release` raises `ValueError`).
///
/// ```
/// let lp = roof::EventLoop::new();
/// lp.run_until_complete(async {
///     let semaphore = roof::sync::BoundedSemaphore::new(1);
///     assert_eq!(semaphore.release(), Err(roof::sync::TooManyReleases));
///     semaphore.acquire().await.forget();
///     assert_eq!(semaphore.release(), Ok(()));
/// }).unwrap();
/// ```
#[derive(Debug)]
pub struct BoundedSemaphore(Semaphore);

impl BoundedSemaphore {
    /// A bounded semaphore with `value` permits, never more.
    pub fn new(value: usize) -> BoundedSemaphore {
        let mut semaphore = Semaphore::new(value);
        semaphore.bound = Some(value);
        semaphore.traced = Traced::new("bounded-semaphore");
        BoundedSemaphore(semaphore)
    }
}

impl std::ops::Deref for BoundedSemaphore {
    type Target = Semaphore;

    fn deref(&self) -> &Semaphore {
        &self.0
    }
}

/// A [`BoundedSemaphore`] was released more times than it was acquired.
///
/// ```
/// assert_eq!(roof::sync::TooManyReleases.to_string(), "BoundedSemaphore released too many times");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooManyReleases;

impl fmt::Display for TooManyReleases {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoundedSemaphore released too many times")
    }
}

impl std::error::Error for TooManyReleases {}
