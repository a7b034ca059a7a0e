//! What a failing seed prints, its replay line, and the regressions file that makes it run
//! first next time.

use std::env;
use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::engine::report::Failure;

/// A failing seed, with everything needed to understand and replay it.
///
/// ```
/// let failure = roof::harness::Builder::new()
///     .seeds(0..4)
///     .name("doc_seed_failure")
///     .try_run(|sim| {
///         sim.client("c", async { Err::<(), _>("boom") });
///     })
///     .unwrap_err();
/// assert_eq!(failure.seed, 0, "the first failing seed stops the sweep");
/// assert_eq!(failure.failure.kind(), "error");
/// assert!(failure.replay.contains("ROOF_SEED=0"), "{}", failure.replay);
/// assert!(failure.to_string().contains("boom"));
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SeedFailure {
    /// The seed.
    pub seed: u64,
    /// What went wrong.
    pub failure: Failure,
    /// The version and settings the seed ran with.
    pub settings: String,
    /// The fault plan drawn for the seed and the faults that fired, when faults were on.
    pub faults: Option<(String, Vec<String>)>,
    /// The line to paste to replay it.
    pub replay: String,
    /// The failing run's trace, when asked for (`ROOF_TRACE=1`).
    pub trace: Option<String>,
    /// The failure shrunk (unless `ROOF_SHRINK=0`, a replay of given choices, or a
    /// nondeterminism failure, which a replay cannot shrink).
    pub shrunk: Option<ShrunkRun>,
    /// The timeline pages written for it (`ROOF_TIMELINE`, [`Builder::timeline`](super::Builder::timeline)).
    pub timelines: Vec<PathBuf>,
    /// What the report says about them (`timeline: <path>`, or why one was not written).
    pub timeline_lines: Vec<String>,
}

/// A failing seed's schedule, shrunk: the fewest deviations from FIFO found that still fail
/// the same way, and the line that replays exactly that run.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShrunkRun {
    /// The choices (trailing zeros dropped).
    pub choices: Vec<u32>,
    /// Their token, as `ROOF_CHOICES` takes it.
    pub token: String,
    /// Their deviations from FIFO.
    pub deviations: usize,
    /// The original run's (choices, deviations); `None` when an exhaustive exploration found
    /// this schedule (it has the fewest deviations of all failing ones already).
    pub original: Option<(usize, usize)>,
    /// Whether no schedule with fewer deviations fails: all of them were replayed.
    pub proven: bool,
    /// Replays the shrinker made.
    pub replays: usize,
    /// The shrunk run's failure headline.
    pub headline: Option<String>,
    /// With faults: the faults of the plan that still make it fail (by delta debugging over
    /// the plan, each candidate replayed), with their indices, and how many the plan had.
    pub faults: Option<(Vec<(usize, String)>, usize)>,
    /// `replay (shrunk): ROOF_SEED=N ROOF_CHOICES=<token> ... cargo test ... --exact`.
    pub replay: String,
}

impl fmt::Display for ShrunkRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plural = |n: usize, word: &str| {
            if n == 1 {
                format!("{n} {word}")
            } else {
                format!("{n} {word}s")
            }
        };
        let minimal = if self.proven {
            "proven minimal"
        } else {
            "not proven minimal (the budget ran out: ROOF_SHRINK_BUDGET)"
        };
        let now = format!(
            "{} ({} from FIFO)",
            plural(self.choices.len(), "choice"),
            plural(self.deviations, "deviation")
        );
        match self.original {
            Some((choices, deviations)) => writeln!(
                f,
                "roof: shrunk from {} ({} from FIFO) to {now}, {minimal}, in {}",
                plural(choices, "choice"),
                plural(deviations, "deviation"),
                plural(self.replays, "replay")
            )?,
            None => writeln!(
                f,
                "roof: found by exhaustive exploration: {now}, the fewest of any failing schedule"
            )?,
        }
        if let Some((kept, all)) = &self.faults {
            let listed: Vec<String> = kept
                .iter()
                .map(|(index, fault)| format!("#{index} {fault}"))
                .collect();
            let listed = if listed.is_empty() {
                "none: it fails without faults".to_string()
            } else {
                listed.join("; ")
            };
            writeln!(
                f,
                "roof: faults that matter: {} of {all}: {listed}",
                kept.len()
            )?;
        }
        if let Some(headline) = &self.headline {
            writeln!(f, "roof: shrunk run: {headline}")?;
        }
        write!(
            f,
            "{}",
            self.replay.replacen("replay:", "replay (shrunk):", 1)
        )
    }
}

impl fmt::Display for SeedFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(trace) = &self.trace {
            write!(f, "{trace}")?;
        }
        writeln!(f, "roof: seed {} {}", self.seed, self.failure.headline())?;
        writeln!(f, "roof: {}", self.settings)?;
        if let Some((plan, fired)) = &self.faults {
            writeln!(f, "roof: fault plan: {plan}")?;
            let fired = if fired.is_empty() {
                "none".to_string()
            } else {
                fired.join("; ")
            };
            writeln!(f, "roof: faults fired: {fired}")?;
        }
        write!(f, "{}", self.replay)?;
        if let Some(shrunk) = &self.shrunk {
            write!(f, "\n{shrunk}")?;
        }
        for line in &self.timeline_lines {
            write!(f, "\nroof: {line}")?;
        }
        Ok(())
    }
}

/// The pasteable replay line: `replay: <vars> cargo test --test <binary> -- <test> --exact`.
pub(super) fn replay_line(vars: &str, test: &str) -> String {
    let binary = env::current_exe()
        .ok()
        .and_then(|path| {
            path.file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
        })
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => name.to_string(),
            _ => stem,
        })
        .unwrap_or_else(|| "<binary>".to_string());
    format!("replay: {vars} cargo test --test {binary} -- {test} --exact")
}

fn regressions_path(dir: &Path, test: &str) -> PathBuf {
    let file: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '.'
            }
        })
        .collect();
    dir.join(format!("{file}.seeds"))
}

/// The seeds recorded for `test` in `dir`, oldest first.
///
/// ```
/// use roof::harness::read_regressions;
/// let dir = std::env::temp_dir().join(format!("roof-doc-regressions-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("my_test.seeds"), "# failed on CI\n17\n4 # flaky\n").unwrap();
/// assert_eq!(read_regressions(&dir, "my_test"), [17, 4]);
/// assert!(read_regressions(&dir, "another_test").is_empty(), "no file, no seeds");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn read_regressions(dir: &Path, test: &str) -> Vec<u64> {
    regressions_with_stamps(dir, test)
        .into_iter()
        .map(|(seed, _)| seed)
        .collect()
}

/// The seeds recorded for `test`, each with the build stamp that recorded it (a comment
/// `# roof <stamp>`), if any.
pub(super) fn regressions_with_stamps(dir: &Path, test: &str) -> Vec<(u64, Option<String>)> {
    let Ok(text) = fs::read_to_string(regressions_path(dir, test)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let (seed, comment) = line.split_once('#').unwrap_or((line, ""));
            let seed = seed.trim().parse().ok()?;
            let stamp = comment
                .trim()
                .strip_prefix("roof ")
                .map(|stamp| stamp.trim().to_string());
            Some((seed, stamp))
        })
        .collect()
}

pub(super) fn record_regression(dir: &Path, test: &str, seed: u64, stamp: &str) {
    let path = regressions_path(dir, test);
    if read_regressions(dir, test).contains(&seed) {
        return;
    }
    let write = || -> std::io::Result<()> {
        fs::create_dir_all(path.parent().expect("a file under a folder"))?;
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        writeln!(file, "{seed} # roof {stamp}")
    };
    if let Err(error) = write() {
        eprintln!(
            "roof: could not record seed {seed} in {}: {error}",
            path.display()
        );
    }
}
