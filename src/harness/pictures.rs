//! Timeline pages of a failing seed (`ROOF_TIMELINE=DIR`, [`Builder::timeline`]): the
//! failing run, its shrunk replay, and both side by side; for a determinism failure, two
//! runs of the seed side by side.

use std::path::{Path, PathBuf};

use super::failure::ShrunkRun;
use super::run::run_seed;
use super::{Builder, Sim};
use crate::engine::report::Report;
use crate::engine::sched::Choices;
use crate::engine::trace::TraceMode;
use crate::timeline::{diff_html, Timeline};

/// A test's name as a file name: letters, digits, `-` and `_` kept, anything else `_`.
fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Builder {
    /// The timeline of a recorded run of this test.
    fn timeline_of(&self, report: &Report, title: String) -> Timeline {
        Timeline::of_report(report)
            .expect("the harness records the runs it draws")
            .title(title)
            .setting("build", self.stamp())
            .setting("settings", self.settings())
    }

    /// Write the pages of failing `seed` (and of its shrunk run) into `dir`: each page's
    /// path, or why it could not be written.
    pub(super) fn write_timelines(
        &self,
        dir: &Path,
        seed: u64,
        body: &dyn Fn(&Sim),
        name: &str,
        shrunk: Option<&ShrunkRun>,
        nondeterministic: bool,
    ) -> Vec<Result<PathBuf, String>> {
        let recorded = |builder: &Builder, choices: Option<&[u32]>| {
            let mut config = builder.seed_config(seed, TraceMode::Record, body);
            if let Some(choices) = choices {
                config = config.choices(Choices(choices.to_vec()));
            }
            run_seed(config, body, builder.stress.clone()).report
        };
        let stem = dir.join(format!("{}-seed-{seed}", file_stem(name)));
        let path = |suffix: &str| PathBuf::from(format!("{}{suffix}.html", stem.display()));
        let failing = self.timeline_of(&recorded(self, None), format!("{name} seed {seed}"));
        let mut pages = vec![(path(""), failing.to_html())];
        if nondeterministic {
            // The determinism check's two runs: run again, the two are likely to differ again.
            let again = self.timeline_of(
                &recorded(self, None),
                format!("{name} seed {seed} (run again)"),
            );
            pages.push((path("-determinism"), diff_html(&failing, &again)));
        }
        if let Some(shrunk) = shrunk {
            let narrowed = match &shrunk.faults {
                Some((kept, _)) => self
                    .clone()
                    .keep_faults(kept.iter().map(|(index, _)| *index).collect()),
                None => self.clone(),
            };
            let report = recorded(&narrowed, Some(&shrunk.choices));
            let replay = self
                .timeline_of(&report, format!("{name} seed {seed} (shrunk)"))
                .setting("choices", shrunk.token.clone());
            pages.push((path("-shrunk"), replay.to_html()));
            pages.push((path("-diff"), diff_html(&failing, &replay)));
        }
        if let Err(error) = std::fs::create_dir_all(dir) {
            return vec![Err(format!("cannot create {}: {error}", dir.display()))];
        }
        pages
            .into_iter()
            .map(|(path, page)| match std::fs::write(&path, page) {
                Ok(()) => Ok(path),
                Err(error) => Err(format!("cannot write {}: {error}", path.display())),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn test_names_become_file_names() {
        assert_eq!(super::file_stem("tests::bank/seed 1"), "tests__bank_seed_1");
    }
}
