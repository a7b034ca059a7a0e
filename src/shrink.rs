//! Shrinking a failing run's scheduler choices toward FIFO.
//!
//! A run with [`Config::record_choices`](crate::Config::record_choices) reports every
//! scheduling decision it made; replaying that sequence ([`Config::choices`](crate::Config::choices))
//! reproduces the run exactly, and past its end the run goes on in FIFO order (choice 0). So a
//! shorter sequence, or one with more zeros, is a run closer to FIFO. [`minimize`] searches for
//! a small sequence that still fails: it truncates, deletes chunks, zeroes entries and lowers
//! values, replaying every candidate and keeping it only if it still fails.
//!
//! ```
//! use roof::shrink::{minimize, Token};
//! // A "bug" that needs a 3 at some position after at least two other entries.
//! let fails = |choices: &[u32]| choices.iter().skip(2).any(|&choice| choice == 3);
//! let original = vec![1, 0, 2, 5, 3, 1, 4, 0, 2, 2, 1];
//! let shrunk = minimize(&original, fails, 10_000);
//! assert_eq!(shrunk, vec![0, 0, 3]);
//! assert_eq!(Token::encode(&shrunk), "2z,3");
//! assert_eq!(Token::decode("2z,3").unwrap(), shrunk);
//! ```

use std::fmt;

/// Shrink `choices` while `fails` holds, trying at most `budget` candidates. Returns the
/// smallest failing sequence found, without trailing zeros.
///
/// ```
/// use roof::{Choices, Config, EventLoop};
/// // The "bug": the second task runs before the first.
/// let fails = |choices: &[u32]| {
///     let config = Config::new(0).echo(false).choices(Choices(choices.to_vec()));
///     let order = EventLoop::with_config(config).run_until_complete(async {
///         let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
///         let (a, b) = (log.clone(), log.clone());
///         roof::gather!(async move { a.borrow_mut().push(1) }, async move { b.borrow_mut().push(2) }).await.unwrap();
///         log.take()
///     });
///     order.unwrap() != [1, 2]
/// };
/// let failing = [3, 1, 2, 0, 4];
/// assert!(fails(&failing));
/// assert_eq!(roof::shrink::minimize(&failing, fails, 1_000), [1], "one choice makes the bug");
/// ```
pub fn minimize(choices: &[u32], mut fails: impl FnMut(&[u32]) -> bool, budget: usize) -> Vec<u32> {
    let mut best = trimmed(choices.to_vec());
    let tries = std::cell::Cell::new(0);
    let mut attempt = |candidate: Vec<u32>, best: &mut Vec<u32>| -> bool {
        let candidate = trimmed(candidate);
        if tries.get() >= budget || candidate == *best {
            return false;
        }
        tries.set(tries.get() + 1);
        if fails(&candidate) {
            *best = candidate;
            true
        } else {
            false
        }
    };
    loop {
        let before = best.clone();
        // Truncate: past the end a replay is FIFO, so a prefix is a run closer to FIFO.
        let mut keep = best.len() / 2;
        while keep < best.len() {
            if attempt(best[..keep].to_vec(), &mut best) {
                keep = best.len() / 2;
            } else {
                keep = keep + (best.len() - keep).div_ceil(2);
                if keep == best.len() {
                    break;
                }
            }
        }
        // Delete chunks, halving the chunk size.
        let mut chunk = (best.len() / 2).max(1);
        while chunk >= 1 && !best.is_empty() {
            let mut start = 0;
            while start < best.len() {
                let mut candidate = best.clone();
                candidate.drain(start..(start + chunk).min(candidate.len()));
                if !attempt(candidate, &mut best) {
                    start += chunk;
                }
            }
            if chunk == 1 {
                break;
            }
            chunk /= 2;
        }
        // Move each deviation one choice point earlier: the same interleaving, sooner.
        for index in 1..best.len() {
            if index < best.len() && best[index] != 0 && best[index - 1] == 0 {
                let mut candidate = best.clone();
                candidate.swap(index - 1, index);
                attempt(candidate, &mut best);
            }
        }
        // Zero entries, then lower the ones that must stay.
        for index in 0..best.len() {
            if index < best.len() && best[index] != 0 {
                let mut candidate = best.clone();
                candidate[index] = 0;
                if attempt(candidate, &mut best) {
                    continue;
                }
                let mut value = best[index];
                while value > 1 {
                    let mut candidate = best.clone();
                    candidate[index] = value / 2;
                    if !attempt(candidate, &mut best) {
                        let mut candidate = best.clone();
                        candidate[index] = value - 1;
                        if !attempt(candidate, &mut best) {
                            break;
                        }
                    }
                    value = best[index];
                }
            }
        }
        if best == before || tries.get() >= budget {
            return best;
        }
    }
}

/// What [`shrink`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Shrunk {
    /// The smallest failing choices found (trailing zeros dropped).
    pub choices: Vec<u32>,
    /// Their deviations from FIFO.
    pub deviations: usize,
    /// Replays made.
    pub replays: usize,
    /// Whether no schedule with fewer deviations fails: every one was replayed (within the
    /// budget) and passed. False when the budget ran out first.
    pub proven: bool,
}

/// Shrink a failing run's `choices` to a failing schedule with the fewest deviations from
/// FIFO, within `budget` replays: [`minimize`] first, then every schedule with fewer
/// deviations than its result ([`explore`](crate::explore::explore)), which either finds a
/// smaller failure (shrunk again) or proves there is none.
///
/// `replay` runs a choice prefix and says whether it failed the same way.
///
/// ```
/// use roof::explore::Replayed;
/// use roof::shrink::shrink;
/// // Fails when choice point 2 deviates, or when points 0 and 4 both do.
/// let replay = |prefix: &[u32]| {
///     let mut choices = prefix.to_vec();
///     choices.resize(6, 0);
///     let failed = choices[2] != 0 || (choices[0] != 0 && choices[4] != 0);
///     Replayed { failed, choices, arities: vec![3; 6] }
/// };
/// let shrunk = shrink(&[2, 0, 0, 1, 1, 2], replay, 1_000);
/// assert_eq!((shrunk.choices.as_slice(), shrunk.deviations, shrunk.proven), (&[0, 0, 1][..], 1, true));
/// ```
pub fn shrink(
    choices: &[u32],
    mut replay: impl FnMut(&[u32]) -> crate::explore::Replayed,
    budget: usize,
) -> Shrunk {
    let replays = std::cell::Cell::new(0usize);
    let mut counted = |prefix: &[u32]| {
        replays.set(replays.get() + 1);
        replay(prefix)
    };
    let mut best = minimize(choices, |candidate| counted(candidate).failed, budget / 2);
    loop {
        let deviations = deviations(&best);
        let left = budget.saturating_sub(replays.get());
        if deviations == 0 {
            return Shrunk {
                choices: best,
                deviations,
                replays: replays.get(),
                proven: true,
            };
        }
        let fewer = crate::explore::explore(deviations as u32 - 1, left, true, &mut counted);
        match fewer.failing {
            Some(smaller) => {
                let left = budget.saturating_sub(replays.get());
                best = minimize(&smaller, |candidate| counted(candidate).failed, left);
            }
            None => {
                return Shrunk {
                    choices: best,
                    deviations,
                    replays: replays.get(),
                    proven: fewer.complete,
                }
            }
        }
    }
}

/// A smallest subset of `items` for which `fails` holds, by delta debugging (Zeller and
/// Hildebrandt's ddmin: drop halves, then quarters, ..., keeping any part or complement that
/// still fails), trying at most `budget` subsets; the empty set is tried first. The result
/// is 1-minimal when the budget allows: removing any one item of it passes.
///
/// ```
/// // Ten faults, of which the failure needs the 3rd and the 7th.
/// let faults: Vec<u32> = (0..10).collect();
/// let fails = |kept: &[u32]| kept.contains(&3) && kept.contains(&7);
/// assert_eq!(roof::shrink::minimal_subset(&faults, fails, 1_000), [3, 7]);
/// ```
pub fn minimal_subset<T: Clone + PartialEq>(
    items: &[T],
    mut fails: impl FnMut(&[T]) -> bool,
    budget: usize,
) -> Vec<T> {
    let tries = std::cell::Cell::new(0usize);
    let mut attempt = |subset: &[T]| {
        if tries.get() >= budget {
            return false;
        }
        tries.set(tries.get() + 1);
        fails(subset)
    };
    if attempt(&[]) {
        return Vec::new();
    }
    let mut current = items.to_vec();
    let mut parts = 2;
    while current.len() >= 2 && tries.get() < budget {
        let size = current.len().div_ceil(parts);
        let chunks: Vec<Vec<T>> = current.chunks(size).map(<[T]>::to_vec).collect();
        if let Some(chunk) = chunks.iter().find(|chunk| attempt(chunk)) {
            current = chunk.clone();
            parts = 2;
            continue;
        }
        let complement = |skip: usize| -> Vec<T> {
            chunks
                .iter()
                .enumerate()
                .filter(|(index, _)| *index != skip)
                .flat_map(|(_, chunk)| chunk.iter().cloned())
                .collect()
        };
        if chunks.len() > 2 {
            if let Some(rest) = (0..chunks.len()).map(complement).find(|rest| attempt(rest)) {
                current = rest;
                parts = (parts - 1).max(2);
                continue;
            }
        }
        if parts >= current.len() {
            break;
        }
        parts = (parts * 2).min(current.len());
    }
    current
}

fn trimmed(mut choices: Vec<u32>) -> Vec<u32> {
    while choices.last() == Some(&0) {
        choices.pop();
    }
    choices
}

/// How far a sequence is from FIFO: its non-zero entries.
///
/// ```
/// use roof::{Config, EventLoop, Policy};
/// let config = Config::new(0).policy(Policy::Fifo).record_choices(true).echo(false);
/// let lp = EventLoop::with_config(config);
/// lp.run_until_complete(roof::gather!(async {}, async {}, async {})).unwrap().unwrap();
/// let choices = lp.report().choices.unwrap();
/// assert!(!choices.is_empty());
/// assert_eq!(roof::shrink::deviations(&choices), 0, "FIFO always picks the oldest");
/// assert_eq!(roof::shrink::deviations(&[0, 2, 0, 1]), 2);
/// ```
pub fn deviations(choices: &[u32]) -> usize {
    choices.iter().filter(|&&choice| choice != 0).count()
}

/// The text form of a choice sequence for the command line: comma-separated choices, with a
/// run of N zeros written `Nz` (`3z,2,1` is `0,0,0,2,1`); `-` is the empty sequence (FIFO).
///
/// ```
/// use roof::shrink::Token;
/// let token = Token::encode(&[0, 0, 0, 2, 1, 0]);
/// assert_eq!(token, "3z,2,1", "trailing zeros dropped: the replay is FIFO there anyway");
/// let choices = Token::decode(&token).unwrap();
/// assert_eq!(choices, [0, 0, 0, 2, 1]);
/// assert_eq!(Token::encode(&[]), "-");
/// let _replay = roof::Config::new(0).choices(roof::Choices(choices));
/// ```
pub struct Token;

/// The most choices a token may hold: a run makes at most one choice per step, and this is
/// the default step limit ([`STEPS_MAX_DEFAULT`](crate::STEPS_MAX_DEFAULT)).
pub const CHOICES_MAX: usize = 10_000_000;

/// A malformed choice token.
///
/// ```
/// use roof::shrink::{Token, TokenError};
/// let error: TokenError = Token::decode("1,two").unwrap_err();
/// assert!(error.to_string().contains("expected comma-separated numbers"), "{error}");
/// let too_long = Token::decode("99999999z").unwrap_err();
/// assert!(too_long.to_string().contains("more than 10000000 choices"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenError {
    token: String,
    too_long: bool,
}

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token: String = self.token.chars().take(64).collect();
        let more = if token.len() < self.token.len() {
            "..."
        } else {
            ""
        };
        if self.too_long {
            write!(
                f,
                "invalid choice token {token:?}{more}: it holds more than {CHOICES_MAX} choices"
            )
        } else {
            write!(
                f,
                "invalid choice token {token:?}{more}: expected comma-separated numbers, Nz for N zeros, or -"
            )
        }
    }
}

impl std::error::Error for TokenError {}

impl Token {
    /// Encode `choices` (trailing zeros dropped: the replay is FIFO there anyway).
    pub fn encode(choices: &[u32]) -> String {
        let choices = trimmed(choices.to_vec());
        if choices.is_empty() {
            return "-".to_string();
        }
        let mut parts = Vec::new();
        let mut zeros = 0;
        for &choice in &choices {
            if choice == 0 {
                zeros += 1;
                continue;
            }
            match zeros {
                0 => {}
                1 => parts.push("0".to_string()),
                count => parts.push(format!("{count}z")),
            }
            zeros = 0;
            parts.push(choice.to_string());
        }
        parts.join(",")
    }

    /// Decode a token made by [`encode`](Token::encode); at most [`CHOICES_MAX`] choices.
    pub fn decode(token: &str) -> Result<Vec<u32>, TokenError> {
        let token = token.trim();
        if token == "-" || token.is_empty() {
            return Ok(Vec::new());
        }
        let error = |too_long| TokenError {
            token: token.to_string(),
            too_long,
        };
        let mut choices = Vec::new();
        for part in token.split(',') {
            let part = part.trim();
            let (choice, count) = match part.strip_suffix('z') {
                Some(count) => (0, count.parse::<usize>().map_err(|_| error(false))?),
                None => (part.parse().map_err(|_| error(false))?, 1),
            };
            if count > CHOICES_MAX - choices.len() {
                return Err(error(true));
            }
            choices.extend(std::iter::repeat_n(choice, count));
        }
        Ok(choices)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for choices in [
            vec![],
            vec![1],
            vec![0, 1],
            vec![0, 0, 0, 4, 0, 2],
            vec![7, 0, 0, 0, 0, 0, 0, 1],
        ] {
            assert_eq!(
                Token::decode(&Token::encode(&choices)).unwrap(),
                trimmed(choices.clone())
            );
        }
        assert!(Token::decode("1,x").is_err());
        assert!(Token::decode("qz").is_err());
        // Sizes from the user are bounded before anything is allocated.
        for huge in ["18446744073709551615z", "1000000000000z", "9999999z,2z"] {
            let error = Token::decode(huge).unwrap_err().to_string();
            assert!(error.contains("more than 10000000 choices"), "{error}");
        }
        assert_eq!(Token::decode("9999999z,1").unwrap().len(), CHOICES_MAX);
    }

    #[test]
    fn minimize_respects_the_budget_and_keeps_failing() {
        let original: Vec<u32> = (0..200).map(|index| (index * 7 % 5) as u32).collect();
        let fails = |choices: &[u32]| choices.iter().filter(|&&choice| choice > 2).count() >= 3;
        let shrunk = minimize(&original, fails, 100_000);
        assert!(fails(&shrunk));
        assert_eq!(shrunk, vec![3, 3, 3]);
        let limited = minimize(&original, fails, 3);
        assert!(fails(&limited));
    }
}
