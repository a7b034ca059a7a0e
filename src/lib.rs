//! # Event Roof
//!
//! Deterministic simulation testing for async Rust, with Python asyncio's event loop as its
//! model. A program written against `roof`'s API (tasks, timers, an asyncio-style
//! [`EventLoop`], `call_soon`/`call_later`, [`gather()`], TCP and UDP between named hosts,
//! asyncio's `Protocol`/`Transport`) runs inside a seeded simulation: one thread, virtual time
//! that jumps to the next event, a simulated network with faults, and a scheduler that picks
//! the next ready task from a seeded stream. The same seed replays the same run, event for
//! event.
//!
//! ```
//! use std::time::Duration;
//! use roof::{Config, EventLoop, Policy, TraceMode};
//!
//! async fn hello_python() -> &'static str {
//!     roof::println!("hello Python!");
//!     roof::sleep(Duration::from_millis(100)).await;
//!     "python"
//! }
//!
//! let config = Config::new(7).policy(Policy::Random).trace(TraceMode::Record).echo(false);
//! let lp = EventLoop::with_config(config);
//! let (world, python) = lp
//!     .run_until_complete(roof::gather!(async { roof::println!("hello world!"); "world" }, hello_python()))
//!     .unwrap()
//!     .unwrap();
//! assert_eq!((world, python), ("world", "python")); // argument order, whatever ran first
//! let report = lp.report();
//! assert_eq!(report.virtual_time.as_secs_f64(), 0.1);
//! println!("seed {} trace-hash {}", report.seed, report.trace_hash_hex());
//! ```
//!
//! ## Module map
//! What you call:
//! - [`event_loop`]: the asyncio facade: [`EventLoop`], `call_soon`, `call_later`, [`gather()`].
//! - [`task`]: [`spawn`], [`JoinHandle`], [`yield_now`].
//! - [`time`]: virtual [`Instant`](time::Instant), [`sleep`], [`timeout`], [`interval`](time::interval).
//! - [`net`]: hosts, [`TcpListener`](net::TcpListener), [`TcpStream`](net::TcpStream),
//!   [`UdpSocket`](net::UdpSocket), [`LinkConfig`](net::LinkConfig); [`io`] for their helpers.
//! - [`wait`]: asyncio's `wait` (`ReturnWhen`, a timeout) and `as_completed`.
//! - [`streams`]: asyncio's streams: `open_connection`, `start_server`, `StreamReader`,
//!   `StreamWriter`.
//! - [`protocol`]: asyncio's `Protocol` and `Transport`, `create_server`, `create_connection`.
//! - [`fault`]: partitions, clogs, crashes and restarts, link faults, fault plans, `buggify!`.
//! - [`sync`]: asyncio's toolkit: [`Lock`](sync::Lock), [`Event`](sync::Event),
//!   [`Condition`](sync::Condition), semaphores, [`Barrier`](sync::Barrier), queues.
//! - [`random`]: seeded draws for user code.
//! - [`harness`]: [`check`] and its builder, for seed sweeps in tests; [`shrink`] and
//!   [`strategies`] around it.
//! - [`trace`], [`report`], [`sched`]: what a run records, how it ended, how it schedules.
//!
//! Underneath (private): the *engine*, plain data structures that know no clock and no kernel
//! (tasks on async-task, the timer queue, the scheduler, the seeded streams, the network
//! fabric, the trace), and the *kernel*, the one place that composes them and runs the loop.
//! ARCHITECTURE.md in the repository maps them.
//!
//! ## The determinism contract
//! Same seed, same configuration, same build ⇒ the byte-identical trace and trace hash. The
//! engine never reads the wall clock or the OS's randomness, never spawns a thread and never
//! iterates a hash map in a simulated path. Each concern (scheduler, network, faults, user)
//! draws from its own ChaCha8 stream of the seed, so adding a draw in one does not reshuffle
//! another.
//!
//! ## Debugging a failing seed
//! `roof sweep <scenario>` prints each failing seed with a command that replays it; `roof run
//! <scenario> --seed N --trace` prints its full trace, and two runs' traces can be compared
//! with [`Trace::first_divergence`](trace::Trace::first_divergence).
//!
//! ## Feature flags
//! - `proptest` (default): [`strategies`] for seeds, fault plans and choice sequences.

#![deny(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

mod cancel;
mod engine;
pub mod event_loop;
pub mod explore;
pub mod fault;
pub mod fs;
pub mod gather;
pub mod harness;
mod kernel;
pub mod net;
pub mod protocol;
pub mod random;
pub mod shrink;
#[cfg(feature = "proptest")]
pub mod strategies;
pub mod streams;
pub mod sync;
pub mod task;
pub mod time;
pub mod timeline;
pub mod wait;

pub use event_loop::{get_running_loop, EventLoop, Handle, LoopHandle, TimerHandle};
pub use gather::{gather, gather_results};
pub use task::{
    current_task, spawn, spawn_named, yield_now, Cancelled, JoinError, JoinHandle, TaskId,
};

/// The former name of [`task`], kept so that existing paths still resolve.
#[deprecated(note = "renamed: use roof::task (or the re-exports at the crate root)")]
pub mod executor {
    pub use crate::task::*;
}
pub use harness::check;
pub use kernel::{Config, STEPS_MAX_DEFAULT, TIME_MAX_DEFAULT};
pub use report::{ExceptionContext, Failure, Report};
pub use sched::{Choices, Policy};
pub use sync::{select, select_all, Either, Future};
pub use time::{sleep, sleep_until, timeout, timeout_at};
pub use trace::{Trace, TraceMode};

/// The event log of a run: every spawn, poll, wake, completion, timer, callback, network
/// event, fault and printed or logged line, stamped with its virtual time. It renders as
/// stable text (one line per event), exports as JSON, hashes, and finds where two runs
/// diverge.
pub mod trace {
    pub use crate::engine::id::{TaskId, TimerId};
    pub use crate::engine::trace::{Divergence, Event, EventKind, PacketOp, Trace, TraceMode};
}

/// How a run ended: a [`Report`] and, when it failed, the [`Failure`].
pub mod report {
    pub use crate::engine::report::{ExceptionContext, Failure, Report};
}

/// Scheduling policies: which ready task runs next ([`Policy`]), and recorded choice
/// sequences that replay a run ([`Choices`]).
pub mod sched {
    pub use crate::engine::sched::{
        Choices, Policy, EXHAUSTIVE_PREEMPTIONS_MAX, PCT_DEPTH_MAX, PCT_HORIZON, PREEMPT_ODDS,
    };
}

/// Async I/O helpers for streams: `read_exact`, `write_all`, `read_to_end`, `read_line` and
/// friends, on `futures` `AsyncRead`/`AsyncWrite` (re-exported from `futures-util`).
///
/// `read_line` appends to its buffer, as std's does, and an error after part of a line (a
/// connection reset mid-line) returns the error with that part left in the buffer.
pub mod io {
    pub use futures_io::{AsyncBufRead, AsyncRead, AsyncWrite};
    pub use futures_util::io::{
        AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf,
    };

    /// Split a stream into a reading half and a writing half, each usable from its own task.
    ///
    /// ```
    /// use roof::io::{AsyncReadExt, AsyncWriteExt};
    /// let lp = roof::EventLoop::new();
    /// lp.host("echo", || async {
    ///     let listener = roof::net::TcpListener::bind("0.0.0.0:7").await.unwrap();
    ///     let (stream, _) = listener.accept().await.unwrap();
    ///     let (mut reader, mut writer) = roof::io::split(stream);
    ///     let mut buf = [0u8; 4];
    ///     reader.read_exact(&mut buf).await.unwrap();
    ///     writer.write_all(&buf).await.unwrap();
    /// }).unwrap();
    /// let echoed = lp.run_until_complete(async {
    ///     let mut stream = roof::net::TcpStream::connect("echo:7").await.unwrap();
    ///     stream.write_all(b"ping").await.unwrap();
    ///     let mut buf = [0u8; 4];
    ///     stream.read_exact(&mut buf).await.unwrap();
    ///     buf
    /// }).unwrap();
    /// assert_eq!(&echoed, b"ping");
    /// ```
    pub fn split<T: AsyncRead + AsyncWrite>(stream: T) -> (ReadHalf<T>, WriteHalf<T>) {
        AsyncReadExt::split(stream)
    }
}

/// Whether an [`EventLoop`] is running on this thread: code (a panic hook, say) can tell a
/// simulated task's panic, which the run reports as its failure, from any other.
///
/// ```
/// assert!(!roof::in_simulation());
/// let lp = roof::EventLoop::new();
/// assert!(lp.run_until_complete(async { roof::in_simulation() }).unwrap());
/// assert!(!roof::in_simulation(), "only while a loop runs");
/// ```
pub fn in_simulation() -> bool {
    kernel::is_running_here()
}

/// Every Rust block of README.md, compiled and run as a doctest so that none can rot. The
/// README shows the real-sockets API too, so it is checked with the `real-net` feature (the
/// README's test command, `cargo test --all-features`).
#[cfg(all(doctest, feature = "real-net"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[doc(hidden)]
pub mod __private {
    pub use crate::gather::{gather_tuple, JoinTuple, SpawnTuple};
    /// The seed-range parser the `roof` command line shares with the harness.
    pub use crate::harness::seed_range;

    pub fn print(text: String) {
        if crate::kernel::with_current(|kernel| kernel.print(text.clone())).is_none() {
            std::println!("{text}");
        }
    }

    pub fn log(text: String) {
        crate::kernel::with_current(|kernel| kernel.log(text));
    }
}

/// Print a line as the program's output: captured in the [`Report`], recorded in the trace,
/// and echoed to stdout unless [`Config::echo`] is off. Between runs the line goes to the
/// newest open loop of this thread; with no loop at all it is `std::println!`.
///
/// ```
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
/// lp.run_until_complete(async { roof::println!("hello {}!", "world") }).unwrap();
/// assert_eq!(lp.report().output, "hello world!\n");
/// ```
#[macro_export]
macro_rules! println {
    () => { $crate::__private::print(::std::string::String::new()) };
    ($($arg:tt)*) => { $crate::__private::print(::std::format!($($arg)*)) };
}

/// Record a line in the trace (and nowhere else), stamped with the virtual time and task.
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { $crate::__private::log(::std::format!($($arg)*)) };
}

/// Run futures of different types concurrently, each as its own task, and return a tuple of
/// their outputs in argument order (up to 12).
///
/// As [`gather`](crate::gather()): the members are scheduled when the macro is evaluated
/// inside a running loop (outside one, when first polled), and dropping the gather before it
/// finished aborts the members still running. A failure is the first in argument order.
///
/// ```
/// let lp = roof::EventLoop::new();
/// let (a, b) = lp.run_until_complete(roof::gather!(async { 1 }, async { "two" })).unwrap().unwrap();
/// assert_eq!((a, b), (1, "two"));
/// ```
#[macro_export]
macro_rules! gather {
    ($($future:expr),+ $(,)?) => {
        $crate::__private::gather_tuple(($($future,)+))
    };
}
