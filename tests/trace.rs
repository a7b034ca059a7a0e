//! The trace: content, JSON export, hash and first divergence between two runs.

use std::time::Duration;

use roof::trace::EventKind;
use roof::{Policy, TraceMode};

use crate::{quiet, run_with};

fn traced(seed: u64, nondeterministic_twist: bool) -> roof::Trace {
    let (_, report) = run_with(
        quiet(seed).trace(TraceMode::Record).policy(Policy::Fifo),
        |event_loop| {
            event_loop
                .run_until_complete(async move {
                    roof::log!("start");
                    let worker = roof::spawn_named("worker", async move {
                        roof::sleep(Duration::from_millis(5)).await;
                        // A planted nondeterminism: the second run sleeps 1 ms longer.
                        if nondeterministic_twist {
                            roof::sleep(Duration::from_millis(1)).await;
                        }
                        roof::log!("worker done");
                    });
                    worker.await.unwrap();
                })
                .unwrap()
        },
    );
    report.trace.unwrap()
}

#[test]
fn the_trace_records_spawns_polls_timers_and_logs() {
    let trace = traced(0, false);
    let kinds: Vec<&EventKind> = trace.events.iter().map(|event| &event.kind).collect();
    assert!(kinds
        .iter()
        .any(|kind| matches!(kind, EventKind::Spawn { name, .. } if name == "worker")));
    assert!(kinds.iter().any(|kind| matches!(
        kind,
        EventKind::TimerSet {
            deadline_ns: 5_000_000,
            ..
        }
    )));
    assert!(kinds
        .iter()
        .any(|kind| matches!(kind, EventKind::TimerFire { .. })));
    assert!(kinds
        .iter()
        .any(|kind| matches!(kind, EventKind::Log { text, .. } if text == "worker done")));
    let last_log = trace
        .events
        .iter()
        .rev()
        .find(|event| matches!(event.kind, EventKind::Log { .. }))
        .unwrap();
    assert_eq!(last_log.time_ns, 5_000_000);
}

#[test]
fn json_export_parses_and_matches_the_events() {
    let trace = traced(0, false);
    let parsed: serde_json::Value = serde_json::from_str(&trace.to_json()).unwrap();
    let events = parsed.as_array().unwrap();
    assert_eq!(events.len(), trace.events.len());
    assert_eq!(events[0]["event"], "spawn");
    assert_eq!(events[0]["name"], "main");
    assert_eq!(events[0]["time_ns"], 0);
}

#[test]
fn first_divergence_names_the_first_differing_event() {
    let good = traced(0, false);
    let twisted = traced(0, true);
    assert_ne!(good.hash, twisted.hash);
    let divergence = good.first_divergence(&twisted).unwrap();
    // Everything up to the worker's first wake-up matches; then one run logs, the other sleeps.
    assert_eq!(
        good.events[..divergence.index],
        twisted.events[..divergence.index]
    );
    let left = divergence.left.clone().unwrap();
    let right = divergence.right.clone().unwrap();
    assert_eq!(left.time_ns, 5_000_000);
    assert!(matches!(left.kind, EventKind::Log { .. }), "{left}");
    assert!(
        matches!(
            right.kind,
            EventKind::TimerSet {
                deadline_ns: 6_000_000,
                ..
            }
        ),
        "{right}"
    );
    let text = divergence.to_string();
    assert!(
        text.contains(&format!("at event {}", divergence.index)),
        "{text}"
    );
}

#[test]
fn trace_off_keeps_nothing_and_hash_mode_matches_record_mode() {
    let hash_of = |mode| {
        run_with(quiet(9).trace(mode), |event_loop| {
            event_loop
                .run_until_complete(roof::sleep(Duration::from_secs(1)))
                .unwrap()
        })
        .1
    };
    let (off, hashed, recorded) = (
        hash_of(TraceMode::Off),
        hash_of(TraceMode::Hash),
        hash_of(TraceMode::Record),
    );
    assert_eq!(off.events, 0);
    assert!(off.trace.is_none() && hashed.trace.is_none());
    assert_eq!(hashed.trace_hash, recorded.trace_hash);
    assert_eq!(recorded.trace.unwrap().hash, recorded.trace_hash);
}

/// Allocations made by a run of `yields` yields and as many 1 ms sleeps, the loop already built.
fn allocations_for(yields: usize, mode: TraceMode) -> u64 {
    let event_loop = roof::EventLoop::with_config(quiet(0).trace(mode));
    let before = crate::allocations();
    event_loop
        .run_until_complete(async move {
            for _ in 0..yields {
                roof::yield_now().await;
                roof::sleep(Duration::from_millis(1)).await;
            }
        })
        .unwrap();
    crate::allocations() - before
}

#[test]
fn with_tracing_off_the_hot_path_does_not_allocate() {
    // The thread's task pool takes its first chunk once, whichever run comes first.
    allocations_for(1, TraceMode::Off);
    let short = allocations_for(10, TraceMode::Off);
    let long = allocations_for(2_000, TraceMode::Off);
    assert_eq!(short, long, "allocations grew with the number of events");
    // Hash mode reuses one line buffer; only recording keeps (and so allocates for) events.
    assert_eq!(
        allocations_for(10, TraceMode::Hash),
        allocations_for(2_000, TraceMode::Hash)
    );
    assert!(allocations_for(2_000, TraceMode::Record) > allocations_for(10, TraceMode::Record));
}

#[test]
fn a_report_displays_its_seed_and_outcome() {
    let (_, passed) = run_with(quiet(42), |event_loop| {
        event_loop.run_until_complete(async {}).unwrap()
    });
    assert!(
        passed
            .to_string()
            .starts_with("seed 42 passed at 0.000000000s"),
        "{passed}"
    );
    let (_, failed) = run_with(quiet(43), |event_loop| {
        event_loop
            .run_until_complete(async { panic!("no") })
            .unwrap_err()
    });
    assert_eq!(
        failed.to_string(),
        "seed 43 failed: task \"main\" (#1) panicked at 0.000000000s: no"
    );
}
