//! The page itself: the header and legend as plain HTML, the data section as JSON in a
//! script element, and the stylesheet and script inline.

use std::fmt::Write as _;

use serde_json::{json, Value};

use super::{Header, Timeline};
use crate::engine::trace::Divergence;

const STYLE: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// What the legend explains, with the swatch colour of each.
const LEGEND: &[(&str, &str)] = &[
    ("#cfe0f5", "task, spawn to end (ticks: polls)"),
    ("#f6c9c5", "task that panicked"),
    ("#51698a", "packet, send to delivery"),
    ("#f08a24", "held on a cut link / partition"),
    ("#b3261e", "dropped or lost (✕), failure"),
    ("#3c3c3c", "host crashed"),
    ("#9c4dcc", "clogged host"),
    ("#e8c000", "degraded link"),
    ("#607d8b", "host paused"),
    ("#b07b00", "timer, armed to fired"),
    ("#1e7b34", "printed line"),
    ("#3f51b5", "logged line"),
    ("#00838f", "disk operation"),
    ("#7a2e9c", "fault / first divergence"),
];

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

fn header_html(out: &mut String, header: &Header, label: Option<&str>) {
    let _ = write!(out, "<header><h1>");
    if let Some(label) = label {
        let _ = write!(out, "{}: ", escape(label));
    }
    let _ = write!(out, "{}</h1><div class=\"meta\">", escape(&header.title));
    let mut items: Vec<(String, String)> = Vec::new();
    if let Some(seed) = header.seed {
        items.push(("seed".into(), seed.to_string()));
    }
    if let Some(policy) = &header.policy {
        items.push(("policy".into(), policy.clone()));
    }
    items.push(("roof".into(), header.version.clone()));
    items.push(("events".into(), header.events.to_string()));
    items.extend(header.settings.iter().cloned());
    let listed: Vec<String> = items
        .iter()
        .map(|(key, value)| format!("{} <b>{}</b>", escape(key), escape(value)))
        .collect();
    out.push_str(&listed.join(" · "));
    out.push_str("</div>");
    if !header.outcome.is_empty() {
        let class = if header.failed { "failed" } else { "passed" };
        let _ = write!(
            out,
            "<div class=\"outcome {class}\">{}</div>",
            escape(&header.outcome)
        );
    }
    if header.drawn < header.events {
        let _ = write!(
            out,
            "<div class=\"note\">showing the first {} of {} events (the page's limit)</div>",
            header.drawn, header.events
        );
    }
    out.push_str("</header>");
}

/// The data section as JSON safe inside a script element: every `<` escaped.
fn script_json(value: &Value) -> String {
    value.to_string().replace('<', "\\u003c")
}

/// The page of one run, or of two with their divergence (`diff` is `Some` for a diff page:
/// `Some(None)` when the runs are identical).
pub(super) fn html(runs: &[&Timeline], diff: Option<Option<&Divergence>>) -> String {
    let title = runs
        .iter()
        .map(|run| run.header.title.as_str())
        .collect::<Vec<_>>()
        .join(" | ");
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"generator\" content=\"roof {}\"><title>{}</title><style>{STYLE}</style></head><body>",
        env!("CARGO_PKG_VERSION"),
        escape(&title)
    );
    let labels = ["first run", "second run"];
    for (index, run) in runs.iter().enumerate() {
        let label = (runs.len() > 1).then_some(labels[index.min(1)]);
        header_html(&mut out, &run.header, label);
    }
    let diff_value = diff.map(|divergence| match divergence {
        Some(divergence) => {
            let show = |event: &Option<crate::engine::trace::Event>| {
                event
                    .as_ref()
                    .map_or("(trace ended)".to_string(), ToString::to_string)
            };
            let _ = write!(
                out,
                "<div id=\"divergence\">first divergence at event {}\n  first run:  {}\n  second run: {}</div>",
                divergence.index,
                escape(&show(&divergence.left)),
                escape(&show(&divergence.right))
            );
            json!({ "index": divergence.index })
        }
        None => {
            out.push_str("<div id=\"divergence\">the two runs are identical: no divergence</div>");
            json!({ "index": -1 })
        }
    });
    out.push_str(
        "<div id=\"controls\"><button id=\"zoom-in\" title=\"zoom in (+)\">+</button>\
         <button id=\"zoom-out\" title=\"zoom out (-)\">−</button><button id=\"reset\">whole run</button>\
         <label><input type=\"checkbox\" id=\"fold\"> fold idle stretches</label>\
         <span class=\"hint\">wheel: zoom · drag: pan · click: its trace line</span></div><div id=\"legend\">",
    );
    for (colour, text) in LEGEND {
        let _ = write!(
            out,
            "<span><i style=\"background:{colour}\"></i>{text}</span>"
        );
    }
    out.push_str("</div><div id=\"views\" class=\"view\">");
    for (index, _) in runs.iter().enumerate() {
        if runs.len() > 1 {
            let _ = write!(
                out,
                "<div class=\"run-title\">{}</div>",
                labels[index.min(1)]
            );
        }
        let _ = write!(out, "<div id=\"run{index}\"></div>");
    }
    out.push_str(
        "</div><div id=\"detail-box\"><pre id=\"detail\">Click a task, packet, mark or band for its trace line.</pre></div><div id=\"errors\"></div>",
    );
    let data = json!({
        "runs": runs.iter().map(|run| run.data()).collect::<Vec<_>>(),
        "diff": diff_value,
    });
    let _ = writeln!(
        out,
        "<script type=\"application/json\" id=\"roof-data\">{}</script><script>{SCRIPT}</script></body></html>",
        script_json(&data)
    );
    out
}
