//! The floor under the timer benchmarks: the least an event loop on async-task cells can do
//! for `timers-day` and `timers` — async-task, a FIFO run queue, a queue of timers and a
//! virtual clock, and nothing else (no seeded pick, no task table, no trace, no
//! cancellation, no hosts). It prints the peers' JSON line with `"peer": "async-task-floor"`,
//! so its figures sit beside `cargo bench --bench peers` and the peers of the harness.
//!
//! ```text
//! cargo bench --bench floor -- timers-day --steps 86400 --step-ms 1000
//! cargo bench --bench floor -- timers --timers 100000 --queue radix
//! ```
//!
//! Its `timers` tasks do what the peers' do (count their firing, fold their index into the
//! order checksum), and timers of one deadline fire in creation order, so its checksum is
//! the one of the peers that run ready tasks in FIFO order (tokio paused, turmoil).
//!
//! Two timer queues (`--queue`): `heap`, the standard library's binary heap (the default),
//! and `radix`, a radix heap (timers bucketed by the highest bit in which their deadline
//! differs from the last one fired: virtual time never runs back, so pushes are O(1) and a
//! timer moves down a bucket at a time, through short sequential vectors). The heap is
//! faster with one timer, the radix heap with 100,000 (it waits far less for memory).
//! PERFORMANCE.md takes the faster of the two as the yardstick for the speed targets that
//! ask for a ratio against madsim or tokio.

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_task::Runnable;

mod fnv;
mod timer_lcg;
use fnv::{fold_u64, FNV_OFFSET};
use timer_lcg::timer_durations_ms;

/// The most sleeps `timers-day` takes (`--steps`).
const STEPS_MAX: u64 = 100_000_000;
/// The longest sleep of `timers-day`, in milliseconds (`--step-ms`): one simulated day.
const STEP_MS_MAX: u64 = 86_400_000;
/// The most tasks `timers` spawns (`--timers`).
const TIMERS_MAX: u64 = 10_000_000;

struct Timer {
    deadline: u64,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Timer {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl Eq for Timer {}

impl PartialOrd for Timer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Timer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

/// The timers armed and not yet fired, in one of the two queues.
enum TimerQueue {
    Heap(BinaryHeap<Reverse<Timer>>),
    Radix(Box<Radix>),
}

impl TimerQueue {
    fn push(&mut self, timer: Timer) {
        match self {
            TimerQueue::Heap(heap) => heap.push(Reverse(timer)),
            TimerQueue::Radix(radix) => radix.push(timer),
        }
    }

    /// Wake every timer of the earliest deadline, in creation order; that deadline, or
    /// `None` when no timer is armed. Waking only queues a runnable (another cell than the
    /// queue's), so it happens under the queue's borrow, with no list of the due timers.
    fn fire_earliest(&mut self) -> Option<u64> {
        match self {
            TimerQueue::Heap(heap) => {
                let Reverse(first) = heap.pop()?;
                first.waker.wake();
                while heap
                    .peek()
                    .is_some_and(|Reverse(next)| next.deadline <= first.deadline)
                {
                    heap.pop().expect("peeked").0.waker.wake();
                }
                Some(first.deadline)
            }
            TimerQueue::Radix(radix) => radix.fire_earliest(),
        }
    }
}

/// Buckets of a radix heap: the number of bits of a deadline, and one for "equal".
const BUCKETS: usize = 65;

/// A radix heap of timers: bucket 0 holds the timers due at `last` (the deadline fired
/// last, or the one about to fire), bucket `b` those whose deadline first differs from
/// `last` in bit `b - 1`, counted from the lowest. Every timer of a lower bucket is due
/// before every one of a higher bucket.
struct Radix {
    last: u64,
    /// Bit `b` set when bucket `b` holds a timer.
    occupied: u128,
    buckets: [Vec<Timer>; BUCKETS],
}

impl Radix {
    fn new() -> Radix {
        Radix {
            last: 0,
            occupied: 0,
            buckets: std::array::from_fn(|_| Vec::new()),
        }
    }

    fn bucket(&self, deadline: u64) -> usize {
        (u64::BITS - (deadline ^ self.last).leading_zeros()) as usize
    }

    fn push(&mut self, timer: Timer) {
        // A deadline is never behind the clock, and the clock never behind `last`.
        debug_assert!(timer.deadline >= self.last, "a timer in the past");
        let bucket = self.bucket(timer.deadline);
        self.occupied |= 1 << bucket;
        self.buckets[bucket].push(timer);
    }

    fn fire_earliest(&mut self) -> Option<u64> {
        if self.occupied & 1 == 0 {
            // Open the lowest occupied bucket: its earliest deadline becomes `last`, and its
            // timers move to lower buckets, those due then to bucket 0.
            let lowest = self.occupied.trailing_zeros() as usize;
            if lowest >= BUCKETS {
                return None;
            }
            self.occupied &= !(1 << lowest);
            let mut opened = std::mem::take(&mut self.buckets[lowest]);
            self.last = opened
                .iter()
                .map(|timer| timer.deadline)
                .min()
                .expect("an occupied bucket");
            for timer in opened.drain(..) {
                self.push(timer);
            }
            // Keep the allocation for the bucket's next timers.
            self.buckets[lowest] = opened;
        }
        let due = &mut self.buckets[0];
        // Timers reach bucket 0 by different paths: put them back in creation order.
        if due.len() > 1 {
            due.sort_unstable_by_key(|timer| timer.seq);
        }
        for timer in due.drain(..) {
            timer.waker.wake();
        }
        self.occupied &= !1;
        Some(self.last)
    }
}

thread_local! {
    static READY: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
    static TIMERS: RefCell<TimerQueue> = const { RefCell::new(TimerQueue::Heap(BinaryHeap::new())) };
    static CLOCK: Cell<u64> = const { Cell::new(0) };
    static SEQ: Cell<u64> = const { Cell::new(0) };
    /// The `timers` tasks fired so far.
    static FIRED: Cell<u64> = const { Cell::new(0) };
    /// FNV-1a of the `timers` tasks' indices, in firing order (the peers' `trace`).
    static ORDER: Cell<u64> = const { Cell::new(FNV_OFFSET) };
}

/// Fold `value` into the order checksum (as the peers' `trace` does).
fn fold_order(value: u64) {
    ORDER.set(fold_u64(ORDER.get(), value));
}

fn spawn<F>(future: F) -> async_task::Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (runnable, task) = async_task::spawn(future, |runnable| {
        READY.with(|ready| ready.borrow_mut().push_back(runnable));
    });
    runnable.schedule();
    task
}

/// Sleep `nanos` of virtual time: arm a timer on the first poll, done when the clock passes it.
struct Sleep {
    nanos: u64,
    deadline: Option<u64>,
}

fn sleep(duration: Duration) -> Sleep {
    Sleep {
        nanos: u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX),
        deadline: None,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = CLOCK.get();
        match self.deadline {
            Some(deadline) if now >= deadline => Poll::Ready(()),
            Some(_) => Poll::Pending,
            None => {
                let deadline = now.saturating_add(self.nanos);
                self.deadline = Some(deadline);
                let seq = SEQ.get();
                SEQ.set(seq + 1);
                TIMERS.with(|timers| {
                    timers.borrow_mut().push(Timer {
                        deadline,
                        seq,
                        waker: cx.waker().clone(),
                    });
                });
                Poll::Pending
            }
        }
    }
}

/// Run `main` to its end: run what is ready, oldest first; when nothing is, jump the clock to
/// the earliest timer and fire every timer due then.
// The floor runs its cells itself: it has no kernel guard to hand them to.
#[allow(clippy::disallowed_methods)]
fn block_on<T: Send + 'static>(main: impl Future<Output = T> + Send + 'static) -> T {
    let main = spawn(main);
    loop {
        while let Some(runnable) = READY.with(|ready| ready.borrow_mut().pop_front()) {
            runnable.run();
        }
        if main.is_finished() {
            break;
        }
        // The woken tasks run after the clock has moved: no task sees it earlier.
        let fired = TIMERS.with(|timers| timers.borrow_mut().fire_earliest());
        let Some(deadline) = fired else {
            panic!("deadlock: nothing ready and no timer armed");
        };
        CLOCK.set(deadline);
    }
    let mut main = std::pin::pin!(main);
    let waker = Waker::noop();
    match main.as_mut().poll(&mut Context::from_waker(waker)) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("is_finished said so"),
    }
}

/// The value of `--key`, a whole number from 1 to `max`, or `default` without the flag.
fn flag(args: &[String], key: &str, default: u64, max: u64) -> u64 {
    let key = format!("--{key}");
    match args.iter().position(|word| *word == key) {
        None => default,
        Some(at) => match args.get(at + 1).map(|value| value.parse::<u64>()) {
            Some(Ok(value)) if (1..=max).contains(&value) => value,
            _ => {
                eprintln!("error: {key} wants a whole number from 1 to {max}");
                std::process::exit(2)
            }
        },
    }
}

/// The timer queue `--queue` names (`heap` without the flag).
fn queue_flag(args: &[String]) -> (&'static str, TimerQueue) {
    match args.iter().position(|word| word == "--queue") {
        None => ("heap", TimerQueue::Heap(BinaryHeap::new())),
        Some(at) => match args.get(at + 1).map(String::as_str) {
            Some("heap") => ("heap", TimerQueue::Heap(BinaryHeap::new())),
            Some("radix") => ("radix", TimerQueue::Radix(Box::new(Radix::new()))),
            _ => {
                eprintln!("error: --queue wants heap or radix");
                std::process::exit(2)
            }
        },
    }
}

// A benchmark measures wall time around the loop it runs.
#[allow(clippy::disallowed_methods)]
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|w| w != "--bench")
        .collect();
    let scenario = args.first().map(String::as_str).unwrap_or("timers-day");
    let (queue, timers) = queue_flag(&args);
    TIMERS.set(timers);
    let start = Instant::now();
    let (params, figure) = match scenario {
        "timers-day" => {
            let steps = flag(&args, "steps", 86_400, STEPS_MAX);
            let step_ms = flag(&args, "step-ms", 1000, STEP_MS_MAX);
            let Some(total_ns) = steps
                .checked_mul(step_ms)
                .and_then(|ms| ms.checked_mul(1_000_000))
            else {
                eprintln!("error: --steps times --step-ms passes 2^64 nanoseconds of virtual time");
                std::process::exit(2)
            };
            let end = block_on(async move {
                for _ in 0..steps {
                    sleep(Duration::from_millis(step_ms)).await;
                }
                CLOCK.get()
            });
            assert_eq!(end, total_ns, "the virtual time of the steps");
            let wall = start.elapsed().as_secs_f64();
            let day = 86_400_000.0 / (steps * step_ms) as f64;
            (
                serde_json::json!({"steps": steps, "step_ms": step_ms, "queue": queue}),
                serde_json::json!({"wall_seconds_per_simulated_day": wall * day}),
            )
        }
        "timers" => {
            let count = flag(&args, "timers", 100_000, TIMERS_MAX);
            let durations = timer_durations_ms(count);
            block_on(async move {
                let handles: Vec<_> = durations
                    .into_iter()
                    .enumerate()
                    .map(|(index, ms)| {
                        spawn(async move {
                            sleep(Duration::from_millis(ms)).await;
                            FIRED.set(FIRED.get() + 1);
                            fold_order(index as u64);
                        })
                    })
                    .collect();
                for handle in handles {
                    handle.await;
                }
            });
            assert_eq!(FIRED.get(), count, "every timer fired");
            let wall = start.elapsed().as_secs_f64();
            (
                serde_json::json!({"timers": count, "queue": queue}),
                serde_json::json!({
                    "timer_events_per_wall_second": count as f64 / wall,
                    "checksum": format!("{:016x}", ORDER.get()),
                }),
            )
        }
        other => {
            eprintln!("error: unknown scenario {other:?}; expected timers-day | timers");
            std::process::exit(2)
        }
    };
    let mut line = serde_json::json!({
        "scenario": scenario,
        "peer": "async-task-floor",
        "params": params,
        "wall_seconds": start.elapsed().as_secs_f64(),
    });
    if let (Some(line), Some(figure)) = (line.as_object_mut(), figure.as_object()) {
        line.extend(figure.clone());
    }
    println!("{line}");
}
