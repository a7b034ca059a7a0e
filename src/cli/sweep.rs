//! `roof sweep`: many seeds of one scenario, in parallel, sharded, with a progress bar.
//!
//! Shards are interleaved slices of the range (shard I of N runs the seeds whose offset from
//! the start is I-1 modulo N), so they are disjoint, together cover the range, and each gets an
//! even share of slow and fast seeds. Jobs run seeds on that many threads; every simulation
//! stays single-threaded on its own thread.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use roof::{Config, Failure, Policy, TraceMode};

use super::Usage;
use crate::sim::{self, Scenario};

/// Failures printed as they happen before the rest wait for the summary.
const LIVE_FAILURES: usize = 20;
/// Seeds a job claims at a time: few enough to balance the jobs, enough that handing results
/// to the main thread costs nothing next to running them.
const CHUNK: usize = 32;

/// What a sweep runs.
pub(crate) struct Plan {
    pub(crate) scenario: &'static Scenario,
    pub(crate) seeds: Range<u64>,
    /// (I, N): the I-th of N shards, 1-based.
    pub(crate) shard: (u64, u64),
    pub(crate) jobs: usize,
    pub(crate) policy: Policy,
    pub(crate) check_determinism: bool,
}

/// `I/N` with 1 <= I <= N.
pub(crate) fn parse_shard(text: &str) -> Result<(u64, u64), Usage> {
    let invalid = || {
        Usage(format!(
            "invalid --shard '{text}': expected I/N with 1 <= I <= N, like 2/4"
        ))
    };
    let (index, count) = text.split_once('/').ok_or_else(invalid)?;
    let (index, count): (u64, u64) = (
        index.trim().parse().map_err(|_| invalid())?,
        count.trim().parse().map_err(|_| invalid())?,
    );
    if index == 0 || count == 0 || index > count {
        return Err(invalid());
    }
    Ok((index, count))
}

/// A job count from 1 to 1024.
pub(crate) fn parse_jobs(text: &str) -> Result<usize, Usage> {
    text.trim()
        .parse()
        .ok()
        .filter(|jobs| (1..=1024).contains(jobs))
        .ok_or_else(|| {
            Usage(format!(
                "invalid --jobs '{text}': expected a whole number from 1 to 1024"
            ))
        })
}

/// The seeds of shard `(index, count)` of `range`.
pub(crate) fn shard_seeds(range: &Range<u64>, (index, count): (u64, u64)) -> Vec<u64> {
    range
        .clone()
        .filter(|seed| (seed - range.start) % count == index - 1)
        .collect()
}

/// Run one seed; with the determinism check, twice, comparing traces.
fn run_seed(plan: &Plan, seed: u64) -> Result<(), Failure> {
    let config = || Config::new(seed).policy(plan.policy).echo(false);
    if !plan.check_determinism {
        return sim::run(plan.scenario, config()).outcome;
    }
    let first = sim::run(plan.scenario, config().trace(TraceMode::Record));
    let second = sim::run(plan.scenario, config().trace(TraceMode::Record));
    let (Some(left), Some(right)) = (&first.trace, &second.trace) else {
        unreachable!("record mode keeps the trace")
    };
    match left.first_divergence(right) {
        Some(divergence) => Err(Failure::Nondeterminism {
            index: divergence.index,
            first: divergence.left.map(|event| event.to_string()),
            second: divergence.right.map(|event| event.to_string()),
        }),
        None => first.outcome,
    }
}

fn progress_bar(count: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(count), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} seeds, {per_sec}, {msg}")
    {
        bar.set_style(style);
    }
    bar
}

pub(crate) fn sweep(plan: &Plan) -> i32 {
    let seeds = shard_seeds(&plan.seeds, plan.shard);
    let started = Instant::now();
    let bar = progress_bar(seeds.len() as u64);
    let next = AtomicUsize::new(0);
    // Each message: how many seeds a job ran, and which of them failed.
    let (sender, receiver) = mpsc::channel::<(u64, Vec<(u64, Failure)>)>();
    let mut failures: Vec<(u64, Failure)> = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.min(seeds.len().max(1)) {
            let sender = sender.clone();
            let (next, seeds) = (&next, &seeds);
            scope.spawn(move || loop {
                let start = next.fetch_add(CHUNK, Ordering::Relaxed);
                let Some(chunk) = seeds.get(start..(start + CHUNK).min(seeds.len())) else {
                    return;
                };
                let failed = chunk
                    .iter()
                    .filter_map(|&seed| run_seed(plan, seed).err().map(|failure| (seed, failure)))
                    .collect();
                if chunk.is_empty() || sender.send((chunk.len() as u64, failed)).is_err() {
                    return;
                }
            });
        }
        drop(sender);
        for (ran, failed) in receiver {
            bar.inc(ran);
            for (seed, failure) in failed {
                // Failures are never hidden: printed around the bar, and all listed at the end.
                if failures.len() < LIVE_FAILURES {
                    bar.suspend(|| eprintln!("seed {seed} failed: {failure}"));
                } else if failures.len() == LIVE_FAILURES {
                    bar.suspend(|| {
                        eprintln!("(more failures: every failing seed is listed below)")
                    });
                }
                failures.push((seed, failure));
                bar.set_message(format!("{} failed", failures.len()));
            }
        }
    });
    bar.finish_and_clear();
    failures.sort_by_key(|(seed, _)| *seed);
    summarize(
        plan,
        seeds.len() as u64,
        &failures,
        started.elapsed().as_secs_f64(),
    );
    i32::from(!failures.is_empty())
}

fn summarize(plan: &Plan, count: u64, failures: &[(u64, Failure)], elapsed: f64) {
    let flags = match plan.policy {
        Policy::Fifo => " --fifo".to_string(),
        Policy::Pct { depth, .. } => format!(" --pct {depth}"),
        Policy::Random => String::new(),
    };
    for (seed, _) in failures {
        println!(
            "failed seed {seed}: replay: roof run {}{flags} --seed {seed}",
            plan.scenario.name
        );
    }
    let shard = match plan.shard {
        (1, 1) => String::new(),
        (index, total) => format!(" shard {index}/{total}"),
    };
    let rate = count as f64 / elapsed.max(1e-9);
    println!(
        "sweep {} seeds {}..{}{shard}: {count} run, {} passed, {} failed, {rate:.0} seeds/s",
        plan.scenario.name,
        plan.seeds.start,
        plan.seeds.end,
        count - failures.len() as u64,
        failures.len(),
    );
}
