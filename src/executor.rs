//! Tasks: spawning, join handles, the ready queue and the table of live tasks.
//!
//! A task is one allocation: a header (`TaskMeta`: its state, its loop, per-run id, host and
//! slot in the task table, how to poll it) followed by its future, later its output. The loop
//! owns the future and the join handle shares the allocation; both live on the loop's
//! thread, so nothing in a task is atomic. A waker names the task's table slot and the slot's
//! generation instead of pointing to it (`WakeKey`): cloning and dropping one counts nothing,
//! a stale one wakes nothing, and one woken on another thread (async-io's reactor, for a real
//! loop) is only posted to the loop's mailbox. Waking a task pushes it to the back of the
//! ready queue; the scheduler ([`crate::sched`]) picks which ready task runs next. The table
//! also lists blocked tasks by name (deadlock reports) and lets the loop cancel every task
//! when it closes, or a crashed host's.
//!
//! Dropping a [`JoinHandle`] detaches the task, as asyncio keeps tasks alive; `abort` cancels.

use std::alloc::Layout;
use std::borrow::Cow;
use std::cell::{Cell, RefCell, UnsafeCell};
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::{pool, runtime};

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

/// A task's state. Its scheduling bits sit in its task-table entry, where a wakeup finds
/// them without touching the task; its lifetime bits sit in its header
/// ([`TaskMeta::state`]), where the join handle finds them after the entry is gone.
mod state {
    /// In the ready queue, or to be queued again when its running poll ends (table entry).
    pub(super) const SCHEDULED: u8 = 1;
    /// Being polled (table entry).
    pub(super) const RUNNING: u8 = 2;
    /// Its future returned; the output waits in the cell until taken or dropped.
    pub(super) const DONE: u8 = 4;
    /// Cancelled, or its output taken or dropped: never polled again.
    pub(super) const CLOSED: u8 = 8;
    /// A [`JoinHandle`](super::JoinHandle) refers to the task.
    pub(super) const HANDLE: u8 = 16;
    /// Its future has been dropped: the loop is done with it.
    pub(super) const DROPPED: u8 = 32;
}

use state::{CLOSED, DONE, DROPPED, HANDLE, RUNNING, SCHEDULED};

/// What every task carries at the start of its allocation: its state, how to poll and drop
/// its future, who awaits it, and which loop, run id, table slot and host it belongs to.
///
/// The loop and the join handle share the allocation (a task is one allocation, future and
/// all); both only ever touch it from the loop's thread. Wakers do not point to it: a waker
/// names the task's slot in its loop's table (see [`WakeKey`]), so waking, cloning and
/// dropping a waker count no references.
#[repr(C)]
pub(crate) struct TaskMeta {
    /// [`DONE`], [`CLOSED`], [`HANDLE`], [`DROPPED`].
    state: Cell<u8>,
    /// [`COMPLETED`], [`TRACED`], [`NAMED`] and [`PANICKED`].
    pub(crate) flags: Cell<u8>,
    /// Where the task's future ends, in 64-byte lines from the start of the task (0 when within
    /// the first four lines): a prefetch hint. A future's state flag often sits at its end,
    /// past a large buffer.
    pub(crate) tail_lines: Cell<u8>,
    /// The host's incarnation when the task was spawned: a crash starts a new one, and a
    /// task of an older incarnation is cancelled instead of run. (Sixteen bits keep the header
    /// small; it wraps, harmlessly: a crash wakes and drops every task of the old incarnation.)
    pub(crate) incarnation: u16,
    /// The loop the task belongs to.
    pub(crate) loop_id: u32,
    /// The per-run task id.
    pub(crate) id: u64,
    /// The task's slot in the task table while its future lives ([`UNREGISTERED`] after).
    pub(crate) slot: Cell<u32>,
    /// The slot's generation when the task took it, truncated: its wakers' key.
    generation: Cell<u16>,
    /// The host the task runs on.
    pub(crate) host: u32,
    /// How to poll, drop and free this task's future and output.
    vtable: &'static TaskVTable,
    /// The waker of whoever awaits the task's [`JoinHandle`].
    awaiter: Cell<Option<Waker>>,
}

/// `TaskMeta::slot` of a task whose future was dropped.
pub(crate) const UNREGISTERED: u32 = u32::MAX;
/// The task's future returned a value.
pub(crate) const COMPLETED: u8 = 1;
/// The task's loop records a trace.
pub(crate) const TRACED: u8 = 2;
/// The task has a name in the table's name map.
pub(crate) const NAMED: u8 = 4;
/// The task's poll panicked: its end is the loop's failure, not a traced cancellation, and
/// its name stays for the report.
pub(crate) const PANICKED: u8 = 8;

impl TaskMeta {
    /// Record where the task's allocation ends (its address just past the end).
    fn note_tail(&self, end: usize) {
        let last = end.saturating_sub(std::ptr::from_ref(self).addr() + 1) / 64;
        if let Ok(lines @ 4..) = u8::try_from(last) {
            self.tail_lines.set(lines);
        }
    }

    /// Start loading the task's header and the first lines of its future, without reading
    /// them. A hint only.
    #[inline(always)]
    pub(crate) fn prefetch_head(&self) {
        let meta = std::ptr::from_ref(self).cast::<u8>();
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

    fn is(&self, bits: u8) -> bool {
        self.state.get() & bits != 0
    }

    fn set(&self, bits: u8) {
        self.state.set(self.state.get() | bits);
    }

    fn clear(&self, bits: u8) {
        self.state.set(self.state.get() & !bits);
    }

    /// Take the awaiter's waker, unless it is `current` (who is polling the handle now).
    fn take_awaiter(&self, current: Option<&Waker>) -> Option<Waker> {
        let awaiter = self.awaiter.take()?;
        match current {
            Some(current) if awaiter.will_wake(current) => None,
            _ => Some(awaiter),
        }
    }

    /// Wake whoever awaits the task: it finished, or its future was dropped.
    fn notify_awaiter(&self) {
        if let Some(awaiter) = self.take_awaiter(None) {
            awaiter.wake();
        }
    }
}

/// How to reach the parts of one kind of task whose types only its spawn knows.
struct TaskVTable {
    /// Poll the future. When it is ready: end the task (`runtime::task_ended`), drop the
    /// future and keep the output; returns true.
    poll: unsafe fn(NonNull<TaskMeta>, &mut Context<'_>) -> bool,
    /// Drop whatever the cell holds (the future or the output).
    clear: unsafe fn(NonNull<TaskMeta>),
    /// Move the output into `*out` (an `Option<Output>`).
    take_output: unsafe fn(NonNull<TaskMeta>, *mut ()),
    /// Free the allocation.
    free: unsafe fn(NonNull<TaskMeta>),
}

/// What a task's allocation holds after its header.
enum Stage<F: Future> {
    Running(F),
    Finished(F::Output),
    Empty,
}

/// A task's allocation: the header first, so a pointer to one is a pointer to the other.
#[repr(C)]
struct TaskCell<F: Future> {
    meta: TaskMeta,
    stage: UnsafeCell<Stage<F>>,
}

impl<F: Future + 'static> TaskCell<F> {
    const VTABLE: TaskVTable = TaskVTable {
        poll: Self::poll,
        clear: Self::clear,
        take_output: Self::take_output,
        free: Self::free,
    };

    /// # Safety
    /// `task` is a live `TaskCell<F>`, polled on its loop's thread, not re-entrantly.
    unsafe fn poll(task: NonNull<TaskMeta>, cx: &mut Context<'_>) -> bool {
        // SAFETY: the caller's contract; nothing else borrows the stage during a poll.
        let cell = unsafe { task.cast::<TaskCell<F>>().as_ref() };
        let Stage::Running(future) = (unsafe { &mut *cell.stage.get() }) else {
            unreachable!("task invariant: only a running task is polled");
        };
        // SAFETY: the future is never moved: it is dropped in place (see `clear`).
        match unsafe { Pin::new_unchecked(future) }.poll(cx) {
            Poll::Ready(output) => {
                let meta = &cell.meta;
                meta.flags.set(meta.flags.get() | COMPLETED);
                // The task ends before its future is dropped, as the future's locals may
                // close sockets: the trace shows the end first.
                runtime::task_ended(meta);
                unsafe {
                    Self::clear(task);
                    cell.stage.get().write(Stage::Finished(output));
                }
                true
            }
            Poll::Pending => false,
        }
    }

    /// # Safety
    /// `task` is a live `TaskCell<F>` whose stage nobody borrows.
    unsafe fn clear(task: NonNull<TaskMeta>) {
        /// Leaves the stage empty even if dropping what it held panics (what the drop did not
        /// reach is leaked, never dropped twice).
        struct Empty<F: Future>(*mut Stage<F>);
        impl<F: Future> Drop for Empty<F> {
            fn drop(&mut self) {
                // SAFETY: the stage's old value was dropped (or abandoned) just before.
                unsafe { self.0.write(Stage::Empty) }
            }
        }
        let stage = unsafe { task.cast::<TaskCell<F>>().as_ref() }.stage.get();
        let empty = Empty(stage);
        // In place: a future is pinned, and its drop may read pointers into itself.
        unsafe { std::ptr::drop_in_place(stage) };
        drop(empty);
    }

    /// # Safety
    /// `task` is a live `TaskCell<F>` and `out` points to an `Option<F::Output>`.
    unsafe fn take_output(task: NonNull<TaskMeta>, out: *mut ()) {
        let cell = unsafe { task.cast::<TaskCell<F>>().as_ref() };
        if let Stage::Finished(output) =
            std::mem::replace(unsafe { &mut *cell.stage.get() }, Stage::Empty)
        {
            unsafe { *out.cast::<Option<F::Output>>() = Some(output) };
        }
    }

    /// # Safety
    /// `task` came from [`TaskCell::allocate`] with this `F`, and is not used afterwards.
    unsafe fn free(task: NonNull<TaskMeta>) {
        let cell = task.cast::<TaskCell<F>>();
        unsafe {
            std::ptr::drop_in_place(cell.as_ptr());
            pool::dealloc(cell.cast(), Layout::new::<TaskCell<F>>());
        }
    }

    /// Move a new task into a cell from the task pool.
    fn allocate(cell: TaskCell<F>) -> NonNull<TaskCell<F>> {
        let memory = pool::alloc(Layout::new::<TaskCell<F>>()).cast::<TaskCell<F>>();
        // SAFETY: fresh memory with the cell's layout.
        unsafe { memory.as_ptr().write(cell) };
        memory
    }
}

/// A task's allocation, as the loop and the join handle see it: a pointer to its header.
///
/// The allocation lives while the loop may still drop the future (until [`DROPPED`]) or a
/// handle refers to it ([`HANDLE`]); the last of the two to let go frees it. A task in the
/// ready queue has not been dropped: its future is dropped only once it leaves the queue.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskRef(NonNull<TaskMeta>);

impl TaskRef {
    pub(crate) fn meta(&self) -> &TaskMeta {
        // SAFETY: a `TaskRef` is used only while its allocation lives (see the type's docs).
        unsafe { self.0.as_ref() }
    }

    /// Poll the task (it is `RUNNING`). Returns true when its future finished.
    ///
    /// # Safety
    /// On the loop's thread, not re-entrantly, with the task neither dropped nor done.
    unsafe fn poll(self, cx: &mut Context<'_>) -> bool {
        unsafe { (self.meta().vtable.poll)(self.0, cx) }
    }

    /// Free the allocation if neither the loop nor a handle needs it any more.
    fn release(self) {
        let meta = self.meta();
        if meta.is(DROPPED) && !meta.is(HANDLE) {
            // SAFETY: nobody refers to the task any more: its future was dropped, so it is in
            // no queue or table, and no handle is left.
            unsafe { (meta.vtable.free)(self.0) }
        }
    }

    /// Cancel the task: end it, drop its future (the task is neither running nor queued),
    /// wake its awaiter, and free it if no handle is left.
    pub(crate) fn cancel(self) {
        let meta = self.meta();
        if !meta.is(DROPPED) {
            meta.set(CLOSED);
            runtime::task_ended(meta);
            // SAFETY: the loop owns the future until `DROPPED`; nobody borrows it now.
            unsafe { (meta.vtable.clear)(self.0) };
            meta.set(DROPPED);
        }
        meta.notify_awaiter();
        self.release();
    }

    /// The task's poll panicked: drop its future as a panicking task (no trace, its name
    /// kept for the report), and wake its awaiter.
    pub(crate) fn abandon(self) {
        let meta = self.meta();
        meta.flags.set(meta.flags.get() | PANICKED);
        meta.set(CLOSED);
        runtime::task_ended(meta);
        // A future that panics again while dropped is left half dropped: the run has failed
        // already.
        let _ = panic::catch_unwind(AssertUnwindSafe(|| unsafe { (meta.vtable.clear)(self.0) }));
        meta.set(DROPPED);
        meta.notify_awaiter();
        self.release();
    }
}

/// A task in the ready queue, and an address its next poll will likely read first (the
/// connection a delivery woke it for), to prefetch before it runs: 0 for none. A hint only.
pub(crate) struct Ready {
    pub(crate) task: TaskRef,
    pub(crate) hint: usize,
}

impl Ready {
    pub(crate) fn new(task: TaskRef) -> Ready {
        Ready { task, hint: 0 }
    }
}

/// What a waker of a task names, packed into the waker's data word: the task's slot in its
/// loop's table, the slot's generation (a slot freed and reused gets a new one, so a waker
/// outliving its task wakes nothing), and the loop. Clones are copies; nothing is counted.
///
/// The generation and the loop are truncated (twelve and twenty-four bits): a waker kept past
/// 4,096 reuses of its slot, or past sixteen million loops, may wake an unrelated task of its
/// loop, which a future takes as a spurious wakeup. Never a dangling pointer: the key is only
/// looked up in the table of a live loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WakeKey(usize);

const SLOT_BITS: u32 = 28;
const GENERATION_BITS: u32 = 12;
const LOOP_BITS: u32 = 24;
const _: () = assert!(
    usize::BITS == SLOT_BITS + GENERATION_BITS + LOOP_BITS,
    "roof needs 64-bit pointers: a waker packs its task's key into one"
);

impl WakeKey {
    fn new(loop_id: u32, generation: u32, slot: u32) -> WakeKey {
        let loop_part = (loop_id as usize) & ((1 << LOOP_BITS) - 1);
        let generation = (generation as usize) & ((1 << GENERATION_BITS) - 1);
        WakeKey(
            loop_part << (SLOT_BITS + GENERATION_BITS) | generation << SLOT_BITS | slot as usize,
        )
    }

    /// Whether the key belongs to loop `loop_id`.
    pub(crate) fn is_of(self, loop_id: u32) -> bool {
        self.0 >> (SLOT_BITS + GENERATION_BITS) == (loop_id as usize) & ((1 << LOOP_BITS) - 1)
    }

    fn slot(self) -> u32 {
        (self.0 & ((1 << SLOT_BITS) - 1)) as u32
    }

    fn generation(self) -> u32 {
        ((self.0 >> SLOT_BITS) & ((1 << GENERATION_BITS) - 1)) as u32
    }

    /// The key of one of roof's task wakers; `None` for any other waker.
    pub(crate) fn of(waker: &Waker) -> Option<WakeKey> {
        std::ptr::eq(waker.vtable(), &WAKER_VTABLE).then(|| WakeKey(waker.data().addr()))
    }

    /// The waker that wakes this key's task.
    pub(crate) fn waker(self) -> Waker {
        // SAFETY: the vtable's functions treat the data word as a number, never a pointer,
        // and are safe to call from any thread (see `wake_key`).
        unsafe { Waker::from_raw(raw_waker(self.0)) }
    }
}

fn raw_waker(key: usize) -> RawWaker {
    RawWaker::new(std::ptr::without_provenance(key), &WAKER_VTABLE)
}

static WAKER_VTABLE: RawWakerVTable = RawWakerVTable::new(
    |data| raw_waker(data.addr()),
    |data| runtime::wake_key(WakeKey(data.addr())),
    |data| runtime::wake_key(WakeKey(data.addr())),
    |_| {},
);

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

/// A live task's entry: the task, the slot's generation (a waker's key must match it), and
/// the task's scheduling bits ([`SCHEDULED`], [`RUNNING`]).
struct TaskEntry {
    task: TaskRef,
    generation: u32,
    schedule: Cell<u8>,
}

/// How many entries a chunk of the task table holds.
const CHUNK: usize = 1024;

/// The tasks of one loop from their first poll until their future is dropped: where a
/// waker's key leads, and what the loop needs to list blocked tasks (deadlock), to cancel
/// everything (close) and to cancel a crashed host's tasks. Entries sit in fixed-size chunks
/// (growing copies at most the first); occupancy is a bitset. Names live apart, since most
/// tasks have none.
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
    /// Record a task just spawned (and queued); returns its slot and the slot's generation.
    pub(crate) fn register(&mut self, task: TaskRef) -> (u32, u32) {
        let (slot, generation) = match self.free.pop() {
            Some(slot) => {
                let slot_index = slot as usize;
                let entry = &mut self.chunks[slot_index / CHUNK][slot_index % CHUNK];
                entry.task = task;
                entry.schedule.set(SCHEDULED);
                (slot, entry.generation)
            }
            None => {
                let slot = u32::try_from(self.slots)
                    .ok()
                    .filter(|&slot| slot < 1 << SLOT_BITS)
                    .expect("task invariant: fewer than 2^28 live tasks");
                if self.slots % CHUNK == 0 {
                    // The first chunk starts small and grows (a short run has a handful of
                    // tasks, and a large allocation per run cost more than the run's tasks);
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
                    .push(TaskEntry {
                        task,
                        generation: 0,
                        schedule: Cell::new(SCHEDULED),
                    });
                self.slots += 1;
                (slot, 0)
            }
        };
        self.occupied[slot as usize / 64] |= 1 << (slot % 64);
        self.live += 1;
        (slot, generation)
    }

    /// Forget a task whose future is being dropped: its slot gets a new generation, so its
    /// wakers wake nothing.
    pub(crate) fn unregister(&mut self, slot: u32) {
        let slot_index = slot as usize;
        let (word, bit) = (slot_index / 64, 1u64 << (slot % 64));
        debug_assert!(
            self.occupied[word] & bit != 0,
            "task invariant: slot {slot} is occupied"
        );
        self.occupied[word] &= !bit;
        let entry = &mut self.chunks[slot_index / CHUNK][slot_index % CHUNK];
        entry.generation = entry.generation.wrapping_add(1);
        self.free.push(slot);
        self.live -= 1;
    }

    /// The entry of the live task a waker's key names, if it still lives.
    #[inline]
    fn lookup(&self, key: WakeKey) -> Option<&TaskEntry> {
        let slot = key.slot() as usize;
        let entry = self.chunks.get(slot / CHUNK)?.get(slot % CHUNK)?;
        let live = self.occupied[slot / 64] & (1 << (slot % 64)) != 0;
        let current = entry.generation & ((1 << GENERATION_BITS) - 1) == key.generation();
        (live && current).then_some(entry)
    }

    /// Start loading the entry a waker's key names (a wakeup reads it). A hint only: the
    /// entry's address is computed, nothing is read but the chunk list.
    #[inline]
    pub(crate) fn prefetch(&self, key: WakeKey) {
        let slot = key.slot() as usize;
        if let Some(chunk) = self.chunks.get(slot / CHUNK) {
            runtime::prefetch_address(chunk.as_ptr().wrapping_add(slot % CHUNK).cast());
        }
    }

    /// The entry of the live task in `slot`.
    #[inline]
    fn entry(&self, slot: u32) -> &TaskEntry {
        let slot = slot as usize;
        &self.chunks[slot / CHUNK][slot % CHUNK]
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

    /// How many tasks are registered (their futures not dropped).
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The occupied slots, lowest first, with their entries.
    fn entries(&self) -> impl Iterator<Item = (u32, &TaskEntry)> {
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
                    (slot as u32, &self.chunks[slot / CHUNK][slot % CHUNK])
                })
            })
    }

    /// (id, name) of every registered task, by id.
    pub(crate) fn list(&self) -> Vec<(TaskId, String)> {
        let mut tasks: Vec<_> = self
            .entries()
            .map(|(_, entry)| {
                let id = entry.task.meta().id;
                (TaskId(id), self.name(id))
            })
            .collect();
        tasks.sort();
        tasks
    }

    /// The keys of every registered task (to cancel them all when the loop closes), or of
    /// those of one host (when it crashes), by slot.
    pub(crate) fn keys(&self, loop_id: u32, host: Option<u32>) -> Vec<WakeKey> {
        self.entries()
            .filter(|(_, entry)| host.is_none_or(|host| entry.task.meta().host == host))
            .map(|(slot, entry)| WakeKey::new(loop_id, entry.generation, slot))
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
        let cell = TaskCell::allocate(TaskCell {
            meta: TaskMeta {
                state: Cell::new(HANDLE),
                flags: Cell::new(flags),
                tail_lines: Cell::new(0),
                incarnation,
                loop_id: self.loop_id,
                generation: Cell::new(0),
                id,
                slot: Cell::new(UNREGISTERED),
                host,
                vtable: &TaskCell::<F>::VTABLE,
                awaiter: Cell::new(None),
            },
            stage: UnsafeCell::new(Stage::Running(future)),
        });
        // The header is the cell's first field.
        let task = TaskRef(cell.cast::<TaskMeta>());
        let meta = task.meta();
        meta.note_tail(cell.as_ptr().addr() + std::mem::size_of::<TaskCell<F>>());
        let (slot, generation) = self.tasks.borrow_mut().register(task);
        meta.slot.set(slot);
        // Truncated as the key truncates it.
        meta.generation.set(generation as u16);
        self.ready.borrow_mut().push_back(Ready::new(task));
        (
            id,
            JoinHandle {
                task: Some(task),
                id,
                output: PhantomData,
            },
        )
    }

    /// The task a waker's key names was woken: returns it if it must join the ready queue
    /// now. A task already queued, finished or cancelled stays as it is; a running one is
    /// queued again when its poll ends.
    ///
    /// Reads the task's table entry only, not the task: a task in the table whose future
    /// lives and that is neither queued nor running can be neither done nor cancelled.
    #[inline]
    pub(crate) fn woken(&self, key: WakeKey) -> Option<TaskRef> {
        let tasks = self.tasks.borrow();
        let entry = tasks.lookup(key)?;
        let schedule = entry.schedule.get();
        if schedule & SCHEDULED != 0 {
            return None;
        }
        entry.schedule.set(schedule | SCHEDULED);
        if schedule & RUNNING != 0 {
            return None;
        }
        // It will be polled soon: start loading it (the wakeup itself did not touch it).
        entry.task.meta().prefetch_head();
        Some(entry.task)
    }

    /// Queue an idle task one last time, for its future to be dropped (it was aborted).
    /// Returns false if it is queued or running already.
    pub(crate) fn schedule_if_idle(&self, task: TaskRef) -> bool {
        let tasks = self.tasks.borrow();
        let entry = tasks.entry(task.meta().slot.get());
        let idle = entry.schedule.get() == 0;
        if idle {
            entry.schedule.set(SCHEDULED);
        }
        idle
    }

    /// Start loading the header of the task a waker's key names, if it lives (reads its
    /// table entry). A hint only.
    #[inline]
    pub(crate) fn prefetch_task(&self, key: WakeKey) {
        if let Some(entry) = self.tasks.borrow().lookup(key) {
            entry.task.meta().prefetch_head();
        }
    }

    /// Run a task taken from the ready queue: poll it, or drop the future of a task
    /// cancelled while it waited. Returns true when the task was woken during its poll and
    /// must join the ready queue again.
    pub(crate) fn run(&self, task: TaskRef) -> bool {
        let meta = task.meta();
        if meta.is(CLOSED) {
            task.cancel();
            return false;
        }
        let slot = meta.slot.get();
        self.tasks.borrow().entry(slot).schedule.set(RUNNING);
        let waker = WakeKey::new(self.loop_id, u32::from(meta.generation.get()), slot).waker();
        let mut cx = Context::from_waker(&waker);
        // SAFETY: on the loop's thread; the task came out of the ready queue, so it is
        // neither running nor dropped, and not done (a done task is never queued).
        let done = unsafe { task.poll(&mut cx) };
        if done {
            // Its table entry went with its future.
            meta.set(DONE | DROPPED);
            if !meta.is(HANDLE) || meta.is(CLOSED) {
                // Nobody will take the output.
                meta.set(CLOSED);
                // SAFETY: the future is gone; the output is not borrowed.
                unsafe { (meta.vtable.clear)(task.0) };
            }
            meta.notify_awaiter();
            task.release();
            return false;
        }
        if meta.is(CLOSED) {
            // Cancelled during its own poll.
            task.cancel();
            return false;
        }
        let tasks = self.tasks.borrow();
        let entry = tasks.entry(slot);
        let schedule = entry.schedule.get();
        entry.schedule.set(schedule & !RUNNING);
        schedule & SCHEDULED != 0
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // A loop dropped without closing: its queued tasks' futures are dropped here, on the
        // loop's thread, and those tasks freed. Suspended ones are leaked.
        while let Some(ready) = self.ready.get_mut().pop_front() {
            ready.task.cancel();
        }
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
    task: Option<TaskRef>,
    id: u64,
    output: PhantomData<fn() -> T>,
}

impl<T> JoinHandle<T> {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        TaskId(self.id)
    }

    /// Cancel the task: its future is dropped (never polled again) the next time the loop
    /// gets to it, and awaiting this handle then yields a [`JoinError`]. A task that already
    /// finished keeps its result.
    ///
    /// As with asyncio's `Task.cancel()`, the task is not finished at once:
    /// [`is_finished`](JoinHandle::is_finished) turns true, and `.await` resolves, only once
    /// the future has been dropped and its drop guards have run (asyncio: once its `finally`
    /// ran). Unlike asyncio's, the cancellation cannot be observed or refused by the task.
    ///
    /// ```
    /// use std::time::Duration;
    /// let lp = roof::EventLoop::new();
    /// let result = lp.run_until_complete(async {
    ///     let mut handle = roof::spawn(roof::sleep(Duration::from_secs(10)));
    ///     handle.abort();
    ///     assert!(!handle.is_finished(), "its future is dropped when the loop gets to it");
    ///     (&mut handle).await
    /// }).unwrap();
    /// assert!(result.unwrap_err().is_cancelled());
    /// ```
    pub fn abort(&mut self) {
        let Some(task) = self.task else {
            return;
        };
        let meta = task.meta();
        if meta.is(DONE | CLOSED) {
            return;
        }
        meta.set(CLOSED);
        // Queued one last time if idle, for the loop to drop its future; dropping it wakes
        // whoever awaits this handle.
        runtime::requeue(task);
    }

    /// Let the task run on with nobody waiting for it.
    pub fn detach(mut self) {
        if let Some(task) = self.task.take() {
            detach(task);
        }
    }

    /// Whether the task has finished: it returned, or it was cancelled and its future has
    /// been dropped.
    pub fn is_finished(&self) -> bool {
        // A future is dropped when it returns too: this is either.
        self.task.is_none_or(|task| task.meta().is(DROPPED))
    }
}

/// The handle lets go of its task: an output nobody took is dropped.
fn detach(task: TaskRef) {
    let meta = task.meta();
    meta.clear(HANDLE);
    if meta.is(DONE) && !meta.is(CLOSED) {
        meta.set(CLOSED);
        // SAFETY: the task is done, so the loop no longer touches its stage.
        unsafe { (meta.vtable.clear)(task.0) };
    }
    task.release();
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            detach(task);
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let cancelled = JoinError {
            task: TaskId(self.id),
        };
        let Some(task) = self.task else {
            return Poll::Ready(Err(cancelled));
        };
        let meta = task.meta();
        let waiting = if meta.is(CLOSED) {
            // Cancelled: done once its future is dropped.
            !meta.is(DROPPED)
        } else {
            !meta.is(DONE)
        };
        if waiting {
            match meta.awaiter.take() {
                Some(awaiter) if awaiter.will_wake(cx.waker()) => meta.awaiter.set(Some(awaiter)),
                _ => meta.awaiter.set(Some(cx.waker().clone())),
            }
            return Poll::Pending;
        }
        let mut output: Option<T> = None;
        if !meta.is(CLOSED) {
            meta.set(CLOSED);
            // SAFETY: the task is done and its output untaken; `T` is its future's output.
            unsafe { (meta.vtable.take_output)(task.0, (&raw mut output).cast()) };
        }
        if let Some(awaiter) = meta.take_awaiter(Some(cx.waker())) {
            awaiter.wake();
        }
        Poll::Ready(output.ok_or(cancelled))
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
    use super::{TaskMeta, WakeKey};

    #[test]
    fn task_metadata_keeps_its_size() {
        // The header comes first in every task's allocation: it stays within one line, and
        // the prefetch hint and the generation fit in padding.
        assert!(std::mem::size_of::<TaskMeta>() <= 64);
    }

    /// A future that records where it was first polled and checks, when dropped, that it
    /// was never moved since: futures are pinned, and a self-referential one (an async
    /// block borrowing its own locals) reads through such pointers in its drop.
    struct Pinned {
        polled_at: std::rc::Rc<std::cell::Cell<usize>>,
        dropped_at: std::rc::Rc<std::cell::Cell<usize>>,
    }

    impl std::future::Future for Pinned {
        type Output = ();

        fn poll(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            self.polled_at.set(std::ptr::from_ref(&*self).addr());
            std::task::Poll::Pending
        }
    }

    impl Drop for Pinned {
        fn drop(&mut self) {
            self.dropped_at.set(std::ptr::from_ref(&*self).addr());
        }
    }

    #[test]
    fn a_cancelled_future_is_dropped_where_it_was_polled() {
        for abort in [true, false] {
            let polled_at = std::rc::Rc::new(std::cell::Cell::new(0));
            let dropped_at = std::rc::Rc::new(std::cell::Cell::new(0));
            let event_loop =
                crate::EventLoop::with_config(crate::Config::new(0).policy(crate::Policy::Fifo));
            let future = Pinned {
                polled_at: polled_at.clone(),
                dropped_at: dropped_at.clone(),
            };
            event_loop
                .run_until_complete(async move {
                    let mut task = crate::spawn(future);
                    crate::yield_now().await;
                    if abort {
                        task.abort();
                        crate::yield_now().await;
                    } else {
                        task.detach();
                    }
                })
                .unwrap();
            // Aborted: dropped by the loop at once. Detached: dropped when the loop closes.
            drop(event_loop);
            assert_ne!(polled_at.get(), 0, "polled (abort: {abort})");
            assert_eq!(dropped_at.get(), polled_at.get(), "abort: {abort}");
        }
    }

    #[test]
    fn a_wake_key_keeps_slot_generation_and_loop_apart() {
        let key = WakeKey::new(0x0123_4567, 0xabcd, (1 << 28) - 1);
        assert_eq!(key.slot(), (1 << 28) - 1);
        assert_eq!(key.generation(), 0xbcd, "twelve bits of generation");
        assert!(key.is_of(0x0123_4567));
        assert!(key.is_of(0x8923_4567), "twenty-four bits of loop");
        assert!(!key.is_of(0x0123_4568));
        let waker = key.waker();
        assert!(
            waker.will_wake(&key.waker()),
            "the same key makes equal wakers"
        );
        assert!(!waker.will_wake(&WakeKey::new(0x0123_4567, 0xabce, 7).waker()));
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
            state: std::cell::Cell::new(0),
            flags: std::cell::Cell::new(0),
            tail_lines: std::cell::Cell::new(0),
            incarnation: 0,
            loop_id: 1,
            generation: std::cell::Cell::new(0),
            id: 1,
            slot: std::cell::Cell::new(super::UNREGISTERED),
            host: 0,
            vtable: &super::TaskCell::<std::future::Ready<()>>::VTABLE,
            awaiter: std::cell::Cell::new(None),
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
