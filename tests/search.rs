//! A user's own test gets what the command line has: `ROOF_POLICY`, shrinking on failure with
//! a minimal replay line, proven-minimal shrinking checked against brute force, exhaustive
//! exploration within a bound, sweeps, and version-stamped replays.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use roof::explore::Replayed;
use roof::harness::{Builder, Sim};
use roof::shrink::{deviations, shrink};
use roof::sync::Lock;
use roof::{Choices, Config, EventLoop, Policy};

fn vars(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |name| {
        pairs
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    }
}

/// The environment a printed replay line sets: its `ROOF_*=value` words.
fn replay_vars(line: &str) -> Vec<(&'static str, String)> {
    const KNOWN: [&str; 6] = [
        "ROOF_SEED",
        "ROOF_POLICY",
        "ROOF_CHOICES",
        "ROOF_FAULTS",
        "ROOF_BUILD",
        "ROOF_SHRINK",
    ];
    line.split_whitespace()
        .filter_map(|word| {
            let (key, value) = word.split_once('=')?;
            let key = KNOWN.into_iter().find(|known| *known == key)?;
            Some((key, value.to_string()))
        })
        .collect()
}

/// A planted check-then-act race: `tellers` each check the balance under the lock, then
/// debit it under a second hold. FIFO runs each teller to its end (an uncontended lock does
/// not yield); a preemption at a second acquire lets another teller check first, and the
/// account is overdrawn.
async fn overdraw(tellers: u32) -> Result<(), String> {
    let lock = Rc::new(Lock::new());
    let balance = Rc::new(Cell::new(100i64));
    let tasks: Vec<_> = (0..tellers)
        .map(|_| {
            let (lock, balance) = (lock.clone(), balance.clone());
            roof::spawn(async move {
                let enough = {
                    let _held = lock.acquire().await;
                    balance.get() >= 80
                };
                let _held = lock.acquire().await;
                if enough {
                    balance.set(balance.get() - 80);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.map_err(|error| error.to_string())?;
    }
    if balance.get() < 0 {
        return Err(format!("overdrawn: balance {}", balance.get()));
    }
    Ok(())
}

fn bank_sim(sim: &Sim) {
    sim.client("teller", overdraw(2));
}

/// The first seed in 0..200 that fails under `builder`.
fn failing_seed(builder: &Builder) -> u64 {
    (0..200)
        .find(|&seed| {
            builder
                .clone()
                .seed(seed)
                .shrink(false)
                .quiet(true)
                .try_run(bank_sim)
                .is_err()
        })
        .expect("the race shows within 200 seeds")
}

#[test]
fn roof_policy_picks_the_policy_wins_over_the_builder_and_names_itself_in_the_replay() {
    for (text, policy) in [
        ("random", Policy::Random),
        ("fifo", Policy::Fifo),
        ("pct:3", Policy::pct(3)),
        ("exhaustive:2", Policy::exhaustive(2)),
    ] {
        assert_eq!(Policy::parse(text), Ok(policy));
        assert_eq!(policy.to_string(), text);
    }
    for bad in [
        "chaos",
        "pct",
        "pct:0",
        "pct:x",
        "exhaustive:9",
        "exhaustive:-1",
        "",
    ] {
        let error = Builder::from_vars(vars(vec![("ROOF_POLICY", bad.into())])).unwrap_err();
        assert_eq!(error.variable, "ROOF_POLICY", "{bad:?}");
        assert!(error.to_string().contains("exhaustive:P"), "{error}");
    }
    // FIFO from the environment wins over the builder's Random: the race never shows.
    let fifo = Builder::from_vars(vars(vec![("ROOF_POLICY", "fifo".into())]))
        .unwrap()
        .policy(Policy::Random)
        .seeds(0..50);
    assert_eq!(fifo.try_run(bank_sim).unwrap(), 50);
    // Under Random it does, and the replay line names the policy the environment chose.
    let random = Builder::from_vars(vars(vec![("ROOF_POLICY", "random".into())]))
        .unwrap()
        .name("policy_probe")
        .shrink(false);
    let seed = failing_seed(&random);
    let failure = random.seed(seed).try_run(bank_sim).unwrap_err();
    assert!(
        failure.replay.contains("ROOF_POLICY=random"),
        "{}",
        failure.replay
    );
    for bad in [
        ("ROOF_SHRINK_BUDGET", "0"),
        ("ROOF_SCHEDULES_MAX", "lots"),
        ("ROOF_CHOICES", "1,x"),
    ] {
        let error = Builder::from_vars(vars(vec![(bad.0, bad.1.into())])).unwrap_err();
        assert_eq!(error.variable, bad.0);
    }
}

#[test]
fn a_failing_seed_is_shrunk_to_one_proven_deviation_and_its_replay_line_reproduces_it() {
    let builder = Builder::new().name("overdraw_probe");
    let seed = failing_seed(&builder);
    let failure = builder.clone().seed(seed).try_run(bank_sim).unwrap_err();
    let shrunk = failure.shrunk.clone().expect("shrinking is on by default");
    assert_eq!(
        shrunk.deviations, 1,
        "one preemption exposes the race: {failure}"
    );
    assert!(
        shrunk.proven,
        "FIFO, the only schedule with fewer, passes: {failure}"
    );
    let (original_choices, original_deviations) = shrunk.original.unwrap();
    assert!(original_choices >= shrunk.choices.len() && original_deviations >= 1);
    let text = failure.to_string();
    assert!(text.contains("deviation"), "{text}");
    assert!(text.contains("proven minimal"), "{text}");
    let headline = shrunk.headline.clone().unwrap();
    assert!(headline.contains("overdrawn"), "{headline}");
    // The printed line, run as printed: the same failure, exactly.
    let line = text
        .lines()
        .find(|line| line.starts_with("replay (shrunk):"))
        .unwrap();
    let replayed = Builder::from_vars(vars(replay_vars(line)))
        .unwrap()
        .try_run(bank_sim)
        .unwrap_err();
    assert_eq!(replayed.failure.headline(), headline);
    assert!(
        replayed.shrunk.is_none(),
        "a replay of given choices is not shrunk again"
    );
    // The original line reproduces the original failure.
    let line = text
        .lines()
        .find(|line| line.starts_with("replay:"))
        .unwrap();
    let again = Builder::from_vars(vars(replay_vars(line)))
        .unwrap()
        .shrink(false)
        .try_run(bank_sim)
        .unwrap_err();
    assert_eq!(again.failure, failure.failure);
    // ROOF_SHRINK=0 turns it off; shrinking the same seed twice gives the same token.
    let off = Builder::from_vars(vars(vec![("ROOF_SHRINK", "0".into())]))
        .unwrap()
        .seed(seed)
        .try_run(bank_sim)
        .unwrap_err();
    assert!(off.shrunk.is_none());
    let twice = builder.seed(seed).try_run(bank_sim).unwrap_err();
    assert_eq!(twice.shrunk.unwrap().token, shrunk.token);
}

/// One run of the three-teller race on `seed` with `prefix` replayed.
fn replay_bank(seed: u64, prefix: &[u32]) -> Replayed {
    let config = Config::new(seed)
        .echo(false)
        .choices(Choices(prefix.to_vec()))
        .record_choices(true);
    let event_loop = EventLoop::with_config(config);
    let outcome = event_loop.run_until_complete(overdraw(3));
    let report = event_loop.report();
    Replayed {
        failed: !matches!(outcome, Ok(Ok(()))),
        choices: report.choices.unwrap_or_default(),
        arities: report.arities.unwrap_or_default(),
    }
}

/// Brute force, independent of `roof::explore`: replay every choice sequence with at most
/// `bound` deviations (depth first, each value at each choice point) and return the fewest
/// deviations of a failing one.
fn fewest_failing_deviations(seed: u64, bound: usize) -> Option<usize> {
    fn walk(seed: u64, prefix: Vec<u32>, bound: usize, best: &mut Option<usize>, runs: &mut usize) {
        *runs += 1;
        assert!(*runs < 200_000, "the brute force stays small");
        let replayed = replay_bank(seed, &prefix);
        let used = deviations(&prefix);
        if replayed.failed {
            *best = Some(best.map_or(used, |best| best.min(used)));
            return;
        }
        if used == bound {
            return;
        }
        for at in prefix.len()..replayed.choices.len() {
            for value in 1..replayed.arities[at] {
                let mut child = replayed.choices[..at].to_vec();
                child.push(value);
                walk(seed, child, bound, best, runs);
            }
        }
    }
    let mut best = None;
    walk(seed, Vec::new(), bound, &mut best, &mut 0);
    best
}

#[test]
fn the_shrinker_reaches_the_fewest_deviations_brute_force_finds() {
    let mut checked = 0;
    for seed in 0..60 {
        let original = replay_bank_recorded(seed);
        let Some(original) = original else { continue };
        let shrunk = shrink(&original, |prefix| replay_bank(seed, prefix), 5_000);
        assert!(
            replay_bank(seed, &shrunk.choices).failed,
            "seed {seed}: shrinking kept the failure"
        );
        let fewest = fewest_failing_deviations(seed, shrunk.deviations).expect("it fails");
        assert_eq!(shrunk.deviations, fewest, "seed {seed}: {shrunk:?}");
        assert!(shrunk.proven, "seed {seed}");
        // Determinism of shrinking itself.
        let again = shrink(&original, |prefix| replay_bank(seed, prefix), 5_000);
        assert_eq!(again, shrunk);
        checked += 1;
        if checked == 6 {
            break;
        }
    }
    assert_eq!(checked, 6, "six failing seeds checked");
}

/// The choices of seed's Random run, if it fails.
fn replay_bank_recorded(seed: u64) -> Option<Vec<u32>> {
    let event_loop = EventLoop::with_config(Config::new(seed).echo(false).record_choices(true));
    let outcome = event_loop.run_until_complete(overdraw(3));
    (!matches!(outcome, Ok(Ok(())))).then(|| event_loop.report().choices.unwrap())
}

#[test]
fn the_shrinker_also_moves_and_removes_deviations_where_lowering_is_not_enough() {
    // Fails only when choice point 3 deviates; the original deviates at 1 and 2 (with value
    // 1, nothing to lower). Zeroing each alone passes here, so a shrinker that only lowers
    // stops at two deviations; moving one to point 3 and removing the other finds one.
    let replay = |prefix: &[u32]| {
        let mut choices = prefix.to_vec();
        choices.resize(5, 0);
        let failed = choices[3] != 0 || (choices[1] != 0 && choices[2] != 0);
        Replayed {
            failed,
            choices,
            arities: vec![2; 5],
        }
    };
    let shrunk = shrink(&[0, 1, 1], replay, 1_000);
    assert_eq!((shrunk.deviations, shrunk.proven), (1, true), "{shrunk:?}");
    assert_eq!(shrunk.choices, [0, 0, 0, 1]);
}

#[test]
fn exhaustive_exploration_runs_every_schedule_within_the_bound_and_says_so() {
    // The race needs one preemption: within 0 there is none to find.
    let none = Builder::new()
        .seeds(0..1)
        .policy(Policy::exhaustive(0))
        .try_run(bank_sim)
        .unwrap();
    assert_eq!(none, 1, "one schedule: FIFO");
    let failure = Builder::new()
        .seeds(0..1)
        .name("exhaustive_probe")
        .policy(Policy::exhaustive(1))
        .try_run(bank_sim)
        .unwrap_err();
    let shrunk = failure.shrunk.clone().unwrap();
    assert_eq!(
        (shrunk.deviations, shrunk.proven, shrunk.original),
        (1, true, None)
    );
    assert!(
        failure
            .to_string()
            .contains("found by exhaustive exploration"),
        "{failure}"
    );
    assert!(
        failure.replay.contains("ROOF_CHOICES="),
        "{}",
        failure.replay
    );
    // A system without the bug passes all of them; the count is every schedule within 2.
    let fixed = |sim: &Sim| {
        sim.client("teller", async {
            let lock = Rc::new(Lock::new());
            let tasks: Vec<_> = (0..2)
                .map(|_| {
                    let lock = lock.clone();
                    roof::spawn(async move { drop(lock.acquire().await) })
                })
                .collect();
            for task in tasks {
                task.await.map_err(|error| error.to_string())?;
            }
            Ok::<(), String>(())
        });
    };
    let within_1 = Builder::new()
        .seeds(0..1)
        .policy(Policy::exhaustive(1))
        .try_run(fixed)
        .unwrap();
    let within_2 = Builder::new()
        .seeds(0..1)
        .policy(Policy::exhaustive(2))
        .try_run(fixed)
        .unwrap();
    assert!(1 < within_1 && within_1 < within_2, "{within_1} {within_2}");
    // The cap stops it, and is said (not failed).
    let capped = Builder::new()
        .seeds(0..1)
        .policy(Policy::exhaustive(2))
        .schedules_max(3)
        .try_run(fixed)
        .unwrap();
    assert_eq!(capped, 3);
    // From the environment too.
    let from_env = Builder::from_vars(vars(vec![("ROOF_POLICY", "exhaustive:1".into())]))
        .unwrap()
        .seeds(0..1)
        .try_run(fixed)
        .unwrap();
    assert_eq!(from_env, within_1);
}

#[test]
fn a_sweep_runs_every_seed_and_lists_the_failing_ones() {
    let dir = std::env::temp_dir().join(format!("roof-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sweep = Builder::new()
        .seeds(0..40)
        .name("sweep_probe")
        .regressions_dir(&dir)
        .quiet(true)
        .sweep(bank_sim);
    assert_eq!(sweep.seeds_run, 40);
    assert!(!sweep.passed());
    let mut expected = BTreeMap::new();
    for seed in 0..40 {
        let failed = Builder::new()
            .seed(seed)
            .shrink(false)
            .try_run(bank_sim)
            .is_err();
        expected.insert(seed, failed);
    }
    let failing: Vec<u64> = sweep.failures.iter().map(|failure| failure.seed).collect();
    let wanted: Vec<u64> = expected
        .iter()
        .filter(|(_, failed)| **failed)
        .map(|(seed, _)| *seed)
        .collect();
    assert_eq!(failing, wanted);
    assert!(sweep
        .failures
        .iter()
        .all(|failure| failure.headline.contains("overdrawn")));
    assert!(sweep
        .to_string()
        .starts_with(&format!("40 seeds, {} failed: ", wanted.len())));
    // Each is recorded, with the build stamp that found it.
    let recorded = std::fs::read_to_string(dir.join("sweep_probe.seeds")).unwrap();
    let stamp = Builder::new().stamp();
    assert_eq!(recorded.lines().count(), wanted.len());
    assert!(
        recorded
            .lines()
            .all(|line| line.ends_with(&format!("# roof {stamp}"))),
        "{recorded}"
    );
    assert_eq!(roof::harness::read_regressions(&dir, "sweep_probe"), wanted);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_replay_carries_the_build_stamp_of_the_settings_that_shape_the_run() {
    let base = Builder::new();
    let stamp = base.stamp();
    assert!(stamp.starts_with(&format!("{}+", env!("CARGO_PKG_VERSION"))));
    for other in [
        Builder::new().policy(Policy::Fifo),
        Builder::new().time_max(std::time::Duration::from_secs(5)),
        Builder::new().steps_max(77),
        Builder::new().faults(std::time::Duration::from_secs(3)),
        Builder::new().liveness(std::time::Duration::from_secs(3)),
    ] {
        assert_ne!(other.stamp(), stamp, "{other:?}");
    }
    assert_eq!(Builder::new().seeds(3..9).shrink(false).stamp(), stamp);
    let failure = Builder::new()
        .name("stamp_probe")
        .seeds(0..200)
        .shrink(false)
        .quiet(true)
        .try_run(bank_sim)
        .unwrap_err();
    assert!(
        failure.replay.contains(&format!("ROOF_BUILD={stamp}")),
        "{}",
        failure.replay
    );
    assert!(failure.settings.contains(&stamp), "{}", failure.settings);
    // Replayed as printed: no warning. Under other settings, or another build: a warning.
    let replay = Builder::from_vars(vars(replay_vars(&failure.replay))).unwrap();
    assert_eq!(replay.build_warning(), None);
    let other = Builder::from_vars(vars(replay_vars(&failure.replay)))
        .unwrap()
        .steps_max(1_000);
    assert!(other.build_warning().unwrap().contains("may not reproduce"));
    let older = Builder::from_vars(vars(vec![("ROOF_BUILD", "0.0.1+00000000".into())])).unwrap();
    assert!(older
        .build_warning()
        .unwrap()
        .contains("ROOF_BUILD=0.0.1+00000000"));
}

/// A depth-2 ordering bug: `b` must run all its steps inside one window of `a`'s, after `a`'s
/// eighth step and before its ninth. No fixed priority order makes it: PCT needs one change
/// point, at the right step. Random needs eighteen coin flips to go its way.
fn window_sim(sim: &Sim) {
    sim.client("window", async {
        let log = Rc::new(std::cell::RefCell::new(String::new()));
        let step = |name: char| {
            let log = log.clone();
            roof::spawn(async move {
                for _ in 0..10 {
                    log.borrow_mut().push(name);
                    roof::yield_now().await;
                }
            })
        };
        let (a, b) = (step('a'), step('b'));
        a.await.map_err(|error| error.to_string())?;
        b.await.map_err(|error| error.to_string())?;
        if log.borrow().starts_with("aaaaaaaabbbbbbbbbb") {
            return Err("b ran inside a's window".to_string());
        }
        Ok(())
    });
}

/// How many seeds `policy` runs before the first failure of `window_sim` (at most `limit`).
fn seeds_to_find(policy: Policy, limit: u64) -> u64 {
    (0..limit)
        .find(|&seed| {
            Builder::new()
                .seed(seed)
                .policy(policy)
                .shrink(false)
                .try_run(window_sim)
                .is_err()
        })
        .map_or(limit, |seed| seed + 1)
}

#[test]
fn pct_with_an_adaptive_horizon_finds_a_depth_two_bug_in_fewer_seeds_than_random() {
    let pct = seeds_to_find(Policy::pct(2), 2_000);
    let random = seeds_to_find(Policy::Random, 2_000);
    let fixed = seeds_to_find(
        Policy::Pct {
            depth: 2,
            horizon: 100_000,
        },
        2_000,
    );
    eprintln!("seeds to the first failure: pct:2 {pct}, random {random}, pct:2@100000 {fixed}");
    assert!(pct < 2_000, "adaptive PCT finds it");
    assert!(pct < random, "pct:2 {pct} vs random {random}");
    assert!(
        pct < fixed,
        "a horizon far past the run's length wastes the change point: {fixed}"
    );
}

/// A counter server that keeps its count in memory: a crash and restart resets it, and the
/// client sees the count go back. Partitions, clogs, latency and loss only slow it down (the
/// client retries).
fn counter_sim(sim: &Sim) {
    use roof::io::{AsyncReadExt, AsyncWriteExt};
    use roof::net::{TcpListener, TcpStream};
    use std::time::Duration;
    sim.host("counter", || async {
        let count = Rc::new(Cell::new(0u64));
        let listener = TcpListener::bind("0.0.0.0:7").await.unwrap();
        while let Ok((mut stream, _)) = listener.accept().await {
            let count = count.clone();
            roof::spawn(async move {
                let mut byte = [0u8; 1];
                if stream.read_exact(&mut byte).await.is_ok() {
                    count.set(count.get() + 1);
                    let _ = stream.write_all(&count.get().to_be_bytes()).await;
                }
            })
            .detach();
        }
    });
    sim.client("client", async {
        let mut last = 0;
        for _ in 0..30 {
            let exchange = async {
                let mut stream = TcpStream::connect("counter:7").await?;
                stream.write_all(&[1]).await?;
                let mut reply = [0u8; 8];
                stream.read_exact(&mut reply).await?;
                std::io::Result::Ok(u64::from_be_bytes(reply))
            };
            match roof::timeout(Duration::from_millis(300), exchange).await {
                Ok(Ok(count)) if count < last => {
                    return Err(format!("the count went back from {last} to {count}"));
                }
                Ok(Ok(count)) => last = count,
                _ => {}
            }
            roof::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    });
}

#[test]
fn a_failing_fault_plan_is_shrunk_to_the_faults_that_matter_and_replays() {
    use std::time::Duration;
    let window = Duration::from_secs(2);
    let builder = Builder::new().faults(window).name("counter_probe");
    let (seed, failure) = (0..300)
        .find_map(|seed| {
            let failure = builder
                .clone()
                .seed(seed)
                .shrink(false)
                .quiet(true)
                .try_run(counter_sim)
                .err()?;
            let (plan, _) = failure.faults.clone()?;
            (plan.matches(" at ").count() >= 3).then_some((seed, failure))
        })
        .expect("a seed with a crash among several faults fails");
    assert!(failure.shrunk.is_none());
    let failure = builder.clone().seed(seed).try_run(counter_sim).unwrap_err();
    let shrunk = failure.shrunk.clone().unwrap();
    let (kept, all) = shrunk.faults.clone().expect("faults were on");
    assert!(all >= 3, "{failure}");
    assert_eq!(kept.len(), 1, "one crash is all it takes: {failure}");
    assert!(kept[0].1.starts_with("Crash counter"), "{failure}");
    let text = failure.to_string();
    assert!(
        text.contains(&format!(
            "roof: faults that matter: 1 of {all}: #{} Crash counter",
            kept[0].0
        )),
        "{text}"
    );
    let line = text
        .lines()
        .find(|line| line.starts_with("replay (shrunk):"))
        .unwrap();
    assert!(
        line.contains(&format!("ROOF_FAULTS={}", kept[0].0)),
        "{line}"
    );
    let replayed = Builder::from_vars(vars(replay_vars(line)))
        .unwrap()
        .faults(window)
        .try_run(counter_sim)
        .unwrap_err();
    assert_eq!(Some(replayed.failure.headline()), shrunk.headline);
    let (plan, _) = replayed.faults.unwrap();
    assert_eq!(
        plan.matches(" at ").count(),
        1,
        "only the crash ran: {plan}"
    );
    let error = Builder::from_vars(vars(vec![("ROOF_FAULTS", "1,x".into())])).unwrap_err();
    assert_eq!(error.variable, "ROOF_FAULTS");
}

#[test]
fn a_sweep_under_exhaustive_explores_each_seed_and_replays_its_failing_schedule() {
    let sweep = Builder::new()
        .seeds(0..3)
        .name("exhaustive_sweep_probe")
        .policy(Policy::exhaustive(1))
        .quiet(true)
        .sweep(bank_sim);
    assert_eq!(sweep.seeds_run, 3);
    assert_eq!(
        sweep.failures.len(),
        3,
        "every seed has the one-preemption schedule"
    );
    let line = &sweep.failures[0].replay;
    assert!(line.contains("ROOF_CHOICES="), "{line}");
    let replayed = Builder::from_vars(vars(replay_vars(line)))
        .unwrap()
        .shrink(false)
        .try_run(bank_sim)
        .unwrap_err();
    assert_eq!(replayed.failure.headline(), sweep.failures[0].headline);
}
