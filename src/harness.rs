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

use std::cell::RefCell;
use std::env;
use std::fmt;
use std::fs;
use std::future::Future;
use std::io::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use crate::engine::report::{Failure, Report};
use crate::engine::sched::Policy;
use crate::engine::trace::TraceMode;
use crate::event_loop::EventLoop;
use crate::fault::{FaultKind, FaultPlan, FiredFaults};
use crate::kernel::Config;
use crate::task::JoinHandle;

/// Seeds run by [`check`] when `ROOF_SEEDS` is not set: enough to catch the easy bugs, few
/// enough to keep `cargo test` quick.
pub const SEEDS_DEFAULT: u64 = 32;

/// The clients of one run: their tasks, and which have finished.
#[derive(Default)]
struct Clients {
    /// Name and task of each client, in the order they were added.
    tasks: Vec<(String, JoinHandle<Result<(), ()>>)>,
    /// Which clients returned `Ok`, by index.
    finished: Rc<RefCell<Vec<bool>>>,
}

/// The simulation a test body sets up: hosts (servers) and clients.
pub struct Sim {
    event_loop: EventLoop,
    clients: RefCell<Clients>,
}

impl Sim {
    /// Add a host running `start` (again after each restart). Panics on a taken or invalid
    /// name: that is a mistake in the test itself.
    pub fn host<F, Fut>(&self, name: &str, start: F) -> &Sim
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        if let Err(error) = self.event_loop.host(name, start) {
            panic!("roof: sim.host({name:?}): {error}");
        }
        self
    }

    /// Add a client host running `future` once. The seed passes when every client returns
    /// `Ok`; an `Err` fails it with the error's message, at the virtual time it was returned
    /// (the failure reported is the earliest of the run, whichever client it came from).
    pub fn client<Fut, E>(&self, name: &str, future: Fut) -> &Sim
    where
        Fut: Future<Output = Result<(), E>> + 'static,
        E: fmt::Display + 'static,
    {
        let client = name.to_string();
        let mut clients = self.clients.borrow_mut();
        let index = clients.tasks.len();
        let finished = clients.finished.clone();
        finished.borrow_mut().push(false);
        let wrapped = async move {
            match future.await {
                Ok(()) => {
                    finished.borrow_mut()[index] = true;
                    Ok(())
                }
                Err(error) => {
                    let message = error.to_string();
                    crate::kernel::with(|kernel| kernel.client_failed(&client, &message));
                    Err(())
                }
            }
        };
        match self.event_loop.client(name, wrapped) {
            Ok(handle) => clients.tasks.push((name.to_string(), handle)),
            Err(error) => panic!("roof: sim.client({name:?}): {error}"),
        }
        self
    }

    /// The loop underneath, for faults and anything else (`sim.crash("server")`, ...).
    pub fn event_loop(&self) -> &EventLoop {
        &self.event_loop
    }
}

impl std::ops::Deref for Sim {
    type Target = EventLoop;

    fn deref(&self) -> &EventLoop {
        &self.event_loop
    }
}

/// Faults and liveness for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Stress {
    /// Draw a fault plan with faults starting within this window.
    faults: Option<Duration>,
    /// Or run exactly this plan.
    plan: Option<FaultPlan>,
    /// After the faults stop, every client must finish within this.
    liveness: Option<Duration>,
}

/// One run's result and the faults it had.
struct SeedRun {
    report: Report,
    plan: FaultPlan,
    fired: Vec<String>,
}

/// Run one seed: build the sim, let `body` fill it, run until every client is done or one
/// failed (with the seed's fault plan and the liveness deadline, when asked for).
fn run_seed(config: Config, body: &dyn Fn(&Sim), stress: Stress) -> SeedRun {
    let seed = config.seed;
    let sim = Sim {
        event_loop: EventLoop::with_config(config),
        clients: RefCell::new(Clients::default()),
    };
    body(&sim);
    let Clients { tasks, finished } = std::mem::take(&mut *sim.clients.borrow_mut());
    let client_names: Vec<String> = tasks.iter().map(|(name, _)| name.clone()).collect();
    let restartable = sim.restartable_hosts();
    let mut plan = match (&stress.plan, stress.faults) {
        (Some(plan), _) => plan.clone(),
        (None, None) => FaultPlan::none(),
        (None, Some(window)) => {
            let hosts: Vec<String> = sim
                .hosts()
                .into_iter()
                .filter(|host| host != "main")
                .collect();
            // Clients run once: a crash is drawn among the hosts that restart.
            FaultPlan::draw_among(seed, &hosts, &restartable, window)
        }
    };
    // The same for a given plan: crashing a client would fail the seed for nothing the
    // system did.
    plan.faults
        .retain(|fault| fault.kind != FaultKind::Crash || restartable.contains(&fault.host));
    let fired: FiredFaults = Rc::new(RefCell::new(Vec::new()));
    let nemesis = (stress.faults.is_some() || stress.plan.is_some())
        .then(|| sim.start_nemesis(plan.clone(), fired.clone()));
    // Done when every client is, or as soon as one fails (its error is the run's failure
    // already, recorded when it happened).
    let mut waiting = tasks;
    let all_clients = std::future::poll_fn(move |cx| {
        let mut index = 0;
        while index < waiting.len() {
            match std::pin::Pin::new(&mut waiting[index].1).poll(cx) {
                std::task::Poll::Pending => index += 1,
                std::task::Poll::Ready(Ok(Ok(()))) => {
                    waiting.remove(index).1.detach();
                }
                std::task::Poll::Ready(Ok(Err(()))) => return std::task::Poll::Ready(Ok(())),
                std::task::Poll::Ready(Err(_)) => {
                    let name = waiting.remove(index).0;
                    return std::task::Poll::Ready(Err(format!(
                        "client {name:?} failed: the client was cancelled"
                    )));
                }
            }
        }
        if waiting.is_empty() {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    });
    let watchdog = async move {
        if let Some(nemesis) = nemesis {
            let _ = nemesis.await;
        }
        let Some(deadline) = stress.liveness else {
            return std::future::pending().await;
        };
        let stopped = crate::time::now();
        crate::time::sleep(deadline).await;
        let stuck: Vec<&str> = finished
            .borrow()
            .iter()
            .zip(&client_names)
            .filter(|(done, _)| !**done)
            .map(|(_, name)| name.as_str())
            .collect();
        Err(format!(
            "liveness: no progress within {deadline:?} after the faults stopped at {stopped}: still running: {}",
            stuck.join(", ")
        ))
    };
    let outcome = sim
        .event_loop
        .run_until_complete(first_of(all_clients, watchdog));
    if let Ok(Err(message)) = outcome {
        sim.event_loop.fail(message);
    }
    let fired = fired.borrow().clone();
    SeedRun {
        report: sim.event_loop.report(),
        plan,
        fired,
    }
}

/// Whichever of two futures finishes first, polling `a` before `b` (no hidden randomness).
async fn first_of<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(value) = a.as_mut().poll(cx) {
            return std::task::Poll::Ready(value);
        }
        b.as_mut().poll(cx)
    })
    .await
}

/// Which seeds to run.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seeds {
    One(u64),
    Range(Range<u64>),
}

/// A malformed `ROOF_*` variable.
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

/// Parse a seed range: a count `N` (0..N) or `A..B` (B excluded), non-empty.
pub fn parse_seed_range(text: &str) -> Option<Range<u64>> {
    let range = match text.split_once("..") {
        Some((start, end)) => start.trim().parse().ok()?..end.trim().parse().ok()?,
        None => 0..text.trim().parse().ok()?,
    };
    (range.start < range.end).then_some(range)
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
            let range = parse_seed_range(&value).ok_or(EnvError {
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

/// A failing seed, with everything needed to understand and replay it.
#[derive(Clone, Debug)]
pub struct SeedFailure {
    /// The seed.
    pub seed: u64,
    /// What went wrong.
    pub failure: Failure,
    /// The version and settings the seed ran with.
    pub settings: String,
    /// The fault plan drawn for the seed and the faults that fired, when faults were on.
    pub faults: Option<(String, Vec<String>)>,
    /// The line to paste to replay it.
    pub replay: String,
    /// The failing run's trace, when asked for (`ROOF_TRACE=1`).
    pub trace: Option<String>,
}

impl fmt::Display for SeedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(trace) = &self.trace {
            write!(f, "{trace}")?;
        }
        writeln!(f, "roof: seed {} {}", self.seed, self.failure.headline())?;
        writeln!(f, "roof: {}", self.settings)?;
        if let Some((plan, fired)) = &self.faults {
            writeln!(f, "roof: fault plan: {plan}")?;
            let fired = if fired.is_empty() {
                "none".to_string()
            } else {
                fired.join("; ")
            };
            writeln!(f, "roof: faults fired: {fired}")?;
        }
        write!(f, "{}", self.replay)
    }
}

/// The pasteable replay line: `replay: ROOF_SEED=N cargo test --test <binary> -- <test>`.
fn replay_line(seed: u64, test: &str) -> String {
    let binary = env::current_exe()
        .ok()
        .and_then(|path| {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
            _ => stem,
        })
        .unwrap_or_else(|| "<binary>".to_string());
    format!("replay: ROOF_SEED={seed} cargo test --test {binary} -- {test} --exact")
}

fn regressions_path(dir: &Path, test: &str) -> PathBuf {
    let file: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '.'
            }
        })
        .collect();
    dir.join(format!("{file}.seeds"))
}

/// The seeds recorded for `test` in `dir`, oldest first.
pub fn read_regressions(dir: &Path, test: &str) -> Vec<u64> {
    let Ok(text) = fs::read_to_string(regressions_path(dir, test)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| line.split('#').next()?.trim().parse().ok())
        .collect()
}

fn record_regression(dir: &Path, test: &str, seed: u64) {
    let path = regressions_path(dir, test);
    if read_regressions(dir, test).contains(&seed) {
        return;
    }
    let write = || -> std::io::Result<()> {
        fs::create_dir_all(path.parent().expect("a file under a folder"))?;
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(file, "{seed}")
    };
    if let Err(error) = write() {
        eprintln!(
            "roof: could not record seed {seed} in {}: {error}",
            path.display()
        );
    }
}

/// Run the seeds the environment asks for (see the module documentation) and fail the test
/// on the first failing seed, printing it with its replay line.
///
/// Panics with a message naming the variable if a `ROOF_*` variable is malformed.
pub fn check<F: Fn(&Sim)>(body: F) {
    match Builder::from_env() {
        Ok(builder) => builder.run(body),
        Err(error) => panic!("roof: {error}"),
    }
}
