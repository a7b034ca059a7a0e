//! Where task cells live: a per-thread pool of 2 MiB chunks, cut into size classes.
//!
//! A simulation with thousands of tasks touches them in an order no cache can follow, and
//! with 4 KiB pages nearly every task touched is also a TLB miss. So task cells of up to
//! 4 KiB come from 2 MiB chunks, each aligned to 2 MiB; from the second chunk of a thread on,
//! the chunk is marked for transparent huge pages (`madvise(MADV_HUGEPAGE)` on Linux), so
//! a large run's tasks sit on a few huge pages. The first chunk stays on small pages: a
//! small run touches a few of its pages, and faulting in a whole zeroed huge page would cost
//! it more than it saves. A freed cell goes to its class's free list and serves the next
//! task of that class, so a seed sweep reuses the same warm cells run after run.
//!
//! Chunks are not returned to the allocator while the thread lives: the pool keeps its
//! peak. When the thread ends they are freed if every cell came back, and leaked otherwise
//! (a task of a loop dropped without closing may still point into them). Addresses never
//! reach a decision, so the pool does not touch determinism.

use std::alloc::{self, Layout};
use std::cell::RefCell;
use std::ptr::NonNull;

/// Bytes per size class step, and the alignment of every cell.
const GRAIN: usize = 64;
/// The largest cell the pool serves; larger ones go to the global allocator.
const LARGEST: usize = 4096;
/// Size classes: 64, 128, ..., 4096 bytes.
const CLASSES: usize = LARGEST / GRAIN;
/// A chunk's size and alignment: one huge page on x86-64 Linux.
const CHUNK: usize = 2 << 20;

struct Pool {
    /// Free cells of each class, most recently freed last.
    free: [Vec<NonNull<u8>>; CLASSES],
    /// The unused rest of the newest chunk.
    next: *mut u8,
    left: usize,
    chunks: Vec<NonNull<u8>>,
    /// Cells handed out and not yet returned.
    live: usize,
}

impl Drop for Pool {
    fn drop(&mut self) {
        if self.live != 0 {
            // Some task outlived the thread's loops (leaked with its loop): keep its memory.
            return;
        }
        for chunk in self.chunks.drain(..) {
            // SAFETY: allocated in `Pool::refill` with this layout; no cell is in use.
            unsafe { alloc::dealloc(chunk.as_ptr(), chunk_layout()) };
        }
    }
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            free: [const { Vec::new() }; CLASSES],
            next: std::ptr::null_mut(),
            left: 0,
            chunks: Vec::new(),
            live: 0,
        })
    };
}

fn chunk_layout() -> Layout {
    Layout::from_size_align(CHUNK, CHUNK).expect("a valid chunk layout")
}

/// The class of a layout the pool serves, if it serves it.
fn class_of(layout: Layout) -> Option<usize> {
    (layout.size() <= LARGEST && layout.align() <= GRAIN)
        .then(|| layout.size().max(1).div_ceil(GRAIN) - 1)
}

impl Pool {
    fn take(&mut self, class: usize) -> NonNull<u8> {
        self.live += 1;
        if let Some(cell) = self.free[class].pop() {
            return cell;
        }
        let size = (class + 1) * GRAIN;
        if self.left < size {
            self.refill();
        }
        // SAFETY: `next` has `left >= size` bytes of the newest chunk after it.
        let cell = unsafe { NonNull::new_unchecked(self.next) };
        self.next = self.next.wrapping_add(size);
        self.left -= size;
        cell
    }

    /// Start a new chunk (the rest of the old one is left unused: less than 4 KiB).
    fn refill(&mut self) {
        let layout = chunk_layout();
        // SAFETY: the layout has a non-zero size.
        let Some(chunk) = NonNull::new(unsafe { alloc::alloc(layout) }) else {
            alloc::handle_alloc_error(layout);
        };
        // (Miri cannot run `madvise`; the hint changes nothing it checks.)
        #[cfg(all(target_os = "linux", not(miri)))]
        if !self.chunks.is_empty() {
            // A hint: without transparent huge pages (or with them off) nothing changes.
            // SAFETY: the range is this chunk, which we own and nobody uses yet.
            let _ = unsafe {
                rustix::mm::madvise(
                    chunk.as_ptr().cast(),
                    CHUNK,
                    rustix::mm::Advice::LinuxHugepage,
                )
            };
        }
        self.chunks.push(chunk);
        self.next = chunk.as_ptr();
        self.left = CHUNK;
    }
}

/// Allocate memory for `layout` (non-zero size), from the pool when it serves the layout.
pub(crate) fn alloc(layout: Layout) -> NonNull<u8> {
    let pooled =
        class_of(layout).and_then(|class| POOL.try_with(|pool| pool.borrow_mut().take(class)).ok());
    if let Some(cell) = pooled {
        return cell;
    }
    // SAFETY: callers pass a non-zero size (a task cell holds at least its header).
    match NonNull::new(unsafe { alloc::alloc(layout) }) {
        Some(cell) => cell,
        None => alloc::handle_alloc_error(layout),
    }
}

/// Give back memory from [`alloc`] with the same layout.
///
/// # Safety
/// `cell` came from [`alloc`] with `layout`, on this thread, and is not used afterwards.
pub(crate) unsafe fn dealloc(cell: NonNull<u8>, layout: Layout) {
    let Some(class) = class_of(layout) else {
        // SAFETY: the caller's contract; the global allocator served this layout.
        unsafe { alloc::dealloc(cell.as_ptr(), layout) };
        return;
    };
    // After the thread's pool is gone (thread exit), a late cell is leaked with its chunk.
    let _ = POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        pool.live -= 1;
        pool.free[class].push(cell);
    });
}

#[cfg(test)]
mod tests {
    use std::alloc::Layout;

    #[test]
    fn cells_are_reused_by_class_and_large_ones_bypass_the_pool() {
        let small = Layout::from_size_align(100, 8).unwrap();
        let a = super::alloc(small);
        let b = super::alloc(small);
        assert_ne!(a, b);
        unsafe { super::dealloc(a, small) };
        let c = super::alloc(Layout::from_size_align(128, 64).unwrap());
        assert_eq!(c, a, "the freed cell of the same class comes back first");
        let large = Layout::from_size_align(10_000, 8).unwrap();
        let d = super::alloc(large);
        unsafe {
            d.as_ptr().write_bytes(7, 10_000);
            super::dealloc(d, large);
            super::dealloc(b, small);
            super::dealloc(c, Layout::from_size_align(128, 64).unwrap());
        }
    }

    #[test]
    fn a_run_larger_than_a_chunk_gets_more_chunks() {
        let layout = Layout::from_size_align(4096, 64).unwrap();
        let cells: Vec<_> = (0..1200).map(|_| super::alloc(layout)).collect();
        for (index, cell) in cells.iter().enumerate() {
            // Every cell is usable and distinct: write its index, read it back below.
            unsafe { cell.as_ptr().cast::<usize>().write(index) };
        }
        for (index, cell) in cells.iter().enumerate() {
            assert_eq!(unsafe { cell.as_ptr().cast::<usize>().read() }, index);
            assert_eq!(cell.as_ptr().addr() % 64, 0);
        }
        for cell in cells {
            unsafe { super::dealloc(cell, layout) };
        }
    }
}
