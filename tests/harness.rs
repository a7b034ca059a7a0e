//! The test harness: seeds from the environment, failures with replay lines, the regressions
//! file, and the determinism self-check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use roof::harness::{read_regressions, Builder, Sim};
use roof::Failure;

use crate::sim::yell_echo;

fn vars(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.to_string())
    }
}

fn yell_echo_sim(sim: &Sim) {
    sim.host("server", || yell_echo::serve(yell_echo::PORT));
    for client in 1..=2 {
        sim.client(&format!("nc-{client}"), async move {
            yell_echo::nc(client, 2, format!("server:{}", yell_echo::PORT)).await
        });
    }
}

#[test]
fn a_healthy_system_passes_every_seed() {
    let ran = Builder::new().seeds(0..50).try_run(yell_echo_sim).unwrap();
    assert_eq!(ran, 50);
}

#[test]
fn the_environment_chooses_the_seeds_and_bad_values_name_the_variable() {
    let builder = Builder::from_vars(vars(&[("ROOF_SEEDS", "10..13")])).unwrap();
    assert_eq!(builder.try_run(|_| {}).unwrap(), 3);
    let builder = Builder::from_vars(vars(&[("ROOF_SEEDS", "5")])).unwrap();
    assert_eq!(builder.try_run(|_| {}).unwrap(), 5);
    let builder = Builder::from_vars(vars(&[("ROOF_SEED", "77"), ("ROOF_SEEDS", "100")])).unwrap();
    assert_eq!(
        builder.try_run(|_| {}).unwrap(),
        1,
        "ROOF_SEED replays exactly one seed"
    );
    assert_eq!(
        Builder::from_vars(vars(&[]))
            .unwrap()
            .try_run(|_| {})
            .unwrap(),
        roof::harness::SEEDS_DEFAULT
    );
    for (variable, value) in [
        ("ROOF_SEED", "abc"),
        ("ROOF_SEEDS", "5..2"),
        ("ROOF_SEEDS", "x"),
        ("ROOF_CHECK_DETERMINISM", "yes"),
        ("ROOF_TRACE", "2"),
        ("ROOF_TIMELINE", " "),
        ("ROOF_FAULT_KINDS", "crash,fire"),
        ("ROOF_BUGGIFY", "on"),
    ] {
        let get = move |name: &str| (name == variable).then(|| value.to_string());
        let error = Builder::from_vars(get).unwrap_err();
        assert_eq!(error.variable, variable);
        assert!(
            error
                .to_string()
                .starts_with(&format!("{variable}={value:?} is invalid")),
            "{error}"
        );
    }
}

/// With the engine's fault points on, a failure lists what they did and its replay line
/// turns them on again.
#[test]
fn buggify_from_the_environment_is_reported_and_replayed() {
    let builder =
        Builder::from_vars(vars(&[("ROOF_BUGGIFY", "1"), ("ROOF_SEEDS", "0..40")])).unwrap();
    let failure = builder
        .quiet(true)
        .shrink(false)
        .try_run(|sim| {
            sim.client("writer", async {
                for round in 0..100u32 {
                    roof::fs::write("/f", round.to_le_bytes())
                        .await
                        .map_err(|error| format!("round {round}: {error}"))?;
                }
                Ok::<(), String>(())
            });
        })
        .unwrap_err();
    let (plan, fired) = failure.faults.clone().expect("faults listed");
    assert_eq!(plan, "none");
    assert!(
        fired
            .iter()
            .any(|line| line.contains("fails with EIO (buggify)")),
        "{fired:?}"
    );
    assert!(
        failure.replay.contains("ROOF_BUGGIFY=1"),
        "{}",
        failure.replay
    );
    assert!(failure.to_string().contains("faults fired:"), "{failure}");
}

/// A client that fails on seeds divisible by 5, after 1.5 s of virtual time.
fn flaky_sim(sim: &Sim) {
    let seed = sim.seed();
    sim.client("nc", async move {
        roof::sleep(Duration::from_millis(1500)).await;
        if seed % 5 == 0 && seed > 0 {
            Err(format!("unlucky seed {seed}"))
        } else {
            Ok(())
        }
    });
}

#[test]
fn a_failing_seed_reports_its_failure_settings_and_replay_line() {
    let failure = Builder::new()
        .seeds(1..20)
        .name("flaky_probe")
        .try_run(flaky_sim)
        .unwrap_err();
    assert_eq!(failure.seed, 5);
    let text = failure.to_string();
    assert!(
        text.contains(
            "roof: seed 5 failed at 1.500000000s (task \"nc\" on host nc): unlucky seed 5"
        ),
        "{text}"
    );
    let stamp = Builder::new().stamp();
    assert!(
        text.contains(&format!("roof: roof {stamp} (build stamp), policy random")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "replay: ROOF_SEED=5 ROOF_BUILD={stamp} cargo test --test main -- flaky_probe --exact"
        )),
        "{text}"
    );
    // The failure needs no scheduling at all: shrunk to FIFO, proven.
    let shrunk = failure.shrunk.as_ref().expect("shrunk by default");
    assert_eq!((shrunk.deviations, shrunk.proven), (0, true), "{text}");
    assert!(text.ends_with(&format!(
        "replay (shrunk): ROOF_SEED=5 ROOF_CHOICES=- ROOF_BUILD={stamp} cargo test --test main -- flaky_probe --exact"
    )), "{text}");
    // The replay runs exactly that seed, and fails the same way.
    let replayed = Builder::new().seed(5).try_run(flaky_sim).unwrap_err();
    assert_eq!(replayed.failure, failure.failure);
}

#[test]
fn a_panicking_client_names_task_host_and_time_and_the_trace_can_be_printed() {
    let failure = Builder::new()
        .seeds(3..4)
        .print_trace(true)
        .try_run(|sim| {
            sim.client("boom", async {
                roof::sleep(Duration::from_millis(250)).await;
                panic!("kaboom");
                #[allow(unreachable_code)]
                Ok::<(), String>(())
            });
        })
        .unwrap_err();
    match &failure.failure {
        Failure::Panic {
            name,
            time,
            message,
            ..
        } => {
            assert_eq!((name.as_str(), message.as_str()), ("boom", "kaboom"));
            assert_eq!(time.as_nanos(), 250_000_000);
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert!(
        failure.to_string().contains(
            "roof: seed 3 failed at 0.250000000s (task \"boom\" on host boom): panicked: kaboom"
        ),
        "{failure}"
    );
    let trace = failure.trace.expect("ROOF_TRACE-style trace");
    assert!(trace.contains("panic #1 \"kaboom\""), "{trace}");
}

#[test]
fn failing_seeds_are_recorded_and_run_first_next_time() {
    let dir = std::env::temp_dir().join(format!("roof-regressions-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let builder = || {
        Builder::new()
            .seeds(1..20)
            .name("recorded_probe")
            .regressions_dir(&dir)
    };
    assert_eq!(builder().try_run(flaky_sim).unwrap_err().seed, 5);
    assert_eq!(read_regressions(&dir, "recorded_probe"), [5]);
    // Next run: a failing seed outside the range is remembered and runs first.
    std::fs::write(dir.join("recorded_probe.seeds"), "15 # found by hand\n5\n").unwrap();
    assert_eq!(builder().try_run(flaky_sim).unwrap_err().seed, 15);
    assert_eq!(
        read_regressions(&dir, "recorded_probe"),
        [15, 5],
        "not recorded twice"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A planted nondeterminism: state that outlives a run (a process-wide counter), so the second
/// run of a seed sleeps longer than the first.
static RUNS: AtomicU64 = AtomicU64::new(0);

#[test]
fn the_determinism_self_check_names_the_first_divergent_event() {
    let failure = Builder::new()
        .seeds(0..1)
        .check_determinism(true)
        .try_run(|sim| {
            let run = RUNS.fetch_add(1, Ordering::Relaxed);
            sim.client("drifter", async move {
                roof::sleep(Duration::from_millis(10)).await;
                roof::sleep(Duration::from_millis(1 + run % 2)).await;
                Ok::<(), String>(())
            });
        })
        .unwrap_err();
    match &failure.failure {
        Failure::Nondeterminism { first, second, .. } => {
            let (first, second) = (first.as_deref().unwrap(), second.as_deref().unwrap());
            assert!(
                first.starts_with("0.010000000s timer-set t2 at 0.011000000s"),
                "{first}"
            );
            assert!(
                second.starts_with("0.010000000s timer-set t2 at 0.012000000s"),
                "{second}"
            );
        }
        other => panic!("expected nondeterminism, got {other:?}"),
    }
    assert!(
        failure
            .to_string()
            .contains("the two runs diverge at event"),
        "{failure}"
    );
    // A deterministic system passes the same check.
    Builder::new()
        .seeds(0..20)
        .check_determinism(true)
        .try_run(yell_echo_sim)
        .unwrap();
}

#[test]
fn check_runs_from_the_environment() {
    // With no ROOF_* variables set (as in CI), this runs the default seeds.
    if std::env::vars().any(|(name, _)| name.starts_with("ROOF_")) {
        return;
    }
    roof::check(yell_echo_sim);
}

/// The failure reported is the earliest in virtual time, whichever client was added first
/// (a later timeout of the first client used to mask the second's earlier assertion), and
/// each client's error is an event in the trace.
#[test]
fn the_earliest_failure_is_reported_whatever_the_order_of_the_clients() {
    let failure = Builder::new()
        .seeds(0..1)
        .print_trace(true)
        .try_run(|sim| {
            sim.client("slow", async {
                roof::sleep(Duration::from_secs(10)).await;
                Err::<(), _>("timed out waiting for the leader")
            });
            sim.client("fast", async {
                roof::sleep(Duration::from_secs(2)).await;
                Err::<(), _>("read a stale value")
            });
        })
        .unwrap_err();
    match &failure.failure {
        Failure::Error { message, time } => {
            assert_eq!(message, "client \"fast\" failed: read a stale value");
            assert_eq!(time.as_nanos(), 2_000_000_000);
        }
        other => panic!("expected the fast client's error, got {other:?}"),
    }
    assert!(
        failure.to_string().contains(
            "seed 0 failed at 2.000000000s (task \"fast\" on host fast): read a stale value"
        ),
        "{failure}"
    );
    let trace = failure.trace.unwrap();
    assert!(
        trace.contains("client-error #2 \"fast\" \"read a stale value\""),
        "{trace}"
    );
    assert!(
        !trace.contains("\"slow\" \"timed out"),
        "the run ended at the first failure"
    );
}

/// A task's panic earlier than a client's error is the failure reported, and the other way
/// round.
#[test]
fn a_panic_and_a_client_error_compete_on_time() {
    let run = |panic_at: u64, error_at: u64| {
        Builder::new()
            .seeds(0..1)
            .try_run(move |sim| {
                sim.host("server", move || async move {
                    roof::sleep(Duration::from_millis(panic_at)).await;
                    panic!("server bug");
                });
                sim.client("nc", async move {
                    roof::sleep(Duration::from_millis(error_at)).await;
                    Err::<(), _>("wrong answer")
                });
            })
            .unwrap_err()
            .failure
    };
    assert_eq!(run(10, 20).kind(), "panic");
    assert!(
        matches!(run(20, 10), Failure::Error { message, .. } if message.contains("wrong answer"))
    );
}

/// An explicit ROOF_SEED always wins over the seeds a test's builder sets, so the printed
/// replay line replays.
#[test]
fn an_explicit_roof_seed_wins_over_the_builders_seeds() {
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    for narrow in [true, false] {
        seen.borrow_mut().clear();
        let builder = Builder::from_vars(vars(&[("ROOF_SEED", "7")])).unwrap();
        let builder = if narrow {
            builder.seeds(0..3)
        } else {
            builder.seed(2)
        };
        let log = seen.clone();
        let ran = builder
            .try_run(move |sim| log.borrow_mut().push(sim.seed()))
            .unwrap();
        assert_eq!(ran, 1);
        assert_eq!(*seen.borrow(), [7]);
    }
    // Without ROOF_SEED, the builder's own seeds run.
    let log = seen.clone();
    seen.borrow_mut().clear();
    Builder::from_vars(vars(&[]))
        .unwrap()
        .seeds(4..6)
        .try_run(move |sim| log.borrow_mut().push(sim.seed()))
        .unwrap();
    assert_eq!(*seen.borrow(), [4, 5]);
}

#[test]
fn roof_timeline_writes_pages_of_the_failing_seed_and_its_shrunk_run() {
    let dir = std::env::temp_dir().join(format!("roof-harness-timeline-{}", std::process::id()));
    let value: &'static str = Box::leak(dir.display().to_string().into_boxed_str());
    let pairs: &'static [(&'static str, &'static str)] =
        Box::leak(vec![("ROOF_TIMELINE", value), ("ROOF_SEEDS", "1..20")].into_boxed_slice());
    let failure = Builder::from_vars(vars(pairs))
        .unwrap()
        .name("harness::timeline_pages")
        .try_run(flaky_sim)
        .unwrap_err();
    assert_eq!(failure.seed, 5);
    let names: Vec<String> = failure
        .timelines
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "harness__timeline_pages-seed-5.html",
            "harness__timeline_pages-seed-5-shrunk.html",
            "harness__timeline_pages-seed-5-diff.html"
        ]
    );
    let page = std::fs::read_to_string(&failure.timelines[0]).unwrap();
    assert!(page.contains("unlucky seed 5") && page.contains("\"failure\":["));
    let report = failure.to_string();
    for path in &failure.timelines {
        assert!(
            report.contains(&format!("roof: timeline: {}", path.display())),
            "{report}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

static DRIFTS: AtomicU64 = AtomicU64::new(0);

#[test]
fn a_determinism_failure_draws_two_runs_of_the_seed_side_by_side() {
    let dir = std::env::temp_dir().join(format!("roof-harness-determinism-{}", std::process::id()));
    let failure = Builder::new()
        .seeds(0..1)
        .check_determinism(true)
        .name("drifter")
        .timeline(&dir)
        .try_run(|sim| {
            let run = DRIFTS.fetch_add(1, Ordering::Relaxed);
            sim.client("drifter", async move {
                roof::sleep(Duration::from_millis(1 + run % 2)).await;
                Ok::<(), String>(())
            });
        })
        .unwrap_err();
    assert!(matches!(failure.failure, Failure::Nondeterminism { .. }));
    let names: Vec<String> = failure
        .timelines
        .iter()
        .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["drifter-seed-0.html", "drifter-seed-0-determinism.html"]
    );
    let page = std::fs::read_to_string(&failure.timelines[1]).unwrap();
    assert!(
        page.contains("first divergence at event"),
        "the reruns drift too"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
