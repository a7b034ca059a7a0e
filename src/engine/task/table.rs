//! The task table (the live tasks of one loop, their names) and loop tags (how a waker
//! finds its task's loop).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;

use super::{TaskMeta, LIVE_TASKS_MAX};
use crate::engine::id::TaskId;

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

/// A live task's entry: a waker, which keeps the task (and so its metadata) alive as long as
/// the entry. The metadata is found from the waker (16 bytes an entry, not 24: a million
/// tasks, 8 MB).
struct TaskEntry {
    waker: Waker,
}

impl TaskEntry {
    /// The task's metadata: `offset` bytes from the waker's data pointer (async-task's
    /// waker points at the task's header; [`TaskTable::fill`] checks the offset for every
    /// task it takes in).
    fn meta(&self, offset: usize) -> &TaskMeta {
        let meta = self
            .waker
            .data()
            .cast::<u8>()
            .wrapping_add(offset)
            .cast::<TaskMeta>();
        // SAFETY: `fill` took this entry in only after checking that the task's metadata
        // lies at exactly this address (`offset` from this very waker's data pointer); the
        // waker holds a reference to the task, so its header (with the metadata) lives as
        // long as the entry; the metadata is only read through shared references (its one
        // mutable part is atomic), and it is byte-aligned.
        unsafe { &*meta }
    }
}

/// Entries a chunk of the task table holds: the table grows a chunk at a time, never
/// copying the entries it has. 8,192 entries are 128 KiB, malloc's threshold for a mapping
/// of its own: freeing a smaller chunk past 64 KiB makes malloc consolidate every small free
/// block it holds (spawn-join: 5% of its instructions, at the loop's drop).
const CHUNK: usize = 8192;

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
    /// Bounds (lowest, highest) of the ids ever named, `None` before the first: most tasks
    /// have no name, and an id outside them is not looked up at its end.
    named_ids: Option<(u64, u64)>,
    /// Where a task's metadata lies from its waker's data pointer (the same for every task:
    /// async-task's header layout for [`TaskMeta`]); learnt from the first task.
    meta_offset: Option<usize>,
}

impl TaskTable {
    /// A slot for a task about to be spawned.
    pub(super) fn reserve(&mut self) -> u32 {
        if let Some(slot) = self.free.pop() {
            return slot;
        }
        assert!(
            self.slots < LIVE_TASKS_MAX,
            "roof: more than {LIVE_TASKS_MAX} tasks alive at once in one event loop"
        );
        let slot = self.slots as u32;
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
            crate::engine::hint::prefetch(chunk.as_ptr().wrapping_add(slot % CHUNK).cast());
        }
    }

    /// Take in the task whose metadata is `meta` and whose waker is `waker`.
    pub(super) fn fill(&mut self, slot: u32, meta: &TaskMeta, waker: Waker) {
        let offset = (std::ptr::from_ref(meta) as usize).wrapping_sub(waker.data() as usize);
        let expected = *self.meta_offset.get_or_insert(offset);
        // `TaskEntry::meta` relies on this, for every entry.
        assert_eq!(
            offset, expected,
            "task invariant: async-task's waker points at the task's header"
        );
        *self.entry_mut(slot) = Some(TaskEntry { waker });
        self.live += 1;
    }

    fn meta_of<'a>(&self, entry: &'a TaskEntry) -> &'a TaskMeta {
        entry.meta(self.meta_offset.unwrap_or(0))
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
        let (low, high) = self.named_ids.unwrap_or((id, id));
        self.named_ids = Some((low.min(id), high.max(id)));
    }

    /// Forget a task's name. The name of a task that ended by panicking is kept until
    /// [`take_name`](TaskTable::take_name) reads it for the failure report.
    pub(crate) fn forget_name(&mut self, id: u64) {
        // Most tasks have no name: spare them the map's search (spawn-join, with one named
        // task, spent 2.5% of its instructions here, then 1.8% reading the map's two ends).
        if self
            .named_ids
            .is_some_and(|(low, high)| (low..=high).contains(&id))
        {
            self.names.remove(&id);
        }
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
                let id = self.meta_of(entry).id();
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
            .filter(|entry| host.is_none_or(|host| self.meta_of(entry).host() == host))
            .map(|entry| {
                self.meta_of(entry).cancel();
                entry.waker.clone()
            })
            .collect()
    }

    /// Mark the live task whose metadata is `meta` cancelled (an abort) and return its waker;
    /// `None` if it is gone (its slot empty or another task's) or was cancelled already.
    pub(crate) fn cancel_one(&self, meta: &TaskMeta) -> Option<Waker> {
        let entry = self.live_entry(meta)?;
        meta.cancel();
        Some(entry.waker.clone())
    }

    /// Request a cancellation of the live task whose metadata is `meta` (asyncio's
    /// `Task.cancel()`) and return its waker; `None` if it is gone or cancelled already.
    pub(crate) fn request_cancel_one(&self, meta: &TaskMeta) -> Option<Waker> {
        let entry = self.live_entry(meta)?;
        meta.request_cancel();
        Some(entry.waker.clone())
    }

    /// The entry of the live task whose metadata is `meta`, unless it is cancelled already.
    fn live_entry(&self, meta: &TaskMeta) -> Option<&TaskEntry> {
        let entry = self.entry(meta.slot())?;
        if !std::ptr::eq(self.meta_of(entry), meta) || meta.is_cancelled() {
            return None;
        }
        Some(entry)
    }
}

/// The most event loops alive at once in a process (a task carries its loop's 16-bit tag).
pub(crate) const LOOPS_MAX: usize = u16::MAX as usize;

/// Tags free for a new loop, and the next never used.
struct LoopTags {
    next: u16,
    free: Vec<u16>,
}

/// The tags of the process's live loops.
static LOOP_TAGS: Mutex<LoopTags> = Mutex::new(LoopTags {
    next: 1,
    free: Vec::new(),
});

fn loop_tags() -> MutexGuard<'static, LoopTags> {
    // The pool stays consistent whatever panicked while holding the lock.
    LOOP_TAGS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A loop's tag: how a waker finds its task's loop (the running one, another of the
/// thread, or a real loop's mailbox). Unique among live loops; returned to the pool when
/// the loop goes, unless it left suspended tasks behind (then their tag is never given
/// again, so a stray waker of theirs never finds another loop).
pub(crate) struct LoopTag(u16);

impl LoopTag {
    /// A tag no live loop has. Panics, naming the limit, with [`LOOPS_MAX`] loops alive.
    pub(crate) fn take() -> LoopTag {
        let mut tags = loop_tags();
        if let Some(tag) = tags.free.pop() {
            return LoopTag(tag);
        }
        let tag = tags.next;
        assert!(
            tag != 0,
            "roof: more than {LOOPS_MAX} event loops alive at once in this process"
        );
        tags.next = tag.wrapping_add(1);
        LoopTag(tag)
    }

    pub(crate) fn get(&self) -> u16 {
        self.0
    }

    /// Never give this tag again.
    pub(super) fn leak(&mut self) {
        self.0 = 0;
    }
}

impl Drop for LoopTag {
    fn drop(&mut self) {
        if self.0 != 0 {
            loop_tags().free.push(self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{LoopTag, TaskName, TaskTable};

    /// A name is forgotten at its task's end, whichever ids around it are named or not, and
    /// a task without one ends without touching the others'.
    #[test]
    fn an_ended_task_takes_its_own_name_only() {
        let mut table = TaskTable::default();
        table.forget_name(3);
        for id in [5, 9, 7] {
            table.set_name(id, TaskName::Static("named"));
        }
        for id in [1, 6, 8, 10, 4_000_000] {
            table.forget_name(id);
        }
        assert_eq!(table.names.len(), 3);
        table.forget_name(7);
        assert_eq!(table.name(7), "Task-7");
        assert_eq!(table.name(9), "named");
        table.forget_name(9);
        table.forget_name(5);
        assert!(table.names.is_empty());
        table.set_name(2, TaskName::Static("later"));
        assert_eq!(table.take_name(2), "later");
    }

    /// A leaked tag (its loop left suspended tasks behind, whose stray wakers must not find
    /// another loop) is never given again. (That dropped tags are reused is
    /// `tasks::more_loops_than_tags_over_a_process_life_each_find_their_tasks`.)
    #[test]
    fn a_leaked_tag_is_never_given_again() {
        let mut leaked = LoopTag::take();
        let gone = leaked.get();
        leaked.leak();
        drop(leaked);
        let held: Vec<LoopTag> = (0..1000).map(|_| LoopTag::take()).collect();
        assert!(held.iter().all(|tag| tag.get() != gone && tag.get() != 0));
    }
}
