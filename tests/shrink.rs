//! Replaying recorded choices, and shrinking a failing run toward FIFO.

use roof::shrink::{deviations, minimize, Token};
use roof::{Choices, Config};

use crate::sim;

fn fails_with(scenario: &sim::Scenario, seed: u64, choices: &[u32]) -> bool {
    let config = Config::new(seed)
        .echo(false)
        .choices(Choices(choices.to_vec()));
    !sim::run(scenario, config).passed()
}

#[test]
fn recorded_choices_of_a_failing_seed_replay_it_exactly() {
    let scenario = sim::find("config-race").unwrap();
    let seed = (0..100)
        .find(|&seed| !sim::run(scenario, crate::quiet(seed)).passed())
        .unwrap();
    let original = sim::run(scenario, crate::quiet(seed).record_choices(true));
    let choices = original.choices.clone().unwrap();
    // Replayed under another seed's scheduler stream: the choices alone decide the schedule.
    let replayed = sim::run(scenario, crate::quiet(seed).choices(Choices(choices)));
    assert_eq!(replayed.trace_hash, original.trace_hash);
    assert_eq!(replayed.outcome, original.outcome);
}

#[test]
fn the_ordering_bug_is_found_and_shrunk_to_a_handful_of_deviations() {
    let scenario = sim::find("config-race").unwrap();
    assert!(
        sim::run(scenario, crate::quiet(0).policy(roof::Policy::Fifo)).passed(),
        "FIFO hides the bug"
    );
    let failing: Vec<u64> = (0..50)
        .filter(|&seed| !sim::run(scenario, crate::quiet(seed)).passed())
        .collect();
    assert!(!failing.is_empty());
    for &seed in failing.iter().take(10) {
        let original = sim::run(scenario, crate::quiet(seed).record_choices(true))
            .choices
            .unwrap();
        let shrunk = minimize(
            &original,
            |candidate| fails_with(scenario, seed, candidate),
            5_000,
        );
        assert!(
            fails_with(scenario, seed, &shrunk),
            "seed {seed}: the shrunk sequence still fails"
        );
        assert!(
            shrunk.len() * 10 <= original.len(),
            "seed {seed}: {} of {} choices left",
            shrunk.len(),
            original.len()
        );
        assert!(deviations(&shrunk) <= 3, "seed {seed}: {shrunk:?}");
        // The token replays it.
        let decoded = Token::decode(&Token::encode(&shrunk)).unwrap();
        assert!(fails_with(scenario, seed, &decoded));
    }
}

#[test]
fn a_network_bug_found_by_a_sweep_also_shrinks() {
    // kv-store's bug comes from segmentation (the network stream), not the schedule: the
    // shrink keeps the seed and removes every scheduling deviation it can.
    let scenario = sim::find("kv-store").unwrap();
    let seed = (0..200)
        .find(|&seed| !sim::run(scenario, crate::quiet(seed)).passed())
        .unwrap();
    let original = sim::run(scenario, crate::quiet(seed).record_choices(true))
        .choices
        .unwrap();
    let shrunk = minimize(
        &original,
        |candidate| fails_with(scenario, seed, candidate),
        5_000,
    );
    assert!(fails_with(scenario, seed, &shrunk));
    assert!(shrunk.len() <= original.len());
}
