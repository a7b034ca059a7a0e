//! Event Roof as a peer of ../shared/peers: the same scenarios, flags and one-JSON-line
//! output as the turmoil, madsim, tokio and async-task peers, so `run.sh` can measure them side
//! by side.
//!
//! ```text
//! cargo bench --bench peers -- spawn-join --tasks 1000000 [--trace 1] [--seed S]
//! cargo bench --bench peers -- timers --timers 100000 --seed 0
//! cargo bench --bench peers -- timers-day --steps 86400 --step-ms 1000
//! cargo bench --bench peers -- queue --producers 4 --consumers 4 --items 1000000 --maxsize 64
//! cargo bench --bench peers -- fs --files 10 --writes 1000
//! ```
//!
//! Every run uses the default simulation policy (`Random`, seeded) with tracing off; the
//! order-sensitive `checksum` folds the order tasks ran (spawn-join with `--trace 1`) or
//! timers fired (timers), so a seed change shows in it.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use roof::{Config, EventLoop, Policy, TraceMode};

mod fnv;
mod timer_lcg;
use fnv::{fold_u64, FNV_OFFSET, FNV_PRIME};
use timer_lcg::timer_durations_ms;

const PEER: &str = "roof";
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The peers' order-sensitive checksum: FNV-1a over the little-endian bytes of each event.
#[derive(Clone, Default)]
struct Checksum(Rc<Cell<u64>>);

impl Checksum {
    fn new() -> Checksum {
        Checksum(Rc::new(Cell::new(FNV_OFFSET)))
    }

    fn fold(&self, value: u64) {
        self.0.set(fold_u64(self.0.get(), value));
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

// A benchmark measures wall time around the simulation it runs.
#[allow(clippy::disallowed_methods)]
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

// A benchmark measures wall time around the simulation it runs.
#[allow(clippy::disallowed_methods)]
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

// A benchmark measures wall time around the simulation it runs.
#[allow(clippy::disallowed_methods)]
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

const ECHO_PORT: u16 = 1234;
const MSG_LEN: usize = 16;

/// The 16-byte lowercase message client `client` sends in round `round` (as the peers do).
fn message(client: usize, round: usize) -> [u8; MSG_LEN] {
    let mut bytes = [0u8; MSG_LEN];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = b'a' + ((client * 31 + round * 7 + index * 3) % 26) as u8;
    }
    bytes
}

fn ip_key(ip: std::net::IpAddr) -> u64 {
    match ip {
        std::net::IpAddr::V4(v4) => u64::from(u32::from(v4)),
        std::net::IpAddr::V6(v6) => u128::from(v6) as u64,
    }
}

/// FNV-1a of a byte slice, folded as one event (the peers' `trace_bytes`).
fn fold_bytes(checksum: &Checksum, bytes: &[u8]) {
    let mut hash = FNV_OFFSET;
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    checksum.fold(hash);
}

struct EchoOutcome {
    virtual_time: Duration,
    checksum: u64,
}

/// One yell-echo run: a server host echoing upper-cased, `clients` client hosts doing
/// `rounds` round trips each; 1 ms one-way latency plus up to `jitter`, writes unsplit.
fn yell_echo_once(
    args: &Args,
    seed: u64,
    clients: usize,
    rounds: usize,
    jitter: Duration,
) -> EchoOutcome {
    use roof::io::{AsyncReadExt, AsyncWriteExt};
    use roof::net::{LinkConfig, TcpListener, TcpStream};

    let checksum = Checksum::new();
    let mut seeded = config(args);
    seeded.seed = seed;
    let event_loop = EventLoop::with_config(seeded);
    event_loop.set_default_link(
        LinkConfig::default()
            .latency(Duration::from_millis(1))
            .jitter(jitter)
            .split(0.0),
    );
    let accepts = checksum.clone();
    event_loop
        .host("server", move || {
            let accepts = accepts.clone();
            async move {
                let listener = TcpListener::bind(("0.0.0.0", ECHO_PORT))
                    .await
                    .expect("bind");
                loop {
                    let (mut stream, peer) = listener.accept().await.expect("accept");
                    accepts.fold(ip_key(peer.ip()));
                    roof::spawn(async move {
                        let mut buf = [0u8; 1024];
                        loop {
                            let count = match stream.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(count) => count,
                            };
                            buf[..count].make_ascii_uppercase();
                            if stream.write_all(&buf[..count]).await.is_err() {
                                break;
                            }
                        }
                    })
                    .detach();
                }
            }
        })
        .unwrap_or_else(|error| die(&error.to_string()));
    let handles: Vec<_> = (0..clients)
        .map(|client| {
            let trips = checksum.clone();
            event_loop
                .client(&format!("client-{client}"), async move {
                    let mut stream = loop {
                        match TcpStream::connect(("server", ECHO_PORT)).await {
                            Ok(stream) => break stream,
                            Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => {
                                roof::sleep(Duration::from_millis(1)).await;
                            }
                            Err(error) => panic!("client {client}: connect: {error}"),
                        }
                    };
                    let mut buf = [0u8; MSG_LEN];
                    for round in 0..rounds {
                        let sent = message(client, round);
                        stream.write_all(&sent).await.expect("write");
                        stream.read_exact(&mut buf).await.expect("read");
                        assert_eq!(
                            buf,
                            sent.map(|byte| byte.to_ascii_uppercase()),
                            "client {client} round {round}"
                        );
                        trips.fold(((client as u64) << 32) | round as u64);
                        trips.fold(roof::time::now().as_nanos());
                        fold_bytes(&trips, &buf);
                    }
                })
                .unwrap_or_else(|error| die(&error.to_string()))
        })
        .collect();
    let virtual_time = event_loop
        .run_until_complete(async move {
            for handle in handles {
                handle.await.expect("client task");
            }
            roof::time::now()
        })
        .unwrap_or_else(|failure| die(&failure.to_string()));
    drop(event_loop);
    EchoOutcome {
        virtual_time: virtual_time.elapsed_since_origin(),
        checksum: checksum.0.get(),
    }
}

// A benchmark measures wall time around the simulation it runs.
#[allow(clippy::disallowed_methods)]
fn yell_echo(args: &Args) {
    let clients = args.u64("clients", 100) as usize;
    let rounds = args.u64("rounds", 100) as usize;
    let seed = args.u64("seed", 0);
    let jitter_us = args.u64("latency-jitter-us", 0);
    let start = Instant::now();
    let outcome = yell_echo_once(
        args,
        seed,
        clients,
        rounds,
        Duration::from_micros(jitter_us),
    );
    let wall = start.elapsed();
    let trips = (clients * rounds) as u64;
    line(
        "yell-echo",
        serde_json::json!({"clients": clients, "rounds": rounds, "seed": seed, "latency_us": 1000, "latency_jitter_us": jitter_us}),
        wall,
        serde_json::json!({
            "round_trips": trips,
            "round_trips_per_wall_second": trips as f64 / wall.as_secs_f64(),
            "virtual_seconds": outcome.virtual_time.as_secs_f64(),
            "checksum": format!("{:016x}", outcome.checksum),
        }),
    );
}

// A benchmark measures wall time around the simulation it runs.
#[allow(clippy::disallowed_methods)]
fn yell_echo_seeds(args: &Args) {
    let seeds = args.u64("seeds", 20);
    let clients = args.u64("clients", 4) as usize;
    let rounds = args.u64("rounds", 10) as usize;
    let jitter_us = args.u64("latency-jitter-us", 0);
    let start = Instant::now();
    let mix = Checksum::new();
    let mut virtual_total = Duration::ZERO;
    for seed in 0..seeds {
        let outcome = yell_echo_once(
            args,
            seed,
            clients,
            rounds,
            Duration::from_micros(jitter_us),
        );
        mix.fold(outcome.checksum);
        virtual_total += outcome.virtual_time;
    }
    let wall = start.elapsed();
    line(
        "yell-echo-seeds",
        serde_json::json!({"seeds": seeds, "clients": clients, "rounds": rounds, "latency_us": 1000, "latency_jitter_us": jitter_us}),
        wall,
        serde_json::json!({
            "seeds_per_second": seeds as f64 / wall.as_secs_f64(),
            "virtual_seconds_total": virtual_total.as_secs_f64(),
            "checksum": mix.hex(),
        }),
    );
}

/// P producers put `items` numbered items (split evenly) into one `roof::sync::Queue` of
/// `maxsize`; C consumers take them until each gets its end marker (as the peers' asyncio
/// program does). Checked by the sum of the items taken.
// A benchmark measures wall time around the simulation it runs.
#[allow(clippy::disallowed_methods)]
fn queue(args: &Args) {
    let producers = args.u64("producers", 4).max(1);
    let consumers = args.u64("consumers", 4).max(1);
    let items = args.u64("items", 1_000_000);
    let maxsize = usize::try_from(args.u64("maxsize", 64).max(1))
        .unwrap_or_else(|_| die("--maxsize is too large"));
    let seed = args.u64("seed", 0);
    let start = Instant::now();
    let event_loop = EventLoop::with_config(config(args));
    let sum = event_loop
        .run_until_complete(async move {
            let queue = Rc::new(roof::sync::Queue::<Option<u64>>::new(maxsize));
            let takers: Vec<_> = (0..consumers)
                .map(|_| {
                    let queue = queue.clone();
                    roof::spawn(async move {
                        let mut total = 0u64;
                        while let Some(item) = queue.get().await.expect("queue open") {
                            total += item;
                        }
                        total
                    })
                })
                .collect();
            let per = items / producers;
            let makers: Vec<_> = (0..producers)
                .map(|producer| {
                    let queue = queue.clone();
                    let count = if producer == producers - 1 {
                        items - per * (producers - 1)
                    } else {
                        per
                    };
                    roof::spawn(async move {
                        for item in producer * per..producer * per + count {
                            queue.put(Some(item)).await.expect("queue open");
                        }
                    })
                })
                .collect();
            for maker in makers {
                maker.await.expect("producer");
            }
            for _ in 0..consumers {
                queue.put(None).await.expect("queue open");
            }
            let mut sum = 0u64;
            for taker in takers {
                sum += taker.await.expect("consumer");
            }
            sum
        })
        .unwrap_or_else(|failure| die(&failure.to_string()));
    drop(event_loop);
    let wall = start.elapsed();
    assert_eq!(sum, items * items.saturating_sub(1) / 2, "queue sum");
    line(
        "queue",
        serde_json::json!({"producers": producers, "consumers": consumers, "items": items,
            "maxsize": maxsize, "seed": seed}),
        wall,
        serde_json::json!({
            "items_per_wall_second": items as f64 / wall.as_secs_f64(),
            "sum": sum,
        }),
    );
}

const FS_PAYLOAD_LEN: usize = 128;

/// The 128-byte payload file `file` writes in iteration `write`.
fn fs_payload(file: u64, write: u64) -> [u8; FS_PAYLOAD_LEN] {
    let mut bytes = [0u8; FS_PAYLOAD_LEN];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = (file
            .wrapping_mul(31)
            .wrapping_add(write.wrapping_mul(7))
            .wrapping_add(index as u64 * 3)
            % 256) as u8;
    }
    bytes
}

/// F files on the simulated disk, one task each doing W rounds of a 128-byte `write_all`
/// then `sync_data`. The checksum folds the order the syncs finished (file, write), then
/// each file's contents read back; `bytes` is the sum of the files' lengths.
// A benchmark measures wall time around the simulation it runs.
#[allow(clippy::disallowed_methods)]
fn fs(args: &Args) {
    let files = args.u64("files", 10);
    let writes = args.u64("writes", 1000);
    let seed = args.u64("seed", 0);
    let checksum = Checksum::new();
    let start = Instant::now();
    let event_loop = EventLoop::with_config(config(args));
    let order = checksum.clone();
    let (virtual_time, bytes) = event_loop
        .run_until_complete(async move {
            roof::fs::create_dir_all("/bench").await.expect("mkdir");
            let mut opened = Vec::new();
            for file in 0..files {
                let handle = roof::fs::File::create(format!("/bench/f{file}"))
                    .await
                    .expect("create");
                opened.push(handle);
            }
            let handles: Vec<_> = opened
                .into_iter()
                .enumerate()
                .map(|(file, mut handle)| {
                    let order = order.clone();
                    let file = file as u64;
                    roof::spawn(async move {
                        for write in 0..writes {
                            handle
                                .write_all(&fs_payload(file, write))
                                .await
                                .expect("write");
                            handle.sync_data().await.expect("sync");
                            order.fold((file << 32) | write);
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.expect("file task");
            }
            let virtual_time = roof::time::now();
            let mut bytes = 0u64;
            for file in 0..files {
                let path = format!("/bench/f{file}");
                bytes += roof::fs::metadata(&path).await.expect("metadata").len();
                fold_bytes(&order, &roof::fs::read(&path).await.expect("read"));
            }
            (virtual_time, bytes)
        })
        .unwrap_or_else(|failure| die(&failure.to_string()));
    drop(event_loop);
    let wall = start.elapsed();
    let ops = files * writes;
    assert_eq!(bytes, ops * FS_PAYLOAD_LEN as u64, "fs bytes");
    line(
        "fs",
        serde_json::json!({"files": files, "writes": writes, "payload_bytes": FS_PAYLOAD_LEN,
            "seed": seed}),
        wall,
        serde_json::json!({
            "write_syncs": ops,
            "write_syncs_per_wall_second": ops as f64 / wall.as_secs_f64(),
            "virtual_seconds": virtual_time.as_secs_f64(),
            "bytes": bytes,
            "checksum": checksum.hex(),
        }),
    );
}

fn main() {
    let args = Args::parse();
    match args.scenario.as_str() {
        "spawn-join" => spawn_join(&args),
        "timers" => timers(&args),
        "timers-day" => timers_day(&args),
        "yell-echo" => yell_echo(&args),
        "yell-echo-seeds" => yell_echo_seeds(&args),
        "queue" => queue(&args),
        "fs" => fs(&args),
        other => die(&format!(
            "unknown scenario {other:?}; expected spawn-join | timers | timers-day | yell-echo | yell-echo-seeds | queue | fs"
        )),
    }
}
