//! The `ROOF_*` variables a test reads: their parsing, each error naming the variable.

use std::fmt;
use std::ops::Range;

/// A malformed `ROOF_*` variable.
///
/// ```
/// use roof::harness::Builder;
/// let env = |variable: &str| (variable == "ROOF_SEEDS").then(|| "ten".to_string());
/// let error = Builder::from_vars(env).unwrap_err();
/// assert_eq!((error.variable, error.value.as_str()), ("ROOF_SEEDS", "ten"));
/// assert!(error.to_string().starts_with("ROOF_SEEDS=\"ten\" is invalid"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvError {
    /// The variable.
    pub variable: &'static str,
    /// Its value.
    pub value: String,
    /// What was expected.
    pub expected: &'static str,
}

impl fmt::Display for EnvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} is invalid: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

impl std::error::Error for EnvError {}

/// Parse a seed range: a count `N` (0..N) or `A..B` (B excluded), non-empty: the one parser
/// of `ROOF_SEEDS` and of `roof sweep --seeds`. The error says what was wrong.
#[doc(hidden)]
pub fn seed_range(text: &str) -> Result<Range<u64>, String> {
    let number = |part: &str| {
        part.trim().parse::<u64>().map_err(|_| {
            format!(
                "expected a range A..B or a count N of whole numbers up to {}",
                u64::MAX
            )
        })
    };
    let range = match text.split_once("..") {
        Some((start, end)) => number(start)?..number(end)?,
        None => 0..number(text)?,
    };
    if range.start >= range.end {
        return Err("the range is empty (A must be below B, N at least 1)".into());
    }
    Ok(range)
}

pub(super) fn flag(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<bool, EnvError> {
    match get(variable) {
        None => Ok(false),
        Some(value) => match value.as_str() {
            "" | "0" | "false" => Ok(false),
            "1" | "true" => Ok(true),
            _ => Err(EnvError {
                variable,
                value,
                expected: "1 or 0",
            }),
        },
    }
}

/// `variable` as a whole number from `min` to `max`, if set.
pub(super) fn number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    min: usize,
    max: usize,
    expected: &'static str,
) -> Result<Option<usize>, EnvError> {
    let Some(value) = get(variable) else {
        return Ok(None);
    };
    match value.trim().parse::<usize>() {
        Ok(number) if (min..=max).contains(&number) => Ok(Some(number)),
        _ => Err(EnvError {
            variable,
            value,
            expected,
        }),
    }
}

/// `ROOF_POLICY`, if set.
pub(super) fn policy(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<crate::Policy>, EnvError> {
    let Some(value) = get("ROOF_POLICY") else {
        return Ok(None);
    };
    crate::Policy::parse(&value)
        .map(Some)
        .map_err(|_| EnvError {
            variable: "ROOF_POLICY",
            value,
            expected: "random, fifo, pct:D (D from 1 to 1000) or exhaustive:P (P from 0 to 8)",
        })
}

/// `ROOF_CHOICES`, if set: a choice token as the shrinker prints it.
pub(super) fn choices(get: &impl Fn(&str) -> Option<String>) -> Result<Option<Vec<u32>>, EnvError> {
    let Some(value) = get("ROOF_CHOICES") else {
        return Ok(None);
    };
    crate::shrink::Token::decode(&value)
        .map(Some)
        .map_err(|_| EnvError {
            variable: "ROOF_CHOICES",
            value,
            expected: "a choice token as a replay line prints it (comma-separated numbers, Nz for N zeros, - for none)",
        })
}

/// The most fault indices `ROOF_FAULTS` takes (a drawn plan holds a few dozen at most).
pub const FAULT_INDICES_MAX: usize = 10_000;

/// `ROOF_FAULTS`, if set: which faults of the seed's plan to keep, by index (`-` for none).
pub(super) fn faults(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Vec<usize>>, EnvError> {
    let Some(value) = get("ROOF_FAULTS") else {
        return Ok(None);
    };
    let error = || {
        EnvError {
        variable: "ROOF_FAULTS",
        value: value.clone(),
        expected: "fault indices of the seed's plan, comma-separated (at most 10000, each below 10000), or - for none",
    }
    };
    let text = value.trim();
    if text == "-" {
        return Ok(Some(Vec::new()));
    }
    let indices: Vec<usize> = text
        .split(',')
        .map(|part| part.trim().parse::<usize>().map_err(|_| error()))
        .collect::<Result<_, _>>()?;
    if indices.len() > FAULT_INDICES_MAX || indices.iter().any(|&index| index >= FAULT_INDICES_MAX)
    {
        return Err(error());
    }
    Ok(Some(indices))
}

/// `ROOF_FAULT_KINDS`, if set: the kinds fault plans are drawn from, comma-separated.
pub(super) fn fault_kinds(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Vec<crate::fault::FaultKind>>, EnvError> {
    let Some(value) = get("ROOF_FAULT_KINDS") else {
        return Ok(None);
    };
    crate::fault::FaultKind::parse_list(&value)
        .map(Some)
        .map_err(|_| EnvError {
            variable: "ROOF_FAULT_KINDS",
            value,
            expected: "fault kinds, comma-separated: partition, one-way-partition, clog, crash, latency-spike, loss-burst, pause, clog-outgoing, clog-incoming, stall, disk-failure, disk-full, slow-disk, clock-jump-forward, clock-jump-backward, read-corruption",
        })
}

/// A directory named by `variable`, if set: a non-empty path (created when first written).
pub(super) fn directory(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
) -> Result<Option<std::path::PathBuf>, EnvError> {
    match get(variable) {
        None => Ok(None),
        Some(value) if value.trim().is_empty() => Err(EnvError {
            variable,
            value,
            expected: "a directory to write into",
        }),
        Some(value) => Ok(Some(value.into())),
    }
}
