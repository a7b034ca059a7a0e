//! The timer queue: a hierarchical timing wheel over integer nanoseconds.
//!
//! # The algorithm
//! Eleven levels of 64 slots cover the whole `u64` nanosecond range; a slot at level `L`
//! spans `64^L` ns. A timer goes to the level of the highest 6-bit digit in which its
//! deadline differs from the wheel's `elapsed` time, in the slot of that digit, so every timer
//! of a lower level is due before every timer of a higher one. Finding the next timer reads a
//! bitmap of non-empty levels and that level's bitmap of occupied slots; reaching a slot above
//! level 0 moves `elapsed` to the slot's start and *cascades* its timers down; reaching a
//! level-0 slot yields timers with one exact deadline, which fire in creation order. A timer
//! moves at most ten times, through short sequential vectors, and carries its payload along,
//! so firing it reads nothing but the entry: no sift through a large heap, no lookup in a
//! side table.
//!
//! A timer whose deadline is already behind `elapsed` (`sleep_until` a past instant, or a
//! deadline set after the loop looked ahead to the next one) goes to a small binary heap of
//! overdue timers, so order stays exactly (deadline, creation order).
//!
//! The next few timers sit in `soon`, a short sorted list: the contents of a slot with few
//! timers, or, while the wheel is empty, every timer (a loop with a handful of timers never
//! touches the wheel). When it grows past 64 the later half spills back into the wheel.
//!
//! Cancellation is O(1): it clears the timer's bit in a small bitset, and the entry becomes a
//! tombstone, retired when it surfaces (its payload is handed back through `take_garbage`, to
//! be dropped outside any borrow). When tombstones outnumber armed timers they are all swept
//! at once. A slot records which sequence number owns it, so a stale key never cancels a newer
//! timer.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::id::Instant;

/// Bits of deadline per wheel level.
const BITS: usize = 6;
/// Slots per level.
const SLOTS: usize = 1 << BITS;

/// Identifies one armed timer (and its place in creation order) for cancellation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    slot: u32,
    /// Creation sequence number: unique per run, the tie-breaker for equal deadlines.
    pub(crate) seq: u64,
}

impl TimerKey {
    /// The timer's slot: unique among armed timers (and those cancelled but not yet retired),
    /// so a caller can keep data about the timer by it.
    pub(crate) fn slot(self) -> u32 {
        self.slot
    }
}

/// A timer in the heap: its order, its slot (for liveness) and its payload, carried along so
/// that firing reads nothing but the entry itself.
struct Entry<T> {
    deadline: u64,
    seq: u64,
    slot: u32,
    item: T,
}

impl<T> Entry<T> {
    fn order(&self) -> (u64, u64) {
        (self.deadline, self.seq)
    }
}

/// Overdue entries, ordered by (deadline, seq) for the binary heap.
struct ByOrder<T>(Entry<T>);

impl<T> PartialEq for ByOrder<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.order() == other.0.order()
    }
}

impl<T> Eq for ByOrder<T> {}

impl<T> PartialOrd for ByOrder<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl<T> Ord for ByOrder<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.order().cmp(&other.0.order())
    }
}

struct Level<T> {
    occupied: u64,
    slots: [Vec<Entry<T>>; SLOTS],
}

impl<T> Level<T> {
    /// Hand every entry to `sink`, visiting only the occupied slots.
    fn take_all(&mut self, mut sink: impl FnMut(Entry<T>)) {
        let mut occupied = self.occupied;
        while occupied != 0 {
            let slot = occupied.trailing_zeros() as usize;
            occupied &= occupied - 1;
            self.slots[slot].drain(..).for_each(&mut sink);
        }
        self.occupied = 0;
    }
}

impl<T> Default for Level<T> {
    fn default() -> Self {
        Level {
            occupied: 0,
            slots: std::array::from_fn(|_| Vec::new()),
        }
    }
}

/// Timers ordered by (deadline, creation sequence): O(1) insert and cancel, amortised O(1)
/// pop (see the module documentation).
pub(crate) struct TimerQueue<T> {
    /// The wheel's levels, allocated as far up as a timer has needed (a loop whose timers all
    /// fit in `soon` never allocates one).
    levels: Vec<Level<T>>,
    /// Bit `L` set when level `L` has an occupied slot.
    nonempty_levels: u16,
    /// The wheel's time: the start of the slot opened last.
    elapsed: u64,
    /// Entries due in `elapsed..soon_end`, sorted by (deadline, creation order): the next to
    /// fire. Every entry left in `levels` is due at or after `soon_end`.
    soon: VecDeque<Entry<T>>,
    /// The end (exclusive) of the span `soon` covers.
    soon_end: u64,
    /// `soon`'s length past which it spills into the wheel.
    spill_at: usize,
    /// Entries whose deadline was already behind `elapsed` when they were inserted.
    overdue: BinaryHeap<Reverse<ByOrder<T>>>,
    /// A reusable buffer for the entries of the slot being opened.
    scratch: Vec<Entry<T>>,
    /// Bit per slot: set while the slot's timer is armed. Small enough to stay in cache.
    armed_bits: Vec<u64>,
    /// The sequence number of each slot's current entry (read only to validate a key).
    seq_of_slot: Vec<u64>,
    /// Slots whose entry has left the queue, ready for reuse.
    free: Vec<u32>,
    next_seq: u64,
    armed: usize,
    /// Cancelled entries still stored (tombstones).
    dead: usize,
    /// Payloads of cancelled timers, to be dropped by the caller outside any borrow.
    garbage: Vec<T>,
    /// A lower bound on the earliest armed deadline (exact after `head`), so that asking for
    /// due timers when none is due costs one comparison.
    earliest_hint: u64,
}

impl<T> Default for TimerQueue<T> {
    fn default() -> Self {
        TimerQueue {
            levels: Vec::new(),
            nonempty_levels: 0,
            elapsed: 0,
            soon: VecDeque::new(),
            soon_end: u64::MAX,
            spill_at: 2 * SOON_MAX,
            overdue: BinaryHeap::new(),
            scratch: Vec::new(),
            armed_bits: Vec::new(),
            seq_of_slot: Vec::new(),
            free: Vec::new(),
            next_seq: 1,
            armed: 0,
            dead: 0,
            garbage: Vec::new(),
            earliest_hint: u64::MAX,
        }
    }
}

/// The wheel level for a deadline `when` seen from `elapsed` (`when` > `elapsed`).
fn level_for(elapsed: u64, when: u64) -> usize {
    let significant = 63 - ((elapsed ^ when) | (SLOTS as u64 - 1)).leading_zeros() as usize;
    significant / BITS
}

/// The slot of `when` at `level`.
fn slot_for(when: u64, level: usize) -> usize {
    ((when >> (BITS * level)) & (SLOTS as u64 - 1)) as usize
}

/// A timer payload that can ask the CPU to start loading what firing it will touch.
pub(crate) trait Prefetch {
    /// Hint that this payload fires soon. Must have no observable effect.
    fn prefetch(&self);
}

impl Prefetch for () {
    fn prefetch(&self) {}
}

impl<T: ?Sized> Prefetch for &T {
    fn prefetch(&self) {}
}

impl Prefetch for char {
    fn prefetch(&self) {}
}

impl Prefetch for u64 {
    fn prefetch(&self) {}
}

/// A slot opened with at most this many timers is sorted into `soon` rather than cascaded:
/// they are the next to fire (and their payloads are prefetched). `soon` also takes new timers
/// directly while the wheel is empty, up to twice this many.
const SOON_MAX: usize = 32;

impl<T: Prefetch> TimerQueue<T> {
    /// Arm a timer; equal deadlines fire in the order they were inserted.
    pub(crate) fn insert(&mut self, deadline: Instant, item: T) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.insert_with_seq(deadline.as_nanos(), seq, item)
    }

    #[inline(always)]
    fn insert_with_seq(&mut self, deadline: u64, seq: u64, item: T) -> TimerKey {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot = u32::try_from(self.seq_of_slot.len())
                    .expect("timer invariant: fewer than 2^32 timers stored");
                self.seq_of_slot.push(0);
                if slot % 64 == 0 {
                    self.armed_bits.push(0);
                }
                slot
            }
        };
        self.seq_of_slot[slot as usize] = seq;
        self.earliest_hint = self.earliest_hint.min(deadline);
        self.armed_bits[slot as usize / 64] |= 1 << (slot % 64);
        self.armed += 1;
        self.place(Entry {
            deadline,
            seq,
            slot,
            item,
        });
        TimerKey { slot, seq }
    }

    /// Put an entry where its deadline belongs. The usual case, a timer later than every one
    /// in `soon` and within its span, is an append, inlined into the callers.
    #[inline]
    fn place(&mut self, entry: Entry<T>) {
        let appends = entry.deadline >= self.elapsed
            && entry.deadline < self.soon_end
            && self.soon.len() < self.spill_at
            && self
                .soon
                .back()
                .is_none_or(|last| last.order() < entry.order());
        if appends {
            self.soon.push_back(entry);
        } else {
            self.place_elsewhere(entry);
        }
    }

    /// [`place`](TimerQueue::place) past its usual case.
    #[inline(never)]
    fn place_elsewhere(&mut self, entry: Entry<T>) {
        if entry.deadline < self.elapsed {
            self.overdue.push(Reverse(ByOrder(entry)));
        } else if entry.deadline < self.soon_end {
            let order = entry.order();
            if self.soon.back().is_none_or(|last| last.order() < order) {
                self.soon.push_back(entry);
            } else {
                let index = self.soon.partition_point(|queued| queued.order() < order);
                self.soon.insert(index, entry);
            }
            if self.soon.len() > self.spill_at {
                self.spill();
            }
        } else {
            let level = level_for(self.elapsed, entry.deadline);
            let slot = slot_for(entry.deadline, level);
            if self.levels.len() <= level {
                self.levels.resize_with(level + 1, Level::default);
            }
            let wheel_level = &mut self.levels[level];
            wheel_level.slots[slot].push(entry);
            wheel_level.occupied |= 1 << slot;
            self.nonempty_levels |= 1 << level;
        }
    }

    /// `soon` grew too long to insert into cheaply: keep its earliest [`SOON_MAX`] entries
    /// (never splitting equal deadlines) and move the rest to the wheel, behind a new
    /// `soon_end`.
    ///
    /// Many timers may share one deadline (packets sent together arrive together); when no cut
    /// is possible, the next attempt waits until `soon` has doubled, so inserting stays cheap.
    fn spill(&mut self) {
        let keep_until = self.soon[SOON_MAX - 1].deadline;
        let cut = self
            .soon
            .partition_point(|entry| entry.deadline <= keep_until);
        if cut == self.soon.len() {
            self.spill_at = self.soon.len() * 2;
            return;
        }
        self.spill_at = 2 * SOON_MAX;
        self.soon_end = self.soon[cut].deadline;
        let spilled: Vec<Entry<T>> = self.soon.drain(cut..).collect();
        for entry in spilled {
            self.place(entry);
        }
    }

    #[inline(always)]
    fn is_armed_slot(&self, slot: u32) -> bool {
        self.armed_bits[slot as usize / 64] & (1 << (slot % 64)) != 0
    }

    /// Whether `key` names the timer currently armed in its slot.
    #[inline(always)]
    pub(crate) fn is_armed(&self, key: TimerKey) -> bool {
        // The bitset first: it is small and cached, and a fired timer's bit is clear, so the
        // sequence table is read only when the slot holds an armed timer.
        (key.slot as usize) < self.seq_of_slot.len()
            && self.is_armed_slot(key.slot)
            && self.seq_of_slot[key.slot as usize] == key.seq
    }

    /// Disarm a timer; false if it already fired or was cancelled. Its payload is dropped later,
    /// through [`take_garbage`](TimerQueue::take_garbage).
    #[inline]
    pub(crate) fn cancel(&mut self, key: TimerKey) -> bool {
        if !self.is_armed(key) {
            return false;
        }
        self.armed_bits[key.slot as usize / 64] &= !(1 << (key.slot % 64));
        self.armed -= 1;
        self.dead += 1;
        if self.dead > 1024 && self.dead > self.armed {
            self.compact();
        }
        true
    }

    /// Replace the payload of an armed timer, keeping its place in the order; returns the key
    /// that now names it (`None` if it was not armed).
    pub(crate) fn replace(
        &mut self,
        key: TimerKey,
        deadline: Instant,
        item: T,
    ) -> Option<TimerKey> {
        if !self.cancel(key) {
            return None;
        }
        Some(self.insert_with_seq(deadline.as_nanos(), key.seq, item))
    }

    /// The payloads of cancelled timers found so far, for the caller to drop.
    pub(crate) fn take_garbage(&mut self) -> Option<Vec<T>> {
        (!self.garbage.is_empty()).then(|| std::mem::take(&mut self.garbage))
    }

    /// A stored entry left the queue: free its slot; keep a cancelled one's payload as garbage.
    #[inline(always)]
    fn retire(&mut self, entry: Entry<T>) -> Option<(TimerKey, T)> {
        self.free.push(entry.slot);
        if self.is_armed_slot(entry.slot) {
            self.armed_bits[entry.slot as usize / 64] &= !(1 << (entry.slot % 64));
            self.armed -= 1;
            Some((
                TimerKey {
                    slot: entry.slot,
                    seq: entry.seq,
                },
                entry.item,
            ))
        } else {
            self.dead -= 1;
            self.garbage.push(entry.item);
            None
        }
    }

    /// The earliest armed deadline.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        self.head().map(Instant::from_nanos)
    }

    /// Remove and return the earliest timer if it is due at `now`.
    /// The payload `ahead` places behind the front of the sorted `soon` list, if any: what
    /// is about to fire, for the caller to prefetch (armed or not: a hint only).
    #[inline]
    pub(crate) fn soon_ahead(&self, ahead: usize) -> Option<&T> {
        self.soon.get(ahead).map(|entry| &entry.item)
    }

    #[inline(always)]
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(TimerKey, T)> {
        let now = now.as_nanos();
        if self.earliest_hint > now {
            return None;
        }
        // The usual case: nothing overdue and an armed timer at the front of `soon`.
        let front_is_head = self.overdue.is_empty()
            && self
                .soon
                .front()
                .is_some_and(|front| self.is_armed_slot(front.slot));
        let head = if front_is_head {
            self.soon.front().map(|front| front.deadline)
        } else {
            self.head()
        }?;
        if head > now {
            self.earliest_hint = head;
            return None;
        }
        let overdue_first = match (self.overdue.peek(), self.soon.front()) {
            (Some(Reverse(ByOrder(overdue))), Some(due)) => overdue.order() < due.order(),
            (Some(_), None) => true,
            _ => false,
        };
        let entry = if overdue_first {
            self.overdue.pop().map(|Reverse(ByOrder(entry))| entry)
        } else {
            self.soon.pop_front()
        };
        let entry = entry.expect("timer invariant: the head exists");
        // Keep the hint tight, so the usual "and the next one?" costs one comparison: with no
        // overdue timer, the front of `soon` (armed or not) is a lower bound on everything left.
        if self.overdue.is_empty() {
            self.earliest_hint = match self.soon.front() {
                Some(next) => next.deadline,
                None if self.nonempty_levels == 0 => u64::MAX,
                None => self.soon_end.max(entry.deadline),
            };
        }
        Some(
            self.retire(entry)
                .expect("timer invariant: the head is armed"),
        )
    }

    /// The earliest armed deadline, retiring tombstones on the way.
    fn head(&mut self) -> Option<u64> {
        while let Some(Reverse(ByOrder(entry))) = self.overdue.peek() {
            if self.is_armed_slot(entry.slot) {
                break;
            }
            let Reverse(ByOrder(entry)) = self.overdue.pop().expect("peeked");
            self.retire(entry);
        }
        self.settle();
        let overdue = self
            .overdue
            .peek()
            .map(|Reverse(ByOrder(entry))| entry.deadline);
        let due = self.soon.front().map(|entry| entry.deadline);
        let head = match (overdue, due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.earliest_hint = head.unwrap_or(u64::MAX);
        head
    }

    /// Make `soon` start with an armed entry, turning the wheel as far as the next one.
    fn settle(&mut self) {
        loop {
            while let Some(entry) = self.soon.front() {
                if self.is_armed_slot(entry.slot) {
                    return;
                }
                let entry = self.soon.pop_front().expect("front exists");
                self.retire(entry);
            }
            if self.nonempty_levels == 0 {
                return;
            }
            let level = self.nonempty_levels.trailing_zeros() as usize;
            let occupied = self.levels[level].occupied;
            debug_assert_eq!(
                occupied & (u64::MAX << slot_for(self.elapsed, level)),
                occupied,
                "wheel invariant: no entry behind elapsed"
            );
            self.open(level, occupied.trailing_zeros() as usize);
        }
    }

    /// Move the wheel to the start of `slot` at `level` and empty the slot. A level-0 slot, or
    /// one holding few timers, becomes `soon` (sorted: these fire before anything else left);
    /// a crowded one cascades down to lower levels.
    fn open(&mut self, level: usize, slot: usize) {
        debug_assert!(
            self.soon.is_empty(),
            "wheel invariant: the wheel turns when nothing is soon"
        );
        let span_bits = BITS * level;
        let block_mask = if span_bits + BITS >= 64 {
            u64::MAX
        } else {
            (1u64 << (span_bits + BITS)) - 1
        };
        let start = (self.elapsed & !block_mask) | ((slot as u64) << span_bits);
        debug_assert!(
            start >= self.elapsed,
            "wheel invariant: the wheel only turns forward"
        );
        let end = start.saturating_add(1 << span_bits);
        self.elapsed = start;
        let wheel_level = &mut self.levels[level];
        wheel_level.occupied &= !(1 << slot);
        if wheel_level.occupied == 0 {
            self.nonempty_levels &= !(1 << level);
        }
        let mut entries = std::mem::replace(
            &mut wheel_level.slots[slot],
            std::mem::take(&mut self.scratch),
        );
        if level == 0 || entries.len() <= SOON_MAX {
            // Everything else in the wheel is due at or after `end`.
            self.soon_end = end;
            entries.sort_unstable_by_key(Entry::order);
            for entry in entries.drain(..) {
                if self.is_armed_slot(entry.slot) {
                    entry.item.prefetch();
                    self.soon.push_back(entry);
                } else {
                    self.retire(entry);
                }
            }
        } else {
            self.soon_end = start;
            for entry in entries.drain(..) {
                if self.is_armed_slot(entry.slot) {
                    self.place(entry);
                } else {
                    self.retire(entry);
                }
            }
        }
        self.scratch = entries;
        if self.nonempty_levels == 0 {
            // The wheel is empty: `soon` can take every new timer until it grows too long.
            self.soon_end = u64::MAX;
        }
    }

    /// Drop every tombstone at once (when they outnumber the armed timers), so cancelled
    /// far-future timers do not pile up.
    #[cold]
    #[inline(never)]
    fn compact(&mut self) {
        let mut kept = Vec::with_capacity(self.armed);
        let mut all: Vec<Entry<T>> = self.soon.drain(..).collect();
        all.extend(self.overdue.drain().map(|Reverse(ByOrder(entry))| entry));
        for level in self.levels.iter_mut() {
            level.take_all(|entry| all.push(entry));
        }
        self.nonempty_levels = 0;
        for entry in all {
            if self.is_armed_slot(entry.slot) {
                kept.push(entry);
            } else {
                self.retire(entry);
            }
        }
        kept.sort_unstable_by_key(Entry::order);
        for entry in kept {
            self.place(entry);
        }
    }

    /// How many timers are armed.
    pub(crate) fn len(&self) -> usize {
        self.armed
    }

    /// Remove every timer, returning every payload (armed or not) so the caller can drop them
    /// outside any borrow.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let mut items = std::mem::take(&mut self.garbage);
        items.extend(self.soon.drain(..).map(|entry| entry.item));
        items.extend(
            self.overdue
                .drain()
                .map(|Reverse(ByOrder(entry))| entry.item),
        );
        for level in self.levels.iter_mut() {
            level.take_all(|entry| items.push(entry.item));
        }
        self.nonempty_levels = 0;
        self.soon_end = u64::MAX;
        // Back to an empty queue: every slot is forgotten (old keys fail their sequence check).
        self.armed_bits.clear();
        self.seq_of_slot.clear();
        self.free.clear();
        self.armed = 0;
        self.dead = 0;
        items
    }
}

#[cfg(test)]
mod tests;
