//! `roof run --timeline FILE --perfetto FILE` and `roof diff`: a run's picture, and two runs
//! side by side with their first divergence.

use std::path::{Path, PathBuf};
use std::time::Duration;

use roof::shrink::shrink as shrink_choices;
use roof::timeline::{diff_html, Timeline};
use roof::{Choices, Config, Policy, Report, TraceMode};

use super::{out, Usage};
use crate::sim::{self, Scenario};

/// Where `roof run` writes its pictures.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pictures {
    pub(crate) timeline: Option<PathBuf>,
    pub(crate) perfetto: Option<PathBuf>,
}

impl Pictures {
    pub(crate) fn wanted(&self) -> bool {
        self.timeline.is_some() || self.perfetto.is_some()
    }
}

fn write(path: &Path, text: &str, what: &str) -> Result<(), Usage> {
    std::fs::write(path, text).map_err(|error| {
        Usage(format!(
            "cannot write the {what} to {}: {error}",
            path.display()
        ))
    })
}

/// The timeline of a `roof` run of `scenario`, with its settings in the header.
pub(crate) fn timeline_of(
    scenario: &Scenario,
    report: &Report,
    settings: &[(&str, String)],
) -> Timeline {
    let timeline = Timeline::of_report(report)
        .expect("roof records the trace of a run it draws")
        .title(scenario.name);
    settings.iter().fold(timeline, |timeline, (key, value)| {
        timeline.setting(*key, value.clone())
    })
}

/// Write the pictures `pictures` asks for; the lines naming them.
pub(crate) fn write_pictures(
    scenario: &Scenario,
    report: &Report,
    settings: &[(&str, String)],
    pictures: &Pictures,
) -> Result<Vec<String>, Usage> {
    let timeline = timeline_of(scenario, report, settings);
    let mut lines = Vec::new();
    if let Some(path) = &pictures.timeline {
        write(path, &timeline.to_html(), "timeline")?;
        lines.push(format!("timeline: {}", path.display()));
    }
    if let Some(path) = &pictures.perfetto {
        write(path, &timeline.to_perfetto(), "Perfetto trace")?;
        lines.push(format!("perfetto: {}", path.display()));
    }
    Ok(lines)
}

/// What `roof diff` compares.
pub(crate) struct DiffPlan {
    pub(crate) scenario: &'static Scenario,
    pub(crate) seed: u64,
    pub(crate) policy: Policy,
    pub(crate) choices: Option<Vec<u32>>,
    pub(crate) faults: Option<Duration>,
    pub(crate) budget: usize,
    pub(crate) path: PathBuf,
}

/// `roof diff`: the seed's run beside a second one (the replay of `--choices`, else the
/// failing run's shrunk replay, else the same seed again), on one page.
pub(crate) fn diff(plan: &DiffPlan) -> Result<i32, Usage> {
    let scenario = plan.scenario;
    let faults = plan.faults.map(|window| sim::Faults { window, keep: None });
    let config = |choices: Option<Vec<u32>>| {
        let config = Config::new(plan.seed)
            .policy(plan.policy)
            .echo(false)
            .trace(TraceMode::Record)
            .record_choices(true);
        match choices {
            Some(choices) => config.choices(Choices(choices)),
            None => config,
        }
    };
    let first = sim::run_maybe_faulted(scenario, config(None), faults.as_ref());
    let (second_name, second) = match (&plan.choices, &first.outcome) {
        (Some(choices), _) => (
            "replay of --choices",
            sim::run_maybe_faulted(scenario, config(Some(choices.clone())), faults.as_ref()),
        ),
        (None, Err(failure)) => {
            let kind = failure.kind();
            let shrunk = shrink_choices(
                first.choices.as_deref().unwrap_or_default(),
                |prefix| {
                    super::shrink::replay(scenario, plan.seed, prefix, Some(kind), faults.as_ref())
                },
                plan.budget,
            );
            (
                "shrunk replay",
                sim::run_maybe_faulted(scenario, config(Some(shrunk.choices)), faults.as_ref()),
            )
        }
        (None, Ok(())) => (
            "the same seed again",
            sim::run_maybe_faulted(scenario, config(None), faults.as_ref()),
        ),
    };
    let mut settings = vec![("policy", plan.policy.to_string())];
    if let Some(window) = plan.faults {
        settings.push(("faults", humantime::format_duration(window).to_string()));
    }
    let left = timeline_of(scenario, &first, &settings)
        .title(format!("{} seed {}", scenario.name, plan.seed));
    let mut right_settings = settings.clone();
    if let Some(choices) = &second.choices {
        right_settings.push(("choices", roof::shrink::Token::encode(choices)));
    }
    let right = timeline_of(scenario, &second, &right_settings).title(format!(
        "{} seed {} ({second_name})",
        scenario.name, plan.seed
    ));
    write(&plan.path, &diff_html(&left, &right), "diff page")?;
    out::line(format_args!("first run: {first}"));
    out::line(format_args!("second run ({second_name}): {second}"));
    let (left_trace, right_trace) = (left.trace(), right.trace());
    match left_trace.first_divergence(right_trace) {
        Some(divergence) => out::line(divergence),
        None => out::line("the runs are identical: no divergence"),
    }
    out::line(format_args!("timeline: {}", plan.path.display()));
    // The same seed twice must agree: a divergence there is a determinism failure.
    let nondeterministic =
        second_name == "the same seed again" && first.trace_hash != second.trace_hash;
    Ok(i32::from(nondeterministic))
}
