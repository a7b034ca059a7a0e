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
        write!(f, "{}", self.replay)
    }
}

/// The pasteable replay line: `replay: ROOF_SEED=N cargo test --test <binary> -- <test>`.
pub(super) fn replay_line(seed: u64, test: &str) -> String {
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
    format!("replay: ROOF_SEED={seed} cargo test --test {binary} -- {test} --exact")
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
    let Ok(text) = fs::read_to_string(regressions_path(dir, test)) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| line.split('#').next()?.trim().parse().ok())
        .collect()
}

pub(super) fn record_regression(dir: &Path, test: &str, seed: u64) {
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
        writeln!(file, "{seed}")
    };
    if let Err(error) = write() {
        eprintln!(
            "roof: could not record seed {seed} in {}: {error}",
            path.display()
        );
    }
}
