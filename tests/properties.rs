//! Properties checked with proptest over generated seeds, choice sequences and fault plans.
//! Failing cases are persisted in `proptest-regressions/properties.txt` (committed).

use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use roof::harness::Builder;
use roof::strategies::{choices, fault_plans, seeds};
use roof::Config;

use crate::sim;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/properties.txt",
        ))),
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(64))]

    /// Any seed and any choice sequence replays to the same trace: determinism does not
    /// depend on where the choices came from.
    #[test]
    fn every_choice_sequence_replays(seed in seeds(), choices in choices(128)) {
        for scenario in ["gather", "config-race", "echo-ping-pong"] {
            let scenario = sim::find(scenario).unwrap();
            let run = || sim::run(scenario, Config::new(seed).echo(false).choices(choices.clone()));
            let (first, second) = (run(), run());
            prop_assert_eq!(first.trace_hash, second.trace_hash);
            prop_assert_eq!(first.outcome, second.outcome);
        }
    }

    /// FIFO never exposes the ordering bug, whatever the seed.
    #[test]
    fn fifo_hides_the_ordering_bug(seed in seeds()) {
        let scenario = sim::find("config-race").unwrap();
        prop_assert!(sim::run(scenario, Config::new(seed).echo(false).policy(roof::Policy::Fifo)).passed());
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// Whatever faults hit it, the resilient echo system finishes once they stop.
    #[test]
    fn the_resilient_system_survives_any_fault_plan(
        plan in fault_plans(["server", "c1"].map(String::from).to_vec(), Duration::from_millis(30), 6),
        seed in 0u64..1_000,
    ) {
        let result = Builder::new()
            .seed(seed)
            .fault_plan(plan.clone())
            .liveness(Duration::from_secs(5))
            .try_run(|sim| {
                sim.host("server", || sim::yell_echo::serve(sim::yell_echo::PORT));
                sim.client("c1", crate::faults::resilient_client(4));
            });
        prop_assert!(result.is_ok(), "plan {} failed: {:?}", plan, result.err().map(|failure| failure.to_string()));
    }
}
