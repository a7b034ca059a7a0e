//! The scenarios of sim/: determinism over many seeds, the seed's influence, and CPython's
//! output under FIFO.

use roof::{Config, Policy, TraceMode};

use crate::sim;

const SEEDS: u64 = 500;

fn reference(name: &str) -> String {
    let path = format!("{}/tests/reference/{name}.out", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

fn fifo_output(name: &str) -> String {
    let scenario = sim::find(name).unwrap();
    let report = sim::run(scenario, Config::new(0).policy(Policy::Fifo).echo(false));
    assert!(report.passed(), "{name}: {:?}", report.outcome);
    report.output
}

#[test]
fn every_scenario_is_deterministic_over_many_seeds() {
    for scenario in sim::SCENARIOS {
        for seed in 0..SEEDS {
            let first = sim::run(scenario, crate::quiet(seed));
            let second = sim::run(scenario, crate::quiet(seed));
            if !scenario.planted_bug {
                assert!(
                    first.passed(),
                    "{} seed {seed}: {:?}",
                    scenario.name,
                    first.outcome
                );
            }
            assert_eq!(
                first.trace_hash, second.trace_hash,
                "{} seed {seed}",
                scenario.name
            );
            assert_eq!(first.output, second.output, "{} seed {seed}", scenario.name);
            assert_eq!(
                first.virtual_time, second.virtual_time,
                "{} seed {seed}",
                scenario.name
            );
            assert!(
                first.events > 0,
                "{} seed {seed} traced nothing",
                scenario.name
            );
        }
    }
}

#[test]
fn recorded_traces_are_identical_event_for_event() {
    for scenario in sim::SCENARIOS {
        for seed in [0, 1, 99] {
            let config = || crate::quiet(seed).trace(TraceMode::Record);
            let first = sim::run(scenario, config()).trace.unwrap();
            let second = sim::run(scenario, config()).trace.unwrap();
            assert_eq!(first.first_divergence(&second), None, "{}", scenario.name);
        }
    }
}

#[test]
fn gather_shows_both_orders_within_100_seeds_with_results_in_argument_order() {
    let scenario = sim::find("gather").unwrap();
    let (mut world_first, mut python_first) = (0, 0);
    for seed in 0..100 {
        let report = sim::run(scenario, crate::quiet(seed));
        assert!(report.passed(), "seed {seed}: {:?}", report.outcome);
        let lines: Vec<&str> = report.output.lines().collect();
        match lines.as_slice() {
            ["hello world!", "hello Python!", "[None, None]"] => world_first += 1,
            ["hello Python!", "hello world!", "[None, None]"] => python_first += 1,
            other => panic!("seed {seed}: unexpected output {other:?}"),
        }
    }
    assert!(
        world_first > 0 && python_first > 0,
        "{world_first} / {python_first}"
    );
}

#[test]
fn the_seed_changes_the_trace() {
    let scenario = sim::find("gather").unwrap();
    let hashes: std::collections::BTreeSet<u64> = (0..20)
        .map(|seed| sim::run(scenario, crate::quiet(seed)).trace_hash)
        .collect();
    assert!(hashes.len() > 1);
}

#[test]
fn fifo_prints_what_cpython_prints() {
    for (scenario, file) in [
        ("hello-world", "hello_world"),
        ("add-42", "add_42"),
        ("gather", "gather"),
        ("call-later", "call_later"),
    ] {
        let mut output = fifo_output(scenario);
        if scenario == "hello-world" {
            let start = output.find("0x").unwrap();
            let end = start + output[start..].find('>').unwrap();
            output.replace_range(start..end, "0xADDRESS");
        }
        assert_eq!(output, reference(file), "{scenario}");
    }
}

#[test]
fn fifo_is_the_same_for_every_seed() {
    let scenario = sim::find("gather").unwrap();
    let fifo = |seed| sim::run(scenario, crate::quiet(seed).policy(Policy::Fifo)).output;
    assert_eq!(fifo(1), fifo(2));
}

#[test]
fn pct_runs_every_scenario() {
    for scenario in sim::SCENARIOS
        .iter()
        .filter(|scenario| !scenario.planted_bug)
    {
        for seed in 0..50 {
            let report = sim::run(scenario, crate::quiet(seed).policy(Policy::pct(2)));
            assert!(
                report.passed(),
                "{} seed {seed}: {:?}",
                scenario.name,
                report.outcome
            );
        }
    }
}

#[test]
fn call_later_ticks_once_a_second() {
    let scenario = sim::find("call-later").unwrap();
    let report = sim::run(scenario, crate::quiet(4).trace(TraceMode::Record));
    let trace = report.trace.unwrap();
    let printed: Vec<u64> = trace
        .events
        .iter()
        .filter(|event| matches!(event.kind, roof::trace::EventKind::Output { .. }))
        .map(|event| event.time_ns)
        .collect();
    assert_eq!(printed, [1, 2, 3, 4, 5].map(|s| s * 1_000_000_000));
    assert_eq!(report.virtual_time.as_nanos(), 5_500_000_000);
}

#[test]
fn a_sweep_finds_the_planted_bug_among_passing_seeds() {
    let scenario = sim::find("kv-store").unwrap();
    let failing: Vec<u64> = (0..300)
        .filter(|&seed| !sim::run(scenario, crate::quiet(seed)).passed())
        .collect();
    assert!(!failing.is_empty(), "no seed exposed the planted bug");
    assert!(
        failing.len() < 150,
        "the bug should hide in most seeds: {} of 300 failed",
        failing.len()
    );
    // Each failure is the bug (a command cut in two), and it replays.
    let seed = failing[0];
    let report = sim::run(scenario, crate::quiet(seed));
    let failure = report.outcome.unwrap_err().to_string();
    assert!(failure.contains("ERR unknown command"), "{failure}");
    assert!(!sim::run(scenario, crate::quiet(seed)).passed());
}

#[test]
fn the_fixed_protocol_passes_every_seed() {
    for seed in 0..300 {
        let event_loop = roof::EventLoop::with_config(crate::quiet(seed));
        let result = sim::kv_store::run_with(&event_loop, false);
        assert_eq!(result, Ok(()), "seed {seed}");
    }
}

#[test]
fn http_gets_overlap_in_virtual_time() {
    let scenario = sim::find("http-get").unwrap();
    for seed in 0..50 {
        let report = sim::run(scenario, crate::quiet(seed).trace(TraceMode::Record));
        assert!(report.passed(), "seed {seed}: {:?}", report.outcome);
        // One request's time: the 50 ms of service plus a few milliseconds of round trips.
        let time = report.virtual_time.as_nanos();
        assert!(
            (50_000_000..70_000_000).contains(&time),
            "seed {seed}: {}",
            report.virtual_time
        );
        // The server works on all eight at once: its eight 50 ms service sleeps are all armed
        // before the first of them fires.
        let trace = report.trace.unwrap();
        let service: Vec<roof::trace::TimerId> = trace
            .events
            .iter()
            .filter_map(|event| match &event.kind {
                roof::trace::EventKind::TimerSet {
                    timer, deadline_ns, ..
                } if *deadline_ns >= 50_000_000 => Some(*timer),
                _ => None,
            })
            .collect();
        let first_fire = trace
            .events
            .iter()
            .position(|event| matches!(&event.kind, roof::trace::EventKind::TimerFire { timer } if service.contains(timer)))
            .unwrap();
        let armed = trace.events[..first_fire]
            .iter()
            .filter(|event| matches!(&event.kind, roof::trace::EventKind::TimerSet { timer, .. } if service.contains(timer)))
            .count();
        assert_eq!(armed, 8, "seed {seed}");
    }
}

#[test]
fn echo_ping_pong_makes_its_exchanges_and_stops_on_connection_lost() {
    let scenario = sim::find("echo-ping-pong").unwrap();
    for seed in 0..100 {
        let report = sim::run(scenario, crate::quiet(seed));
        assert!(report.passed(), "seed {seed}: {:?}", report.outcome);
        assert_eq!(
            report.output.matches("HELLO WORLD!").count(),
            5,
            "seed {seed}"
        );
    }
}

/// The bank's planted bug hides from FIFO (no teller ever waits), shows under Random through
/// the toolkit's preemption points, and shrinks to a single preemption; the fixed bank
/// passes every seed.
#[test]
fn the_bank_overdraws_only_when_a_teller_is_preempted_and_the_fix_holds() {
    let bank = sim::find("bank").unwrap();
    let fifo = sim::run(bank, crate::quiet(0).policy(roof::Policy::Fifo));
    assert!(fifo.passed(), "{:?}", fifo.outcome);
    let failing: Vec<u64> = (0..300)
        .filter(|&seed| !sim::run(bank, crate::quiet(seed)).passed())
        .collect();
    assert!(!failing.is_empty(), "no seed exposed the overdraft");
    assert!(failing.len() < 100, "{} of 300 failed", failing.len());
    let report = sim::run(bank, crate::quiet(failing[0]).record_choices(true));
    let failure = report.outcome.clone().unwrap_err().to_string();
    assert!(failure.contains("is overdrawn"), "{failure}");
    let choices = report.choices.clone().unwrap();
    let shrunk = roof::shrink::minimize(
        &choices,
        |candidate| {
            let config = crate::quiet(failing[0]).choices(roof::Choices(candidate.to_vec()));
            !sim::run(bank, config).passed()
        },
        2_000,
    );
    assert_eq!(
        roof::shrink::deviations(&shrunk),
        1,
        "one preemption is enough: {shrunk:?}"
    );
    let fixed = sim::find("bank-fixed").unwrap();
    for seed in 0..300 {
        let report = sim::run(fixed, crate::quiet(seed));
        assert!(report.passed(), "seed {seed}: {:?}", report.outcome);
    }
}

/// The write-ahead-log store's bug shows only under crash plans: plain runs pass, runs with
/// faults lose acknowledged writes, and the fixed store passes both.
#[test]
fn the_wal_store_loses_acknowledged_writes_only_when_its_host_crashes() {
    let faults = sim::Faults {
        window: std::time::Duration::from_secs(2),
        keep: None,
    };
    let (buggy, fixed) = (
        sim::find("wal-kv").unwrap(),
        sim::find("wal-kv-fixed").unwrap(),
    );
    let mut lost = 0;
    for seed in 0..100 {
        assert!(
            sim::run(buggy, crate::quiet(seed)).passed(),
            "seed {seed} without faults"
        );
        let run = sim::run_with_faults(buggy, crate::quiet(seed), &faults);
        if let Err(failure) = &run.report.outcome {
            assert!(
                failure
                    .to_string()
                    .contains("an acknowledged write was lost"),
                "seed {seed}: {failure}"
            );
            assert!(
                run.fired
                    .iter()
                    .any(|fault| fault.contains("Crash db") || fault.contains("restart db")),
                "seed {seed}: lost without a crash: {:?}",
                run.fired
            );
            lost += 1;
        }
        let run = sim::run_with_faults(fixed, crate::quiet(seed), &faults);
        assert!(
            run.report.passed(),
            "fixed, seed {seed}: {:?}",
            run.report.outcome
        );
    }
    assert!((10..90).contains(&lost), "{lost} of 100 seeds lost a write");
}
