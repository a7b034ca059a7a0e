//! A picture of a run: a self-contained timeline page, a two-run diff, and a Perfetto trace.
//!
//! [`Timeline`] turns a recorded trace into one HTML file with everything inline (SVG, CSS
//! and a little plain JavaScript; no network, no build step, no server): one lane per host
//! with its tasks nested (spawn to end, polls as ticks), an arrow per TCP segment and
//! datagram from send to delivery (held ones dashed, dropped and lost ones crossed), fault
//! bands (crash, partition, clog, degraded link), timers, printed and logged lines as marks
//! with their text on hover, the failure where it happened, and a header with the seed,
//! policy, roof version and settings. Wheel to zoom, drag to pan, fold idle stretches of
//! virtual time, click anything for its trace line.
//!
//! [`diff_html`] draws two runs on one time axis with their first divergent event marked;
//! [`Timeline::to_perfetto`] writes the Trace Event Format that ui.perfetto.dev and
//! chrome://tracing open. `roof run --timeline run.html --perfetto trace.json`, `roof diff`
//! and `ROOF_TIMELINE=DIR` in tests write them.
//!
//! ```
//! use roof::{Config, EventLoop, TraceMode};
//! use roof::timeline::Timeline;
//! let lp = EventLoop::with_config(Config::new(7).trace(TraceMode::Record).echo(false));
//! lp.host("db", || async {}).unwrap();
//! lp.run_until_complete(async { roof::println!("hello") }).unwrap();
//! let page = Timeline::of_report(&lp.report()).unwrap().title("hello").to_html();
//! assert!(page.starts_with("<!DOCTYPE html>"));
//! assert!(!page.contains("http://") || !page.contains("src=\"http"), "nothing fetched");
//! ```

use std::fmt;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::engine::report::Report;
use crate::engine::trace::Trace;

mod build;
mod encode;
pub mod model;
mod page;
mod perfetto;

pub use model::Model;

/// The most events a page draws; past it the page keeps the first `EVENTS_MAX` and says so
/// in its header (the Perfetto export keeps them all).
pub const EVENTS_MAX: usize = 2_000_000;

/// What a page's header says about its run.
///
/// ```
/// let header = roof::timeline::Timeline::of_trace(&roof::Trace::default()).title("t").header().clone();
/// assert_eq!(header.title, "t");
/// assert_eq!(header.version, env!("CARGO_PKG_VERSION"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Header {
    /// What the run is (a scenario's or a test's name).
    pub title: String,
    /// The seed, when known.
    pub seed: Option<u64>,
    /// The scheduling policy, when known.
    pub policy: Option<String>,
    /// roof's version.
    pub version: String,
    /// Further settings, in order (fault window, choices, build stamp).
    pub settings: Vec<(String, String)>,
    /// How the run ended, as its report says it.
    pub outcome: String,
    /// Whether it failed.
    pub failed: bool,
    /// The events of the trace.
    pub events: usize,
    /// The events the page draws (fewer than `events` past [`EVENTS_MAX`]).
    pub drawn: usize,
}

/// A report without a recorded trace has nothing to draw.
///
/// ```
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
/// lp.run_until_complete(async {}).unwrap();
/// let error = roof::timeline::Timeline::of_report(&lp.report()).unwrap_err();
/// assert!(error.to_string().contains("TraceMode::Record"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotRecorded;

impl fmt::Display for NotRecorded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the run's trace was not recorded: run it with TraceMode::Record")
    }
}

impl std::error::Error for NotRecorded {}

/// The timeline of one run: its header, page model and trace.
///
/// ```
/// use roof::{Config, EventLoop, TraceMode};
/// let lp = EventLoop::with_config(Config::new(1).trace(TraceMode::Record).echo(false));
/// lp.run_until_complete(async { roof::log!("tick") }).unwrap();
/// let timeline = roof::timeline::Timeline::of_report(&lp.report()).unwrap().setting("note", "x");
/// assert_eq!(timeline.header().seed, Some(1));
/// assert_eq!(timeline.model().hosts.len(), 1);
/// assert!(timeline.to_perfetto().contains("\"traceEvents\""));
/// ```
#[derive(Clone, Debug)]
pub struct Timeline {
    header: Header,
    model: Model,
    trace: Trace,
}

impl Timeline {
    /// The timeline of a run whose trace was recorded ([`TraceMode::Record`](crate::TraceMode::Record)):
    /// its seed, policy and outcome in the header, its failure marked.
    pub fn of_report(report: &Report) -> Result<Timeline, NotRecorded> {
        let trace = report.trace.as_ref().ok_or(NotRecorded)?;
        let mut timeline = Timeline::build(trace, report.outcome.as_ref().err());
        timeline.header.seed = Some(report.seed);
        timeline.header.policy = Some(report.policy.to_string());
        timeline.header.outcome = report.to_string();
        timeline.header.failed = !report.passed();
        Ok(timeline)
    }

    /// The timeline of a bare trace (no seed, policy or failure known).
    pub fn of_trace(trace: &Trace) -> Timeline {
        Timeline::build(trace, None)
    }

    fn build(trace: &Trace, failure: Option<&crate::Failure>) -> Timeline {
        let total = trace.events.len();
        let drawn = total.min(EVENTS_MAX);
        let trace = if drawn < trace.events.len() {
            Trace {
                events: trace.events[..drawn].to_vec(),
                hash: trace.hash,
            }
        } else {
            trace.clone()
        };
        let header = Header {
            title: "roof run".into(),
            seed: None,
            policy: None,
            version: env!("CARGO_PKG_VERSION").into(),
            settings: Vec::new(),
            outcome: String::new(),
            failed: failure.is_some(),
            events: total,
            drawn,
        };
        let model = Model::of(&trace, failure);
        Timeline {
            header,
            model,
            trace,
        }
    }

    /// Name the run (the page's title).
    pub fn title(mut self, title: impl Into<String>) -> Timeline {
        self.header.title = title.into();
        self
    }

    /// Add a setting to the header.
    pub fn setting(mut self, key: impl Into<String>, value: impl Into<String>) -> Timeline {
        self.header.settings.push((key.into(), value.into()));
        self
    }

    /// The header.
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The page model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The trace drawn.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// The page's data section, as compact JSON (the layout is described in the page's
    /// source; it is what snapshots pin).
    pub fn data_json(&self) -> String {
        self.data().to_string()
    }

    fn data(&self) -> serde_json::Value {
        encode::data(&self.header, &self.model, &self.trace)
    }

    /// The trace lines the page's data section gives back, one per event, as its script
    /// rebuilds them: the same as the trace's own lines.
    ///
    /// ```
    /// use roof::{Config, EventLoop, TraceMode};
    /// let lp = EventLoop::with_config(Config::new(3).trace(TraceMode::Record).echo(false));
    /// lp.run_until_complete(async { roof::sleep(std::time::Duration::from_millis(2)).await }).unwrap();
    /// let timeline = roof::timeline::Timeline::of_report(&lp.report()).unwrap();
    /// let lines: Vec<String> = timeline.trace().events.iter().map(ToString::to_string).collect();
    /// assert_eq!(timeline.page_lines(), lines);
    /// ```
    pub fn page_lines(&self) -> Vec<String> {
        encode::lines_of(&self.data())
    }

    /// The page: one self-contained HTML file.
    pub fn to_html(&self) -> String {
        page::html(&[self], None)
    }

    /// The run in Chrome's Trace Event Format, for ui.perfetto.dev and chrome://tracing:
    /// hosts as processes, tasks as threads, polls as slices, packets as flow events, faults
    /// and marks as instant events, timestamps in microseconds of virtual time (exact to
    /// the nanosecond).
    pub fn to_perfetto(&self) -> String {
        perfetto::json(&self.model, &self.trace)
    }

    /// Write the page to `path`.
    pub fn write_html(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, self.to_html())
    }

    /// Write the Perfetto trace to `path`.
    pub fn write_perfetto(&self, path: impl AsRef<Path>) -> io::Result<()> {
        std::fs::write(path, self.to_perfetto())
    }
}

/// Two runs on one page, one above the other on a shared time axis, their first divergent
/// event marked in both: a determinism check's two runs, or a failing run and its shrunk
/// replay.
///
/// ```
/// use roof::{Config, EventLoop, TraceMode};
/// use roof::timeline::{diff_html, Timeline};
/// let run = |seed| {
///     let lp = EventLoop::with_config(Config::new(seed).trace(TraceMode::Record).echo(false));
///     lp.run_until_complete(async { roof::log!("{}", roof::random::below(1000)) }).unwrap();
///     Timeline::of_report(&lp.report()).unwrap()
/// };
/// let page = diff_html(&run(1), &run(2));
/// assert!(page.contains("first divergence at event"));
/// ```
pub fn diff_html(first: &Timeline, second: &Timeline) -> String {
    let divergence = first.trace.first_divergence(&second.trace);
    page::html(&[first, second], Some(divergence.as_ref()))
}
