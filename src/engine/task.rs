//! Tasks as data: cells on async-task, the table of live tasks, the ready queue.
//!
//! # Invariants
//! - A task is one async-task allocation: its header holds a [`TaskMeta`] (plain ids and one
//!   atomic cancel bit), then the future, later its output. The loop owns the [`Runnable`];
//!   the join handle owns the async-task `Task`.
//! - A task's future is polled and dropped only on its loop's thread. Wakers may be woken on
//!   any thread (async-io's reactor, for a real loop): the schedule function then posts the
//!   runnable to the loop (see `spawn`'s safety argument).
//! - The future is wrapped in a [`Guard`] that holds a reference to its own metadata. The
//!   guard drops a cancelled future in place (never moved: it is pinned, and may read pointers
//!   into itself while dropped), catches a panic of the future, and reports the task's end
//!   *before* the future is dropped, so the trace shows the end first.
//! - Every live task has an entry in the [`TaskTable`] from its spawn until its end: its id,
//!   host and a waker. The waker keeps the allocation, and so the metadata, alive while the
//!   entry exists; the loop uses it to list blocked tasks, and to cancel a crashed host's
//!   tasks or every task when it closes.
//! - This module knows no kernel, no clock and no network: the kernel passes in how to
//!   schedule a runnable and what to do when a task ends.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Waker};

use async_task::{Builder, Runnable};

use super::cancel::{set_cancel_state, take_cancel_state, CancelState};
use super::id::TaskId;

/// What a task's header carries: plain ids, and whether it was asked to stop (24 bytes).
#[derive(Debug)]
pub(crate) struct TaskMeta {
    /// The per-run task id, from 1 in spawn order.
    pub(crate) id: u64,
    /// The loop the task belongs to.
    pub(crate) loop_id: u32,
    /// The host the task runs on.
    pub(crate) host: u32,
    /// The task's slot in its loop's [`TaskTable`].
    pub(crate) slot: u32,
    /// The host's incarnation when the task was spawned: a crash starts a new one, and a task
    /// of an older one is cancelled instead of polled.
    pub(crate) incarnation: u16,
    /// Where the task's future ends, in 64-byte lines from the metadata (0 when within the
    /// first four lines): a hint. A future's state often sits at its end, past a buffer.
    pub(crate) tail_lines: u8,
    /// [`TRACED`] and [`NAMED`] (set at spawn), [`CANCELLED`] (set once cancellation was asked
    /// for: abort, a crash, the loop closing; the next run drops the future instead of
    /// polling it), [`PANICKED`] (the future panicked), [`REQUESTED`] (asyncio's
    /// `Task.cancel()`: delivered at the task's next await on a roof primitive),
    /// [`UNSTARTED`] (never polled yet), [`ENDED_CANCELLED`] (it ended unfinished). Set and
    /// read on the loop's thread only; atomic because the header is shared with wakers, which
    /// may live on other threads.
    flags: AtomicU8,
}

/// The task's loop records a trace.
const TRACED: u8 = 1;
/// The task has a name in the table's name map.
const NAMED: u8 = 2;
/// Cancellation was asked for.
const CANCELLED: u8 = 4;
/// The future panicked (and the loop went on: an exception handler heard of it).
const PANICKED: u8 = 8;
/// A cancellation request (asyncio's `Task.cancel()`) waits to be delivered.
const REQUESTED: u8 = 16;
/// The task has not been polled yet: a request now ends it before it runs, as in asyncio.
const UNSTARTED: u8 = 32;
/// The task ended unfinished (aborted, a request it did not catch, its host crashed).
const ENDED_CANCELLED: u8 = 64;

impl TaskMeta {
    fn has(&self, flag: u8) -> bool {
        self.flags.load(Ordering::Relaxed) & flag != 0
    }

    /// Whether its loop records a trace.
    pub(crate) fn traced(&self) -> bool {
        self.has(TRACED)
    }

    /// Whether it has a name in the table's name map.
    pub(crate) fn named(&self) -> bool {
        self.has(NAMED)
    }

    /// Record that the task has a name in the table's name map (given after its spawn).
    pub(crate) fn mark_named(&self) {
        self.flags.fetch_or(NAMED, Ordering::Relaxed);
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
    /// A task's future, wrapped: see the module's invariants.
    struct Guard<'a, F, H> {
        meta: &'a TaskMeta,
        hooks: PhantomData<H>,
        #[pin]
        future: Option<F>,
    }
}

impl<F: Future, H: Hooks> Future for Guard<'_, F, H> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let Some(future) = this.future.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let flags = this.meta.flags.load(Ordering::Relaxed);
        if flags & (CANCELLED | REQUESTED | UNSTARTED) != 0 {
            // A request before the first poll ends the task unrun, as asyncio's does.
            if flags & CANCELLED != 0 || flags & (REQUESTED | UNSTARTED) == REQUESTED | UNSTARTED {
                drop_cancelled::<F, H>(this.meta, this.future);
                return Poll::Ready(None);
            }
            if flags & REQUESTED != 0 {
                set_cancel_state(CancelState::Requested);
            }
            // A plain store, no read-modify-write (a locked instruction per task): the flags
            // change on the loop's thread only, and none changes between these lines.
            this.meta
                .flags
                .store(flags & !(UNSTARTED | REQUESTED), Ordering::Relaxed);
        }
        let polled = panic::catch_unwind(AssertUnwindSafe(|| future.poll(cx)));
        let state = take_cancel_state();
        match polled {
            Ok(Poll::Pending) => match state {
                CancelState::None | CancelState::Forwarded | CancelState::Caught => Poll::Pending,
                CancelState::Requested => {
                    // No roof primitive was reached: the request waits for the next poll.
                    this.meta.request_cancel();
                    Poll::Pending
                }
                CancelState::Delivered => {
                    // Nothing caught it: the task ends cancelled.
                    drop_cancelled::<F, H>(this.meta, this.future);
                    Poll::Ready(None)
                }
            },
            Ok(Poll::Ready(output)) => {
                // Ended before the future is dropped (async-task drops it next): its locals
                // may close sockets, and the trace shows the end first.
                H::ended(this.meta, TaskEnd::Completed);
                Poll::Ready(Some(output))
            }
            Err(payload) => {
                this.meta.flags.fetch_or(PANICKED, Ordering::Relaxed);
                let _ = panic::catch_unwind(AssertUnwindSafe(|| this.future.set(None)));
                H::ended(this.meta, TaskEnd::Panicked(payload));
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

    /// Whether the handle still holds its task (it lets go once the output is taken).
    pub(crate) fn is_held(&self) -> bool {
        self.task.is_some()
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
    let guard = move |meta| Guard {
        meta,
        hooks: PhantomData::<H>,
        future: Some(future),
    };
    let schedule = |runnable| H::schedule(runnable);
    // SAFETY: `spawn_unchecked` asks for three things.
    // - The future need not be `Send`: it is polled only by `Runnable::run`, which the loop
    //   calls on its own thread, and dropped there too (by `run`: the loop never drops a
    //   runnable unrun; a runnable posted from another thread to a loop that is gone is
    //   leaked, never dropped there, see `net::real::deliver_foreign`).
    // - The future may borrow the metadata for `'a`: the header outlives the future.
    // - The schedule function is `Send + Sync` (it captures nothing) and only queues the
    //   runnable.
    let (runnable, task) = unsafe {
        Builder::new()
            .metadata(meta)
            .spawn_unchecked(guard, schedule)
    };
    (runnable, TaskHandle { task: Some(task) })
}

/// A task's name: given at spawn, or asyncio's `Task-<id>`. A host's task shares its host's
/// name (no copy per task).
#[derive(Clone, Debug)]
pub(crate) enum TaskName {
    Static(&'static str),
    Shared(Rc<str>),
}

impl From<Cow<'static, str>> for TaskName {
    fn from(name: Cow<'static, str>) -> TaskName {
        match name {
            Cow::Borrowed(name) => TaskName::Static(name),
            Cow::Owned(name) => TaskName::Shared(Rc::from(name)),
        }
    }
}

impl TaskName {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            TaskName::Static(name) => name,
            TaskName::Shared(name) => name,
        }
    }
}

/// A task's name as reports and traces show it.
pub(crate) fn display_name(id: u64, name: Option<&TaskName>) -> String {
    match name {
        Some(name) => name.as_str().to_string(),
        None => format!("Task-{id}"),
    }
}

/// A live task's entry: its metadata, in its header, and a waker, which keeps the task (and
/// so the metadata) alive as long as the entry.
struct TaskEntry {
    meta: NonNull<TaskMeta>,
    waker: Waker,
}

impl TaskEntry {
    fn meta(&self) -> &TaskMeta {
        // SAFETY: the entry's waker holds a reference to the task, so its header (with the
        // metadata) lives as long as the entry; the metadata is only read through shared
        // references (its one mutable part is atomic).
        unsafe { self.meta.as_ref() }
    }
}

/// Entries a chunk of the task table holds: the table grows a chunk at a time, never
/// copying the entries it has.
const CHUNK: usize = 4096;

/// The tasks of one loop from their spawn until their end: what the loop needs to list
/// blocked tasks (deadlock), to cancel a crashed host's tasks, and to cancel everything
/// (close). Slots are reused, most recently freed first. Names live apart, since most tasks
/// have none.
#[derive(Default)]
pub(crate) struct TaskTable {
    chunks: Vec<Vec<Option<TaskEntry>>>,
    /// Slots handed out so far (live or free).
    slots: usize,
    free: Vec<u32>,
    live: usize,
    names: BTreeMap<u64, TaskName>,
}

impl TaskTable {
    /// A slot for a task about to be spawned.
    fn reserve(&mut self) -> u32 {
        if let Some(slot) = self.free.pop() {
            return slot;
        }
        let slot = u32::try_from(self.slots).expect("task invariant: fewer than 2^32 live tasks");
        if self.slots % CHUNK == 0 {
            // The first chunk starts small (a short run has a handful of tasks) and grows;
            // the later ones, for long runs, are allocated whole.
            let capacity = if self.chunks.is_empty() { 16 } else { CHUNK };
            self.chunks.push(Vec::with_capacity(capacity));
        }
        self.chunks
            .last_mut()
            .expect("a chunk with room")
            .push(None);
        self.slots += 1;
        slot
    }

    fn entry_mut(&mut self, slot: u32) -> &mut Option<TaskEntry> {
        let slot = slot as usize;
        &mut self.chunks[slot / CHUNK][slot % CHUNK]
    }

    fn entry(&self, slot: u32) -> Option<&TaskEntry> {
        let slot = slot as usize;
        self.chunks.get(slot / CHUNK)?.get(slot % CHUNK)?.as_ref()
    }

    /// Start loading the entry of `slot` (its address computed, nothing read but the chunk
    /// list). A hint only.
    pub(crate) fn prefetch(&self, slot: u32) {
        let slot = slot as usize;
        if let Some(chunk) = self.chunks.get(slot / CHUNK) {
            super::hint::prefetch(chunk.as_ptr().wrapping_add(slot % CHUNK).cast());
        }
    }

    fn fill(&mut self, slot: u32, entry: TaskEntry) {
        *self.entry_mut(slot) = Some(entry);
        self.live += 1;
    }

    /// Forget the task in `slot` (it ended).
    pub(crate) fn unregister(&mut self, slot: u32) {
        let entry = self.entry_mut(slot).take();
        debug_assert!(entry.is_some(), "task invariant: slot {slot} is occupied");
        if entry.is_some() {
            self.free.push(slot);
            self.live -= 1;
        }
    }

    pub(crate) fn set_name(&mut self, id: u64, name: TaskName) {
        self.names.insert(id, name);
    }

    /// Forget a task's name. The name of a task that ended by panicking is kept until
    /// [`take_name`](TaskTable::take_name) reads it for the failure report.
    pub(crate) fn forget_name(&mut self, id: u64) {
        self.names.remove(&id);
    }

    pub(crate) fn name(&self, id: u64) -> String {
        display_name(id, self.names.get(&id))
    }

    /// The name of a task, forgetting it.
    pub(crate) fn take_name(&mut self, id: u64) -> String {
        let name = self.names.remove(&id);
        display_name(id, name.as_ref())
    }

    /// How many tasks live.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    fn entries(&self) -> impl Iterator<Item = &TaskEntry> {
        self.chunks.iter().flatten().flatten()
    }

    /// (id, name) of every live task, by id.
    pub(crate) fn list(&self) -> Vec<(TaskId, String)> {
        let mut tasks: Vec<_> = self
            .entries()
            .map(|entry| {
                let id = entry.meta().id;
                (TaskId(id), self.name(id))
            })
            .collect();
        tasks.sort();
        tasks
    }

    /// Mark every live task (of `host`, or all) cancelled, and return their wakers, by slot:
    /// waking them (after the table's borrow is released) queues each for its future to be
    /// dropped.
    pub(crate) fn cancel_all(&self, host: Option<u32>) -> Vec<Waker> {
        self.entries()
            .filter(|entry| host.is_none_or(|host| entry.meta().host == host))
            .map(|entry| {
                entry.meta().cancel();
                entry.waker.clone()
            })
            .collect()
    }

    /// Mark the live task whose metadata is `meta` cancelled (an abort) and return its waker;
    /// `None` if it is gone (its slot empty or another task's) or was cancelled already.
    pub(crate) fn cancel_one(&self, meta: &TaskMeta) -> Option<Waker> {
        let entry = self.live_entry(meta)?;
        entry.meta().cancel();
        Some(entry.waker.clone())
    }

    /// Request a cancellation of the live task whose metadata is `meta` (asyncio's
    /// `Task.cancel()`) and return its waker; `None` if it is gone or cancelled already.
    pub(crate) fn request_cancel_one(&self, meta: &TaskMeta) -> Option<Waker> {
        let entry = self.live_entry(meta)?;
        entry.meta().request_cancel();
        Some(entry.waker.clone())
    }

    /// The entry of the live task whose metadata is `meta`, unless it is cancelled already.
    fn live_entry(&self, meta: &TaskMeta) -> Option<&TaskEntry> {
        let entry = self.entry(meta.slot)?;
        if entry.meta != NonNull::from(meta) || entry.meta().is_cancelled() {
            return None;
        }
        Some(entry)
    }
}

/// A task in the ready queue, and an address its next poll will likely read first (the
/// connection a delivery woke it for), to prefetch before it runs: 0 for none. A hint only.
pub(crate) struct Ready {
    pub(crate) runnable: Runnable<TaskMeta>,
    pub(crate) hint: usize,
}

impl Ready {
    pub(crate) fn new(runnable: Runnable<TaskMeta>) -> Ready {
        Ready { runnable, hint: 0 }
    }
}

/// The ready queue, oldest first, and the task table: the executor state of one loop.
pub(crate) struct Executor {
    pub(crate) loop_id: u32,
    pub(crate) ready: RefCell<VecDeque<Ready>>,
    pub(crate) tasks: RefCell<TaskTable>,
    next_id: Cell<u64>,
    /// The task being polled, if any.
    pub(crate) current: Cell<Option<TaskId>>,
    /// The host of the task being polled (0, `main`, between polls).
    pub(crate) current_host: Cell<u32>,
}

/// Where a task whose future is a `G` ends, in 64-byte lines from its metadata, for
/// [`TaskMeta::tail_lines`]. Approximate (async-task's header is private): the metadata sits
/// about 32 bytes before the future. 0 when the end is within the first four lines.
fn tail_lines<G>() -> u8 {
    let lines = (32 + std::mem::size_of::<G>()) / 64;
    if (4..=usize::from(u8::MAX)).contains(&lines) {
        lines as u8
    } else {
        0
    }
}

/// Who a new task is: where it runs, and whether its loop traces.
pub(crate) struct Spawn {
    pub(crate) host: u32,
    pub(crate) incarnation: u16,
    pub(crate) traced: bool,
    pub(crate) name: Option<TaskName>,
}

impl Executor {
    pub(crate) fn new(loop_id: u32) -> Executor {
        Executor {
            loop_id,
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
        self.next_id.set(id + 1);
        let mut tasks = self.tasks.borrow_mut();
        let named = spawn.name.is_some();
        if let Some(name) = spawn.name {
            tasks.set_name(id, name);
        }
        let slot = tasks.reserve();
        let flags =
            UNSTARTED | if spawn.traced { TRACED } else { 0 } | if named { NAMED } else { 0 };
        let meta = TaskMeta {
            id,
            loop_id: self.loop_id,
            host: spawn.host,
            slot,
            incarnation: spawn.incarnation,
            tail_lines: tail_lines::<Guard<'static, F, H>>(),
            flags: AtomicU8::new(flags),
        };
        let (runnable, handle) = spawn_cell::<F, H>(meta, future);
        tasks.fill(
            slot,
            TaskEntry {
                meta: NonNull::from(runnable.metadata()),
                waker: runnable.waker(),
            },
        );
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
        while let Some(Ready { runnable, .. }) = self.ready.get_mut().pop_front() {
            runnable.metadata().cancel();
            runnable.run();
        }
    }
}
