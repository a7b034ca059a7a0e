//! proptest strategies for seeds, fault plans and choice sequences (feature `proptest`, on by
//! default), so that a failing case shrinks.
//!
//! A choice sequence replays a schedule exactly ([`Config::choices`](crate::Config::choices));
//! a fault plan runs with [`Builder::fault_plan`](crate::harness::Builder::fault_plan). Both
//! shrink the proptest way: shorter, smaller, closer to FIFO and to no faults at all. For
//! shrinking one failing seed's recorded choices, [`shrink::minimize`](crate::shrink::minimize)
//! does better (proptest leaves many irrelevant entries in a raw choice list).
//!
//! ```
//! use proptest::prelude::*;
//! use roof::strategies::{choices, seeds};
//!
//! proptest!(|(seed in seeds(), choices in choices(64))| {
//!     let run = || {
//!         let config = roof::Config::new(seed).echo(false).choices(choices.clone());
//!         let lp = roof::EventLoop::with_config(config);
//!         lp.run_until_complete(roof::gather!(async { 1 }, async { 2 })).unwrap().unwrap();
//!         lp.report().trace_hash
//!     };
//!     prop_assert_eq!(run(), run());
//! });
//! ```

use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;

use crate::engine::sched::Choices;
use crate::fault::{FaultKind, FaultPlan, PlannedFault};

/// Any seed.
///
/// ```
/// use proptest::prelude::*;
/// proptest!(ProptestConfig::with_cases(32), |(seed in roof::strategies::seeds())| {
///     let draw = || {
///         let lp = roof::EventLoop::with_config(roof::Config::new(seed).echo(false));
///         lp.run_until_complete(async { roof::random::u64() }).unwrap()
///     };
///     prop_assert_eq!(draw(), draw());
/// });
/// ```
pub fn seeds() -> impl Strategy<Value = u64> {
    any::<u64>()
}

/// Choice sequences of up to `max_len` entries, mostly zeros (FIFO) with a few small
/// deviations; they shrink toward fewer entries and zeros.
///
/// ```
/// use proptest::prelude::*;
/// proptest!(ProptestConfig::with_cases(32), |(choices in roof::strategies::choices(16))| {
///     prop_assert!(choices.0.len() <= 16);
///     let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false).choices(choices));
///     let out = lp.run_until_complete(roof::gather!(async { 1 }, async { 2 })).unwrap().unwrap();
///     prop_assert_eq!(out, (1, 2), "whatever the schedule, gather keeps argument order");
/// });
/// ```
pub fn choices(max_len: usize) -> impl Strategy<Value = Choices> {
    vec(
        prop_oneof![6 => Just(0u32), 3 => 1u32..4, 1 => 4u32..64],
        0..=max_len,
    )
    .prop_map(Choices)
}

fn fault_kinds() -> impl Strategy<Value = FaultKind> {
    prop_oneof![
        Just(FaultKind::Partition),
        Just(FaultKind::OneWayPartition),
        Just(FaultKind::Clog),
        Just(FaultKind::Crash),
        Just(FaultKind::LatencySpike),
        Just(FaultKind::LossBurst),
    ]
}

/// Fault plans of up to `max_faults` faults on `hosts` (at least two), starting within
/// `window`; they shrink toward fewer, shorter, earlier faults.
///
/// ```
/// use proptest::prelude::*;
/// use std::time::Duration;
/// let hosts = vec!["server".to_string(), "c".to_string()];
/// let plans = roof::strategies::fault_plans(hosts, Duration::from_secs(1), 4);
/// proptest!(ProptestConfig::with_cases(16), |(plan in plans)| {
///     prop_assert!(plan.faults.len() <= 4);
///     let ran = roof::harness::Builder::new().seed(0).fault_plan(plan).try_run(|sim| {
///         sim.host("server", || async {});
///         sim.client("c", async { roof::sleep(Duration::from_secs(2)).await; Ok::<(), String>(()) });
///     });
///     prop_assert_eq!(ran.ok(), Some(1), "a client that only sleeps survives any plan");
/// });
/// ```
pub fn fault_plans(
    hosts: Vec<String>,
    window: Duration,
    max_faults: usize,
) -> impl Strategy<Value = FaultPlan> {
    assert!(hosts.len() >= 2, "fault_plans needs at least two hosts");
    let window_ns = window.as_nanos().clamp(1, u128::from(u64::MAX)) as u64;
    let count = hosts.len();
    let fault = (
        fault_kinds(),
        0..count,
        1..count,
        0..window_ns,
        1..=window_ns / 4 + 1,
    )
        .prop_map(move |(kind, host, offset, at, lasts)| {
            let peer = (host + offset) % count;
            let pair = !matches!(kind, FaultKind::Clog | FaultKind::Crash);
            PlannedFault {
                kind,
                host: hosts[host].clone(),
                peer: pair.then(|| hosts[peer].clone()),
                at: Duration::from_nanos(at),
                lasts: Duration::from_nanos(lasts),
            }
        });
    vec(fault, 0..=max_faults).prop_map(|mut faults| {
        faults.sort_by_key(|fault| (fault.at, fault.kind));
        let mut kinds: Vec<FaultKind> = faults.iter().map(|fault| fault.kind).collect();
        kinds.sort();
        kinds.dedup();
        FaultPlan { kinds, faults }
    })
}
