//! Tasks on `async-task`: spawning, join handles, the ready queue and the table of live tasks.
//!
//! A task is an `async-task` allocation whose metadata (`TaskMeta`) names its loop, its
//! per-run id and its slot in the task table. The table keeps one waker per live task, so
//! the loop can list blocked tasks by name (deadlock reports) and cancel every task when it
//! closes. Waking a task pushes its `Runnable` to the back of the ready queue; the scheduler
//! ([`crate::sched`]) picks which ready task runs next.
//!
//! Dropping a [`JoinHandle`] detaches the task, as asyncio keeps tasks alive; `abort` cancels.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use async_task::{Builder, FallibleTask, Runnable, ScheduleInfo, WithInfo};

use crate::runtime;

/// A task's id, unique within one run and numbered from 1 in spawn order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// What every task carries in its `async-task` header.
pub(crate) struct TaskMeta {
    /// The per-run task id.
    pub(crate) id: u64,
    /// The loop the task belongs to.
    pub(crate) loop_id: u32,
    /// The task's slot in the task table once it has suspended ([`UNREGISTERED`] before).
    pub(crate) slot: Cell<u32>,
    /// [`COMPLETED`], [`TRACED`] and [`NAMED`].
    pub(crate) flags: Cell<u8>,
    /// Where the task's future ends, in 64-byte lines from this metadata, once it has
    /// suspended (0 if unknown, or within the first four lines): a prefetch hint. A future's
    /// state flag often sits at its end, past a large buffer. (One byte: it fits the padding.)
    pub(crate) tail_lines: Cell<u8>,
    /// The host the task runs on.
    pub(crate) host: u32,
    /// The host's incarnation when the task was spawned: a crash starts a new one, and a
    /// task of an older incarnation is cancelled instead of run. (Sixteen bits keep the header
    /// small; it wraps, harmlessly: a crash wakes and drops every task of the old incarnation.)
    pub(crate) incarnation: u16,
    /// From its first suspension until its future is dropped, a task holds a reference to
    /// itself: async-task would otherwise free a pending task nobody can wake without
    /// dropping its future (see `TaskEntry`).
    pub(crate) self_waker: Cell<Option<Waker>>,
}

/// `TaskMeta::slot` of a task that has not suspended yet.
pub(crate) const UNREGISTERED: u32 = u32::MAX;
/// The task's future returned a value.
pub(crate) const COMPLETED: u8 = 1;
/// The task's loop records a trace.
pub(crate) const TRACED: u8 = 2;
/// The task has a name in the table's name map.
pub(crate) const NAMED: u8 = 4;

impl TaskMeta {
    /// Record where the task's future ends (its address just past the end).
    fn note_tail(&self, end: usize) {
        let last = end.saturating_sub(std::ptr::from_ref(self).addr() + 1) / 64;
        if let Ok(lines @ 4..) = u8::try_from(last) {
            self.tail_lines.set(lines);
        }
    }

    /// Start loading the task's header and the first lines of its future, without reading
    /// them. A hint only. The header's other fields (its state and vtable, read first by
    /// `Runnable::run`) sit within a line before the metadata.
    #[inline(always)]
    pub(crate) fn prefetch_head(&self) {
        let meta = std::ptr::from_ref(self).cast::<u8>();
        runtime::prefetch_address(meta.wrapping_sub(64));
        for line in 0..4 {
            runtime::prefetch_address(meta.wrapping_add(64 * line));
        }
    }

    /// Start loading the end of the task's future. Reads the metadata, so it should be in
    /// cache already (after [`prefetch_head`](TaskMeta::prefetch_head)). A hint only.
    #[inline(always)]
    pub(crate) fn prefetch_tail(&self) {
        let tail = usize::from(self.tail_lines.get());
        if tail != 0 {
            let meta = std::ptr::from_ref(self).cast::<u8>();
            runtime::prefetch_address(meta.wrapping_add(64 * tail - 64));
            runtime::prefetch_address(meta.wrapping_add(64 * tail));
        }
    }

    pub(crate) fn has(&self, flag: u8) -> bool {
        self.flags.get() & flag != 0
    }
}

pub(crate) type TaskRunnable = Runnable<TaskMeta>;

/// A task in the ready queue, and an address its next poll will likely read first (the
/// connection a delivery woke it for), to prefetch before it runs: 0 for none. A hint only.
pub(crate) struct Ready {
    pub(crate) runnable: TaskRunnable,
    pub(crate) hint: usize,
}

impl Ready {
    pub(crate) fn new(runnable: TaskRunnable) -> Ready {
        Ready { runnable, hint: 0 }
    }
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

/// A suspended task: its id, its host, and its waker, *borrowed* (no reference held here).
///
/// async-task frees a detached task that went pending with no waker left anywhere, without
/// dropping its future. So a suspended task holds a reference to itself (its `TaskMeta`'s
/// `self_waker`) from its first suspension until its future is dropped, and the future's drop
/// clears this entry's bit *before* releasing that reference: while the bit is set, the task
/// is alive and the borrowed waker is valid.
#[derive(Clone, Copy)]
struct TaskEntry {
    id: u64,
    data: *const (),
    vtable: &'static RawWakerVTable,
    host: u32,
}

/// How many entries a chunk of the task table holds.
const CHUNK: usize = 1024;

/// The tasks of one loop that have suspended at least once and not yet ended: what the loop
/// needs to list blocked tasks (deadlock), to cancel everything (close) and to cancel a crashed
/// host's tasks. A task that finishes in its first poll never touches it. Entries sit in
/// fixed-size chunks (growing copies at most the first); occupancy is a bitset, so a task's
/// end touches one bit of a small array, not its entry. Names live apart, since most tasks
/// have none.
#[derive(Default)]
pub(crate) struct TaskTable {
    chunks: Vec<Vec<TaskEntry>>,
    occupied: Vec<u64>,
    free: Vec<u32>,
    /// Slots handed out so far (occupied or free).
    slots: usize,
    live: usize,
    names: BTreeMap<u64, TaskName>,
}

impl TaskTable {
    /// Record a suspended task (which already holds a reference to itself); returns its slot.
    pub(crate) fn register(&mut self, id: u64, host: u32, waker: &Waker) -> u32 {
        let entry = TaskEntry {
            id,
            data: waker.data(),
            vtable: waker.vtable(),
            host,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                let slot_index = slot as usize;
                self.chunks[slot_index / CHUNK][slot_index % CHUNK] = entry;
                slot
            }
            None => {
                let slot = u32::try_from(self.slots)
                    .ok()
                    .filter(|&slot| slot != UNREGISTERED)
                    .expect("task invariant: fewer than 2^32 - 1 suspended tasks");
                if self.slots % CHUNK == 0 {
                    // The first chunk starts small and grows (a short run has a handful of
                    // tasks, and a 32 KiB allocation per run cost more than the run's tasks);
                    // the later ones, for long runs, are allocated whole.
                    let capacity = if self.chunks.is_empty() { 16 } else { CHUNK };
                    self.chunks.push(Vec::with_capacity(capacity));
                    self.occupied.resize(self.occupied.len() + CHUNK / 64, 0);
                    if self.chunks.len() == 1 {
                        // Tasks end as they start; a freed slot list grown one push at a time
                        // would reallocate a few times in every short run.
                        self.free.reserve(64);
                    }
                }
                self.chunks
                    .last_mut()
                    .expect("a chunk with room")
                    .push(entry);
                self.slots += 1;
                slot
            }
        };
        self.occupied[slot as usize / 64] |= 1 << (slot % 64);
        self.live += 1;
        slot
    }

    /// Forget a task that ended (before it releases its reference to itself).
    pub(crate) fn unregister(&mut self, slot: u32) {
        let (word, bit) = (slot as usize / 64, 1u64 << (slot % 64));
        debug_assert!(
            self.occupied[word] & bit != 0,
            "task invariant: slot {slot} is occupied"
        );
        self.occupied[word] &= !bit;
        self.free.push(slot);
        self.live -= 1;
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

    /// How many suspended tasks are alive.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    fn entries(&self) -> impl Iterator<Item = &TaskEntry> {
        self.occupied
            .iter()
            .enumerate()
            .flat_map(move |(word_index, &word)| {
                // The set bits of `word`, lowest first.
                std::iter::successors((word != 0).then_some(word), |rest| {
                    let rest = rest & (rest - 1);
                    (rest != 0).then_some(rest)
                })
                .map(move |rest| {
                    let slot = word_index * 64 + rest.trailing_zeros() as usize;
                    &self.chunks[slot / CHUNK][slot % CHUNK]
                })
            })
    }

    /// (id, name) of every suspended task, by id.
    pub(crate) fn list(&self) -> Vec<(TaskId, String)> {
        let mut tasks: Vec<_> = self
            .entries()
            .map(|entry| (TaskId(entry.id), self.name(entry.id)))
            .collect();
        tasks.sort();
        tasks
    }

    /// An owned waker for every suspended task (to cancel them all when the loop closes), or
    /// for those of one host (when it crashes).
    pub(crate) fn wakers(&self, host: Option<u32>) -> Vec<Waker> {
        self.entries()
            .filter(|entry| host.is_none_or(|host| entry.host == host))
            .map(|entry| {
                // SAFETY: an occupied entry's task is alive (see `TaskEntry`); the borrowed
                // waker is wrapped so it is not dropped, and the clone takes a reference.
                let borrowed = ManuallyDrop::new(unsafe {
                    Waker::from_raw(RawWaker::new(entry.data, entry.vtable))
                });
                Waker::clone(&borrowed)
            })
            .collect()
    }
}

pub(crate) fn display_name(id: u64, name: Option<&TaskName>) -> String {
    match name {
        Some(name) => name.as_str().to_string(),
        None => format!("Task-{id}"),
    }
}

/// The ready queue, oldest first, and the task table: the executor state of one loop.
pub(crate) struct Executor {
    pub(crate) loop_id: u32,
    pub(crate) ready: RefCell<VecDeque<Ready>>,
    pub(crate) tasks: RefCell<TaskTable>,
    next_id: Cell<u64>,
    /// The task being polled, if any.
    pub(crate) current: Cell<Option<u64>>,
    /// The host of the task being polled (0, `main`, between polls).
    pub(crate) current_host: Cell<u32>,
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

    /// Create a task and queue it; returns its id and handle.
    #[inline(always)]
    pub(crate) fn spawn<F>(
        &self,
        future: F,
        name: Option<TaskName>,
        traced: bool,
        (host, incarnation): (u32, u16),
    ) -> (u64, JoinHandle<F::Output>)
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let mut flags = if traced { TRACED } else { 0 };
        if let Some(name) = name {
            self.tasks.borrow_mut().set_name(id, name);
            flags |= NAMED;
        }
        let meta = TaskMeta {
            id,
            loop_id: self.loop_id,
            slot: Cell::new(UNREGISTERED),
            flags: Cell::new(flags),
            host,
            incarnation,
            self_waker: Cell::new(None),
            tail_lines: Cell::new(0),
        };
        let builder = Builder::new().metadata(meta).propagate_panic(false);
        // SAFETY: the three conditions of `spawn_unchecked`:
        // - The future may be !Send, so its Runnable must be run and dropped on this thread.
        //   Runnables only ever sit in this thread's loop (`runtime::deliver` queues a woken
        //   task only on a loop registered on the waking thread, and leaks it otherwise), and
        //   loops never leave their thread (they hold `Rc`s).
        // - The future borrows only its own metadata, which lives as long as the task.
        // - `schedule` is a plain function: Send, Sync and 'static.
        let (runnable, task) = unsafe {
            builder.spawn_unchecked(
                move |meta: &TaskMeta| TaskFuture { future, meta },
                WithInfo(schedule),
            )
        };
        self.ready.borrow_mut().push_back(Ready::new(runnable));
        (
            id,
            JoinHandle {
                task: Some(task.fallible()),
                id,
            },
        )
    }
}

/// async-task's schedule function: hand the runnable to the loop it belongs to.
fn schedule(runnable: TaskRunnable, _info: ScheduleInfo) {
    runtime::deliver(runnable);
}

/// Wraps every task's future so the loop learns when the task ends, however it ends: its
/// drop (after completion, on cancellation, or while a panic unwinds) tells the loop.
struct TaskFuture<'meta, F> {
    future: F,
    meta: &'meta TaskMeta,
}

impl<F> Drop for TaskFuture<'_, F> {
    fn drop(&mut self) {
        runtime::task_ended(self.meta);
    }
}

impl<F: Future> Future for TaskFuture<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: `future` is structurally pinned; `meta` is a shared reference.
        let this = unsafe { self.get_unchecked_mut() };
        let future = unsafe { Pin::new_unchecked(&mut this.future) };
        let poll = future.poll(cx);
        let meta = this.meta;
        if poll.is_ready() {
            meta.flags.set(meta.flags.get() | COMPLETED);
        } else if meta.slot.get() == UNREGISTERED {
            meta.note_tail(std::ptr::from_ref(this).addr() + std::mem::size_of::<Self>());
            runtime::task_suspended(meta, cx.waker());
        }
        poll
    }
}

/// The error of awaiting a task that did not finish: it was aborted, or its loop closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinError {
    task: TaskId,
}

impl JoinError {
    /// Always true: the only way a simulated task fails to finish is cancellation (a panic
    /// ends the whole run instead).
    pub fn is_cancelled(&self) -> bool {
        true
    }

    /// The task that was cancelled.
    pub fn task(&self) -> TaskId {
        self.task
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task {} was cancelled", self.task)
    }
}

impl std::error::Error for JoinError {}

/// A handle to a spawned task: await it for the task's result.
///
/// Dropping the handle detaches the task, which keeps running (as in asyncio); [`abort`]
/// cancels it.
///
/// [`abort`]: JoinHandle::abort
#[must_use = "dropping a JoinHandle detaches the task; call .detach() to make that explicit"]
pub struct JoinHandle<T> {
    task: Option<FallibleTask<T, TaskMeta>>,
    id: u64,
}

impl<T> JoinHandle<T> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        TaskId(self.id)
    }

    /// Cancel the task: its future is dropped the next time the loop gets to it, and
    /// awaiting this handle yields a [`JoinError`]. A task that already finished keeps its
    /// result.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = roof::EventLoop::new();
    /// let result = lp.run_until_complete(async {
    ///     let mut handle = roof::spawn(roof::sleep(Duration::from_secs(10)));
    ///     handle.abort();
    ///     handle.await
    /// }).unwrap();
    /// assert!(result.unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&mut self) {
        if self.task.as_ref().is_some_and(|task| !task.is_finished()) {
            drop(self.task.take());
        }
    }

    /// Let the task run on with nobody waiting for it.
    pub fn detach(mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }

    /// Whether the task has finished (or been cancelled).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|task| task.is_finished())
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("id", &self.id).finish()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let id = self.id;
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(Err(JoinError { task: TaskId(id) }));
        };
        match Pin::new(task).poll(cx) {
            Poll::Ready(Some(value)) => Poll::Ready(Ok(value)),
            Poll::Ready(None) => Poll::Ready(Err(JoinError { task: TaskId(id) })),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Spawn a task on the running loop; the tokio name for asyncio's `create_task`.
///
/// Panics outside a running [`EventLoop`](crate::EventLoop).
///
/// ```
/// let lp = roof::EventLoop::new();
/// let sum = lp.run_until_complete(async {
///     let a = roof::spawn(async { 20 });
///     let b = roof::spawn(async { 22 });
///     a.await.unwrap() + b.await.unwrap()
/// }).unwrap();
/// assert_eq!(sum, 42);
/// ```
#[doc(alias = "create_task")]
#[inline(always)]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    runtime::running().spawn(future, None)
}

/// Spawn a named task on the running loop; the name shows in traces and reports.
pub fn spawn_named<F>(name: impl Into<Cow<'static, str>>, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    let name = name.into();
    runtime::running().spawn(future, Some(TaskName::from(name)))
}

/// The id of the task being polled, if any.
pub fn current_task() -> Option<TaskId> {
    runtime::try_with(|kernel| kernel.exec.current.get().map(TaskId)).flatten()
}

/// Give the other ready tasks a turn: this task goes to the back of the ready queue.
///
/// ```
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).policy(roof::Policy::Fifo));
/// let order = lp.run_until_complete(async {
///     let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
///     let other = { let log = log.clone(); roof::spawn(async move { log.borrow_mut().push("other") }) };
///     roof::yield_now().await;
///     log.borrow_mut().push("main");
///     other.await.unwrap();
///     log.take()
/// }).unwrap();
/// assert_eq!(order, ["other", "main"]);
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`].
#[must_use = "yield_now does nothing unless awaited"]
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::TaskMeta;

    #[test]
    fn task_metadata_keeps_its_size() {
        // The header's size decides async-task's allocation size for small tasks; the
        // prefetch hint fits in padding.
        assert!(std::mem::size_of::<TaskMeta>() <= 40);
    }

    #[test]
    fn a_large_future_records_where_it_ends() {
        // A task with a large future suspends and finishes (its tail noted on the way).
        let result = crate::EventLoop::new().run_until_complete(async {
            let task = crate::spawn(async {
                let buffer = [7u8; 2048];
                crate::sleep(std::time::Duration::from_millis(1)).await;
                buffer.iter().map(|&byte| u64::from(byte)).sum::<u64>()
            });
            task.await.unwrap()
        });
        assert_eq!(result.unwrap(), 7 * 2048);
        let meta = TaskMeta {
            id: 1,
            loop_id: 1,
            slot: std::cell::Cell::new(super::UNREGISTERED),
            flags: std::cell::Cell::new(0),
            tail_lines: std::cell::Cell::new(0),
            host: 0,
            incarnation: 0,
            self_waker: std::cell::Cell::new(None),
        };
        let start = std::ptr::from_ref(&meta).addr();
        meta.note_tail(start + 100);
        assert_eq!(meta.tail_lines.get(), 0, "within the first four lines");
        meta.note_tail(start + 2048 + 64);
        assert_eq!(meta.tail_lines.get(), 32, "the line of the last byte");
        meta.note_tail(start + (1 << 20));
        assert_eq!(
            meta.tail_lines.get(),
            32,
            "too far: the hint stays as it was"
        );
    }
}
