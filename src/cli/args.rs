//! The command line's flags, each turned into a plain, validated value by a clap value parser
//! before anything runs; nothing downstream parses a string again. Every size taken from the
//! user has a named limit here, and a value past it is a usage error naming the flag and the
//! limit (exit status 2), never an allocation that aborts or a loop that hangs.

use std::ops::Range;
use std::time::Duration;

use clap::builder::{PossibleValuesParser, TypedValueParser};

use crate::sim::{self, Scenario};

/// The most threads `--jobs` may ask for.
pub(crate) const JOBS_MAX: usize = 1024;
/// The most candidate runs `roof shrink --budget` may ask for.
pub(crate) const BUDGET_MAX: usize = 10_000_000;
/// The most exchanges `roof client --count` may ask for.
pub(crate) const COUNT_MAX: u32 = 1_000_000;
/// The longest `roof client --message`, in bytes.
pub(crate) const MESSAGE_MAX: usize = 64 * 1024;
/// The longest `roof client --timeout`.
pub(crate) const TIMEOUT_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// `--seed`: a number, or `random` (drawn from the OS when the run starts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SeedArg {
    Number(u64),
    Random,
}

pub(crate) fn seed(text: &str) -> Result<SeedArg, String> {
    if text == "random" {
        return Ok(SeedArg::Random);
    }
    text.parse()
        .map(SeedArg::Number)
        .map_err(|_| format!("expected a whole number from 0 to {} or 'random'", u64::MAX))
}

/// `--seeds`: `A..B` (B excluded, A below B) or a count `N` (0..N, N at least 1), parsed as
/// `ROOF_SEEDS` is. A range is never materialised, so any size is fine.
pub(crate) fn seed_range(text: &str) -> Result<Range<u64>, String> {
    roof::__private::seed_range(text)
}

/// `--shard I/N`: the I-th (1-based) of N disjoint, interleaved slices of the seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shard {
    pub(crate) index: u64,
    pub(crate) count: u64,
}

impl Shard {
    /// The whole range, as one shard.
    pub(crate) const ALL: Shard = Shard { index: 1, count: 1 };
}

pub(crate) fn shard(text: &str) -> Result<Shard, String> {
    let invalid = || "expected I/N with 1 <= I <= N, like 2/4".to_string();
    let (index, count) = text.split_once('/').ok_or_else(invalid)?;
    let index: u64 = index.trim().parse().map_err(|_| invalid())?;
    let count: u64 = count.trim().parse().map_err(|_| invalid())?;
    if index == 0 || count == 0 || index > count {
        return Err(invalid());
    }
    Ok(Shard { index, count })
}

/// A whole number from 1 to `max`, for the flag whose value it is.
fn bounded<T>(text: &str, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + From<u8> + std::fmt::Display + Copy,
{
    text.trim()
        .parse::<T>()
        .ok()
        .filter(|value| *value >= T::from(1) && *value <= max)
        .ok_or_else(|| format!("expected a whole number from 1 to {max}"))
}

pub(crate) fn jobs(text: &str) -> Result<usize, String> {
    bounded(text, JOBS_MAX as u64).map(|jobs| jobs as usize)
}

pub(crate) fn pct_depth(text: &str) -> Result<u32, String> {
    bounded(text, roof::sched::PCT_DEPTH_MAX)
}

/// `--exhaustive P`: a preemption bound from 0 to [`roof::sched::EXHAUSTIVE_PREEMPTIONS_MAX`].
pub(crate) fn preemptions(text: &str) -> Result<u32, String> {
    let preemptions: u32 = text.trim().parse().map_err(|_| {
        format!(
            "expected a whole number from 0 to {}",
            roof::sched::EXHAUSTIVE_PREEMPTIONS_MAX
        )
    })?;
    if preemptions > roof::sched::EXHAUSTIVE_PREEMPTIONS_MAX {
        return Err(format!(
            "expected a whole number from 0 to {}",
            roof::sched::EXHAUSTIVE_PREEMPTIONS_MAX
        ));
    }
    Ok(preemptions)
}

pub(crate) fn budget(text: &str) -> Result<usize, String> {
    bounded(text, BUDGET_MAX as u64).map(|budget| budget as usize)
}

pub(crate) fn count(text: &str) -> Result<u32, String> {
    bounded(text, COUNT_MAX)
}

/// A decoded choice sequence (a newtype: clap would take a bare `Vec` for a repeated flag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ChoiceList(pub(crate) Vec<u32>);

/// `--choices`: a token from `roof shrink` (at most [`roof::shrink::CHOICES_MAX`] choices).
pub(crate) fn choices(text: &str) -> Result<ChoiceList, String> {
    roof::shrink::Token::decode(text)
        .map(ChoiceList)
        .map_err(|error| error.to_string())
}

pub(crate) fn message(text: &str) -> Result<String, String> {
    if text.is_empty() {
        return Err("say something: the message is empty".into());
    }
    if text.len() > MESSAGE_MAX {
        return Err(format!(
            "the message has {} bytes; at most {MESSAGE_MAX}",
            text.len()
        ));
    }
    Ok(text.to_string())
}

/// A duration such as `10s`, `500ms` or `1m 30s`, above zero and at most [`TIMEOUT_MAX`].
/// `--keep-faults I,J`: indices of a drawn fault plan (at most 10000, each below 10000).
pub(crate) fn fault_indices(text: &str) -> Result<FaultIndices, String> {
    let expected = || {
        "expected fault indices of the plan, comma-separated (each below 10000), or - for none"
            .to_string()
    };
    let text = text.trim();
    if text == "-" {
        return Ok(FaultIndices(Vec::new()));
    }
    let indices: Vec<usize> = text
        .split(',')
        .map(|part| part.trim().parse::<usize>().map_err(|_| expected()))
        .collect::<Result<_, _>>()?;
    if indices.len() > 10_000 || indices.iter().any(|&index| index >= 10_000) {
        return Err(expected());
    }
    Ok(FaultIndices(indices))
}

/// Decoded `--keep-faults` (a newtype: clap would take a bare `Vec` for a repeated flag).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FaultIndices(pub(crate) Vec<usize>);

pub(crate) fn timeout(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|error| format!("{error} (expected a duration such as 10s or 500ms)"))?;
    if duration.is_zero() || duration > TIMEOUT_MAX {
        return Err(format!(
            "expected a duration above zero and at most {}",
            humantime::format_duration(TIMEOUT_MAX)
        ));
    }
    Ok(duration)
}

/// A scenario of `sim/`, by name: clap lists the names and suggests the nearest on a typo.
pub(crate) fn scenario() -> impl TypedValueParser<Value = &'static Scenario> {
    PossibleValuesParser::new(sim::SCENARIOS.iter().map(|scenario| scenario.name))
        .map(|name| sim::find(&name).expect("clap only lets through the names of SCENARIOS"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_past_their_limits_are_refused() {
        assert!(jobs("1025").is_err() && jobs("0").is_err() && jobs("1024").is_ok());
        assert!(pct_depth("4294967295").is_err() && pct_depth("3").is_ok());
        assert!(budget("18446744073709551615").is_err());
        assert!(count("0").is_err() && count("1000001").is_err());
        assert!(message(&"x".repeat(MESSAGE_MAX + 1)).is_err() && message("").is_err());
        assert!(timeout("0s").is_err() && timeout("2days").is_err());
        assert_eq!(timeout("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(choices("18446744073709551615z").is_err() && choices("1,2").is_ok());
    }

    #[test]
    fn seed_ranges_and_shards() {
        assert_eq!(seed_range("5"), Ok(0..5));
        assert_eq!(seed_range("3..9"), Ok(3..9));
        assert_eq!(seed_range("18446744073709551615"), Ok(0..u64::MAX));
        assert!(seed_range("9..3").is_err() && seed_range("0").is_err());
        assert_eq!(shard("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert!(shard("5/4").is_err() && shard("0/4").is_err() && shard("1/0").is_err());
        assert_eq!(seed("random"), Ok(SeedArg::Random));
        assert!(seed("-1").is_err());
    }
}
