//! Running seeds from tests: [`check`], its [`Builder`], and the [`Sim`] a test body fills in.
//!
//! ```
//! use roof::io::{AsyncReadExt, AsyncWriteExt};
//! use roof::net::{TcpListener, TcpStream};
//!
//! roof::harness::Builder::new().seeds(0..8).run(|sim| {
//!     sim.host("server", || async {
//!         let listener = TcpListener::bind("0.0.0.0:7").await.unwrap();
//!         loop {
//!             let (mut stream, _) = listener.accept().await.unwrap();
//!             roof::spawn(async move {
//!                 let mut buf = [0u8; 4];
//!                 stream.read_exact(&mut buf).await.unwrap();
//!                 stream.write_all(&buf).await.unwrap();
//!             })
//!             .detach();
//!         }
//!     });
//!     sim.client("nc", async {
//!         let mut stream = TcpStream::connect("server:7").await.map_err(|e| e.to_string())?;
//!         stream.write_all(b"ping").await.map_err(|e| e.to_string())?;
//!         let mut reply = [0u8; 4];
//!         stream.read_exact(&mut reply).await.map_err(|e| e.to_string())?;
//!         if &reply == b"ping" { Ok(()) } else { Err(format!("got {reply:?}")) }
//!     });
//! });
//! ```
//!
//! # Which seeds run
//! [`check`] reads the environment (a malformed value is an error naming the variable):
//!
//! | variable | meaning |
//! |---|---|
//! | `ROOF_SEED=N` | run exactly seed N (replay) |
//! | `ROOF_SEEDS=N` or `A..B` | how many seeds (from 0) or which range; default [`SEEDS_DEFAULT`] |
//! | `ROOF_CHECK_DETERMINISM=1` | run each seed twice and compare the traces event by event |
//! | `ROOF_TRACE=1` | print the trace of a failing seed |
//!
//! Seeds that failed before run first: [`check`] appends each failure to
//! `roof-regressions/<test name>.seeds` under the package's directory (`CARGO_MANIFEST_DIR`),
//! one seed per line (`#` starts a comment). Commit that folder, as proptest's regression files
//! are, so every machine replays the seeds that once failed.
//!
//! # A failure
//! A failing seed prints what is needed to understand and replay it, then fails the test:
//!
//! ```text
//! roof: seed 8137 failed at 2.000341000s (task "nc" on host nc): connection reset by peer
//! roof: roof 0.1.0, policy random, time_max 86400s, steps_max 10000000, check_determinism false
//! replay: ROOF_SEED=8137 cargo test --test main -- yell_echo_survives_faults
//! ```

use std::env;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::report::Failure;
use crate::engine::sched::Policy;
use crate::engine::trace::TraceMode;
use crate::fault::FaultPlan;
use crate::kernel::Config;

mod failure;
mod run;

pub use failure::{read_regressions, SeedFailure};
use failure::{record_regression, replay_line};
pub use run::Sim;
use run::{run_seed, Stress};

/// Seeds run by [`check`] when `ROOF_SEEDS` is not set: enough to catch the easy bugs, few
/// enough to keep `cargo test` quick.
pub const SEEDS_DEFAULT: u64 = 32;

/// Which seeds to run.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seeds {
    One(u64),
    Range(Range<u64>),
}

/// A malformed `ROOF_*` variable.
///
/// ```
/// use roof::harness::Builder;
/// let env = |variable: &str| (variable == "ROOF_SEEDS").then(|| "ten".to_string());
/// let error = Builder::from_vars(env).unwrap_err();
/// assert_eq!((error.variable, error.value.as_str()), ("ROOF_SEEDS", "ten"));
/// assert!(error.to_string().starts_with("ROOF_SEEDS=\"ten\" is invalid"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} is invalid: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

impl std::error::Error for EnvError {}

/// Parse a seed range: a count `N` (0..N) or `A..B` (B excluded), non-empty: the one parser
/// of `ROOF_SEEDS` and of `roof sweep --seeds`. The error says what was wrong.
#[doc(hidden)]
pub fn seed_range(text: &str) -> Result<Range<u64>, String> {
    let number = |part: &str| {
        part.trim().parse::<u64>().map_err(|_| {
            format!(
                "expected a range A..B or a count N of whole numbers up to {}",
                u64::MAX
            )
        })
    };
    let range = match text.split_once("..") {
        Some((start, end)) => number(start)?..number(end)?,
        None => 0..number(text)?,
    };
    if range.start >= range.end {
        return Err("the range is empty (A must be below B, N at least 1)".into());
    }
    Ok(range)
}

fn flag(get: &impl Fn(&str) -> Option<String>, variable: &'static str) -> Result<bool, EnvError> {
    match get(variable) {
        None => Ok(false),
        Some(value) => match value.as_str() {
            "" | "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            _ => Err(EnvError {
                variable,
                value,
                expected: "1 or 0",
            }),
        },
    }
}

/// How [`check`] runs; every setting defaults from the environment in [`Builder::from_env`].
///
/// ```
/// use roof::harness::Builder;
/// use std::time::Duration;
/// let ran = Builder::new()
///     .seeds(0..4)
///     .policy(roof::Policy::pct(2))
///     .time_max(Duration::from_secs(60))
///     .check_determinism(true)
///     .try_run(|sim| {
///         sim.client("c", async {
///             roof::sleep(Duration::from_secs(1)).await;
///             Ok::<(), String>(())
///         });
///     })
///     .unwrap();
/// assert_eq!(ran, 4, "seeds run");
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    seeds: Seeds,
    /// `ROOF_SEED`, when [`from_env`](Builder::from_env) found it: it wins over `seed` and
    /// `seeds`, so a printed replay line always replays.
    replay_seed: Option<u64>,
    policy: Policy,
    time_max: Duration,
    steps_max: u64,
    check_determinism: bool,
    print_trace: bool,
    /// Where failing seeds are recorded and read back (`None`: nowhere).
    regressions: Option<PathBuf>,
    name: Option<String>,
    stress: Stress,
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}

impl Builder {
    /// Seeds `0..SEEDS_DEFAULT`, the random policy, default limits; no environment read.
    pub fn new() -> Builder {
        let defaults = Config::new(0);
        Builder {
            seeds: Seeds::Range(0..SEEDS_DEFAULT),
            replay_seed: None,
            policy: Policy::Random,
            time_max: defaults.time_max,
            steps_max: defaults.steps_max,
            check_determinism: false,
            print_trace: false,
            regressions: None,
            name: None,
            stress: Stress::default(),
        }
    }

    /// The defaults, then `ROOF_SEED`, `ROOF_SEEDS`, `ROOF_CHECK_DETERMINISM` and `ROOF_TRACE`,
    /// with failing seeds recorded under `$CARGO_MANIFEST_DIR/roof-regressions`.
    pub fn from_env() -> Result<Builder, EnvError> {
        let mut builder = Builder::from_vars(|variable| env::var(variable).ok())?;
        builder.regressions = env::var_os("CARGO_MANIFEST_DIR")
            .map(|root| PathBuf::from(root).join("roof-regressions"));
        Ok(builder)
    }

    /// The defaults, then the `ROOF_*` settings that `get` returns (the environment, in
    /// [`from_env`](Builder::from_env)).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Builder, EnvError> {
        let mut builder = Builder::new();
        if let Some(value) = get("ROOF_SEEDS") {
            let range = seed_range(&value).map_err(|_| EnvError {
                variable: "ROOF_SEEDS",
                value,
                expected: "a count N (at least 1) or a non-empty range A..B",
            })?;
            builder.seeds = Seeds::Range(range);
        }
        if let Some(value) = get("ROOF_SEED") {
            let seed = value.trim().parse().map_err(|_| EnvError {
                variable: "ROOF_SEED",
                value: value.clone(),
                expected: "a whole number (the seed to replay)",
            })?;
            builder.seeds = Seeds::One(seed);
            builder.replay_seed = Some(seed);
        }
        builder.check_determinism = flag(&get, "ROOF_CHECK_DETERMINISM")?;
        builder.print_trace = flag(&get, "ROOF_TRACE")?;
        Ok(builder)
    }

    /// Run exactly `seed`, unless `ROOF_SEED` names one (in a builder made by
    /// [`from_env`](Builder::from_env)): an explicit `ROOF_SEED` always wins, so the printed
    /// replay line replays whatever the test asks for.
    pub fn seed(mut self, seed: u64) -> Builder {
        if self.replay_seed.is_none() {
            self.seeds = Seeds::One(seed);
        }
        self
    }

    /// Run the seeds in `range`, unless `ROOF_SEED` names one (see [`seed`](Builder::seed)).
    pub fn seeds(mut self, range: Range<u64>) -> Builder {
        if self.replay_seed.is_none() {
            self.seeds = Seeds::Range(range);
        }
        self
    }

    /// The scheduling policy.
    pub fn policy(mut self, policy: Policy) -> Builder {
        self.policy = policy;
        self
    }

    /// The virtual-time limit of each run.
    pub fn time_max(mut self, limit: Duration) -> Builder {
        self.time_max = limit;
        self
    }

    /// The step limit of each run.
    pub fn steps_max(mut self, limit: u64) -> Builder {
        self.steps_max = limit;
        self
    }

    /// Run each seed twice and fail on the first event where the traces differ.
    ///
    /// What it catches: anything that makes two runs of one seed in one process differ, such
    /// as iterating a `HashMap`, reading the wall clock, or a `futures::select!` drawing from
    /// its own generator. What it cannot: a difference that happens not to show in those two
    /// runs (a select whose hidden draw agrees both times, about half the seeds for a two-way
    /// select), or one between processes or builds. Use [`roof::select`](crate::select) and
    /// [`roof::random`](crate::random) so that every draw comes from the seed.
    pub fn check_determinism(mut self, check: bool) -> Builder {
        self.check_determinism = check;
        self
    }

    /// Print the trace of a failing seed.
    pub fn print_trace(mut self, print: bool) -> Builder {
        self.print_trace = print;
        self
    }

    /// Record failing seeds in, and run first the seeds of, `<dir>/<test name>.seeds`.
    pub fn regressions_dir(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.regressions = Some(dir.into());
        self
    }

    /// Give every seed a fault plan drawn from it (swarm style: each seed its own mix of
    /// partitions, clogs, crashes, latency spikes and loss bursts, including none), with faults
    /// starting within `window`. A failure prints the plan and the faults that fired.
    pub fn faults(mut self, window: Duration) -> Builder {
        self.stress.faults = Some(window);
        self
    }

    /// Run exactly `plan` on every seed (say, one a proptest strategy made).
    pub fn fault_plan(mut self, plan: FaultPlan) -> Builder {
        self.stress.plan = Some(plan);
        self
    }

    /// After the faults stop (all healed, crashed hosts restarted), every client must finish
    /// within `deadline`; a stuck system fails, naming the clients that made no progress.
    pub fn liveness(mut self, deadline: Duration) -> Builder {
        self.stress.liveness = Some(deadline);
        self
    }

    /// The name used for the regressions file and the replay line (default: the test's name,
    /// from the test thread).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    fn config(&self, seed: u64, trace: TraceMode) -> Config {
        Config::new(seed)
            .policy(self.policy)
            .time_max(self.time_max)
            .steps_max(self.steps_max)
            .trace(trace)
            .echo(false)
    }

    /// Run every seed; the first failure is printed and returned (the rest are not run).
    pub fn try_run<F: Fn(&Sim)>(&self, body: F) -> Result<u64, Box<SeedFailure>> {
        let name = self.test_name();
        let seeds: Vec<u64> = match &self.seeds {
            Seeds::One(seed) => vec![*seed],
            Seeds::Range(range) => {
                // Seeds that failed before come first, then the range (without repeats).
                let earlier = self
                    .regressions
                    .as_ref()
                    .map(|dir| read_regressions(dir, &name))
                    .unwrap_or_default();
                let fresh = range.clone().filter(|seed| !earlier.contains(seed));
                earlier.iter().copied().chain(fresh).collect()
            }
        };
        let mut ran = 0;
        for seed in seeds {
            ran += 1;
            let (failure, plan, fired) = self.run_one(seed, &body);
            if let Some(failure) = failure {
                if let (Some(dir), false) = (&self.regressions, matches!(self.seeds, Seeds::One(_)))
                {
                    record_regression(dir, &name, seed);
                }
                let failure = SeedFailure {
                    seed,
                    failure,
                    settings: self.describe(),
                    faults: (self.stress.faults.is_some() || self.stress.plan.is_some())
                        .then(|| (plan.to_string(), fired)),
                    replay: replay_line(seed, &name),
                    trace: None,
                };
                let failure = if self.print_trace {
                    let run = run_seed(
                        self.config(seed, TraceMode::Record),
                        &body,
                        self.stress.clone(),
                    );
                    SeedFailure {
                        trace: run.report.trace.map(|trace| trace.render()),
                        ..failure
                    }
                } else {
                    failure
                };
                eprintln!("{failure}");
                return Err(Box::new(failure));
            }
        }
        Ok(ran)
    }

    fn run_one(&self, seed: u64, body: &dyn Fn(&Sim)) -> (Option<Failure>, FaultPlan, Vec<String>) {
        if !self.check_determinism {
            let run = run_seed(
                self.config(seed, TraceMode::Hash),
                body,
                self.stress.clone(),
            );
            return (run.report.outcome.err(), run.plan, run.fired);
        }
        let first = run_seed(
            self.config(seed, TraceMode::Record),
            body,
            self.stress.clone(),
        );
        let second = run_seed(
            self.config(seed, TraceMode::Record),
            body,
            self.stress.clone(),
        );
        let (Some(left), Some(right)) = (&first.report.trace, &second.report.trace) else {
            unreachable!("record mode keeps the trace")
        };
        let failure = match left.first_divergence(right) {
            Some(divergence) => Some(Failure::Nondeterminism {
                index: divergence.index,
                first: divergence.left.map(|event| event.to_string()),
                second: divergence.right.map(|event| event.to_string()),
            }),
            None => first.report.outcome.err(),
        };
        (failure, first.plan, first.fired)
    }

    /// Run every seed and panic (failing the test) on the first failure.
    pub fn run<F: Fn(&Sim)>(&self, body: F) {
        if let Err(failure) = self.try_run(body) {
            panic!("roof: seed {} failed: {}", failure.seed, failure.failure);
        }
    }

    fn describe(&self) -> String {
        format!(
            "roof {}, policy {}, time_max {:?}, steps_max {}, check_determinism {}",
            env!("CARGO_PKG_VERSION"),
            match self.policy {
                Policy::Random => "random".to_string(),
                Policy::Fifo => "fifo".to_string(),
                Policy::Pct { depth, horizon } => format!("pct(depth {depth}, horizon {horizon})"),
            },
            self.time_max,
            self.steps_max,
            self.check_determinism
        )
    }

    fn test_name(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match std::thread::current().name() {
            Some(name) if name != "main" => name.to_string(),
            _ => "roof_check".to_string(),
        }
    }
}

/// Run the seeds the environment asks for (see the module documentation) and fail the test
/// on the first failing seed, printing it with its replay line.
///
/// Panics with a message naming the variable if a `ROOF_*` variable is malformed.
///
/// ```
/// let runs = std::cell::Cell::new(0);
/// roof::check(|sim| {
///     runs.set(runs.get() + 1);
///     sim.client("c", async {
///         let answer = roof::spawn(async { 6 * 7 }).await.map_err(|e| e.to_string())?;
///         assert_eq!(answer, 42); // a panic fails the seed, as an `Err` does
///         Ok::<(), String>(())
///     });
/// });
/// assert!(runs.get() >= 1, "32 seeds unless ROOF_SEED or ROOF_SEEDS says otherwise");
/// ```
pub fn check<F: Fn(&Sim)>(body: F) {
    match Builder::from_env() {
        Ok(builder) => builder.run(body),
        Err(error) => panic!("roof: {error}"),
    }
}
