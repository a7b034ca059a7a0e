//! The page's data section: the model and every trace line, compactly, as one JSON object.
//!
//! Each event is a row `[dt, template, args...]`: `dt` the virtual nanoseconds since the
//! previous event, `template` an index into a table of line shapes, `args` the numbers the
//! shape leaves out. A shape is a list of parts, a string standing for itself, `1` for an
//! integer and `2` for a virtual time (`0.001738117s`, stored relative to the event's own
//! time). So `poll #6` is the shape `["poll #", 1]` and the row `[0, 3, 6]`: lines come back
//! exactly, and the many lines of a kind cost a few bytes each. Everything else names events
//! by index, delta-coded where a list is long (polls), and `-1` stands for "none".

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use super::model::{Ending, Fate, Model};
use super::Header;
use crate::engine::id::Instant;
use crate::engine::trace::Trace;

/// The version of the data section's layout (the page's script reads this one).
pub(crate) const DATA_VERSION: u64 = 1;

/// The largest number a part of a line may be to be stored as a number: JavaScript's
/// numbers are exact up to 2^53.
const EXACT_MAX: u64 = 1 << 53;

/// A piece of a line's shape.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    Text(String),
    Int,
    Time,
}

/// A line split into its shape and its numbers.
fn split_line(line: &str, time_ns: u64) -> (Vec<Part>, Vec<i64>) {
    let bytes = line.as_bytes();
    let mut parts = Vec::new();
    let mut args = Vec::new();
    let mut text = String::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        if !bytes[at].is_ascii_digit() {
            let next = line[at..]
                .find(|c: char| c.is_ascii_digit())
                .map_or(line.len(), |offset| at + offset);
            text.push_str(&line[at..next]);
            at = next;
            continue;
        }
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            at += 1;
        }
        let digits = &line[start..at];
        let canonical = digits.len() <= 15 && (digits == "0" || !digits.starts_with('0'));
        // A virtual time: whole seconds, a point, nine digits and `s`.
        let fraction = line.get(at + 1..at + 10);
        let is_time = canonical
            && bytes.get(at) == Some(&b'.')
            && fraction.is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
            && bytes.get(at + 10) == Some(&b's');
        if is_time {
            let seconds: u64 = digits.parse().expect("digits");
            let nanos: u64 = fraction.expect("checked").parse().expect("digits");
            let value = seconds
                .checked_mul(1_000_000_000)
                .and_then(|ns| ns.checked_add(nanos));
            if let Some(value) = value.filter(|&value| value < EXACT_MAX && time_ns < EXACT_MAX) {
                flush(&mut parts, &mut text);
                parts.push(Part::Time);
                args.push(value as i64 - time_ns as i64);
                at += 11;
                continue;
            }
        }
        if canonical {
            flush(&mut parts, &mut text);
            parts.push(Part::Int);
            args.push(digits.parse().expect("at most 15 digits"));
        } else {
            text.push_str(digits);
        }
    }
    flush(&mut parts, &mut text);
    (parts, args)
}

fn flush(parts: &mut Vec<Part>, text: &mut String) {
    if !text.is_empty() {
        parts.push(Part::Text(std::mem::take(text)));
    }
}

/// A line's text after its time stamp.
fn body_of(event: &crate::engine::trace::Event) -> String {
    let line = event.to_string();
    let stamp = Instant::from_nanos(event.time_ns).to_string();
    line[stamp.len() + 1..].to_string()
}

/// The events table: shapes and rows.
fn events_value(trace: &Trace) -> Value {
    let mut shapes: BTreeMap<Vec<Part>, usize> = BTreeMap::new();
    let mut table: Vec<Value> = Vec::new();
    let mut rows: Vec<Value> = Vec::with_capacity(trace.events.len());
    let mut previous = 0u64;
    for event in &trace.events {
        let (parts, args) = split_line(&body_of(event), event.time_ns);
        let next = shapes.len();
        let shape = *shapes.entry(parts.clone()).or_insert_with(|| {
            table.push(Value::Array(
                parts
                    .iter()
                    .map(|part| match part {
                        Part::Text(text) => json!(text),
                        Part::Int => json!(1),
                        Part::Time => json!(2),
                    })
                    .collect(),
            ));
            next
        });
        let mut row = vec![json!(event.time_ns - previous), json!(shape)];
        row.extend(args.into_iter().map(|arg| json!(arg)));
        rows.push(Value::Array(row));
        previous = event.time_ns;
    }
    json!({ "shapes": table, "rows": rows })
}

fn or_none(value: Option<usize>) -> i64 {
    value.map_or(-1, |value| value as i64)
}

/// Delta-coded ascending indices.
fn deltas(indices: &[usize]) -> Vec<usize> {
    let mut previous = 0;
    indices
        .iter()
        .map(|&index| {
            let delta = index - previous;
            previous = index;
            delta
        })
        .collect()
}

/// The data section for a model of `trace` under `header`.
pub(crate) fn data(header: &Header, model: &Model, trace: &Trace) -> Value {
    let task_slot: BTreeMap<u64, usize> = model
        .tasks
        .iter()
        .enumerate()
        .map(|(slot, task)| (task.id, slot))
        .collect();
    let slot_of = |task: Option<u64>| or_none(task.and_then(|id| task_slot.get(&id).copied()));
    let hosts: Vec<Value> = model
        .hosts
        .iter()
        .map(|lane| json!([lane.name, lane.rows]))
        .collect();
    let tasks: Vec<Value> = model
        .tasks
        .iter()
        .map(|task| {
            let ending = match task.ending {
                Ending::Complete => 0,
                Ending::Cancel => 1,
                Ending::Panic => 2,
                _ => 3,
            };
            json!([
                task.id,
                task.name,
                task.host,
                task.row,
                task.spawn,
                or_none(task.end),
                ending,
                deltas(&task.polls)
            ])
        })
        .collect();
    let mut previous_send = 0;
    let arrows: Vec<Value> = model
        .arrows
        .iter()
        .map(|arrow| {
            let fate = match arrow.fate {
                Fate::Delivered => 0,
                Fate::Dropped => 1,
                Fate::Lost => 2,
                _ => 3,
            };
            let control = !arrow.what.ends_with("bytes");
            let flags =
                u8::from(arrow.held) | (u8::from(arrow.parked) << 1) | (u8::from(control) << 2);
            let send = arrow.send - previous_send;
            previous_send = arrow.send;
            let end = arrow.end.map_or(-1, |end| (end - arrow.send) as i64);
            json!([
                send,
                end,
                arrow.from,
                arrow.to,
                fate,
                flags,
                slot_of(arrow.task),
                slot_of(arrow.reader)
            ])
        })
        .collect();
    let bands: Vec<Value> = model
        .bands
        .iter()
        .map(|band| {
            let kind = serde_json::to_value(band.kind).expect("a unit variant");
            json!([kind, band.hosts, band.start, or_none(band.end)])
        })
        .collect();
    let timers: Vec<Value> = model
        .timers
        .iter()
        .map(|timer| {
            json!([
                timer.host,
                slot_of(timer.task),
                timer.set,
                or_none(timer.end),
                u8::from(timer.fired)
            ])
        })
        .collect();
    let marks: Vec<Value> = model
        .marks
        .iter()
        .map(|mark| {
            let kind = serde_json::to_value(mark.kind).expect("a unit variant");
            json!([
                kind,
                mark.event,
                or_none(mark.host),
                slot_of(mark.task),
                mark.text
            ])
        })
        .collect();
    let failure = model.failure.as_ref().map(|failure| {
        json!([
            failure.event,
            or_none(failure.host),
            slot_of(failure.task),
            failure.text
        ])
    });
    json!({
        "v": DATA_VERSION,
        "header": header,
        "events": events_value(trace),
        "hosts": hosts,
        "tasks": tasks,
        "arrows": arrows,
        "bands": bands,
        "timers": timers,
        "marks": marks,
        "failure": failure,
    })
}

/// The trace lines the data section's events table gives back, as the page's script
/// rebuilds them (the check that the table loses nothing).
pub(crate) fn lines_of(data: &Value) -> Vec<String> {
    let shapes = data["events"]["shapes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut lines = Vec::new();
    let mut time = 0i64;
    for row in data["events"]["rows"].as_array().into_iter().flatten() {
        let row = row.as_array().expect("a row is an array");
        time += row[0].as_i64().expect("dt");
        let shape = shapes[row[1].as_u64().expect("shape") as usize]
            .as_array()
            .expect("a shape is an array");
        let mut line = Instant::from_nanos(time as u64).to_string();
        line.push(' ');
        let mut args = row[2..].iter();
        for part in shape {
            match part {
                Value::String(text) => line.push_str(text),
                number => {
                    let arg = args.next().and_then(Value::as_i64).expect("an argument");
                    if number.as_u64() == Some(2) {
                        let _ = write!(line, "{}", Instant::from_nanos((arg + time) as u64));
                    } else {
                        let _ = write!(line, "{arg}");
                    }
                }
            }
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_splits_into_its_shape_and_numbers() {
        let (parts, args) = split_line(
            "net send p12 c0 a -> b 16 bytes arriving 0.006098677s",
            6_000_000,
        );
        assert_eq!(args, [12, 0, 16, 98_677]);
        assert_eq!(parts.last(), Some(&Part::Time));
        // Leading zeros, long numbers and near-times stay text.
        let (parts, args) = split_line("log \"007 12345678901234567 1.5s\"", 0);
        assert_eq!(args, [1, 5], "only the short canonical numbers");
        assert_eq!(parts[0], Part::Text("log \"007 12345678901234567 ".into()));
    }
}
