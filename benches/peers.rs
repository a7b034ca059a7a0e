//! Event Roof as a peer of ../shared/peers: the same scenarios, flags and one-JSON-line
//! output as the turmoil, madsim, tokio and async-task peers, so `run.sh` can measure them side
//! by side.
//!
//! ```text
//! cargo bench --bench peers -- spawn-join --tasks 1000000 [--trace 1] [--seed S]
//! cargo bench --bench peers -- timers --timers 100000 --seed 0
//! cargo bench --bench peers -- timers-day --steps 86400 --step-ms 1000
//! ```
//!
//! Every run uses the default simulation policy (`Random`, seeded) with tracing off; the
//! order-sensitive `checksum` folds the order tasks ran (spawn-join with `--trace 1`) or
//! timers fired (timers), so a seed change shows in it.

// The wall clock is what a benchmark measures; it never reaches a simulated path.
#![allow(clippy::disallowed_methods)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use roof::{Config, EventLoop, Policy, TraceMode};

const PEER: &str = "roof";
const VERSION: &str = env!("CARGO_PKG_VERSION");
const TIMER_LCG_SEED: u64 = 0x005E_ED0F_71AE; // the peers' 0x5EED_0F_71AE
const TIMER_MAX_MS: u64 = 3_600_000;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The peers' order-sensitive checksum: FNV-1a over the little-endian bytes of each event.
#[derive(Clone, Default)]
struct Checksum(Rc<Cell<u64>>);

impl Checksum {
    fn new() -> Checksum {
        Checksum(Rc::new(Cell::new(FNV_OFFSET)))
    }

    fn fold(&self, value: u64) {
        let mut hash = self.0.get();
        for byte in value.to_le_bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
        self.0.set(hash);
    }

    fn hex(&self) -> String {
        format!("{:016x}", self.0.get())
    }
}

struct Args {
    scenario: String,
    flags: BTreeMap<String, String>,
}

impl Args {
    fn parse() -> Args {
        // cargo bench appends `--bench`; skip it and anything else cargo adds.
        let mut words = std::env::args().skip(1).filter(|word| word != "--bench");
        let scenario = words
            .next()
            .unwrap_or_else(|| die("usage: peers <scenario> [--flag value]..."));
        let mut flags = BTreeMap::new();
        while let Some(word) = words.next() {
            let key = word
                .strip_prefix("--")
                .unwrap_or_else(|| die(&format!("unexpected argument {word:?}")));
            let value = words
                .next()
                .unwrap_or_else(|| die(&format!("--{key} needs a value")));
            flags.insert(key.to_string(), value);
        }
        Args { scenario, flags }
    }

    fn u64(&self, key: &str, default: u64) -> u64 {
        match self.flags.get(key) {
            None => default,
            Some(value) => value
                .replace('_', "")
                .parse()
                .unwrap_or_else(|_| die(&format!("--{key} wants an integer, got {value:?}"))),
        }
    }
}

fn die(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(2)
}

fn config(args: &Args) -> Config {
    let policy = match args.flags.get("policy").map(String::as_str) {
        None | Some("random") => Policy::Random,
        Some("fifo") => Policy::Fifo,
        Some("pct") => Policy::pct(3),
        Some(other) => die(&format!(
            "--policy wants random | fifo | pct, got {other:?}"
        )),
    };
    Config::new(args.u64("seed", 0))
        .policy(policy)
        .trace(TraceMode::Off)
        .echo(false)
        .steps_max(u64::MAX)
        .time_max(Duration::from_secs(400 * 24 * 3600))
}

fn line(scenario: &str, params: serde_json::Value, wall: Duration, mut extra: serde_json::Value) {
    let mut out = serde_json::json!({
        "scenario": scenario,
        "peer": PEER,
        "peer_version": VERSION,
        "params": params,
        "wall_seconds": wall.as_secs_f64(),
    });
    out.as_object_mut()
        .expect("object")
        .append(extra.as_object_mut().expect("object"));
    println!("{out}");
}

fn spawn_join(args: &Args) {
    let tasks = args.u64("tasks", 1_000_000);
    let traced = args.u64("trace", 0) != 0;
    let seed = args.u64("seed", 0);
    let checksum = Checksum::new();
    let start = Instant::now();
    let event_loop = EventLoop::with_config(config(args));
    let order = checksum.clone();
    let sum = event_loop
        .run_until_complete(async move {
            let handles: Vec<_> = if traced {
                (0..tasks)
                    .map(|index| {
                        let order = order.clone();
                        roof::spawn(async move {
                            order.fold(index);
                            index
                        })
                    })
                    .collect()
            } else {
                (0..tasks)
                    .map(|index| roof::spawn(async move { index }))
                    .collect()
            };
            let mut sum = 0u64;
            for handle in handles {
                sum += handle.await.expect("task finished");
            }
            sum
        })
        .unwrap_or_else(|failure| die(&failure.to_string()));
    drop(event_loop);
    let wall = start.elapsed();
    assert_eq!(sum, tasks * tasks.saturating_sub(1) / 2, "spawn-join sum");
    let mut extra = serde_json::json!({
        "tasks_per_wall_second": tasks as f64 / wall.as_secs_f64(),
        "sum": sum,
    });
    if traced {
        extra["checksum"] = checksum.hex().into();
    }
    line(
        "spawn-join",
        serde_json::json!({"tasks": tasks, "trace": traced, "seed": seed}),
        wall,
        extra,
    );
}

fn timer_durations_ms(count: u64) -> Vec<u64> {
    let mut state = TIMER_LCG_SEED;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            1 + (state >> 33) % TIMER_MAX_MS
        })
        .collect()
}

fn timers(args: &Args) {
    let count = args.u64("timers", 100_000);
    let seed = args.u64("seed", 0);
    let durations = timer_durations_ms(count);
    let max_ms = durations.iter().copied().max().unwrap_or(0);
    let checksum = Checksum::new();
    let fired = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let event_loop = EventLoop::with_config(config(args));
    let (order, counter) = (checksum.clone(), fired.clone());
    let virtual_time = event_loop
        .run_until_complete(async move {
            let handles: Vec<_> = durations
                .into_iter()
                .enumerate()
                .map(|(index, ms)| {
                    let (order, counter) = (order.clone(), counter.clone());
                    roof::spawn(async move {
                        roof::sleep(Duration::from_millis(ms)).await;
                        counter.set(counter.get() + 1);
                        order.fold(index as u64);
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("timer task");
            }
            roof::time::now()
        })
        .unwrap_or_else(|failure| die(&failure.to_string()));
    drop(event_loop);
    let wall = start.elapsed();
    assert_eq!(fired.get(), count, "every timer fired");
    line(
        "timers",
        serde_json::json!({"timers": count, "max_timer_ms": max_ms, "seed": seed}),
        wall,
        serde_json::json!({
            "timer_events": count,
            "timer_events_per_wall_second": count as f64 / wall.as_secs_f64(),
            "virtual_seconds": virtual_time.as_secs_f64(),
            "checksum": checksum.hex(),
        }),
    );
}

fn timers_day(args: &Args) {
    let steps = args.u64("steps", 86_400);
    let step = Duration::from_millis(args.u64("step-ms", 1000));
    let seed = args.u64("seed", 0);
    let total = step * u32::try_from(steps).unwrap_or_else(|_| die("--steps is too large"));
    let start = Instant::now();
    let event_loop = EventLoop::with_config(config(args));
    let virtual_time = event_loop
        .run_until_complete(async move {
            let day = roof::spawn(async move {
                for _ in 0..steps {
                    roof::sleep(step).await;
                }
            });
            day.await.expect("day task");
            roof::time::now()
        })
        .unwrap_or_else(|failure| die(&failure.to_string()));
    drop(event_loop);
    let wall = start.elapsed();
    line(
        "timers-day",
        serde_json::json!({"steps": steps, "step_ms": step.as_millis() as u64, "seed": seed}),
        wall,
        serde_json::json!({
            "wall_seconds_per_simulated_day": wall.as_secs_f64() * 86_400.0 / total.as_secs_f64(),
            "timer_events_per_wall_second": steps as f64 / wall.as_secs_f64(),
            "virtual_seconds": virtual_time.as_secs_f64(),
        }),
    );
}

fn main() {
    let args = Args::parse();
    match args.scenario.as_str() {
        "spawn-join" => spawn_join(&args),
        "timers" => timers(&args),
        "timers-day" => timers_day(&args),
        // The simulated network is not built yet: say so in the harness's format (and exit 0,
        // so that a side-by-side run of the peers goes on to the other scenarios).
        "yell-echo" | "yell-echo-seeds" => println!(
            "{}",
            serde_json::json!({
                "scenario": args.scenario,
                "peer": PEER,
                "peer_version": VERSION,
                "params": {},
                "skipped": "yell-echo needs roof's simulated network, which is not built yet",
            })
        ),
        other => die(&format!(
            "unknown scenario {other:?}; expected spawn-join | timers | timers-day"
        )),
    }
}
