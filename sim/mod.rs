//! The systems under simulation: the programs of the asyncio notes, ported, each a named
//! scenario that the `roof` command line and the tests run.
//!
//! A scenario is a function that drives an [`EventLoop`] (configured by the caller: seed,
//! policy, trace) and returns `Err` with a message when what it observed is wrong.

use roof::{Config, EventLoop, Report};

pub mod add_42;
pub mod bank;
pub mod call_later;
pub mod config_race;
pub mod echo_ping_pong;
pub mod gather;
pub mod hello_world;
pub mod http_get;
pub mod kv_store;
pub mod lease;
pub mod retry_storm;
pub mod wal_kv;
pub mod yell_echo;

/// One named system under simulation.
#[derive(Debug)]
pub struct Scenario {
    /// The name used on the command line (`roof run <name>`).
    pub name: &'static str,
    /// One line for `roof list`.
    pub description: &'static str,
    /// Drive the loop; `Err` is a failure of the system under test.
    pub run: fn(&EventLoop) -> Result<(), String>,
    /// Whether the system has a planted bug that some seeds expose (so failures are expected).
    pub planted_bug: bool,
}

/// Every scenario, in the order `roof list` shows them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "hello-world",
        description: "a coroutine that prints and returns 42, run to completion",
        run: hello_world::run,
        planted_bug: false,
    },
    Scenario {
        name: "add-42",
        description: "a coroutine awaiting another: hello_world awaits add_42(23)",
        run: add_42::run,
        planted_bug: false,
    },
    Scenario {
        name: "gather",
        description: "hello_world and hello_python (which sleeps 0.1 s) gathered concurrently",
        run: gather::run,
        planted_bug: false,
    },
    Scenario {
        name: "call-later",
        description: "the self-rescheduling hello_world callback on run_forever, stopped at 5.5 s",
        run: call_later::run,
        planted_bug: false,
    },
    Scenario {
        name: "yell-echo",
        description: "the YellEchoServer Protocol and nc-like clients checking each line comes back upper-cased",
        run: yell_echo::run,
        planted_bug: false,
    },
    Scenario {
        name: "echo-ping-pong",
        description: "the EchoClientProtocol against the yell server, 5 exchanges; connection_lost stops the loop",
        run: echo_ping_pong::run,
        planted_bug: false,
    },
    Scenario {
        name: "http-get",
        description: "eight concurrent GETs to a simulated HTTP/1.1 server, gathered",
        run: http_get::run,
        planted_bug: false,
    },
    Scenario {
        name: "kv-store",
        description: "a key-value server with a planted bug: it assumes each data_received holds whole lines",
        run: kv_store::run,
        planted_bug: true,
    },
    Scenario {
        name: "wal-kv",
        description: "a key-value store on a write-ahead log that acknowledges before it syncs: only a crash plan shows it (--faults 2s)",
        run: wal_kv::run,
        planted_bug: true,
    },
    Scenario {
        name: "wal-kv-fixed",
        description: "the write-ahead-log store fixed: each record synced before its answer",
        run: wal_kv::run_fixed,
        planted_bug: false,
    },
    Scenario {
        name: "lease",
        description: "a leader election whose nodes time their lease by the wall clock: only a clock-jump plan shows two leaders (--faults 2s)",
        run: lease::run,
        planted_bug: true,
    },
    Scenario {
        name: "lease-fixed",
        description: "the leader election fixed: each node times its lease by the monotonic clock",
        run: lease::run_fixed,
        planted_bug: false,
    },
    Scenario {
        name: "retry-storm",
        description: "clients that retry timed-out requests at once, a server that serves them all: a pause, stall or clog of it starts a storm that never ends (--faults 2s)",
        run: retry_storm::run,
        planted_bug: true,
    },
    Scenario {
        name: "retry-storm-fixed",
        description: "the retry storm fixed: clients back off with seeded jitter and send deadlines the server honours",
        run: retry_storm::run_fixed,
        planted_bug: false,
    },
    Scenario {
        name: "config-race",
        description: "workers that assume the config loader ran first: an ordering bug FIFO never shows",
        run: config_race::run,
        planted_bug: true,
    },
    Scenario {
        name: "bank",
        description: "tellers on roof::sync locks and queues, with a planted bug: check and debit under two holds",
        run: bank::run,
        planted_bug: true,
    },
    Scenario {
        name: "bank-fixed",
        description: "the bank with its bug fixed: both locks, in account order, from check to credit",
        run: bank::run_fixed,
        planted_bug: false,
    },
];

/// The scenario called `name`.
pub fn find(name: &str) -> Option<&'static Scenario> {
    SCENARIOS.iter().find(|scenario| scenario.name == name)
}

/// Run `scenario` once under `config` and return the report (taken before the loop closes,
/// so the trace ends where the program did).
pub fn run(scenario: &Scenario, config: Config) -> Report {
    let event_loop = EventLoop::with_config(config);
    if let Err(message) = (scenario.run)(&event_loop) {
        event_loop.fail(message);
    }
    event_loop.report()
}

/// Faults for a scenario's run (`--faults WINDOW`, `--keep-faults I,J`): a plan drawn from
/// the seed among the scenario's hosts, faults starting within `window`, of which only the
/// faults `keep` names run (all without it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Faults {
    /// Faults start within this window.
    pub window: std::time::Duration,
    /// Keep only these faults of the plan, by index.
    pub keep: Option<Vec<usize>>,
}

/// A run with faults: its report, the plan it ran (after `keep`) and the faults that fired.
pub struct FaultedRun {
    /// The run's report.
    pub report: Report,
    /// The plan drawn (all its faults, before `keep`), and the one run.
    pub drawn: roof::fault::FaultPlan,
    /// The faults that fired, as the nemesis reports them.
    pub fired: Vec<String>,
}

/// Run `scenario` once under `config` with `faults`: once the scenario has added its hosts
/// (when the loop first runs), the plan is drawn among them (crashes among those that
/// restart) and a nemesis carries it out.
pub fn run_with_faults(scenario: &Scenario, config: Config, faults: &Faults) -> FaultedRun {
    let seed = config.seed;
    let (window, keep) = (faults.window, faults.keep.clone());
    run_with_plan(scenario, config, move |hosts, restartable| {
        let plan = roof::fault::FaultPlan::draw_among(seed, hosts, restartable, window);
        let run = match &keep {
            Some(keep) => plan.keep(keep),
            None => plan.clone(),
        };
        (plan, run)
    })
}

/// Run `scenario` once under `config` with the plan `plan` makes from its hosts (all but
/// `main`) and those of them that restart, once the scenario has added them: `plan`
/// returns the plan drawn and the plan to run (the drawn one, or some of its faults).
pub fn run_with_plan(
    scenario: &Scenario,
    config: Config,
    plan: impl FnOnce(&[String], &[String]) -> (roof::fault::FaultPlan, roof::fault::FaultPlan)
        + 'static,
) -> FaultedRun {
    use std::cell::RefCell;
    use std::rc::Rc;
    let event_loop = EventLoop::with_config(config);
    let drawn = Rc::new(RefCell::new(roof::fault::FaultPlan::none()));
    let fired: roof::fault::FiredFaults = Rc::default();
    let handle = event_loop.handle();
    let (plan_slot, fired_slot) = (drawn.clone(), fired.clone());
    event_loop.call_soon(move || {
        let hosts: Vec<String> = handle
            .hosts()
            .into_iter()
            .filter(|host| host != "main")
            .collect();
        let (plan, run) = plan(&hosts, &handle.restartable_hosts());
        *plan_slot.borrow_mut() = plan;
        handle.start_nemesis(run, fired_slot).detach();
    });
    if let Err(message) = (scenario.run)(&event_loop) {
        event_loop.fail(message);
    }
    let report = event_loop.report();
    let drawn = drawn.borrow().clone();
    // What the nemesis did, then what the engine did on its own (restarts after a panic).
    let mut fired = fired.borrow().clone();
    fired.extend(report.injected.iter().cloned());
    FaultedRun {
        report,
        drawn,
        fired,
    }
}

/// Run `scenario` with `faults` if given, else plainly: the report.
pub fn run_maybe_faulted(scenario: &Scenario, config: Config, faults: Option<&Faults>) -> Report {
    match faults {
        Some(faults) => run_with_faults(scenario, config, faults).report,
        None => run(scenario, config),
    }
}

/// Turn a run's failure into the scenario's error message.
pub(crate) fn failed(failure: roof::Failure) -> String {
    failure.to_string()
}
