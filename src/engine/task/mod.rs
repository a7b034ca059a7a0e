//! Tasks as data: cells on async-task, the table of live tasks, the ready queue.
//!
//! # Invariants
//! - A task is one async-task allocation: its header holds a [`TaskMeta`] (plain ids and one
//!   atomic byte of flags), then the future, later its output. The loop owns the [`Runnable`];
//!   the join handle owns the async-task `Task`.
//! - A task's future is polled and dropped only on its loop's thread. Wakers may be woken on
//!   any thread (async-io's reactor, for a real loop): the schedule function then posts the
//!   runnable to the loop (see `spawn`'s safety argument).
//! - The future is wrapped in a [`Guard`], which [`run`] tells where its metadata is. The
//!   guard drops a cancelled future in place (never moved: it is pinned, and may read pointers
//!   into itself while dropped), catches a panic of the future, and reports the task's end
//!   *before* the future is dropped, so the trace shows the end first.
//! - Every live task has an entry in the [`TaskTable`] from its spawn until its end: a waker,
//!   from which its metadata is found. The waker keeps the allocation, and so the metadata,
//!   alive while the entry exists; the loop uses it to list blocked tasks, and to cancel a
//!   crashed host's tasks or every task when it closes.
//! - Every run of a task goes through [`run`] (`clippy.toml` bans `Runnable::run` elsewhere).
//! - A task finds its loop by the loop's [`LoopTag`]: 16 bits, unique among live loops.
//! - This module knows no kernel, no clock and no network: the kernel passes in how to
//!   schedule a runnable and what to do when a task ends.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;

use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};

use async_task::{Builder, Runnable};

use super::cancel::{set_cancel_state, take_cancel_state, CancelState};
use super::id::TaskId;

mod table;
pub(crate) use table::{display_name, LoopTag, TaskName, TaskTable};

/// The most task ids one loop hands out (ids are 36 bits in a task's header: at three
/// million spawns a second, six hours of spawning).
pub(crate) const TASK_IDS_MAX: u64 = (1 << 36) - 1;
/// The most hosts one loop has, `main` included (host indices are 24 bits in a header).
pub(crate) const HOSTS_MAX: usize = (1 << 24) - 1;
/// The most tasks alive at once in one loop (table slots are 24 bits in a header).
pub(crate) const LIVE_TASKS_MAX: usize = 1 << 24;

/// What a task's header carries: plain ids, and whether it was asked to stop.
///
/// 15 bytes, byte-aligned: with async-task's header (32 bytes and a flag) that makes 48, so
/// a small task's cell is an 80-byte malloc chunk, where 16 more bytes of metadata make it
/// 96 (a million tasks: 16 MB).
#[derive(Debug)]
pub(crate) struct TaskMeta {
    /// The per-run task id, from 1 in spawn order (high 36 bits), where its future ends (4
    /// bits: see [`TaskMeta::tail_lines`]) and the host the task runs on (low 24 bits);
    /// little-endian.
    id_host: [u8; 8],
    /// The task's slot in its loop's [`TaskTable`] (24 bits, little-endian).
    slot: [u8; 3],
    /// The tag of the loop the task belongs to (see [`LoopTag`]).
    loop_tag: [u8; 2],
    /// The host's incarnation when the task was spawned (its low 8 bits): a crash starts a
    /// new one and cancels the old one's tasks; a task of an older one is cancelled instead
    /// of polled.
    incarnation: u8,
    /// [`CANCELLED`] (set once cancellation was asked for: abort, a crash, the loop closing;
    /// the next run drops the future instead of polling it), [`PANICKED`] (the future
    /// panicked), [`REQUESTED`] (asyncio's `Task.cancel()`: delivered at the task's next
    /// await on a roof primitive), [`UNSTARTED`] (never polled yet), [`ENDED_CANCELLED`] (it
    /// ended unfinished), and the join handle's own [`SHIELDED`], [`FORWARDED`] and
    /// [`TAKEN`]. Set and read on the loop's thread only; atomic because the header is
    /// shared with wakers, which may live on other threads.
    flags: AtomicU8,
}

/// Cancellation was asked for.
const CANCELLED: u8 = 1;
/// The future panicked (and the loop went on: an exception handler heard of it).
const PANICKED: u8 = 2;
/// A cancellation request (asyncio's `Task.cancel()`) waits to be delivered.
const REQUESTED: u8 = 4;
/// The task has not been polled yet: a request now ends it before it runs, as in asyncio.
const UNSTARTED: u8 = 8;
/// The task ended unfinished (aborted, a request it did not catch, its host crashed).
const ENDED_CANCELLED: u8 = 16;
/// The join handle is a shield's: a cancellation request of its awaiter is not passed on.
pub(crate) const SHIELDED: u8 = 32;
/// The join handle passed its awaiter's cancellation request on to the task.
pub(crate) const FORWARDED: u8 = 64;
/// The join handle took the task's output (or learnt it has none).
pub(crate) const TAKEN: u8 = 128;

impl TaskMeta {
    fn new<G>(id: u64, host: u32, slot: u32, loop_tag: u16, incarnation: u16) -> TaskMeta {
        debug_assert!(id <= TASK_IDS_MAX && (host as usize) <= HOSTS_MAX);
        debug_assert!((slot as usize) < LIVE_TASKS_MAX);
        let slot = slot.to_le_bytes();
        let tail = u64::from(tail_code::<G>());
        TaskMeta {
            id_host: (id << 28 | tail << 24 | u64::from(host)).to_le_bytes(),
            slot: [slot[0], slot[1], slot[2]],
            loop_tag: loop_tag.to_le_bytes(),
            incarnation: incarnation as u8,
            flags: AtomicU8::new(UNSTARTED),
        }
    }

    /// The per-run task id.
    pub(crate) fn id(&self) -> u64 {
        u64::from_le_bytes(self.id_host) >> 28
    }

    /// Where the task's future ends, in 64-byte lines from the metadata (0 when within the
    /// first four lines, or past 18): a hint. A future's state often sits at its end, past
    /// a buffer.
    pub(crate) fn tail_lines(&self) -> usize {
        match (u64::from_le_bytes(self.id_host) >> 24) & 0xf {
            0 => 0,
            code => code as usize + 3,
        }
    }

    /// The host the task runs on.
    pub(crate) fn host(&self) -> u32 {
        (u64::from_le_bytes(self.id_host) & 0xff_ffff) as u32
    }

    /// Its slot in the task table.
    pub(crate) fn slot(&self) -> u32 {
        u32::from_le_bytes([self.slot[0], self.slot[1], self.slot[2], 0])
    }

    /// The tag of its loop.
    pub(crate) fn loop_tag(&self) -> u16 {
        u16::from_le_bytes(self.loop_tag)
    }

    /// Whether it was spawned in the host incarnation `incarnation` (compared in 8 bits).
    pub(crate) fn of_incarnation(&self, incarnation: u16) -> bool {
        self.incarnation == incarnation as u8
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags.load(Ordering::Relaxed) & flag != 0
    }

    /// Set `flag`.
    pub(crate) fn set(&self, flag: u8) {
        self.flags.fetch_or(flag, Ordering::Relaxed);
    }

    /// Clear `flag`.
    pub(crate) fn clear(&self, flag: u8) {
        self.flags.fetch_and(!flag, Ordering::Relaxed);
    }

    /// Ask the task to stop: its next run drops its future instead of polling it.
    pub(crate) fn cancel(&self) {
        self.flags.fetch_or(CANCELLED, Ordering::Relaxed);
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.has(CANCELLED)
    }

    /// Whether the future panicked.
    pub(crate) fn panicked(&self) -> bool {
        self.has(PANICKED)
    }

    /// Request a cancellation the task can observe (asyncio's `Task.cancel()`); see
    /// [`CancelState`].
    pub(crate) fn request_cancel(&self) {
        self.flags.fetch_or(REQUESTED, Ordering::Relaxed);
    }

    /// Whether the task ended unfinished: its future was dropped before it returned.
    pub(crate) fn ended_cancelled(&self) -> bool {
        self.has(ENDED_CANCELLED)
    }
}

/// How a task ended, as its [`Guard`] reports it (before the future is dropped).
pub(crate) enum TaskEnd {
    /// The future returned its output.
    Completed,
    /// The future was dropped unfinished: aborted, its host crashed, its loop closed.
    Cancelled,
    /// The future panicked; the payload, for the failure report. The future is dropped
    /// already (a second panic while dropping it is swallowed: the run has failed anyway).
    Panicked(Box<dyn std::any::Any + Send>),
    /// A cancelled future (reported as `Cancelled` already) panicked while it was dropped.
    /// The task has ended; the panic is a failure of the run, unless the loop is closing.
    PanickedInDrop(Box<dyn std::any::Any + Send>),
}

/// What the loop does with its tasks: queue a woken one (on any thread), and learn that one
/// ended. A zero-sized type, so a task cell carries no pointer for either.
pub(crate) trait Hooks: 'static {
    /// Queue a woken task on its loop.
    fn schedule(runnable: Runnable<TaskMeta>);
    /// The task ended (before its future is dropped).
    fn ended(meta: &TaskMeta, end: TaskEnd);
}

pin_project_lite::pin_project! {
    /// A task's future, wrapped: see the module's invariants. It holds no reference to its
    /// metadata (8 bytes more would make a small task's cell a 96-byte malloc chunk, not
    /// 80): [`run`] says where the metadata of the task it runs is.
    struct Guard<F, H> {
        hooks: PhantomData<H>,
        #[pin]
        future: Option<F>,
    }
}

thread_local! {
    /// The metadata of the task [`run`] is running on this thread (null before the first).
    static RUNNING_META: Cell<*const TaskMeta> = const { Cell::new(std::ptr::null()) };
}

/// Run a task: poll its future once, or drop it if it was cancelled. The one place the
/// crate calls `Runnable::run` (clippy.toml bans it elsewhere).
// The one place a task runs: it tells the task's guard where its metadata is.
#[allow(clippy::disallowed_methods)]
#[inline]
pub(crate) fn run(runnable: Runnable<TaskMeta>) {
    let meta: *const TaskMeta = runnable.metadata();
    let outer = RUNNING_META.replace(meta);
    runnable.run();
    RUNNING_META.set(outer);
}

/// The metadata of the task being run: for its guard, which only `run` polls.
fn running_meta<'a>() -> &'a TaskMeta {
    let meta = RUNNING_META.get();
    // SAFETY: a guard is its task's whole future, private to its cell, so only async-task's
    // `Runnable::run` polls it, and the crate calls that only in `run` (clippy.toml bans
    // it elsewhere), which first sets `RUNNING_META` to the metadata of that very runnable,
    // on this thread. A nested `run` (a task that drops a loop, whose queued tasks run)
    // restores the outer pointer before the outer poll goes on. The runnable keeps the
    // task, and so its header, alive until `run` returns, and the metadata is only read
    // through shared references (its one mutable part is atomic).
    unsafe { &*meta }
}

impl<F: Future, H: Hooks> Future for Guard<F, H> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let meta = running_meta();
        let flags = meta.flags.load(Ordering::Relaxed);
        if flags & (CANCELLED | REQUESTED | UNSTARTED) != 0 {
            // A request before the first poll ends the task unrun, as asyncio's does.
            if flags & CANCELLED != 0 || flags & (REQUESTED | UNSTARTED) == REQUESTED | UNSTARTED {
                drop_cancelled::<F, H>(meta, this.future);
                return Poll::Ready(None);
            }
            if flags & REQUESTED != 0 {
                set_cancel_state(CancelState::Requested);
            }
            // A plain store, no read-modify-write (a locked instruction per task): the flags
            // change on the loop's thread only, and none changes between these lines.
            meta.flags
                .store(flags & !(UNSTARTED | REQUESTED), Ordering::Relaxed);
        }
        let polled = panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx)));
        let state = take_cancel_state();
        match polled {
            Ok(Poll::Pending) => match state {
                CancelState::None | CancelState::Forwarded | CancelState::Caught => Poll::Pending,
                CancelState::Requested => {
                    // No roof primitive was reached: the request waits for the next poll.
                    meta.request_cancel();
                    Poll::Pending
                }
                CancelState::Delivered => {
                    // Nothing caught it: the task ends cancelled.
                    drop_cancelled::<F, H>(meta, this.future);
                    Poll::Ready(None)
                }
            },
            Ok(Poll::Ready(output)) => {
                // Ended before the future is dropped (async-task drops it next): its locals
                // may close sockets, and the trace shows the end first.
                H::ended(meta, TaskEnd::Completed);
                Poll::Ready(Some(output))
            }
            Err(payload) => {
                meta.flags.fetch_or(PANICKED, Ordering::Relaxed);
                let _ = panic::catch_unwind(AssertUnwindSafe(|| this.future.set(None)));
                H::ended(meta, TaskEnd::Panicked(payload));
                Poll::Ready(None)
            }
        }
    }
}

/// End a task unfinished: report it, then drop its future in place (`Pin::set` drops the old
/// value where it lies, and leaves `None` there even if the drop panics).
fn drop_cancelled<F: Future, H: Hooks>(meta: &TaskMeta, future: Pin<&mut Option<F>>) {
    meta.flags.fetch_or(ENDED_CANCELLED, Ordering::Relaxed);
    H::ended(meta, TaskEnd::Cancelled);
    let mut future = future;
    let dropped = panic::catch_unwind(AssertUnwindSafe(|| future.set(None)));
    if let Err(payload) = dropped {
        H::ended(meta, TaskEnd::PanickedInDrop(payload));
    }
}

/// The handle side of a task: its output (`None` once cancelled) when it ends.
///
/// Dropping it *detaches* the task (asyncio keeps tasks alive), where dropping async-task's
/// `Task` would cancel it behind the guard's back (the future dropped unpolled, its end never
/// reported). Polling it panics if the task's runnable was dropped without being run, so the
/// loop never drops one: it runs a cancelled one instead, which drops the future.
pub(crate) struct TaskHandle<T> {
    task: Option<async_task::Task<Option<T>, TaskMeta>>,
}

impl<T> TaskHandle<T> {
    fn task(&self) -> &async_task::Task<Option<T>, TaskMeta> {
        self.task
            .as_ref()
            .expect("task invariant: a handle holds its task until dropped")
    }

    /// The task's metadata.
    pub(crate) fn metadata(&self) -> &TaskMeta {
        self.task().metadata()
    }

    /// Whether the task ended (its future returned, or was dropped) and its output is ready.
    pub(crate) fn is_finished(&self) -> bool {
        self.task().is_finished()
    }

    /// Let the task run on with nobody waiting for it.
    pub(crate) fn detach(mut self) {
        self.let_go();
    }

    /// Let go of the task (detach it), keeping an empty handle: a holder that took the
    /// output, or gave up waiting, needs no `Option` around the handle of its own.
    pub(crate) fn let_go(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> Drop for TaskHandle<T> {
    fn drop(&mut self) {
        self.let_go();
    }
}

impl<T> Future for TaskHandle<T> {
    type Output = Option<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let task = self
            .task
            .as_mut()
            .expect("task invariant: a handle holds its task until dropped");
        Pin::new(task).poll(cx)
    }
}

/// Create a task for `future` with metadata `meta`.
fn spawn_cell<F, H>(meta: TaskMeta, future: F) -> (Runnable<TaskMeta>, TaskHandle<F::Output>)
where
    F: Future + 'static,
    F::Output: 'static,
    H: Hooks,
{
    let guard = move |_: &TaskMeta| Guard {
        hooks: PhantomData::<H>,
        future: Some(future),
    };
    let schedule = |runnable| H::schedule(runnable);
    // SAFETY: `spawn_unchecked` asks for three things.
    // - The future need not be `Send`: it is polled only by `Runnable::run`, which the loop
    //   calls on its own thread, and dropped there too (by `run`: the loop never drops a
    //   runnable unrun; a runnable posted from another thread to a loop that is gone is
    //   leaked, never dropped there, see `net::real::deliver_foreign`).
    // - The future borrows nothing (the guard finds its metadata through `run`).
    // - The schedule function is `Send + Sync` (it captures nothing) and only queues the
    //   runnable.
    let (runnable, task) = unsafe {
        Builder::new()
            .metadata(meta)
            .spawn_unchecked(guard, schedule)
    };
    (runnable, TaskHandle { task: Some(task) })
}

/// A task in the ready queue (8 bytes: a million queued tasks, 8 MB).
pub(crate) struct Ready {
    pub(crate) runnable: Runnable<TaskMeta>,
}

impl Ready {
    pub(crate) fn new(runnable: Runnable<TaskMeta>) -> Ready {
        Ready { runnable }
    }
}

/// The ready queue, oldest first, and the task table: the executor state of one loop.
pub(crate) struct Executor {
    /// The loop's tag, which its tasks carry.
    pub(crate) loop_tag: LoopTag,
    pub(crate) ready: RefCell<VecDeque<Ready>>,
    pub(crate) tasks: RefCell<TaskTable>,
    next_id: Cell<u64>,
    /// The task being polled, if any.
    pub(crate) current: Cell<Option<TaskId>>,
    /// The host of the task being polled (0, `main`, between polls).
    pub(crate) current_host: Cell<u32>,
}

/// Where a task whose future is a `G` ends, for [`TaskMeta::tail_lines`]: its lines from
/// the metadata less 3, or 0 when that is not 1 to 15. Approximate (async-task's header is
/// private): the metadata sits about 32 bytes before the future.
fn tail_code<G>() -> u8 {
    let lines = (32 + std::mem::size_of::<G>()) / 64;
    if (4..=18).contains(&lines) {
        (lines - 3) as u8
    } else {
        0
    }
}

/// Who a new task is: where it runs, and whether its loop traces.
pub(crate) struct Spawn {
    pub(crate) host: u32,
    pub(crate) incarnation: u16,
    pub(crate) name: Option<TaskName>,
}

impl Executor {
    pub(crate) fn new(loop_tag: LoopTag) -> Executor {
        Executor {
            loop_tag,
            // Room for a few ready tasks, so that a small run does not regrow the queue.
            ready: RefCell::new(VecDeque::with_capacity(16)),
            tasks: RefCell::new(TaskTable::default()),
            next_id: Cell::new(1),
            current: Cell::new(None),
            current_host: Cell::new(0),
        }
    }

    /// Create a task and queue it; returns its id and its handle.
    pub(crate) fn spawn<F, H>(&self, future: F, spawn: Spawn) -> (u64, TaskHandle<F::Output>)
    where
        F: Future + 'static,
        F::Output: 'static,
        H: Hooks,
    {
        let id = self.next_id.get();
        assert!(
            id <= TASK_IDS_MAX,
            "roof: more than {TASK_IDS_MAX} tasks spawned in one event loop"
        );
        self.next_id.set(id + 1);
        let mut tasks = self.tasks.borrow_mut();
        if let Some(name) = spawn.name {
            tasks.set_name(id, name);
        }
        let slot = tasks.reserve();
        let meta = TaskMeta::new::<Guard<F, H>>(
            id,
            spawn.host,
            slot,
            self.loop_tag.get(),
            spawn.incarnation,
        );
        let (runnable, handle) = spawn_cell::<F, H>(meta, future);
        tasks.fill(slot, runnable.metadata(), runnable.waker());
        drop(tasks);
        self.ready.borrow_mut().push_back(Ready::new(runnable));
        (id, handle)
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // A loop dropped without closing (its close runs every task to its end first): its
        // queued tasks are run cancelled, on the loop's thread, which drops their futures
        // (a runnable is never dropped unrun: its handle would panic). The table's wakers go
        // with it; suspended tasks are leaked.
        while let Some(Ready { runnable }) = self.ready.get_mut().pop_front() {
            runnable.metadata().cancel();
            run(runnable);
        }
        if self.tasks.get_mut().len() > 0 {
            self.loop_tag.leak();
        }
    }
}
