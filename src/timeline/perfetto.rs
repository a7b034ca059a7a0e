//! Chrome's Trace Event Format (the JSON that ui.perfetto.dev and chrome://tracing open):
//! each host a process (`pid` its lane + 1), each task a thread (`tid` its id) with its life
//! as a slice and its polls as slices inside it, the network of each host a thread of its
//! own (`tid` 0) where packets leave and arrive, each packet a flow from its send to its
//! delivery, faults and marks as instant events. Timestamps are microseconds of virtual
//! time, with the nanoseconds as three decimals.

use serde_json::{json, Value};

use super::model::{Fate, MarkKind, Model};
use crate::engine::trace::Trace;

/// The thread of a host's network events.
const NET_TID: u64 = 0;

/// Virtual nanoseconds as the format's microseconds.
fn micros(ns: u64) -> Value {
    json!(ns as f64 / 1000.0)
}

pub(super) fn json(model: &Model, trace: &Trace) -> String {
    let time = |event: usize| trace.events[event].time_ns;
    let end_ns = trace.events.last().map_or(0, |event| event.time_ns);
    let pid = |host: usize| host as u64 + 1;
    let line = |event: usize| trace.events[event].to_string();
    let mut events: Vec<Value> = Vec::new();
    for (host, lane) in model.hosts.iter().enumerate() {
        events.push(json!({"ph": "M", "name": "process_name", "pid": pid(host), "tid": NET_TID, "args": {"name": lane.name}}));
        events.push(json!({"ph": "M", "name": "process_sort_index", "pid": pid(host), "tid": NET_TID, "args": {"sort_index": host}}));
        events.push(json!({"ph": "M", "name": "thread_name", "pid": pid(host), "tid": NET_TID, "args": {"name": "network"}}));
    }
    for task in &model.tasks {
        let (pid, tid) = (pid(task.host), task.id);
        events.push(json!({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": format!("{} #{}", task.name, task.id)}}));
        let start = time(task.spawn);
        let end = task.end.map_or(end_ns, time);
        events.push(json!({
            "ph": "X", "name": task.name, "cat": "task", "pid": pid, "tid": tid,
            "ts": micros(start), "dur": micros(end - start),
            "args": {"task": task.id, "ending": task.ending, "polls": task.polls.len()},
        }));
        for &poll in &task.polls {
            events.push(json!({"ph": "X", "name": "poll", "cat": "poll", "pid": pid, "tid": tid, "ts": micros(time(poll)), "dur": 0.0}));
        }
    }
    for arrow in &model.arrows {
        let name = format!("p{} {}", arrow.packet, arrow.what);
        let sent = time(arrow.send);
        events.push(json!({"ph": "X", "name": format!("send {name}"), "cat": "net", "pid": pid(arrow.from), "tid": NET_TID, "ts": micros(sent), "dur": 0.0, "args": {"line": line(arrow.send)}}));
        let Some(end) = arrow.end else {
            continue;
        };
        let at = time(end);
        let fate = match arrow.fate {
            Fate::Delivered => "deliver",
            Fate::Dropped => "drop",
            Fate::Lost => "lost",
            _ => "in flight",
        };
        events.push(json!({"ph": "X", "name": format!("{fate} {name}"), "cat": "net", "pid": pid(arrow.to), "tid": NET_TID, "ts": micros(at), "dur": 0.0, "args": {"line": line(end)}}));
        if arrow.fate == Fate::Delivered {
            events.push(json!({"ph": "s", "id": arrow.packet, "name": "packet", "cat": "net", "pid": pid(arrow.from), "tid": NET_TID, "ts": micros(sent)}));
            events.push(json!({"ph": "f", "bp": "e", "id": arrow.packet, "name": "packet", "cat": "net", "pid": pid(arrow.to), "tid": NET_TID, "ts": micros(at)}));
        }
    }
    for band in &model.bands {
        for &host in &band.hosts {
            events.push(json!({"ph": "i", "s": "p", "name": band.label, "cat": "fault", "pid": pid(host), "tid": NET_TID, "ts": micros(time(band.start))}));
            if let Some(end) = band.end {
                events.push(json!({"ph": "i", "s": "p", "name": line(end), "cat": "fault", "pid": pid(host), "tid": NET_TID, "ts": micros(time(end))}));
            }
        }
    }
    for mark in &model.marks {
        let category = match mark.kind {
            MarkKind::Fault | MarkKind::Stop => "fault",
            _ => "mark",
        };
        let (pid, tid, scope) = match (mark.host, mark.task) {
            (Some(host), Some(task)) => (pid(host), task, "t"),
            (Some(host), None) => (pid(host), NET_TID, "p"),
            _ => (1, NET_TID, "g"),
        };
        events.push(json!({"ph": "i", "s": scope, "name": mark.text, "cat": category, "pid": pid, "tid": tid, "ts": micros(time(mark.event)), "args": {"line": line(mark.event)}}));
    }
    if let Some(failure) = &model.failure {
        let pid = failure.host.map_or(1, pid);
        events.push(json!({"ph": "i", "s": "g", "name": format!("failure: {}", failure.text), "cat": "failure", "pid": pid, "tid": failure.task.unwrap_or(NET_TID), "ts": micros(time(failure.event))}));
    }
    json!({"traceEvents": events, "displayTimeUnit": "ns", "otherData": {"generator": format!("roof {}", env!("CARGO_PKG_VERSION"))}}).to_string()
}
