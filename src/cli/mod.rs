//! The `roof` command line. Arguments are parsed into plain structs before anything runs;
//! all simulation logic lives in the library and in `sim/`.
//!
//! Exit status: 0 every run passed, 1 a scenario failed, 2 bad usage (one line on stderr).

// The wall clock measures sweep speed and `--seed random` reads the OS; neither reaches a
// simulated path.
#![allow(clippy::disallowed_methods, clippy::disallowed_types)]

use std::io::Read as _;
use std::ops::Range;

#[cfg(feature = "real-net")]
mod real;
mod shrink;
mod sweep;

use clap::{Parser, Subcommand};
use roof::shrink::Token;
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
        scenario: String,
        /// The seed: a number, or `random` to draw one from the OS (printed first).
        #[arg(long, default_value = "0")]
        seed: String,
        /// Schedule in FIFO order (asyncio's), instead of the seeded random policy.
        #[arg(long, conflicts_with = "pct")]
        fifo: bool,
        /// Schedule with PCT at this bug depth.
        #[arg(long, value_name = "DEPTH")]
        pct: Option<u32>,
        /// Print the trace, one event per line.
        #[arg(long)]
        trace: bool,
        /// Print the report as one JSON object (with the trace's events under --trace).
        #[arg(long)]
        json: bool,
        /// Replay a choice sequence (from `roof shrink`) instead of the policy's draws.
        #[arg(long, value_name = "TOKEN")]
        choices: Option<String>,
    },
    /// Run one scenario over a range of seeds and summarise.
    Sweep {
        /// The scenario (see `roof list`).
        scenario: String,
        /// Seeds to run: a range `A..B` (B excluded) or a count `N` (meaning 0..N).
        #[arg(long, default_value = "0..1000")]
        seeds: String,
        /// Schedule in FIFO order instead of the seeded random policy.
        #[arg(long, conflicts_with = "pct")]
        fifo: bool,
        /// Schedule with PCT at this bug depth.
        #[arg(long, value_name = "DEPTH")]
        pct: Option<u32>,
        /// Run the I-th of N disjoint slices of the seeds (1-based): `--shard 2/4`.
        #[arg(long, value_name = "I/N")]
        shard: Option<String>,
        /// Seeds run in parallel, each simulation on its own thread.
        #[arg(long, value_name = "J", default_value = "1")]
        jobs: String,
        /// Run each seed twice and fail on the first event where the traces differ.
        #[arg(long)]
        check_determinism: bool,
    },
    /// Shrink a failing seed's scheduler choices toward FIFO, and print a replayable token.
    Shrink {
        /// The scenario (see `roof list`).
        scenario: String,
        /// The failing seed.
        #[arg(long)]
        seed: String,
        /// Candidate runs to try at most.
        #[arg(long, default_value = "5000")]
        budget: String,
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
        /// What to send each time.
        #[arg(long, default_value = "Hello World!")]
        message: String,
        /// How many times to send it and wait for it upper-cased.
        #[arg(long, default_value = "5")]
        count: String,
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

/// A usage error: one line on stderr, exit status 2.
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
        Err(error) => {
            use clap::error::ErrorKind;
            if matches!(
                error.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                let _ = error.print();
                return if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                    2
                } else {
                    0
                };
            }
            let rendered = error.to_string();
            eprintln!("{}", rendered.lines().next().unwrap_or("error: bad usage"));
            return 2;
        }
    };
    match dispatch(cli.command) {
        Ok(code) => code,
        Err(Usage(message)) => {
            eprintln!("error: {message}");
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
                println!("{:width$}  {}{marker}", scenario.name, scenario.description);
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
        } => {
            let scenario = find(&scenario)?;
            let seed = parse_seed(&seed)?;
            let mode = if trace {
                TraceMode::Record
            } else {
                TraceMode::Hash
            };
            let mut config = Config::new(seed)
                .policy(policy(fifo, pct)?)
                .trace(mode)
                .echo(!json);
            if let Some(token) = choices {
                let choices =
                    Token::decode(&token).map_err(|error| Usage(format!("--choices: {error}")))?;
                config = config.choices(Choices(choices));
            }
            Ok(run(scenario, config, trace, json))
        }
        Command::Sweep {
            scenario,
            seeds,
            fifo,
            pct,
            shard,
            jobs,
            check_determinism,
        } => {
            let plan = sweep::Plan {
                scenario: find(&scenario)?,
                seeds: parse_seeds(&seeds)?,
                shard: shard
                    .as_deref()
                    .map(sweep::parse_shard)
                    .transpose()?
                    .unwrap_or((1, 1)),
                jobs: sweep::parse_jobs(&jobs)?,
                policy: policy(fifo, pct)?,
                check_determinism,
            };
            Ok(sweep::sweep(&plan))
        }
        Command::Shrink {
            scenario,
            seed,
            budget,
        } => {
            let scenario = find(&scenario)?;
            let seed = parse_seed(&seed)?;
            let budget: usize = positive("budget", &budget)?;
            Ok(shrink::shrink(scenario, seed, budget))
        }
        #[cfg(feature = "real-net")]
        Command::Serve { addr } => real::serve(real::parse_addr(&addr)?),
        #[cfg(feature = "real-net")]
        Command::Client {
            addr,
            message,
            count,
        } => {
            let addr = real::parse_addr(&addr)?;
            if message.is_empty() {
                return Err(Usage("invalid --message '': say something".into()));
            }
            let count: u32 = positive("count", &count)?;
            real::client(addr, &message, count)
        }
        #[cfg(not(feature = "real-net"))]
        Command::Serve { .. } => Err(needs_real_net("serve")),
        #[cfg(not(feature = "real-net"))]
        Command::Client { .. } => Err(needs_real_net("client")),
    }
}

/// The value of `--flag`: a whole number above 0.
fn positive<T>(flag: &str, text: &str) -> Result<T, Usage>
where
    T: std::str::FromStr + PartialEq + Default,
{
    text.parse()
        .ok()
        .filter(|value: &T| *value != T::default())
        .ok_or_else(|| {
            Usage(format!(
                "invalid --{flag} '{text}': expected a whole number above 0"
            ))
        })
}

pub(crate) fn find(name: &str) -> Result<&'static Scenario, Usage> {
    sim::find(name).ok_or_else(|| {
        let names: Vec<&str> = sim::SCENARIOS.iter().map(|s| s.name).collect();
        Usage(format!(
            "unknown scenario '{name}' (known: {})",
            names.join(", ")
        ))
    })
}

fn policy(fifo: bool, pct: Option<u32>) -> Result<Policy, Usage> {
    match (fifo, pct) {
        (true, _) => Ok(Policy::Fifo),
        (false, Some(0)) => Err(Usage(
            "invalid --pct '0': the depth must be at least 1".into(),
        )),
        (false, Some(depth)) => Ok(Policy::pct(depth)),
        (false, None) => Ok(Policy::Random),
    }
}

pub(crate) fn parse_seed(text: &str) -> Result<u64, Usage> {
    if text == "random" {
        let seed = os_random_seed().map_err(|error| {
            Usage(format!(
                "--seed random: cannot read the OS's randomness: {error}"
            ))
        })?;
        println!("seed: {seed} (drawn with --seed random)");
        return Ok(seed);
    }
    text.parse().map_err(|_| {
        Usage(format!(
            "invalid --seed '{text}': expected a whole number from 0 to {} or 'random'",
            u64::MAX
        ))
    })
}

fn os_random_seed() -> std::io::Result<u64> {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(u64::from_le_bytes(bytes))
}

/// `A..B` (B excluded, A below B) or a count `N` (0..N, N at least 1).
fn parse_seeds(text: &str) -> Result<Range<u64>, Usage> {
    let invalid = |why: &str| Usage(format!("invalid --seeds '{text}': {why}"));
    let number = |part: &str| {
        part.trim()
            .parse::<u64>()
            .map_err(|_| invalid("expected a range A..B or a count N of whole numbers"))
    };
    let range = match text.split_once("..") {
        Some((start, end)) => number(start)?..number(end)?,
        None => 0..number(text)?,
    };
    if range.start >= range.end {
        return Err(invalid(
            "the range is empty (A must be below B, N at least 1)",
        ));
    }
    Ok(range)
}

fn run(scenario: &Scenario, config: Config, trace: bool, json: bool) -> i32 {
    let report = sim::run(scenario, config);
    if json {
        println!("{}", report_json(scenario, &report, trace));
    } else {
        if let Some(trace) = report.trace.as_ref().filter(|_| trace) {
            print!("{}", trace.render());
        }
        println!("seed: {}", report.seed);
        println!("virtual-time: {}", report.virtual_time);
        println!("trace-hash: {}", report.trace_hash_hex());
        if let Err(failure) = &report.outcome {
            println!("failed: {failure}");
        }
    }
    i32::from(!report.passed())
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
