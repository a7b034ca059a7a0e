//! `roof shrink`: a failing seed's scheduler choices, shrunk toward FIFO.

use roof::shrink::{deviations, minimize, Token};
use roof::{Choices, Config};

use super::out;
use crate::sim::{self, Scenario};

pub(crate) fn shrink(scenario: &Scenario, seed: u64, budget: usize) -> i32 {
    let original = sim::run(scenario, Config::new(seed).echo(false).record_choices(true));
    let Err(failure) = &original.outcome else {
        out::error_line(format_args!(
            "error: seed {seed} of {} passes: there is no failure to shrink",
            scenario.name
        ));
        return 1;
    };
    let kind = failure.kind();
    let choices = original.choices.clone().unwrap_or_default();
    let fails = |candidate: &[u32]| {
        let config = Config::new(seed)
            .echo(false)
            .choices(Choices(candidate.to_vec()));
        // The same kind of failure: a shrink must not wander off to a different bug.
        sim::run(scenario, config)
            .outcome
            .is_err_and(|failure| failure.kind() == kind)
    };
    let shrunk = minimize(&choices, fails, budget);
    let token = Token::encode(&shrunk);
    let replayed = sim::run(
        scenario,
        Config::new(seed)
            .echo(false)
            .choices(Choices(shrunk.clone())),
    );
    out::line(format_args!("failure: {failure}"));
    out::line(format_args!(
        "original: {} choices, {} deviations from FIFO",
        choices.len(),
        deviations(&choices)
    ));
    out::line(format_args!(
        "shrunk: {} choices, {} deviations from FIFO",
        shrunk.len(),
        deviations(&shrunk)
    ));
    if let Err(failure) = &replayed.outcome {
        out::line(format_args!("shrunk failure: {failure}"));
    }
    out::line(format_args!("token: {token}"));
    out::line(format_args!(
        "replay: roof run {} --seed {seed} --choices {token}",
        scenario.name
    ));
    0
}
