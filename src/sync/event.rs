//! asyncio's `Event`.

use std::cell::Cell;
use std::fmt;

use super::{preemption_point, Traced, Waiters};

/// A flag tasks wait on (asyncio's `Event`): [`set`](Event::set) wakes every waiter, and
/// later [`wait`](Event::wait)s return at once until [`clear`](Event::clear).
///
/// ```
/// use std::rc::Rc;
/// use std::time::Duration;
/// let lp = roof::EventLoop::new();
/// let woke_at = lp.run_until_complete(async {
///     let started = Rc::new(roof::sync::Event::new());
///     let waiters: Vec<_> = (0..3).map(|_| {
///         let started = started.clone();
///         roof::spawn(async move { started.wait().await; roof::time::now() })
///     }).collect();
///     roof::sleep(Duration::from_secs(1)).await;
///     started.set();
///     assert!(started.is_set());
///     let mut times = Vec::new();
///     for waiter in waiters { times.push(waiter.await.unwrap().as_secs_f64()); }
///     times
/// }).unwrap();
/// assert_eq!(woke_at, [1.0, 1.0, 1.0]);
/// ```
pub struct Event {
    set: Cell<bool>,
    waiters: Waiters,
    traced: Traced,
}

impl Default for Event {
    fn default() -> Self {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.set.get())
            .field("waiters", &self.waiters.len())
            .finish()
    }
}

impl Event {
    /// A clear event.
    pub fn new() -> Event {
        Event {
            set: Cell::new(false),
            waiters: Waiters::default(),
            traced: Traced::new("event"),
        }
    }

    /// Whether the flag is set.
    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Set the flag and wake every waiter (nothing if it was set).
    pub fn set(&self) {
        self.traced.record("set");
        if !self.set.replace(true) {
            self.waiters.wake_first(usize::MAX);
        }
    }

    /// Clear the flag: later waits wait for the next [`set`](Event::set).
    pub fn clear(&self) {
        self.traced.record("clear");
        self.set.set(false);
    }

    /// Wait until the flag is set (at once if it is).
    pub async fn wait(&self) {
        preemption_point(&self.traced).await;
        if self.set.get() {
            self.traced.record("wait");
            return;
        }
        self.traced.record("wait-wait");
        let entry = self.waiters.enqueue();
        entry.wait().await;
        self.traced.record("wait");
    }
}
