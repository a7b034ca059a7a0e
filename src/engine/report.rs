//! What a run ends with: a [`Report`], and when it failed, the [`Failure`].

use std::fmt;
use std::time::Duration;

use crate::engine::id::Instant;
use crate::engine::id::TaskId;
use crate::engine::sched::Policy;
use crate::engine::trace::Trace;

/// Why a run failed. Simulation outcomes are values, never panics of the engine.
///
/// ```
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
/// // Nothing will ever wake the main task, and no timer is pending.
/// let failure = lp.run_until_complete(std::future::pending::<()>()).unwrap_err();
/// assert!(matches!(failure, roof::Failure::Deadlock { .. }));
/// assert_eq!(failure.kind(), "deadlock");
/// assert_eq!(lp.report().outcome, Err(failure));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// A task panicked; the run stops there.
    Panic {
        /// The task.
        task: TaskId,
        /// Its name.
        name: String,
        /// The host it ran on.
        host: String,
        /// When it panicked.
        time: Instant,
        /// The panic message.
        message: String,
    },
    /// Nothing was ready, no timer was pending, and the loop had not been told to stop.
    Deadlock {
        /// When the loop ran dry.
        time: Instant,
        /// The tasks still alive (all blocked), by id.
        blocked: Vec<(TaskId, String)>,
    },
    /// The next event lay beyond the virtual-time limit.
    TimeLimit {
        /// The limit ([`Config::time_max`](crate::Config::time_max)).
        limit: Duration,
        /// When the limit was hit.
        time: Instant,
    },
    /// The run took more steps (task polls) than allowed.
    StepLimit {
        /// The limit ([`Config::steps_max`](crate::Config::steps_max)).
        limit: u64,
        /// When the limit was hit.
        time: Instant,
    },
    /// The scenario itself reported an error (for example an assertion on its result).
    Error {
        /// What went wrong.
        message: String,
        /// When.
        time: Instant,
    },
    /// Two runs of the same seed diverged: the simulation is not deterministic.
    Nondeterminism {
        /// Index of the first differing trace event.
        index: usize,
        /// That event in the first run (`None` if the trace ended there).
        first: Option<String>,
        /// That event in the second run.
        second: Option<String>,
    },
    /// `run_until_complete` or `run_forever` was called on a closed loop, or while another
    /// loop was running on this thread.
    Misuse {
        /// What was wrong.
        message: String,
    },
}

impl Failure {
    /// A short name for the kind of failure: `panic`, `deadlock`, `time-limit`,
    /// `step-limit`, `error`, `nondeterminism` or `misuse`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Panic { .. } => "panic",
            Failure::Deadlock { .. } => "deadlock",
            Failure::TimeLimit { .. } => "time-limit",
            Failure::StepLimit { .. } => "step-limit",
            Failure::Error { .. } => "error",
            Failure::Nondeterminism { .. } => "nondeterminism",
            Failure::Misuse { .. } => "misuse",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Panic {
                task,
                name,
                time,
                message,
                ..
            } => write!(f, "task {name:?} ({task}) panicked at {time}: {message}"),
            Failure::Deadlock { time, blocked } => {
                write!(
                    f,
                    "deadlock at {time}: nothing ready, no timer pending; blocked:"
                )?;
                if blocked.is_empty() {
                    f.write_str(" (no tasks)")?;
                }
                for (id, name) in blocked {
                    write!(f, " {name:?} ({id})")?;
                }
                Ok(())
            }
            Failure::TimeLimit { limit, time } => {
                write!(f, "virtual-time limit of {limit:?} reached at {time}")
            }
            Failure::StepLimit { limit, time } => {
                write!(f, "step limit of {limit} reached at {time}")
            }
            Failure::Error { message, time } => write!(f, "scenario failed at {time}: {message}"),
            Failure::Nondeterminism {
                index,
                first,
                second,
            } => {
                let show = |event: &Option<String>| {
                    event.clone().unwrap_or_else(|| "(trace ended)".into())
                };
                write!(
                    f,
                    "nondeterminism: the two runs diverge at event {index}: first run: {}; second run: {}",
                    show(first),
                    show(second)
                )
            }
            Failure::Misuse { message } => f.write_str(message),
        }
    }
}

impl Failure {
    /// One line in the shape a person scans for: `failed at <time> (task "nc" on host nc):
    /// <message>` where the task and host are known, else `failed: <failure>`.
    pub fn headline(&self) -> String {
        match self {
            Failure::Panic {
                name,
                host,
                time,
                message,
                ..
            } => format!("failed at {time} (task {name:?} on host {host}): panicked: {message}"),
            Failure::Error { message, time } => match client_of(message) {
                Some((client, rest)) => {
                    format!("failed at {time} (task {client:?} on host {client}): {rest}")
                }
                None => format!("failed at {time}: {message}"),
            },
            other => format!("failed: {other}"),
        }
    }
}

/// `client "nc" failed: <rest>` (the harness's wording) split into the client and the rest.
fn client_of(message: &str) -> Option<(&str, &str)> {
    let rest = message.strip_prefix("client \"")?;
    let (client, rest) = rest.split_once("\" failed: ")?;
    Some((client, rest))
}

impl std::error::Error for Failure {}

/// Everything about one run: its seed and policy, how it ended, and its trace.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::with_config(roof::Config::new(9).echo(false));
/// lp.run_until_complete(async {
///     roof::println!("done");
///     roof::sleep(Duration::from_secs(2)).await;
/// })
/// .unwrap();
/// let report = lp.report();
/// assert!(report.passed());
/// assert_eq!((report.seed, report.output.as_str()), (9, "done\n"));
/// assert_eq!(report.virtual_time.as_secs_f64(), 2.0);
/// assert!(report.to_string().starts_with("seed 9 passed at 2.000000000s"));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The scheduling policy.
    pub policy: Policy,
    /// `Ok` if the run passed, else why it failed.
    pub outcome: Result<(), Failure>,
    /// The virtual time when the run ended.
    pub virtual_time: Instant,
    /// Task polls made.
    pub steps: u64,
    /// Trace events seen (hashed or recorded).
    pub events: u64,
    /// The trace hash (FNV-1a 64 of the trace's text rendering).
    pub trace_hash: u64,
    /// The trace, when recorded ([`TraceMode::Record`](crate::TraceMode::Record)).
    pub trace: Option<Trace>,
    /// Everything printed with [`println!`](crate::println).
    pub output: String,
    /// The scheduler choices made, when recorded ([`Config::record_choices`](crate::Config::record_choices)).
    pub choices: Option<Vec<u32>>,
    /// How many options each recorded choice had (the ready tasks of a pick, 2 for a
    /// preemption point, the branches of a select), beside [`choices`](Report::choices).
    pub arities: Option<Vec<u32>>,
    /// Faults the engine injected on its own, as `<time> <what>` lines: its fault points
    /// ([`Config::buggify`](crate::Config::buggify)) and restarts after a panic
    /// ([`LoopHandle::restart_on_panic`](crate::LoopHandle::restart_on_panic)).
    pub injected: Vec<String>,
}

impl fmt::Display for Report {
    /// One line: `seed 8137 passed at 2.000341000s (…)` or `seed 8137 failed: <failure>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Ok(()) => write!(
                f,
                "seed {} passed at {} ({} steps, trace-hash {})",
                self.seed,
                self.virtual_time,
                self.steps,
                self.trace_hash_hex()
            ),
            Err(failure) => write!(f, "seed {} failed: {failure}", self.seed),
        }
    }
}

impl Report {
    /// Whether the run passed.
    pub fn passed(&self) -> bool {
        self.outcome.is_ok()
    }

    /// The trace hash as 16 hex digits.
    pub fn trace_hash_hex(&self) -> String {
        format!("{:016x}", self.trace_hash)
    }
}

/// What went wrong, for an exception handler (asyncio's exception handler `context`): a
/// task's panic, or what a program passed to
/// [`call_exception_handler`](crate::LoopHandle::call_exception_handler).
///
/// ```
/// let context = roof::ExceptionContext::new("the cache is stale");
/// assert_eq!(context.message, "the cache is stale");
/// assert_eq!(context.task, None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExceptionContext {
    /// What happened (a panic's message).
    pub message: String,
    /// The task it happened in, if any.
    pub task: Option<TaskId>,
    /// That task's name.
    pub task_name: Option<String>,
    /// That task's host.
    pub host: Option<String>,
    /// When, in virtual time (the wall clock's, on a real loop).
    pub time: Instant,
}

impl ExceptionContext {
    /// A context with only a message.
    pub fn new(message: impl Into<String>) -> ExceptionContext {
        ExceptionContext {
            message: message.into(),
            task: None,
            task_name: None,
            host: None,
            time: Instant::ORIGIN,
        }
    }
}
