//! Building the page model: one pass over the trace, keeping what each later event needs
//! (the task being polled, the packet just delivered, the bands still open).

use std::collections::BTreeMap;

use super::model::*;
use crate::engine::report::Failure;
use crate::engine::trace::{EventKind, PacketOp, Trace};

/// The host of tasks spawned without one.
const MAIN_HOST: &str = "main";

/// The model of `trace`, with `failure` marked where it happened.
pub(super) fn model(trace: &Trace, failure: Option<&Failure>) -> Model {
    let mut builder = Builder::default();
    for (index, event) in trace.events.iter().enumerate() {
        builder.event(index, &event.kind);
    }
    let mut model = builder.finish();
    if let Some(failure) = failure.filter(|_| !trace.events.is_empty()) {
        model.failure = Some(failure_mark(&model, trace, failure));
    }
    model
}

/// The model under construction.
#[derive(Default)]
struct Builder {
    model: Model,
    host_index: BTreeMap<String, usize>,
    task_index: BTreeMap<u64, usize>,
    arrow_index: BTreeMap<u64, usize>,
    timer_index: BTreeMap<u64, usize>,
    /// Per lane, the event that ends each row's latest task (`None`: still alive).
    row_ends: Vec<Vec<Option<usize>>>,
    /// The task being polled, for events that happen inside its poll.
    current: Option<u64>,
    /// The arrow delivered by the event just before, whose wakeup names its reader.
    delivered: Option<usize>,
    /// The last reader of each (connection, receiving lane).
    readers: BTreeMap<(u32, usize), u64>,
}

impl Builder {
    fn host(&mut self, name: &str) -> usize {
        if let Some(&index) = self.host_index.get(name) {
            return index;
        }
        let index = self.model.hosts.len();
        self.model.hosts.push(Lane {
            name: name.to_string(),
            rows: 0,
        });
        self.row_ends.push(Vec::new());
        self.host_index.insert(name.to_string(), index);
        index
    }

    fn task_host(&self, task: Option<u64>) -> Option<usize> {
        let index = *self.task_index.get(&task?)?;
        Some(self.model.tasks[index].host)
    }

    fn task_mut(&mut self, task: u64) -> Option<&mut TaskBar> {
        let index = *self.task_index.get(&task)?;
        Some(&mut self.model.tasks[index])
    }

    /// The first row of `host` free at `event` (its last task has ended).
    fn free_row(&mut self, host: usize, event: usize) -> usize {
        let rows = &mut self.row_ends[host];
        let row = rows
            .iter()
            .position(|end| end.is_some_and(|end| end < event))
            .unwrap_or_else(|| {
                rows.push(None);
                rows.len() - 1
            });
        rows[row] = None;
        self.model.hosts[host].rows = self.model.hosts[host].rows.max(rows.len());
        row
    }

    fn end_task(&mut self, task: u64, event: usize, ending: Ending) {
        let Some(bar) = self.task_mut(task) else {
            return;
        };
        if bar.end.is_some() {
            return;
        }
        bar.end = Some(event);
        bar.ending = ending;
        let (host, row) = (bar.host, bar.row);
        self.row_ends[host][row] = Some(event);
    }

    fn mark(&mut self, kind: MarkKind, event: usize, task: Option<u64>, text: String) {
        let host = self.task_host(task).or_else(|| {
            // A line outside any task belongs to the default host.
            task.is_none().then(|| self.host(MAIN_HOST))
        });
        self.model.marks.push(Mark {
            kind,
            event,
            host,
            task,
            text,
        });
    }

    fn event(&mut self, index: usize, kind: &EventKind) {
        let delivered = self.delivered.take();
        match kind {
            EventKind::Spawn {
                task,
                name,
                host,
                parent,
            } => {
                let lane = self.host(host.as_deref().unwrap_or(MAIN_HOST));
                let row = self.free_row(lane, index);
                self.task_index.insert(task.0, self.model.tasks.len());
                self.model.tasks.push(TaskBar {
                    id: task.0,
                    name: name.clone(),
                    host: lane,
                    row,
                    parent: parent.map(|parent| parent.0),
                    spawn: index,
                    end: None,
                    ending: Ending::Running,
                    polls: Vec::new(),
                });
            }
            EventKind::Poll { task } => {
                self.current = Some(task.0);
                if let Some(bar) = self.task_mut(task.0) {
                    bar.polls.push(index);
                }
            }
            EventKind::Complete { task } => self.end_task(task.0, index, Ending::Complete),
            EventKind::Cancel { task } => self.end_task(task.0, index, Ending::Cancel),
            EventKind::Panic { task, message } => {
                self.end_task(task.0, index, Ending::Panic);
                self.mark(MarkKind::Panic, index, Some(task.0), message.clone());
            }
            EventKind::CancelRequest { task, by } => {
                let text = match by {
                    Some(by) => format!("cancel requested by {by}"),
                    None => "cancel requested".to_string(),
                };
                self.mark(MarkKind::CancelRequest, index, Some(task.0), text);
            }
            EventKind::TimerSet { timer, by, .. } => {
                let task = by.map(|by| by.0);
                let host = match self.task_host(task) {
                    Some(host) => host,
                    None => self.host(MAIN_HOST),
                };
                self.timer_index.insert(timer.0, self.model.timers.len());
                self.model.timers.push(TimerSpan {
                    timer: timer.0,
                    task,
                    host,
                    set: index,
                    end: None,
                    fired: false,
                });
            }
            EventKind::TimerFire { timer } | EventKind::TimerCancel { timer } => {
                self.current = None;
                let fired = matches!(kind, EventKind::TimerFire { .. });
                if let Some(&at) = self.timer_index.get(&timer.0) {
                    let span = &mut self.model.timers[at];
                    span.end = Some(index);
                    span.fired = fired;
                }
            }
            EventKind::Callback { .. } | EventKind::Stop => {
                self.current = None;
                if matches!(kind, EventKind::Stop) {
                    self.model.marks.push(Mark {
                        kind: MarkKind::Stop,
                        event: index,
                        host: None,
                        task: None,
                        text: "stop".into(),
                    });
                }
            }
            EventKind::Log { task, text } => {
                self.mark(MarkKind::Log, index, task.map(|t| t.0), text.clone());
            }
            EventKind::Output { task, text } => {
                self.mark(MarkKind::Print, index, task.map(|t| t.0), text.clone());
            }
            EventKind::Warning { task, text } => {
                self.mark(MarkKind::Warning, index, task.map(|t| t.0), text.clone());
            }
            EventKind::Sync {
                task,
                kind,
                object,
                op,
            } => {
                let text = format!("{kind}-{object} {op}");
                self.mark(MarkKind::Sync, index, task.map(|t| t.0), text);
            }
            EventKind::ClientError {
                task,
                client,
                message,
            } => {
                let text = format!("{client}: {message}");
                self.mark(MarkKind::ClientError, index, task.map(|t| t.0), text);
            }
            EventKind::Send {
                packet,
                conn,
                from,
                to,
                what,
                ..
            } => {
                let (from, to) = (self.host(from), self.host(to));
                // Sent inside the poll of a task of that host, or by the network itself.
                let task = self
                    .current
                    .filter(|&task| self.task_host(Some(task)) == Some(from));
                self.arrow_index.insert(*packet, self.model.arrows.len());
                self.model.arrows.push(Arrow {
                    packet: *packet,
                    conn: *conn,
                    from,
                    to,
                    what: what.clone(),
                    send: index,
                    task,
                    reader: None,
                    fate: Fate::InFlight,
                    end: None,
                    held: false,
                    parked: false,
                });
            }
            EventKind::Packet { packet, op, .. } => {
                self.current = None;
                let Some(&at) = self.arrow_index.get(packet) else {
                    return;
                };
                let arrow = &mut self.model.arrows[at];
                let fate = match op {
                    PacketOp::Deliver => Fate::Delivered,
                    PacketOp::Drop => Fate::Dropped,
                    PacketOp::Lost => Fate::Lost,
                    PacketOp::Hold => {
                        arrow.held = true;
                        return;
                    }
                    PacketOp::Park => {
                        arrow.parked = true;
                        return;
                    }
                    _ => return,
                };
                arrow.fate = fate;
                arrow.end = Some(index);
                if fate == Fate::Delivered {
                    self.delivered = Some(at);
                    if let Some(conn) = arrow.conn {
                        arrow.reader = self.readers.get(&(conn, arrow.to)).copied();
                    }
                }
            }
            EventKind::Wake { task, by: None } => {
                let Some(at) = delivered else {
                    return;
                };
                let host = self.task_host(Some(task.0));
                let arrow = &mut self.model.arrows[at];
                if host == Some(arrow.to) {
                    arrow.reader = Some(task.0);
                    if let Some(conn) = arrow.conn {
                        self.readers.insert((conn, arrow.to), task.0);
                    }
                }
            }
            EventKind::Disk {
                task: Some(task),
                text,
            } => {
                self.mark(MarkKind::Disk, index, Some(task.0), text.clone());
            }
            EventKind::Disk { task: None, text } => {
                // `crash <host>: <outcome>`: on the crashed host's lane.
                let host = text
                    .strip_prefix("crash ")
                    .and_then(|rest| rest.split_once(':'))
                    .and_then(|(name, _)| self.host_index.get(name).copied());
                self.model.marks.push(Mark {
                    kind: MarkKind::Disk,
                    event: index,
                    host,
                    task: None,
                    text: text.clone(),
                });
            }
            EventKind::Fault { text } => self.fault(index, text),
            _ => {}
        }
    }

    /// A fault line: a band starts or ends, or an instant mark.
    fn fault(&mut self, index: usize, text: &str) {
        self.current = None;
        let (word, rest) = text.split_once(' ').unwrap_or((text, ""));
        let pair = |rest: &str, separator: &str| {
            rest.split_once(separator)
                .map(|(a, b)| (a.to_string(), b.to_string()))
        };
        match word {
            "crash" => {
                // A crash ends a pause.
                self.close_bands(index, text, &[rest], |band, hosts| {
                    band.kind == BandKind::Pause && band.hosts == hosts[..1]
                });
                self.open_band(BandKind::Crash, &[rest], index, text);
            }
            "clog" => {
                let host = rest
                    .strip_suffix(" outgoing")
                    .or_else(|| rest.strip_suffix(" incoming"))
                    .unwrap_or(rest);
                self.open_band(BandKind::Clog, &[host], index, text);
            }
            "pause" => self.open_band(BandKind::Pause, &[rest], index, text),
            "resume" => self.close_bands(index, text, &[rest], |band, hosts| {
                band.kind == BandKind::Pause && band.hosts == hosts[..1]
            }),
            "disk" if rest.ends_with(" on") && rest.contains(": ") => {
                let host = rest.split_once(": ").expect("checked").0.to_string();
                self.open_band(BandKind::Disk, &[&host], index, text);
            }
            "disk" if rest.ends_with(" off") && rest.contains(": ") => {
                let (host, fault) = rest.split_once(": ").expect("checked");
                let fault = fault.trim_end_matches(" off").to_string();
                let host = host.to_string();
                let open = self.model.bands.iter().position(|band| {
                    band.end.is_none()
                        && band.kind == BandKind::Disk
                        && band.label.ends_with(&format!("{fault} on"))
                        && band.hosts.first() == self.host_index.get(&host)
                });
                match open {
                    Some(at) => self.model.bands[at].end = Some(index),
                    None => self.instant(index, text, Some(&host)),
                }
            }
            "partition" if pair(rest, " -> ").is_some() => {
                let (a, b) = pair(rest, " -> ").expect("checked");
                self.open_band(BandKind::Partition, &[&a, &b], index, text);
            }
            "degrade" if pair(rest, " <-> ").is_some() => {
                let (a, b) = pair(rest, " <-> ").expect("checked");
                let b = b.split_once(':').map_or(b.as_str(), |(b, _)| b).to_string();
                self.open_band(BandKind::Degrade, &[&a, &b], index, text);
            }
            "restart" => self.close_bands(index, text, &[rest], |band, hosts| {
                band.kind == BandKind::Crash && band.hosts == hosts[..1]
            }),
            "unclog" => self.close_bands(index, text, &[rest], |band, hosts| {
                band.kind == BandKind::Clog && band.hosts == hosts[..1]
            }),
            "heal" if rest == "all" => {
                self.close_bands(index, text, &[], |band, _| band.kind != BandKind::Crash);
            }
            "heal" | "restore" if pair(rest, " <-> ").is_some() => {
                let (a, b) = pair(rest, " <-> ").expect("checked");
                let kind = if word == "heal" {
                    BandKind::Partition
                } else {
                    BandKind::Degrade
                };
                self.close_bands(index, text, &[&a, &b], |band, hosts| {
                    band.kind == kind && (band.hosts == hosts || band.hosts == [hosts[1], hosts[0]])
                });
            }
            _ => {
                // `stall server for 3s`, `clock a jumps forward 1s`, `disk a: ...`: the host
                // is the first word after the fault's own.
                let first = rest.split([' ', ':']).next().unwrap_or(rest);
                let host = if self.host_index.contains_key(rest) {
                    rest
                } else {
                    first
                };
                self.instant(index, text, Some(host));
            }
        }
    }

    /// An instant fault mark, on `host`'s lane if it names one.
    fn instant(&mut self, index: usize, text: &str, host: Option<&str>) {
        let host = host.and_then(|name| self.host_index.get(name).copied());
        self.model.marks.push(Mark {
            kind: MarkKind::Fault,
            event: index,
            host,
            task: None,
            text: text.to_string(),
        });
    }

    fn open_band(&mut self, kind: BandKind, names: &[&str], index: usize, text: &str) {
        let hosts = names.iter().map(|name| self.host(name)).collect();
        self.model.bands.push(Band {
            kind,
            hosts,
            label: text.to_string(),
            start: index,
            end: None,
        });
    }

    /// End the open bands `matches` picks, given the named hosts' lanes; a fault that ends
    /// nothing (a heal of a link never cut) is an instant mark.
    fn close_bands(
        &mut self,
        index: usize,
        text: &str,
        names: &[&str],
        matches: impl Fn(&Band, &[usize]) -> bool,
    ) {
        let hosts: Vec<usize> = names.iter().map(|name| self.host(name)).collect();
        let mut closed = false;
        for band in &mut self.model.bands {
            if band.end.is_none() && matches(band, &hosts) {
                band.end = Some(index);
                closed = true;
            }
        }
        if !closed {
            self.model.marks.push(Mark {
                kind: MarkKind::Fault,
                event: index,
                host: hosts.first().copied(),
                task: None,
                text: text.to_string(),
            });
        }
    }

    fn finish(self) -> Model {
        self.model
    }
}

/// Where `failure` happened in `trace`.
fn failure_mark(model: &Model, trace: &Trace, failure: &Failure) -> FailureMark {
    let last = trace.events.len().saturating_sub(1);
    let text = failure.to_string();
    let task_of = |task: u64| model.task(task).map(|bar| bar.host);
    let before = |time_ns: u64| {
        trace
            .events
            .iter()
            .rposition(|event| event.time_ns <= time_ns)
            .unwrap_or(0)
    };
    match failure {
        Failure::Panic { task, .. } => {
            let event = trace
                .events
                .iter()
                .rposition(
                    |event| matches!(&event.kind, EventKind::Panic { task: t, .. } if t == task),
                )
                .unwrap_or(last);
            FailureMark {
                event,
                host: task_of(task.0),
                task: Some(task.0),
                text,
            }
        }
        Failure::Nondeterminism { index, .. } => FailureMark {
            event: (*index).min(last),
            host: None,
            task: None,
            text,
        },
        Failure::Error { time, .. } => {
            // A harness client's error is traced where it happened; else the scenario's own.
            let client = trace
                .events
                .iter()
                .rposition(|event| matches!(event.kind, EventKind::ClientError { .. }));
            match client {
                Some(event) => {
                    let task = match &trace.events[event].kind {
                        EventKind::ClientError { task, .. } => task.map(|task| task.0),
                        _ => None,
                    };
                    FailureMark {
                        event,
                        host: task.and_then(task_of),
                        task,
                        text,
                    }
                }
                None => FailureMark {
                    event: before(time.as_nanos()),
                    host: None,
                    task: None,
                    text,
                },
            }
        }
        Failure::Deadlock { time, .. }
        | Failure::TimeLimit { time, .. }
        | Failure::StepLimit { time, .. } => FailureMark {
            event: before(time.as_nanos()),
            host: None,
            task: None,
            text,
        },
        _ => FailureMark {
            event: last,
            host: None,
            task: None,
            text,
        },
    }
}
