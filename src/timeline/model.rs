//! The page model: a trace turned into what a timeline draws. Lanes (one per host, its
//! tasks nested as rows), arrows (one per packet, from its send to what became of it), fault
//! bands, timers, and labelled marks; every item names the trace events it comes from by
//! index, so a click on it can show their lines.

use serde::Serialize;

use crate::engine::report::Failure;
use crate::engine::trace::Trace;

/// What a timeline draws, built from a trace by [`Model::of`].
///
/// ```
/// use roof::{Config, EventLoop, TraceMode};
/// let lp = EventLoop::with_config(Config::new(0).trace(TraceMode::Record).echo(false));
/// lp.host("db", || async {}).unwrap();
/// lp.run_until_complete(async { roof::println!("hi") }).unwrap();
/// let model = roof::timeline::Model::of(&lp.report().trace.unwrap(), None);
/// let hosts: Vec<&str> = model.hosts.iter().map(|host| host.name.as_str()).collect();
/// assert_eq!(hosts, ["db", "main"], "in order of first appearance");
/// assert_eq!(model.marks[0].text, "hi");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Model {
    /// One lane per host, in order of first appearance.
    pub hosts: Vec<Lane>,
    /// Every task, in spawn order.
    pub tasks: Vec<TaskBar>,
    /// One arrow per packet.
    pub arrows: Vec<Arrow>,
    /// Fault bands over the lanes they hit.
    pub bands: Vec<Band>,
    /// Timers, from arming to firing or disarming.
    pub timers: Vec<TimerSpan>,
    /// Printed and logged lines, warnings, cancellation requests, primitive operations and
    /// instant faults.
    pub marks: Vec<Mark>,
    /// Where the run failed, if it did.
    pub failure: Option<FailureMark>,
}

/// A host's lane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Lane {
    /// The host's name.
    pub name: String,
    /// How many task rows the lane has (tasks whose lives do not overlap share a row).
    pub rows: usize,
}

/// A task, from its spawn to its end.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TaskBar {
    /// The task's id (`#N` in the trace).
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its host's lane.
    pub host: usize,
    /// Its row in that lane.
    pub row: usize,
    /// The task that spawned it.
    pub parent: Option<u64>,
    /// The event of its spawn.
    pub spawn: usize,
    /// The event of its end (completion, cancellation or panic), or `None` if it was still
    /// alive when the run ended.
    pub end: Option<usize>,
    /// How it ended.
    pub ending: Ending,
    /// The events of its polls.
    pub polls: Vec<usize>,
}

/// How a task ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Ending {
    /// It returned.
    Complete,
    /// It was cancelled (aborted, or torn down with its loop or host).
    Cancel,
    /// It panicked.
    Panic,
    /// The run ended first.
    Running,
}

/// A packet: a TCP segment (SYN, FIN and RST included) or a UDP datagram.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Arrow {
    /// Its number in the trace (`pN`).
    pub packet: u64,
    /// Its TCP connection, or `None` for a datagram.
    pub conn: Option<u32>,
    /// The sending host's lane.
    pub from: usize,
    /// The receiving host's lane.
    pub to: usize,
    /// What it carries (`SYN`, `16 bytes`).
    pub what: String,
    /// The event of its send.
    pub send: usize,
    /// The task running when it was sent, if one was (the network itself sends SYN-ACKs).
    pub task: Option<u64>,
    /// The task its delivery woke (or, for a segment that woke nobody, the last task its
    /// delivery woke on the same connection and host).
    pub reader: Option<u64>,
    /// What became of it.
    pub fate: Fate,
    /// The event of that fate (delivery, drop, loss), or `None` while in flight.
    pub end: Option<usize>,
    /// It was held on a cut link on the way.
    pub held: bool,
    /// It waited behind an earlier segment of its connection.
    pub parked: bool,
}

/// What became of a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Fate {
    /// It was delivered.
    Delivered,
    /// It was thrown away on arrival (cut link for a datagram, no socket, host down).
    Dropped,
    /// It was lost on a lossy link.
    Lost,
    /// The run ended with it on the way (or held).
    InFlight,
}

/// A fault that lasts: drawn as a band over the lanes it hits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Band {
    /// Which fault.
    pub kind: BandKind,
    /// The lanes it covers.
    pub hosts: Vec<usize>,
    /// The fault's trace text (`partition a -> b`).
    pub label: String,
    /// The event that started it.
    pub start: usize,
    /// The event that ended it, or `None` if it lasted to the end of the run.
    pub end: Option<usize>,
}

/// The kind of a [`Band`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BandKind {
    /// A host was down, from its crash to its restart.
    Crash,
    /// A link was cut one way.
    Partition,
    /// A host's traffic was clogged.
    Clog,
    /// A link was degraded (latency spike, loss burst).
    Degrade,
    /// A host was paused, from its pause to its resume (or crash).
    Pause,
    /// A host's disk misbehaved (failing, full, slow, corrupting), while the fault was on.
    Disk,
}

/// A timer, from arming to firing or disarming.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TimerSpan {
    /// Its id (`tN`).
    pub timer: u64,
    /// The task that armed it, if one did.
    pub task: Option<u64>,
    /// Its host's lane.
    pub host: usize,
    /// The event that armed it.
    pub set: usize,
    /// The event that fired or disarmed it, or `None` if the run ended first.
    pub end: Option<usize>,
    /// Whether it fired (rather than being disarmed).
    pub fired: bool,
}

/// A labelled instant on a lane.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Mark {
    /// What it shows.
    pub kind: MarkKind,
    /// Its event.
    pub event: usize,
    /// Its lane, or `None` for the whole run (a fault naming no host, the loop's stop).
    pub host: Option<usize>,
    /// Its task, if it belongs to one.
    pub task: Option<u64>,
    /// The text shown on hover.
    pub text: String,
}

/// The kind of a [`Mark`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MarkKind {
    /// A line printed with `roof::println!`.
    Print,
    /// A line logged with `roof::log!`.
    Log,
    /// A warning (a write to a closed transport, a retried accept error).
    Warning,
    /// A cancellation request.
    CancelRequest,
    /// An operation on a `roof::sync` primitive.
    Sync,
    /// A fault that does not last (or one whose end the trace does not say).
    Fault,
    /// The loop was asked to stop.
    Stop,
    /// A harness client returned an error.
    ClientError,
    /// A task panicked.
    Panic,
    /// An operation on the host's disk, or what a crash kept of it.
    Disk,
}

/// Where the run failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FailureMark {
    /// The event it happened at (the panic, the client's error, or the last event before the
    /// run ended).
    pub event: usize,
    /// The lane, when the failure belongs to a task.
    pub host: Option<usize>,
    /// The task, when it belongs to one.
    pub task: Option<u64>,
    /// The failure, as the report prints it.
    pub text: String,
}

impl Model {
    /// The model of `trace`; `failure`, when given, is marked where it happened.
    pub fn of(trace: &Trace, failure: Option<&Failure>) -> Model {
        super::build::model(trace, failure)
    }

    /// The task with id `id`.
    pub fn task(&self, id: u64) -> Option<&TaskBar> {
        self.tasks.iter().find(|task| task.id == id)
    }
}
