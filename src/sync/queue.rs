//! asyncio's `Queue`, `PriorityQueue` and `LifoQueue` (with Python 3.13's `shutdown`).

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;

use super::{preemption_point, OnCancel, Traced, Waiters};

/// Where a queue keeps its items: the order is the only difference between the three queues.
trait Store<T>: Default {
    fn push(&mut self, item: T);
    fn pop(&mut self) -> Option<T>;
    fn len(&self) -> usize;
    /// Drop every item (an immediate shutdown).
    fn clear(&mut self);
}

/// First in, first out.
struct Fifo<T>(VecDeque<T>);
/// Last in, first out.
struct Lifo<T>(Vec<T>);
/// Smallest first.
struct Smallest<T: Ord>(BinaryHeap<Reverse<T>>);

impl<T> Default for Fifo<T> {
    fn default() -> Self {
        Fifo(VecDeque::new())
    }
}

impl<T> Store<T> for Fifo<T> {
    fn push(&mut self, item: T) {
        self.0.push_back(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop_front()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

impl<T> Default for Lifo<T> {
    fn default() -> Self {
        Lifo(Vec::new())
    }
}

impl<T> Store<T> for Lifo<T> {
    fn push(&mut self, item: T) {
        self.0.push(item);
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

impl<T: Ord> Default for Smallest<T> {
    fn default() -> Self {
        Smallest(BinaryHeap::new())
    }
}

impl<T: Ord> Store<T> for Smallest<T> {
    fn push(&mut self, item: T) {
        self.0.push(Reverse(item));
    }
    fn pop(&mut self) -> Option<T> {
        self.0.pop().map(|Reverse(item)| item)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// What the three queues share: asyncio's `Queue` with its store left open.
struct Core<T, S> {
    store: RefCell<S>,
    maxsize: usize,
    getters: Waiters,
    putters: Waiters,
    /// `join()`'s waiters, woken when `unfinished` falls to 0.
    joiners: Waiters,
    unfinished: Cell<usize>,
    shut_down: Cell<bool>,
    traced: Traced,
    items: std::marker::PhantomData<T>,
}

impl<T, S: Store<T>> Core<T, S> {
    fn new(maxsize: usize, kind: &'static str) -> Self {
        Core {
            store: RefCell::new(S::default()),
            maxsize,
            getters: Waiters::default(),
            putters: Waiters::default(),
            joiners: Waiters::default(),
            unfinished: Cell::new(0),
            shut_down: Cell::new(false),
            traced: Traced::new(kind),
            items: std::marker::PhantomData,
        }
    }

    fn qsize(&self) -> usize {
        self.store.borrow().len()
    }

    fn full(&self) -> bool {
        self.maxsize > 0 && self.qsize() >= self.maxsize
    }

    async fn put(&self, item: T) -> Result<(), PutError<T>> {
        preemption_point(&self.traced).await;
        while self.full() {
            if self.shut_down.get() {
                return Err(PutError::QueueShutDown(item));
            }
            self.traced.record("put-wait");
            let entry = self.putters.enqueue();
            let waiter = entry.waiter.clone();
            // Dropped while waiting: a free slot handed to it passes to the next putter.
            let cancel = OnCancel::new(move || {
                self.putters.remove(&waiter);
                if !self.full() && waiter.done.get() {
                    self.putters.pop_and_wake_next();
                }
            });
            entry.wait().await;
            cancel.defuse();
        }
        self.put_nowait(item)
    }

    fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
        if self.shut_down.get() {
            return Err(PutError::QueueShutDown(item));
        }
        if self.full() {
            return Err(PutError::QueueFull(item));
        }
        self.store.borrow_mut().push(item);
        self.unfinished.set(self.unfinished.get() + 1);
        self.traced.record("put");
        self.getters.pop_and_wake_next();
        Ok(())
    }

    async fn get(&self) -> Result<T, GetError> {
        preemption_point(&self.traced).await;
        while self.qsize() == 0 {
            if self.shut_down.get() {
                return Err(GetError::QueueShutDown);
            }
            self.traced.record("get-wait");
            let entry = self.getters.enqueue();
            let waiter = entry.waiter.clone();
            // Dropped while waiting: an item it was woken for passes to the next getter.
            let cancel = OnCancel::new(move || {
                self.getters.remove(&waiter);
                if self.qsize() > 0 && waiter.done.get() {
                    self.getters.pop_and_wake_next();
                }
            });
            entry.wait().await;
            cancel.defuse();
        }
        self.get_nowait()
    }

    fn get_nowait(&self) -> Result<T, GetError> {
        let item = self.store.borrow_mut().pop();
        let Some(item) = item else {
            return Err(if self.shut_down.get() {
                GetError::QueueShutDown
            } else {
                GetError::QueueEmpty
            });
        };
        self.traced.record("get");
        self.putters.pop_and_wake_next();
        Ok(item)
    }

    fn task_done(&self) -> Result<(), TaskDoneError> {
        let unfinished = self.unfinished.get();
        if unfinished == 0 {
            return Err(TaskDoneError);
        }
        self.unfinished.set(unfinished - 1);
        self.traced.record("task-done");
        if unfinished == 1 {
            self.joiners.pop_and_wake_all();
        }
        Ok(())
    }

    async fn join(&self) {
        preemption_point(&self.traced).await;
        if self.unfinished.get() == 0 {
            self.traced.record("join");
            return;
        }
        self.traced.record("join-wait");
        let entry = self.joiners.enqueue();
        entry.wait().await;
        self.traced.record("join");
    }

    fn shutdown(&self, immediate: bool) {
        self.traced.record("shutdown");
        self.shut_down.set(true);
        if immediate {
            let dropped = self.qsize();
            self.store.borrow_mut().clear();
            self.unfinished
                .set(self.unfinished.get().saturating_sub(dropped));
            if self.unfinished.get() == 0 {
                self.joiners.pop_and_wake_all();
            }
        }
        self.getters.pop_and_wake_all();
        self.putters.pop_and_wake_all();
    }
}

/// Why a `put` failed; the item comes back.
///
/// ```
/// let queue = roof::sync::Queue::new(1);
/// queue.put_nowait('a').unwrap();
/// assert_eq!(queue.put_nowait('b'), Err(roof::sync::PutError::QueueFull('b')));
/// queue.shutdown(false);
/// let error = queue.put_nowait('c').unwrap_err();
/// assert_eq!(error.to_string(), "the queue was shut down");
/// assert_eq!(error.into_inner(), 'c');
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutError<T> {
    /// The queue is full (`put_nowait` only: `put` waits instead): asyncio's `QueueFull`.
    QueueFull(T),
    /// The queue was shut down: asyncio's `QueueShutDown`.
    QueueShutDown(T),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::QueueFull(item) | PutError::QueueShutDown(item) => item,
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PutError::QueueFull(_) => "the queue is full",
            PutError::QueueShutDown(_) => "the queue was shut down",
        })
    }
}

impl<T: fmt::Debug> std::error::Error for PutError<T> {}

/// Why a `get` failed.
///
/// ```
/// let queue = roof::sync::Queue::<u8>::new(0);
/// assert_eq!(queue.get_nowait(), Err(roof::sync::GetError::QueueEmpty));
/// queue.shutdown(false);
/// assert_eq!(queue.get_nowait(), Err(roof::sync::GetError::QueueShutDown));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GetError {
    /// The queue is empty (`get_nowait` only: `get` waits instead): asyncio's `QueueEmpty`.
    QueueEmpty,
    /// The queue was shut down and is empty: asyncio's `QueueShutDown`.
    QueueShutDown,
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GetError::QueueEmpty => "the queue is empty",
            GetError::QueueShutDown => "the queue was shut down",
        })
    }
}

impl std::error::Error for GetError {}

/// `task_done()` was called more times than items were put (asyncio's `ValueError`).
///
/// ```
/// let queue = roof::sync::Queue::<u8>::new(0);
/// assert_eq!(queue.task_done(), Err(roof::sync::TaskDoneError));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl std::error::Error for TaskDoneError {}

/// The three public queues: one type each, the same methods.
macro_rules! queue {
    ($(#[$doc:meta])* $name:ident, $store:ident, $kind:literal, $($bound:tt)*) => {
        $(#[$doc])*
        pub struct $name<T: $($bound)*> {
            core: Core<T, $store<T>>,
        }

        impl<T: $($bound)*> fmt::Debug for $name<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("maxsize", &self.core.maxsize)
                    .field("qsize", &self.core.qsize())
                    .finish()
            }
        }

        impl<T: $($bound)*> $name<T> {
            /// A queue holding at most `maxsize` items (0: no limit).
            pub fn new(maxsize: usize) -> Self {
                $name {
                    core: Core::new(maxsize, $kind),
                }
            }

            /// The most items it holds (0: no limit).
            pub fn maxsize(&self) -> usize {
                self.core.maxsize
            }

            /// How many items it holds.
            pub fn qsize(&self) -> usize {
                self.core.qsize()
            }

            /// Whether it holds no item.
            pub fn empty(&self) -> bool {
                self.core.qsize() == 0
            }

            /// Whether it holds `maxsize` items (never, with no limit).
            pub fn full(&self) -> bool {
                self.core.full()
            }

            /// Put an item, waiting (behind the putters already waiting) while the queue is
            /// full. Fails only once the queue was shut down.
            pub async fn put(&self, item: T) -> Result<(), PutError<T>> {
                self.core.put(item).await
            }

            /// Put an item now, or fail: [`PutError::QueueFull`], [`PutError::QueueShutDown`].
            pub fn put_nowait(&self, item: T) -> Result<(), PutError<T>> {
                self.core.put_nowait(item)
            }

            /// Take an item, waiting (behind the getters already waiting) while the queue is
            /// empty. Fails only once the queue was shut down and is empty.
            pub async fn get(&self) -> Result<T, GetError> {
                self.core.get().await
            }

            /// Take an item now, or fail: [`GetError::QueueEmpty`], [`GetError::QueueShutDown`].
            pub fn get_nowait(&self) -> Result<T, GetError> {
                self.core.get_nowait()
            }

            /// Say that an item taken earlier is processed: [`join`](Self::join) returns
            /// once every item put was.
            pub fn task_done(&self) -> Result<(), TaskDoneError> {
                self.core.task_done()
            }

            /// Wait until every item put was taken and processed ([`task_done`](Self::task_done)).
            pub async fn join(&self) {
                self.core.join().await
            }

            /// Shut the queue down (Python 3.13): puts fail from now on, and gets once it is
            /// empty; waiting putters and getters wake to fail. `immediate` drops the items
            /// left, as if each was taken and processed.
            pub fn shutdown(&self, immediate: bool) {
                self.core.shutdown(immediate)
            }
        }
    };
}

queue!(
    /// A first-in, first-out queue (asyncio's `Queue`).
    ///
    /// ```
    /// use std::rc::Rc;
    /// let lp = roof::EventLoop::new();
    /// let got = lp.run_until_complete(async {
    ///     let queue = Rc::new(roof::sync::Queue::new(1));
    ///     let consumer = roof::spawn({
    ///         let queue = queue.clone();
    ///         async move {
    ///             let mut got = Vec::new();
    ///             while let Ok(item) = queue.get().await {
    ///                 got.push(item);
    ///                 queue.task_done().unwrap();
    ///             }
    ///             got
    ///         }
    ///     });
    ///     for item in ["a", "b", "c"] {
    ///         queue.put(item).await.unwrap();
    ///     }
    ///     queue.join().await; // every item taken and processed
    ///     queue.shutdown(false); // the consumer's next get fails
    ///     consumer.await.unwrap()
    /// }).unwrap();
    /// assert_eq!(got, ["a", "b", "c"]);
    /// ```
    Queue, Fifo, "queue", Sized
);

queue!(
    /// A last-in, first-out queue (asyncio's `LifoQueue`).
    ///
    /// ```
    /// let queue = roof::sync::LifoQueue::new(0);
    /// for n in 1..=3 { queue.put_nowait(n).unwrap(); }
    /// assert_eq!(queue.get_nowait(), Ok(3));
    /// ```
    LifoQueue, Lifo, "lifo-queue", Sized
);

queue!(
    /// A queue that hands out its smallest item first (asyncio's `PriorityQueue`).
    ///
    /// ```
    /// let queue = roof::sync::PriorityQueue::new(0);
    /// for job in [(2, "later"), (1, "first"), (3, "last")] { queue.put_nowait(job).unwrap(); }
    /// assert_eq!(queue.get_nowait(), Ok((1, "first")));
    /// ```
    PriorityQueue, Smallest, "priority-queue", Ord
);
