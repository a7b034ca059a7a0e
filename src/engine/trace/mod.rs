//! The event log of a run.
//!
//! Every spawn, poll, wake, completion, timer (set, fire, cancel), callback, user log line
//! and printed line is recorded with the virtual time it happened at and per-run ids. The
//! log has a stable text rendering (one line per event, used by snapshots), a JSON export, a
//! 64-bit hash (FNV-1a over the text rendering, printed as hex) and a first-divergence diff.
//!
//! Tracing has three modes ([`TraceMode`]): off (nothing is built; the hot path only reads a
//! flag), hash (events are rendered into a reused buffer and folded into the hash), and
//! record (the events are also kept).

use std::cell::{Cell, RefCell};
use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::engine::id::{Instant, TaskId, TimerId};

mod packet;
pub use packet::PacketOp;

/// How much of the trace a run keeps.
///
/// ```
/// use roof::{Config, EventLoop, TraceMode};
/// let run = |mode| {
///     let lp = EventLoop::with_config(Config::new(0).trace(mode).echo(false));
///     lp.run_until_complete(async { roof::log!("hi") }).unwrap();
///     lp.report()
/// };
/// assert!(run(TraceMode::Record).trace.is_some());
/// assert!(run(TraceMode::Hash).trace.is_none(), "hashed, not kept");
/// assert_eq!(run(TraceMode::Hash).trace_hash, run(TraceMode::Record).trace_hash);
/// assert_eq!(run(TraceMode::Off).events, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TraceMode {
    /// Nothing is recorded; the hash stays at its initial value.
    Off,
    /// Events are hashed but not kept (cheap determinism checks).
    #[default]
    Hash,
    /// Events are hashed and kept (snapshots, `--trace`, divergence reports).
    Record,
}

/// What happened, without the time stamp.
///
/// ```
/// use roof::trace::EventKind;
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).trace(roof::TraceMode::Record).echo(false));
/// lp.run_until_complete(async { roof::println!("hello") }).unwrap();
/// let trace = lp.report().trace.unwrap();
/// assert!(matches!(&trace.events[0].kind, EventKind::Spawn { name, .. } if name == "main"));
/// let printed: Vec<&str> = trace.events.iter().filter_map(|event| match &event.kind {
///     EventKind::Output { text, .. } => Some(text.as_str()),
///     _ => None,
/// }).collect();
/// assert_eq!(printed, ["hello"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// A task was created; `parent` is the task that spawned it.
    Spawn {
        /// The new task's id.
        task: TaskId,
        /// Its name.
        name: String,
        /// Its host, unless it is the default host `main`.
        #[serde(skip_serializing_if = "Option::is_none")]
        host: Option<String>,
        /// The spawning task, if spawned from one.
        parent: Option<TaskId>,
    },
    /// A task was polled.
    Poll {
        /// The task.
        task: TaskId,
    },
    /// A task was woken; `by` is the running task, if any.
    Wake {
        /// The woken task.
        task: TaskId,
        /// The task that woke it.
        by: Option<TaskId>,
    },
    /// A task finished (returned a value).
    Complete {
        /// The task.
        task: TaskId,
    },
    /// A task was cancelled before finishing (aborted, or torn down with its loop).
    Cancel {
        /// The task.
        task: TaskId,
    },
    /// A cancellation the task can observe was requested (asyncio's `Task.cancel()`): it
    /// reaches the task's next await on a roof primitive.
    CancelRequest {
        /// The task asked to stop.
        task: TaskId,
        /// The task that asked, if one was running.
        by: Option<TaskId>,
    },
    /// A task panicked.
    Panic {
        /// The task.
        task: TaskId,
        /// The panic message.
        message: String,
    },
    /// A timer was armed.
    TimerSet {
        /// The timer's id (creation order).
        timer: TimerId,
        /// When it is due.
        deadline_ns: u64,
        /// The task that armed it, if any.
        by: Option<TaskId>,
    },
    /// A timer fired.
    TimerFire {
        /// The timer.
        timer: TimerId,
    },
    /// A timer was disarmed before firing.
    TimerCancel {
        /// The timer.
        timer: TimerId,
    },
    /// A `call_soon`/`call_later` callback was queued to run as task `task`.
    Callback {
        /// The task that runs it.
        task: TaskId,
        /// The timer it came from, for `call_later`/`call_at`.
        timer: Option<TimerId>,
    },
    /// A line logged by user code with [`log!`](crate::log), or by roof's facades (a write a
    /// closed transport dropped).
    Log {
        /// The logging task.
        task: Option<TaskId>,
        /// The text.
        text: String,
    },
    /// A line printed by user code with [`println!`](crate::println).
    Output {
        /// The printing task.
        task: Option<TaskId>,
        /// The text, without its newline.
        text: String,
    },
    /// The loop was asked to stop.
    Stop,
    /// Something the simulated network did (connect, send, deliver, hold, drop).
    Net {
        /// What happened.
        text: String,
    },
    /// A packet (a TCP segment, SYN, FIN and RST included, or a UDP datagram) left `from`
    /// for `to`, due at `arrival_ns`; later events of the same `packet` number say what
    /// became of it.
    Send {
        /// The packet's number in this run, from 1 in order of sending.
        packet: u64,
        /// The TCP connection, or `None` for a datagram.
        conn: Option<u32>,
        /// The sending host.
        from: String,
        /// The receiving host.
        to: String,
        /// What it carries: `SYN`, `SYN-ACK`, `FIN`, `RST` or `N bytes`.
        what: String,
        /// When it is due to arrive, in virtual nanoseconds.
        arrival_ns: u64,
    },
    /// What became of a sent packet: delivered, held on a cut link, sent again, parked
    /// behind an earlier segment, dropped or lost.
    Packet {
        /// The packet's number (its [`Send`](EventKind::Send)).
        packet: u64,
        /// What happened.
        op: PacketOp,
        /// More about it, or empty (`on cut link`, `segment 3 waits for 2`, `no socket`).
        detail: String,
    },
    /// An operation on a host's simulated disk ([`roof::fs`](crate::fs)), or what a crash
    /// left of its unsynced writes.
    Disk {
        /// The task, if one was running.
        task: Option<TaskId>,
        /// What happened (`write /wal 0+16`, `sync /wal`, `crash db: inode 1 op 0: torn at 512`).
        text: String,
    },
    /// A fault was injected (partition, heal, clog, crash, restart, link fault).
    Fault {
        /// Which.
        text: String,
    },
    /// Something went wrong that does not end the run by itself, as asyncio would log a
    /// warning: writes to a closed transport, an `accept` error a server retries.
    Warning {
        /// The running task, if any.
        task: Option<TaskId>,
        /// What happened.
        text: String,
    },
    /// An operation on one of [`roof::sync`](crate::sync)'s primitives: `acquire`,
    /// `release`, `put`, `get`, `set`, `wait`, `notify`, ... (an operation that has to wait
    /// first is traced as `<op>-wait`, then as `<op>` when it completes).
    Sync {
        /// The task, if one was running.
        task: Option<TaskId>,
        /// The primitive: `lock`, `event`, `condition`, `semaphore`, `barrier`, `queue`.
        kind: &'static str,
        /// The primitive's number in this run, from 1 in order of first traced use.
        object: u64,
        /// The operation.
        op: &'static str,
    },
    /// A client of the test harness returned an error: the seed fails.
    ClientError {
        /// The client's task.
        task: Option<TaskId>,
        /// The client's name.
        client: String,
        /// Its error.
        message: String,
    },
}

/// One trace event: what happened and when.
///
/// ```
/// use std::time::Duration;
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).trace(roof::TraceMode::Record).echo(false));
/// lp.run_until_complete(async {
///     roof::sleep(Duration::from_millis(5)).await;
///     roof::log!("woke");
/// }).unwrap();
/// let trace = lp.report().trace.unwrap();
/// let woke = trace.events.iter().find(|event| matches!(event.kind, roof::trace::EventKind::Log { .. })).unwrap();
/// assert_eq!(woke.time_ns, 5_000_000);
/// assert_eq!(woke.to_string(), "0.005000000s log #1 \"woke\"");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Virtual time, in nanoseconds since the origin.
    pub time_ns: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

/// An optional task id after a prefix (` by #3`, ` #3`), or nothing.
struct Optional(&'static str, Option<TaskId>);

impl fmt::Display for Optional {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(id) => write!(f, "{}{id}", self.0),
            None => Ok(()),
        }
    }
}

impl fmt::Display for Event {
    /// One line, stable across versions (snapshots depend on it); writes without allocating.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", Instant::from_nanos(self.time_ns))?;
        match &self.kind {
            EventKind::Spawn {
                task,
                name,
                host,
                parent,
            } => {
                write!(f, "spawn {} {name:?}", task)?;
                if let Some(host) = host {
                    write!(f, " on {host}")?;
                }
                write!(f, "{}", Optional(" by ", *parent))
            }
            EventKind::Poll { task } => write!(f, "poll {}", task),
            EventKind::Wake { task, by } => {
                write!(f, "wake {}{}", task, Optional(" by ", *by))
            }
            EventKind::Complete { task } => write!(f, "complete {}", task),
            EventKind::Cancel { task } => write!(f, "cancel {}", task),
            EventKind::CancelRequest { task, by } => {
                write!(f, "cancel-request {}{}", task, Optional(" by ", *by))
            }
            EventKind::Panic { task, message } => write!(f, "panic {} {message:?}", task),
            EventKind::TimerSet {
                timer,
                deadline_ns,
                by,
            } => write!(
                f,
                "timer-set {timer} at {}{}",
                Instant::from_nanos(*deadline_ns),
                Optional(" by ", *by)
            ),
            EventKind::TimerFire { timer } => write!(f, "timer-fire {timer}"),
            EventKind::TimerCancel { timer } => write!(f, "timer-cancel {timer}"),
            EventKind::Callback { task, timer } => match timer {
                Some(timer) => write!(f, "callback {} from {timer}", task),
                None => write!(f, "callback {}", task),
            },
            EventKind::Log { task, text } => write!(f, "log{} {text:?}", Optional(" ", *task)),
            EventKind::Output { task, text } => write!(f, "print{} {text:?}", Optional(" ", *task)),
            EventKind::Stop => f.write_str("stop"),
            EventKind::Net { text } => write!(f, "net {text}"),
            EventKind::Send {
                packet,
                conn,
                from,
                to,
                what,
                arrival_ns,
            } => {
                write!(f, "net send p{packet} ")?;
                match conn {
                    Some(conn) => write!(f, "c{conn}")?,
                    None => f.write_str("udp")?,
                }
                write!(
                    f,
                    " {from} -> {to} {what} arriving {}",
                    Instant::from_nanos(*arrival_ns)
                )
            }
            EventKind::Packet { packet, op, detail } => {
                write!(f, "net {op} p{packet}")?;
                if detail.is_empty() {
                    Ok(())
                } else {
                    write!(f, " {detail}")
                }
            }
            EventKind::Disk { task, text } => write!(f, "disk{} {text}", Optional(" ", *task)),
            EventKind::Fault { text } => write!(f, "fault {text}"),
            EventKind::Warning { task, text } => {
                write!(f, "warning{} {text:?}", Optional(" ", *task))
            }
            EventKind::Sync {
                task,
                kind,
                object,
                op,
            } => write!(f, "sync{} {kind}-{object} {op}", Optional(" ", *task)),
            EventKind::ClientError {
                task,
                client,
                message,
            } => write!(
                f,
                "client-error{} {client:?} {message:?}",
                Optional(" ", *task)
            ),
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes`: the trace hash, and the network's key for a host name.
pub(crate) fn fnv1a_of(bytes: &[u8]) -> u64 {
    fnv1a(FNV_OFFSET, bytes)
}

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// A finished trace: the events of one run and their hash.
///
/// ```
/// use roof::{Config, EventLoop, TraceMode};
/// let trace_of = |seed| {
///     let lp = EventLoop::with_config(Config::new(seed).trace(TraceMode::Record).echo(false));
///     lp.run_until_complete(async { roof::log!("drew {}", roof::random::below(1000)) }).unwrap();
///     lp.report().trace.unwrap()
/// };
/// let trace = trace_of(1);
/// assert_eq!(trace, trace_of(1), "same seed, same trace");
/// assert_eq!(trace.hash_hex(), format!("{:016x}", trace.hash));
/// assert!(trace.to_json().starts_with(r#"[{"time_ns":0,"event":"spawn""#));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Trace {
    /// The events, in the order they happened.
    pub events: Vec<Event>,
    /// FNV-1a 64 of the text rendering (each event's line plus `\n`).
    pub hash: u64,
}

impl Trace {
    /// The stable text rendering: one line per event.
    ///
    /// ```
    /// let lp = roof::EventLoop::with_config(roof::Config::new(0).trace(roof::TraceMode::Record));
    /// lp.run_until_complete(async { roof::log!("hi {}", 1) }).unwrap();
    /// let text = lp.report().trace.unwrap().render();
    /// assert!(text.contains("log #1 \"hi 1\""), "{text}");
    /// ```
    pub fn render(&self) -> String {
        let mut text = String::new();
        for event in &self.events {
            let _ = writeln!(text, "{event}");
        }
        text
    }

    /// The events as a JSON array of objects (`time_ns`, `event`, and the event's fields).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.events).expect("trace events always serialize")
    }

    /// The hash as 16 hex digits.
    pub fn hash_hex(&self) -> String {
        format!("{:016x}", self.hash)
    }

    /// The first event where `self` and `other` differ, or `None` if they are identical.
    pub fn first_divergence(&self, other: &Trace) -> Option<Divergence> {
        let longest = self.events.len().max(other.events.len());
        (0..longest)
            .find(|&index| self.events.get(index) != other.events.get(index))
            .map(|index| Divergence {
                index,
                left: self.events.get(index).cloned(),
                right: other.events.get(index).cloned(),
            })
    }
}

/// Where two traces first differ; an event is `None` where its trace ended early.
///
/// ```
/// use roof::{Config, EventLoop, TraceMode};
/// let trace_of = |seed| {
///     let lp = EventLoop::with_config(Config::new(seed).trace(TraceMode::Record).echo(false));
///     lp.run_until_complete(async { roof::log!("drew {}", roof::random::below(1_000_000)) }).unwrap();
///     lp.report().trace.unwrap()
/// };
/// let divergence = trace_of(1).first_divergence(&trace_of(2)).expect("the seeds drew differently");
/// assert!(matches!(&divergence.left.as_ref().unwrap().kind, roof::trace::EventKind::Log { .. }));
/// assert!(divergence.to_string().starts_with("traces diverge at event"));
/// assert_eq!(trace_of(1).first_divergence(&trace_of(1)), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Divergence {
    /// Index of the first differing event.
    pub index: usize,
    /// The event of the first trace there.
    pub left: Option<Event>,
    /// The event of the second trace there.
    pub right: Option<Event>,
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |event: &Option<Event>| match event {
            Some(event) => event.to_string(),
            None => "(trace ended)".to_string(),
        };
        write!(
            f,
            "traces diverge at event {}: first run: {}; second run: {}",
            self.index,
            show(&self.left),
            show(&self.right)
        )
    }
}

/// The per-run recorder.
#[derive(Debug)]
pub(crate) struct Recorder {
    mode: TraceMode,
    hash: Cell<u64>,
    count: Cell<u64>,
    line: RefCell<String>,
    events: RefCell<Vec<Event>>,
}

impl Recorder {
    pub(crate) fn new(mode: TraceMode) -> Recorder {
        Recorder {
            mode,
            hash: Cell::new(FNV_OFFSET),
            count: Cell::new(0),
            line: RefCell::new(String::new()),
            events: RefCell::new(Vec::new()),
        }
    }

    /// Whether events are wanted at all; callers test this before building an event.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.mode != TraceMode::Off
    }

    pub(crate) fn record(&self, time: Instant, kind: EventKind) {
        if !self.enabled() {
            return;
        }
        let event = Event {
            time_ns: time.as_nanos(),
            kind,
        };
        let mut line = self.line.borrow_mut();
        line.clear();
        let _ = writeln!(line, "{event}");
        self.hash.set(fnv1a(self.hash.get(), line.as_bytes()));
        self.count.set(self.count.get() + 1);
        if self.mode == TraceMode::Record {
            self.events.borrow_mut().push(event);
        }
    }

    pub(crate) fn hash(&self) -> u64 {
        self.hash.get()
    }

    pub(crate) fn len(&self) -> u64 {
        self.count.get()
    }

    pub(crate) fn snapshot(&self) -> Option<Trace> {
        (self.mode == TraceMode::Record).then(|| Trace {
            events: self.events.borrow().clone(),
            hash: self.hash.get(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(time_ns: u64, kind: EventKind) -> Event {
        Event { time_ns, kind }
    }

    #[test]
    fn rendering_is_stable() {
        let trace = Trace {
            events: vec![
                event(
                    0,
                    EventKind::Spawn {
                        task: TaskId(1),
                        name: "main".into(),
                        host: None,
                        parent: None,
                    },
                ),
                event(0, EventKind::Poll { task: TaskId(1) }),
                event(
                    100_000_000,
                    EventKind::TimerSet {
                        timer: TimerId(1),
                        deadline_ns: 200_000_000,
                        by: Some(TaskId(1)),
                    },
                ),
                event(
                    200_000_000,
                    EventKind::Wake {
                        task: TaskId(2),
                        by: None,
                    },
                ),
            ],
            hash: 0,
        };
        assert_eq!(
            trace.render(),
            "0.000000000s spawn #1 \"main\"\n\
             0.000000000s poll #1\n\
             0.100000000s timer-set t1 at 0.200000000s by #1\n\
             0.200000000s wake #2\n"
        );
    }

    #[test]
    fn hash_is_fnv_of_the_rendering() {
        let recorder = Recorder::new(TraceMode::Record);
        recorder.record(Instant::ORIGIN, EventKind::Stop);
        let trace = recorder.snapshot().unwrap();
        assert_eq!(trace.hash, fnv1a(FNV_OFFSET, trace.render().as_bytes()));
        let hashed_only = Recorder::new(TraceMode::Hash);
        hashed_only.record(Instant::ORIGIN, EventKind::Stop);
        assert_eq!(hashed_only.hash(), trace.hash);
        assert!(hashed_only.snapshot().is_none());
    }

    #[test]
    fn divergence_names_the_first_differing_event() {
        let a = Trace {
            events: vec![
                event(0, EventKind::Poll { task: TaskId(1) }),
                event(5, EventKind::Poll { task: TaskId(2) }),
            ],
            hash: 0,
        };
        let mut b = a.clone();
        b.events[1] = event(5, EventKind::Poll { task: TaskId(3) });
        let divergence = a.first_divergence(&b).unwrap();
        assert_eq!(divergence.index, 1);
        assert_eq!(
            divergence.right.unwrap().kind,
            EventKind::Poll { task: TaskId(3) }
        );
        assert!(a.first_divergence(&a.clone()).is_none());
        let shorter = Trace {
            events: a.events[..1].to_vec(),
            hash: 0,
        };
        assert_eq!(a.first_divergence(&shorter).unwrap().right, None);
    }

    #[test]
    fn json_export_names_the_event() {
        let trace = Trace {
            events: vec![event(7, EventKind::Complete { task: TaskId(4) })],
            hash: 0,
        };
        assert_eq!(
            trace.to_json(),
            r#"[{"time_ns":7,"event":"complete","task":4}]"#
        );
    }
}
