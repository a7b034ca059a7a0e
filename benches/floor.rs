//! The floor under the timer benchmarks: the least an event loop on async-task cells can do
//! for `timers-day` and `timers` — async-task, a FIFO run queue, a binary heap of timers and
//! a virtual clock, and nothing else (no seeded pick, no task table, no trace, no
//! cancellation, no hosts). It prints the peers' JSON line with `"peer": "async-task-floor"`,
//! so its figures sit beside `cargo bench --bench peers` and the peers of the harness.
//!
//! ```text
//! cargo bench --bench floor -- timers-day --steps 86400 --step-ms 1000
//! cargo bench --bench floor -- timers --timers 100000
//! ```
//!
//! No real loop can beat it: what it leaves out is what `roof` is for. PERFORMANCE.md uses it
//! to bound the speed targets that ask for a ratio against madsim or tokio.

use std::cell::{Cell, RefCell};
use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use async_task::Runnable;

mod timer_lcg;
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

thread_local! {
    static READY: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
    static TIMERS: RefCell<BinaryHeap<Reverse<Timer>>> = const { RefCell::new(BinaryHeap::new()) };
    static CLOCK: Cell<u64> = const { Cell::new(0) };
    static SEQ: Cell<u64> = const { Cell::new(0) };
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
                    timers.borrow_mut().push(Reverse(Timer {
                        deadline,
                        seq,
                        waker: cx.waker().clone(),
                    }));
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
        // Waking only queues a runnable (another cell than the heap's), so it can happen
        // under the heap's borrow, with no list of the due timers to allocate.
        let fired = TIMERS.with(|timers| {
            let mut timers = timers.borrow_mut();
            let Some(Reverse(first)) = timers.pop() else {
                return false;
            };
            CLOCK.set(first.deadline);
            first.waker.wake();
            while timers
                .peek()
                .is_some_and(|Reverse(next)| next.deadline <= first.deadline)
            {
                timers.pop().expect("peeked").0.waker.wake();
            }
            true
        });
        assert!(fired, "deadlock: nothing ready and no timer armed");
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

// A benchmark measures wall time around the loop it runs.
#[allow(clippy::disallowed_methods)]
fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|w| w != "--bench")
        .collect();
    let scenario = args.first().map(String::as_str).unwrap_or("timers-day");
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
                serde_json::json!({"steps": steps, "step_ms": step_ms}),
                serde_json::json!({"wall_seconds_per_simulated_day": wall * day}),
            )
        }
        "timers" => {
            let count = flag(&args, "timers", 100_000, TIMERS_MAX);
            let durations = timer_durations_ms(count);
            let fired = block_on(async move {
                let handles: Vec<_> = durations
                    .into_iter()
                    .map(|ms| spawn(async move { sleep(Duration::from_millis(ms)).await }))
                    .collect();
                let mut fired = 0u64;
                for handle in handles {
                    handle.await;
                    fired += 1;
                }
                fired
            });
            assert_eq!(fired, count, "every timer fired");
            let wall = start.elapsed().as_secs_f64();
            (
                serde_json::json!({"timers": count}),
                serde_json::json!({"timer_events_per_wall_second": count as f64 / wall}),
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
