//! The timeline pages in a real browser: headless Chromium loads them and dumps the DOM its
//! script built; the checks count lanes, arrows and the failure mark in it and look for
//! script errors. Chromium is found as `ROOF_CHROMIUM`, else `chromium`, `chromium-browser`
//! or `google-chrome` on the PATH (CI installs Debian's `chromium`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::time::{Duration, Instant};

use roof::timeline::{diff_html, Timeline};
use roof::trace::{EventKind, PacketOp};
use roof::{Choices, Config, Report, TraceMode};

use crate::sim;
use crate::timeline::{first_failing, large_run};

/// The longest a page may take to load before the check gives up on a hung browser.
const LOAD_MAX: Duration = Duration::from_secs(90);

fn chromium() -> PathBuf {
    if let Some(path) = std::env::var_os("ROOF_CHROMIUM") {
        return path.into();
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            if dir.join(name).is_file() {
                return dir.join(name);
            }
        }
    }
    panic!(
        "the browser checks need Chromium: install it (Debian: apt-get install chromium) \
         or name it with ROOF_CHROMIUM=/path/to/chromium"
    );
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("roof-browser-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The DOM of `page` once its script ran (with `query` after the file's URL). A real
/// browser process, outside any simulation: the wall clock only bounds a hung one.
#[allow(clippy::disallowed_methods)]
fn dump_dom(page: &Path, query: &str) -> String {
    let profile = scratch(&format!(
        "profile-{}",
        page.file_stem().unwrap().to_string_lossy()
    ));
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--no-first-run",
            "--window-size=1400,900",
            "--virtual-time-budget=10000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}{query}", page.display()))
        // To a file: a pipe would fill with a large DOM while the child waits to exit.
        .stdout(std::fs::File::create(profile.with_extension("dom")).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > LOAD_MAX {
            let _ = child.kill();
            panic!(
                "chromium did not finish loading {} within {LOAD_MAX:?}",
                page.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let status = child.wait().unwrap();
    let dom = std::fs::read_to_string(profile.with_extension("dom")).unwrap();
    let _ = std::fs::remove_dir_all(&profile);
    let _ = std::fs::remove_file(profile.with_extension("dom"));
    assert!(status.success(), "chromium failed on {}", page.display());
    dom
}

/// The DOM without the script's own text (whose templates would be counted too).
fn without_scripts(dom: &str) -> String {
    let mut out = String::new();
    let mut rest = dom;
    while let Some(start) = rest.find("<script") {
        out.push_str(&rest[..start]);
        rest = rest[start..]
            .find("</script>")
            .map_or("", |end| &rest[start + end + 9..]);
    }
    out.push_str(rest);
    out
}

fn occurrences(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

fn delivered(report: &Report) -> usize {
    let trace = report.trace.as_ref().unwrap();
    trace
        .events
        .iter()
        .filter(|event| {
            matches!(
                event.kind,
                EventKind::Packet {
                    op: PacketOp::Deliver,
                    ..
                }
            )
        })
        .count()
}

fn recorded(name: &str, seed: u64, choices: Option<Vec<u32>>) -> Report {
    let mut config = Config::new(seed).trace(TraceMode::Record).echo(false);
    if let Some(choices) = choices {
        config = config.choices(Choices(choices));
    }
    sim::run(sim::find(name).unwrap(), config)
}

/// The page's DOM is whole: the script ran to the end and raised nothing.
fn assert_rendered(dom: &str, what: &str) {
    assert!(
        dom.contains("data-rendered=\"1\""),
        "{what}: the script did not finish"
    );
    assert!(
        dom.contains("data-errors=\"0\""),
        "{what}: script errors: {dom}"
    );
}

fn check_run(name: &str, seed: u64, failing: bool) {
    let report = recorded(name, seed, None);
    assert_eq!(report.passed(), !failing, "{name} seed {seed}");
    let timeline = Timeline::of_report(&report).unwrap().title(name);
    let dir = scratch(name);
    let page = dir.join(format!("{name}.html"));
    timeline.write_html(&page).unwrap();
    let dom = without_scripts(&dump_dom(&page, ""));
    assert_rendered(&dom, name);
    let hosts = timeline.model().hosts.len();
    assert_eq!(
        occurrences(&dom, "<g class=\"lane\""),
        hosts,
        "{name}: a lane per host"
    );
    assert_eq!(
        occurrences(&dom, "class=\"arrow delivered"),
        delivered(&report),
        "{name}: an arrow per delivered packet"
    );
    assert_eq!(
        occurrences(&dom, "<g class=\"failure\""),
        usize::from(failing),
        "{name}: the failure mark"
    );
    // A click shows the event's line: `?select=N` opens on event N the same way.
    let event = timeline.trace().events.len() / 2;
    let line = timeline.trace().events[event]
        .to_string()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    let selected = dump_dom(&page, &format!("?select={event}"));
    assert!(
        selected.contains(&format!("<pre id=\"detail\">{line}</pre>")),
        "{name}: {line}"
    );
    // Zoom, pan, the fold box and a click each do what they should.
    let driven = dump_dom(&page, "?selftest=1");
    assert_rendered(&without_scripts(&driven), name);
    assert!(
        driven.contains("data-selftest=\"true,true,true,true\""),
        "{name}: zoom, pan, fold, click: {}",
        driven
            .split("data-selftest=")
            .nth(1)
            .unwrap_or("(not run)")
            .chars()
            .take(40)
            .collect::<String>()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn yell_echo_draws_a_lane_per_host_and_an_arrow_per_delivered_segment() {
    check_run("yell-echo", 0, false);
}

#[test]
fn kv_stores_first_failing_seed_is_drawn_with_its_failure() {
    check_run("kv-store", first_failing("kv-store"), true);
}

#[test]
fn a_diff_page_marks_the_divergence_in_both_runs() {
    let seed = first_failing("kv-store");
    let first = Timeline::of_report(&recorded("kv-store", seed, None)).unwrap();
    let second = Timeline::of_report(&recorded("kv-store", seed, Some(vec![0]))).unwrap();
    let dir = scratch("diff");
    let page = dir.join("diff.html");
    std::fs::write(&page, diff_html(&first, &second)).unwrap();
    let dom = without_scripts(&dump_dom(&page, ""));
    assert_rendered(&dom, "diff");
    let hosts = first.model().hosts.len() + second.model().hosts.len();
    assert_eq!(occurrences(&dom, "<g class=\"lane\""), hosts);
    if first.trace().first_divergence(second.trace()).is_some() {
        assert_eq!(occurrences(&dom, "<g class=\"divergence\""), 2);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_page_of_100k_events_bundles_what_a_lane_cannot_show() {
    let report = large_run();
    let timeline = Timeline::of_report(&report).unwrap();
    let dir = scratch("large");
    let page = dir.join("large.html");
    timeline.write_html(&page).unwrap();
    let whole = without_scripts(&dump_dom(&page, ""));
    assert_rendered(&whole, "the whole large run");
    assert!(whole.contains("class=\"arrow bundle"), "arrows bundled");
    // What is drawn is bounded by the page's width, not the trace's length.
    let elements =
        occurrences(&whole, "<rect") + occurrences(&whole, "<line") + occurrences(&whole, "<path");
    let events = timeline.trace().events.len();
    assert!(
        elements < events / 4,
        "{elements} elements for {events} events"
    );
    // Zoomed in on a few milliseconds, each arrow is drawn again.
    let zoomed = without_scripts(&dump_dom(&page, "?from=5000000&to=8000000"));
    assert_rendered(&zoomed, "the zoomed large run");
    assert!(!zoomed.contains("class=\"arrow bundle"));
    assert!(occurrences(&zoomed, "class=\"arrow delivered") > 10);
    let _ = std::fs::remove_dir_all(&dir);
}
