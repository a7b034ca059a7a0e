//! `roof sweep`: many seeds of one scenario, in parallel, sharded, with a progress bar.
//!
//! Shards are interleaved slices of the range (shard I of N runs the seeds whose offset from
//! the start is I-1 modulo N), so they are disjoint, together cover the range, and each gets an
//! even share of slow and fast seeds. A shard's seeds are computed, never listed: the k-th is
//! `start + (I-1) + k*N`, so a range of any size costs nothing before it runs. Jobs run seeds
//! on that many threads; every simulation stays single-threaded on its own thread.
//!
//! Every failing seed is reported: the first few as they happen (around the progress bar),
//! all of them in the final list up to [`LISTED_MAX`], and with `--failures FILE` every one,
//! written as it is found. Ctrl-C stops claiming seeds, lets the running ones finish, prints
//! the summary of what ran and exits 130 (a second Ctrl-C exits at once).

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use roof::{Config, Failure, Policy, TraceMode};

use super::args::Shard;
use super::{out, Usage};
use crate::sim::{self, Scenario};

/// Failures printed as they happen before the rest wait for the summary.
const LIVE_FAILURES: usize = 20;
/// Failing seeds kept for the final list; past it they are counted (and written to the
/// `--failures` file, which has no limit) but not kept in memory.
pub(crate) const LISTED_MAX: usize = 10_000;
/// Seeds a job claims at a time: few enough to balance the jobs, enough that handing results
/// to the main thread costs nothing next to running them.
const CHUNK: u64 = 32;
/// The exit status of an interrupted sweep (128 + SIGINT).
const INTERRUPTED: i32 = 130;

/// What a sweep runs.
pub(crate) struct Plan {
    pub(crate) scenario: &'static Scenario,
    pub(crate) seeds: Range<u64>,
    pub(crate) shard: Shard,
    pub(crate) jobs: usize,
    pub(crate) policy: Policy,
    pub(crate) check_determinism: bool,
    pub(crate) failures: Option<PathBuf>,
    /// Each seed's fault plan drawn within this window (`--faults`).
    pub(crate) faults: Option<std::time::Duration>,
}

/// The seeds of one shard of a range, computed rather than listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ShardSeeds {
    first: u64,
    step: u64,
    /// How many seeds the shard holds.
    pub(crate) len: u64,
}

impl ShardSeeds {
    pub(crate) fn new(range: &Range<u64>, shard: Shard) -> ShardSeeds {
        let offset = shard.index - 1;
        let span = range.end - range.start;
        let len = if span <= offset {
            0
        } else {
            (span - offset - 1) / shard.count + 1
        };
        ShardSeeds {
            first: range.start + offset,
            step: shard.count,
            len,
        }
    }

    /// The `k`-th seed of the shard (`k < len`): below the range's end, so no overflow.
    pub(crate) fn get(&self, k: u64) -> u64 {
        debug_assert!(k < self.len);
        self.first + k * self.step
    }
}

/// Run one seed; with the determinism check, twice, comparing traces.
fn run_seed(plan: &Plan, seed: u64) -> Result<(), Failure> {
    let policy = super::adapted(plan.scenario, seed, plan.policy);
    let config = || Config::new(seed).policy(policy).echo(false);
    let faults = plan.faults.map(|window| sim::Faults { window, keep: None });
    let run = |config| sim::run_maybe_faulted(plan.scenario, config, faults.as_ref());
    if !plan.check_determinism {
        return run(config()).outcome;
    }
    let first = run(config().trace(TraceMode::Record));
    let second = run(config().trace(TraceMode::Record));
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

/// The flag a Ctrl-C raises: the first stops the sweep gently, a second ends the process.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag as the previous Ctrl-C left it.
        let _ = signal_hook::flag::register_conditional_shutdown(signal, INTERRUPTED, flag.clone());
        let _ = signal_hook::flag::register(signal, flag.clone());
    }
    flag
}

/// What the sweep found, as the main thread collects it.
struct Tally {
    ran: u64,
    failed: u64,
    /// The failing seeds kept for the final list (at most [`LISTED_MAX`]).
    listed: Vec<(u64, Failure)>,
    file: Option<(PathBuf, BufWriter<File>)>,
}

impl Tally {
    fn failure(&mut self, plan: &Plan, bar: &ProgressBar, seed: u64, failure: Failure) {
        self.failed += 1;
        let count = self.failed as usize;
        // Failures are never hidden: printed around the bar, and all listed at the end.
        if count <= LIVE_FAILURES {
            bar.suspend(|| out::error_line(format_args!("seed {seed} failed: {failure}")));
        } else if count == LIVE_FAILURES + 1 {
            bar.suspend(|| {
                out::error_line("(more failures: every failing seed is listed below)");
            });
        }
        if let Some((path, file)) = &mut self.file {
            let line = format!("{} # {failure}", replay_line(plan, seed));
            if let Err(error) = writeln!(file, "{line}") {
                bar.suspend(|| {
                    out::error_line(format_args!(
                        "error: cannot write to {}: {error}",
                        path.display()
                    ));
                });
                self.file = None;
            }
        }
        if self.listed.len() < LISTED_MAX {
            self.listed.push((seed, failure));
        }
        bar.set_message(format!("{} failed", self.failed));
    }
}

// The wall clock times the sweep (seeds per second) and jobs run on threads; no simulation reads either.
#[allow(clippy::disallowed_methods)]
pub(crate) fn sweep(plan: &Plan) -> Result<i32, Usage> {
    let seeds = ShardSeeds::new(&plan.seeds, plan.shard);
    let file = match &plan.failures {
        Some(path) => {
            let file = File::create(path).map_err(|error| {
                Usage(format!(
                    "invalid --failures '{}': cannot create it: {error}",
                    path.display()
                ))
            })?;
            Some((path.clone(), BufWriter::new(file)))
        }
        None => None,
    };
    if seeds.len == 0 {
        out::error_line(format_args!(
            "roof: shard {}/{} of seeds {}..{} holds no seed (the range has {} seeds): nothing to run",
            plan.shard.index,
            plan.shard.count,
            plan.seeds.start,
            plan.seeds.end,
            plan.seeds.end - plan.seeds.start
        ));
    }
    let interrupted = interrupt_flag();
    let started = Instant::now();
    let bar = progress_bar(seeds.len);
    let next = AtomicU64::new(0);
    // Each message: how many seeds a job ran, and which of them failed.
    let (sender, receiver) = mpsc::channel::<(u64, Vec<(u64, Failure)>)>();
    let mut tally = Tally {
        ran: 0,
        failed: 0,
        listed: Vec::new(),
        file,
    };
    std::thread::scope(|scope| {
        let jobs = u64::try_from(plan.jobs).unwrap_or(1).min(seeds.len.max(1));
        for _ in 0..jobs {
            let sender = sender.clone();
            let (next, interrupted) = (&next, &interrupted);
            scope.spawn(move || loop {
                let start = next
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |at| {
                        Some(at.saturating_add(CHUNK))
                    })
                    .unwrap_or(u64::MAX);
                if start >= seeds.len {
                    return;
                }
                let mut ran = 0;
                let mut failed = Vec::new();
                for k in start..(start + CHUNK).min(seeds.len) {
                    if interrupted.load(Ordering::Relaxed) {
                        break;
                    }
                    let seed = seeds.get(k);
                    if let Err(failure) = run_seed(plan, seed) {
                        failed.push((seed, failure));
                    }
                    ran += 1;
                }
                let stop = interrupted.load(Ordering::Relaxed);
                if sender.send((ran, failed)).is_err() || stop {
                    return;
                }
            });
        }
        drop(sender);
        for (ran, failed) in receiver {
            bar.inc(ran);
            tally.ran += ran;
            for (seed, failure) in failed {
                tally.failure(plan, &bar, seed, failure);
            }
        }
    });
    bar.finish_and_clear();
    if let Some((path, mut file)) = tally.file.take() {
        if let Err(error) = file.flush() {
            out::error_line(format_args!(
                "error: cannot write to {}: {error}",
                path.display()
            ));
        }
    }
    let interrupted = interrupted.load(Ordering::Relaxed);
    tally.listed.sort_by_key(|(seed, _)| *seed);
    summarize(
        plan,
        &seeds,
        &tally,
        started.elapsed().as_secs_f64(),
        interrupted,
    );
    Ok(if interrupted {
        INTERRUPTED
    } else {
        i32::from(tally.failed > 0)
    })
}

/// The command that replays `seed`: `roof run <scenario> [--fifo|--pct D] --seed N`.
fn replay_line(plan: &Plan, seed: u64) -> String {
    let mut flags = match plan.policy {
        Policy::Fifo => " --fifo".to_string(),
        Policy::Pct { depth, .. } => format!(" --pct {depth}"),
        // Random, and any policy the command line cannot name (it makes none).
        _ => String::new(),
    };
    if let Some(window) = plan.faults {
        flags.push_str(&format!(" --faults {}", humantime::format_duration(window)));
    }
    format!("roof run {}{flags} --seed {seed}", plan.scenario.name)
}

fn summarize(plan: &Plan, seeds: &ShardSeeds, tally: &Tally, elapsed: f64, interrupted: bool) {
    for (seed, _) in &tally.listed {
        out::line(format_args!(
            "failed seed {seed}: replay: {}",
            replay_line(plan, *seed)
        ));
    }
    let unlisted = tally.failed - tally.listed.len() as u64;
    match (&plan.failures, unlisted) {
        (Some(path), _) if tally.failed > 0 => {
            out::line(format_args!("every failing seed is in {}", path.display()))
        }
        (None, 1..) => out::line(format_args!(
            "({unlisted} more failing seeds not listed: the list keeps {LISTED_MAX}; \
             --failures FILE keeps every one)"
        )),
        _ => {}
    }
    let shard = match plan.shard {
        Shard::ALL => String::new(),
        Shard { index, count } => format!(" shard {index}/{count}"),
    };
    let rate = tally.ran as f64 / elapsed.max(1e-9);
    let stopped = if interrupted {
        format!(", interrupted after {} of {} seeds", tally.ran, seeds.len)
    } else {
        String::new()
    };
    out::line(format_args!(
        "sweep {} seeds {}..{}{shard}: {} run, {} passed, {} failed, {rate:.0} seeds/s{stopped}",
        plan.scenario.name,
        plan.seeds.start,
        plan.seeds.end,
        tally.ran,
        tally.ran - tally.failed,
        tally.failed,
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(range: Range<u64>, shard: Shard) -> Vec<u64> {
        let seeds = ShardSeeds::new(&range, shard);
        (0..seeds.len).map(|k| seeds.get(k)).collect()
    }

    #[test]
    fn shards_are_computed_disjoint_and_cover_the_range() {
        let mut all = Vec::new();
        for index in 1..=4 {
            all.extend(listed(3..14, Shard { index, count: 4 }));
        }
        all.sort_unstable();
        assert_eq!(all, (3..14).collect::<Vec<_>>());
        assert_eq!(
            listed(0..3, Shard { index: 4, count: 4 }),
            Vec::<u64>::new()
        );
        // A huge range and a huge shard count cost nothing.
        let seeds = ShardSeeds::new(
            &(0..u64::MAX),
            Shard {
                index: 10_000_000_000_000,
                count: 10_000_000_000_000,
            },
        );
        assert_eq!(seeds.len, 1_844_674);
        assert!(seeds.get(seeds.len - 1) < u64::MAX);
        let whole = ShardSeeds::new(&(5..u64::MAX), Shard::ALL);
        assert_eq!(
            (whole.len, whole.get(whole.len - 1)),
            (u64::MAX - 5, u64::MAX - 1)
        );
    }
}
