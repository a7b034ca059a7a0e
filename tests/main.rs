//! Every integration test, in one binary (`cargo test --test main`).

#[path = "../sim/mod.rs"]
#[allow(dead_code)]
mod sim;

mod asyncio;
mod browser;
mod cli;
mod event_loop;
mod faults;
mod fs;
mod harness;
mod host_faults;
mod layering;
mod lease;
mod net;
#[cfg(feature = "proptest")]
mod properties;
mod protocol;
#[cfg(feature = "real-net")]
mod real_net;
mod retry_storm;
mod scenarios;
mod search;
mod shrink;
mod snapshots;
mod stream;
mod sync;
mod tasks;
mod time;
mod timeline;
mod trace;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use roof::{Config, EventLoop, Report};

/// Counts this thread's allocations, so a test can check what allocates (tests run on
/// several threads; each sees only its own count).
struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; counting touches only a
// const-initialised thread-local `Cell`, which never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) }
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
        unsafe { System.realloc(pointer, layout, size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Allocations made by this thread so far.
pub fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// A quiet config (no echo) for `seed`.
pub fn quiet(seed: u64) -> Config {
    Config::new(seed).echo(false)
}

/// Run `body` on a fresh quiet loop and return what it returned plus the report.
pub fn run_with<T>(config: Config, body: impl FnOnce(&EventLoop) -> T) -> (T, Report) {
    let event_loop = EventLoop::with_config(config.echo(false));
    let value = body(&event_loop);
    (value, event_loop.report())
}
