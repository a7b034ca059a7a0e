//! The `roof` command line. Arguments are parsed into plain structs before anything runs;
//! all simulation logic lives in the library and in `sim/`.
//!
//! Exit status: 0 every run passed, 1 a scenario failed, 2 bad usage (clap's whole message
//! on stderr), 130 a sweep interrupted by Ctrl-C (after its summary), 141 stdout closed (as
//! a process SIGPIPE ended: `roof sweep kv-store | head`).

use std::io::Read as _;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

mod args;
mod out;
#[cfg(feature = "real-net")]
mod real;
mod shrink;
mod sweep;
mod timeline;

use args::{SeedArg, Shard};
use clap::{Parser, Subcommand};
use roof::{Choices, Config, Policy, Report, TraceMode};

use crate::sim::{self, Scenario};

/// Event Roof: deterministic simulation of asyncio-style programs.
#[derive(Parser, Debug)]
#[command(name = "roof", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the scenarios, one line each.
    List,
    /// Run one scenario with one seed.
    Run {
        /// The scenario (see `roof list`).
        #[arg(value_parser = args::scenario())]
        scenario: &'static Scenario,
        /// The seed: a number, or `random` to draw one from the OS (printed first).
        #[arg(long, default_value = "0", value_parser = args::seed)]
        seed: SeedArg,
        /// Schedule in FIFO order (asyncio's), instead of the seeded random policy.
        #[arg(long, conflicts_with = "pct")]
        fifo: bool,
        /// Schedule with PCT at this bug depth (1 to 1000).
        #[arg(long, value_name = "DEPTH", value_parser = args::pct_depth)]
        pct: Option<u32>,
        /// Print the trace, one event per line.
        #[arg(long)]
        trace: bool,
        /// Print the report as one JSON object (with the trace's events under --trace).
        #[arg(long)]
        json: bool,
        /// Replay a choice sequence (from `roof shrink`) instead of the policy's draws.
        #[arg(long, value_name = "TOKEN", value_parser = args::choices)]
        choices: Option<args::ChoiceList>,
        /// Faults drawn from the seed among the scenario's hosts, starting within this
        /// window (10s, 500ms): partitions, clogs, crashes, link faults, pauses, stalls, disk and clock faults.
        #[arg(long, value_name = "WINDOW", value_parser = args::timeout)]
        faults: Option<Duration>,
        /// Keep only these faults of the drawn plan, by index (from `roof shrink --faults`).
        #[arg(long, value_name = "I,J", value_parser = args::fault_indices, requires = "faults")]
        keep_faults: Option<args::FaultIndices>,
        /// Write the run's timeline page (one self-contained HTML file) here.
        #[arg(long, value_name = "FILE.html")]
        timeline: Option<PathBuf>,
        /// Write the run in Chrome's Trace Event Format (for ui.perfetto.dev) here.
        #[arg(long, value_name = "FILE.json")]
        perfetto: Option<PathBuf>,
    },
    /// Draw two runs of a seed on one timeline page, with their first divergence: the seed
    /// beside the replay of --choices, else a failing seed beside its shrunk replay, else
    /// the seed run twice (a determinism check).
    Diff {
        /// The scenario (see `roof list`).
        #[arg(value_parser = args::scenario())]
        scenario: &'static Scenario,
        /// The seed.
        #[arg(long, default_value = "0", value_parser = args::seed)]
        seed: SeedArg,
        /// Schedule in FIFO order instead of the seeded random policy.
        #[arg(long, conflicts_with = "pct")]
        fifo: bool,
        /// Schedule with PCT at this bug depth (1 to 1000).
        #[arg(long, value_name = "DEPTH", value_parser = args::pct_depth)]
        pct: Option<u32>,
        /// The second run replays this choice sequence (from `roof shrink`).
        #[arg(long, value_name = "TOKEN", value_parser = args::choices)]
        choices: Option<args::ChoiceList>,
        /// Faults drawn from the seed within this window, in both runs.
        #[arg(long, value_name = "WINDOW", value_parser = args::timeout)]
        faults: Option<Duration>,
        /// Candidate runs the shrink of a failing seed may try (1 to 10000000).
        #[arg(long, default_value = "2000", value_parser = args::budget)]
        budget: usize,
        /// Where to write the page.
        #[arg(long, value_name = "FILE.html", default_value = "roof-diff.html")]
        timeline: PathBuf,
    },
    /// Run one scenario over a range of seeds and summarise.
    Sweep {
        /// The scenario (see `roof list`).
        #[arg(value_parser = args::scenario())]
        scenario: &'static Scenario,
        /// Seeds to run: a range `A..B` (B excluded) or a count `N` (meaning 0..N).
        #[arg(long, default_value = "0..1000", value_parser = args::seed_range)]
        seeds: Range<u64>,
        /// Schedule in FIFO order instead of the seeded random policy.
        #[arg(long, conflicts_with_all = ["pct", "exhaustive"])]
        fifo: bool,
        /// Schedule with PCT at this bug depth (1 to 1000).
        #[arg(long, value_name = "DEPTH", value_parser = args::pct_depth, conflicts_with = "exhaustive")]
        pct: Option<u32>,
        /// Run every schedule of each seed with at most P deviations from FIFO (0 to 8),
        /// fewest first; stop at the first failure.
        #[arg(long, value_name = "P", value_parser = args::preemptions, conflicts_with_all = ["shard", "check_determinism", "jobs", "failures"])]
        exhaustive: Option<u32>,
        /// The most schedules --exhaustive runs in all (1 to 10000000); reaching it is said.
        #[arg(long, value_name = "N", default_value = "10000", value_parser = args::budget, requires = "exhaustive")]
        schedules_max: usize,
        /// Run the I-th of N disjoint slices of the seeds (1-based): `--shard 2/4`.
        #[arg(long, value_name = "I/N", value_parser = args::shard)]
        shard: Option<Shard>,
        /// Seeds run in parallel, each simulation on its own thread (1 to 1024).
        #[arg(long, value_name = "J", default_value = "1", value_parser = args::jobs)]
        jobs: usize,
        /// Run each seed twice and fail on the first event where the traces differ.
        #[arg(long)]
        check_determinism: bool,
        /// Write every failing seed, as it is found, to this file (one line each).
        #[arg(long, value_name = "FILE")]
        failures: Option<PathBuf>,
        /// Give each seed a fault plan drawn from it, faults starting within this window.
        #[arg(long, value_name = "WINDOW", value_parser = args::timeout, conflicts_with = "exhaustive")]
        faults: Option<std::time::Duration>,
    },
    /// Shrink a failing seed's scheduler choices toward FIFO, and print a replayable token.
    Shrink {
        /// The scenario (see `roof list`).
        #[arg(value_parser = args::scenario())]
        scenario: &'static Scenario,
        /// The failing seed.
        #[arg(long, value_parser = args::seed)]
        seed: SeedArg,
        /// Candidate runs to try at most (1 to 10000000).
        #[arg(long, default_value = "5000", value_parser = args::budget)]
        budget: usize,
        /// With faults drawn from the seed within this window: the plan is shrunk first, to
        /// the faults that matter, then the choices.
        #[arg(long, value_name = "WINDOW", value_parser = args::timeout)]
        faults: Option<Duration>,
    },
    /// The yell-echo server on real sockets (`nc 127.0.0.1 1234`); needs the real-net feature.
    Serve {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:1234")]
        addr: String,
    },
    /// The echo client on real sockets, against `roof serve`; needs the real-net feature.
    Client {
        /// The server's address.
        #[arg(long, default_value = "127.0.0.1:1234")]
        addr: String,
        /// What to send each time (at most 64 KiB).
        #[arg(long, default_value = "Hello World!", value_parser = args::message)]
        message: String,
        /// How many times to send it and wait for it upper-cased (1 to 1000000).
        #[arg(long, default_value = "5", value_parser = args::count)]
        count: u32,
        /// Give up (exit 1) when the whole exchange takes longer than this: 10s, 500ms, 1m.
        #[arg(long, default_value = "10s", value_parser = args::timeout)]
        timeout: Duration,
    },
}

/// Without the real-net feature, `serve` and `client` only say how to get them.
#[cfg(not(feature = "real-net"))]
fn needs_real_net(command: &str) -> Usage {
    Usage(format!(
        "roof {command} runs on real sockets, which this build leaves out: \
         rebuild with the real-net feature (cargo run --release --features real-net -- {command})"
    ))
}

/// A usage error found after parsing: one line on stderr, exit status 2.
pub(crate) struct Usage(pub(crate) String);

pub fn main() -> i32 {
    // A panicking task is reported as the run's failure; the default hook's lines on stderr
    // would only repeat it. Any other panic (a bug of the tool itself) still prints.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !roof::in_simulation() {
            default_hook(info);
        }
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return clap_error(&error),
    };
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(Usage(message)) => {
            out::error_line(format_args!("error: {message}"));
            2
        }
    }
}

/// Print clap's whole message (the error, the usage, a "did you mean" tip): help and the
/// version on stdout with status 0, errors on stderr with status 2.
fn clap_error(error: &clap::Error) -> i32 {
    use clap::error::ErrorKind;
    let rendered = error.render().to_string();
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            out::text(&rendered);
            0
        }
        _ => {
            out::error_line(rendered.trim_end());
            2
        }
    }
}

fn dispatch(command: Command) -> Result<i32, Usage> {
    match command {
        Command::List => {
            let width = sim::SCENARIOS
                .iter()
                .map(|s| s.name.len())
                .max()
                .unwrap_or(0);
            for scenario in sim::SCENARIOS {
                let marker = if scenario.planted_bug {
                    " (planted bug: some seeds fail)"
                } else {
                    ""
                };
                out::line(format_args!(
                    "{:width$}  {}{marker}",
                    scenario.name, scenario.description
                ));
            }
            Ok(0)
        }
        Command::Run {
            scenario,
            seed,
            fifo,
            pct,
            trace,
            json,
            choices,
            faults,
            keep_faults,
            timeline,
            perfetto,
        } => {
            // With --json, stdout holds the JSON object alone.
            let seed = draw_seed(seed, json)?;
            let pictures = timeline::Pictures { timeline, perfetto };
            let mode = if trace || pictures.wanted() {
                TraceMode::Record
            } else {
                TraceMode::Hash
            };
            let mut config = Config::new(seed)
                .policy(adapted(scenario, seed, policy(fifo, pct)))
                .trace(mode)
                .echo(!json);
            if let Some(choices) = choices {
                config = config.choices(Choices(choices.0));
            }
            let faults = faults.map(|window| sim::Faults {
                window,
                keep: keep_faults.map(|keep| keep.0),
            });
            run(scenario, config, trace, json, faults.as_ref(), &pictures)
        }
        Command::Diff {
            scenario,
            seed,
            fifo,
            pct,
            choices,
            faults,
            budget,
            timeline,
        } => {
            let seed = draw_seed(seed, false)?;
            timeline::diff(&timeline::DiffPlan {
                scenario,
                seed,
                policy: adapted(scenario, seed, policy(fifo, pct)),
                choices: choices.map(|choices| choices.0),
                faults,
                budget,
                path: timeline,
            })
        }
        Command::Sweep {
            scenario,
            seeds,
            exhaustive: Some(preemptions),
            schedules_max,
            ..
        } => Ok(shrink::exhaustive(
            scenario,
            seeds,
            preemptions,
            schedules_max,
        )),
        Command::Sweep {
            scenario,
            seeds,
            fifo,
            pct,
            shard,
            jobs,
            check_determinism,
            failures,
            faults,
            ..
        } => {
            let plan = sweep::Plan {
                scenario,
                seeds,
                shard: shard.unwrap_or(Shard::ALL),
                jobs,
                policy: policy(fifo, pct),
                check_determinism,
                failures,
                faults,
            };
            sweep::sweep(&plan)
        }
        Command::Shrink {
            scenario,
            seed,
            budget,
            faults,
        } => {
            let seed = draw_seed(seed, false)?;
            Ok(shrink::shrink(scenario, seed, budget, faults))
        }
        #[cfg(feature = "real-net")]
        Command::Serve { addr } => real::serve(real::parse_addr(&addr)?),
        #[cfg(feature = "real-net")]
        Command::Client {
            addr,
            message,
            count,
            timeout,
        } => real::client(real::parse_addr(&addr)?, &message, count, timeout),
        #[cfg(not(feature = "real-net"))]
        Command::Serve { .. } => Err(needs_real_net("serve")),
        #[cfg(not(feature = "real-net"))]
        Command::Client { .. } => Err(needs_real_net("client")),
    }
}

/// `policy` for `seed` of `scenario`: PCT's default horizon adapted to the run (as the test
/// harness adapts it), the change points spread over the steps of the seed's FIFO run.
pub(crate) fn adapted(scenario: &Scenario, seed: u64, policy: Policy) -> Policy {
    match policy {
        Policy::Pct { depth, horizon } if horizon == roof::sched::PCT_HORIZON => {
            let probe = sim::run(scenario, Config::new(seed).policy(Policy::Fifo).echo(false));
            Policy::Pct {
                depth,
                horizon: probe.steps.max(1),
            }
        }
        other => other,
    }
}

fn policy(fifo: bool, pct: Option<u32>) -> Policy {
    match (fifo, pct) {
        (true, _) => Policy::Fifo,
        (false, Some(depth)) => Policy::pct(depth),
        (false, None) => Policy::Random,
    }
}

/// The seed to run: the number given, or one drawn from the OS and printed before the run
/// starts (on stderr when stdout is for JSON).
fn draw_seed(seed: SeedArg, json: bool) -> Result<u64, Usage> {
    if let SeedArg::Number(seed) = seed {
        return Ok(seed);
    }
    let seed = os_random_seed().map_err(|error| {
        Usage(format!(
            "--seed random: cannot read the OS's randomness: {error}"
        ))
    })?;
    let line = format!("seed: {seed} (drawn with --seed random)");
    if json {
        out::error_line(line);
    } else {
        out::line(line);
    }
    Ok(seed)
}

fn os_random_seed() -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

fn run(
    scenario: &Scenario,
    config: Config,
    trace: bool,
    json: bool,
    faults: Option<&sim::Faults>,
    pictures: &timeline::Pictures,
) -> Result<i32, Usage> {
    let (report, plan) = match faults {
        Some(faults) => {
            let run = sim::run_with_faults(scenario, config, faults);
            (run.report, Some((run.drawn, run.fired)))
        }
        None => (sim::run(scenario, config), None),
    };
    let written = if pictures.wanted() {
        let mut settings = Vec::new();
        if let Some(faults) = faults {
            settings.push((
                "faults",
                humantime::format_duration(faults.window).to_string(),
            ));
            if let Some(keep) = &faults.keep {
                let kept: Vec<String> = keep.iter().map(ToString::to_string).collect();
                settings.push(("faults kept", kept.join(",")));
            }
        }
        timeline::write_pictures(scenario, &report, &settings, pictures)?
    } else {
        Vec::new()
    };
    if json {
        out::line(report_json(scenario, &report, trace));
    } else {
        if let Some(trace) = report.trace.as_ref().filter(|_| trace) {
            out::text(&trace.render());
        }
        out::line(format_args!("seed: {}", report.seed));
        out::line(format_args!("virtual-time: {}", report.virtual_time));
        out::line(format_args!("trace-hash: {}", report.trace_hash_hex()));
        if let Some((drawn, fired)) = &plan {
            let listed: Vec<String> = drawn
                .faults
                .iter()
                .enumerate()
                .map(|(index, fault)| format!("#{index} {fault}"))
                .collect();
            out::line(format_args!("fault-plan: {}", listed.join("; ")));
            if let Some(keep) = faults.and_then(|faults| faults.keep.as_ref()) {
                let kept: Vec<String> = keep.iter().map(|index| format!("#{index}")).collect();
                out::line(format_args!("faults-kept: {}", kept.join(" ")));
            }
            out::line(format_args!("faults-fired: {}", fired.join("; ")));
        }
        if let Err(failure) = &report.outcome {
            out::line(format_args!("failed: {failure}"));
        }
        for line in written {
            out::line(line);
        }
    }
    Ok(i32::from(!report.passed()))
}

fn report_json(scenario: &Scenario, report: &Report, trace: bool) -> String {
    let mut value = serde_json::json!({
        "scenario": scenario.name,
        "seed": report.seed,
        "policy": report.policy,
        "passed": report.passed(),
        "failure": report.outcome.as_ref().err().map(ToString::to_string),
        "failure_kind": report.outcome.as_ref().err().map(roof::Failure::kind),
        "virtual_time_ns": report.virtual_time.as_nanos(),
        "steps": report.steps,
        "events": report.events,
        "trace_hash": report.trace_hash_hex(),
        "output": report.output,
    });
    if let Some(events) = report.trace.as_ref().filter(|_| trace) {
        value["trace"] = serde_json::to_value(&events.events).expect("trace events serialize");
    }
    value.to_string()
}
