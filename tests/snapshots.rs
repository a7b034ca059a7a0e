//! Trace snapshots of pinned seeds, kept in the top-level `snapshots/` folder.

use roof::{Policy, TraceMode};

use crate::sim;

fn snapshot(name: &str, text: &str) {
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"),
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, text);
    });
}

fn trace_of(scenario: &str, config: roof::Config) -> String {
    let report = sim::run(
        sim::find(scenario).unwrap(),
        config.trace(TraceMode::Record),
    );
    let mut text = report.trace.as_ref().unwrap().render();
    text.push_str(&format!("trace-hash: {}\n", report.trace_hash_hex()));
    text
}

#[test]
fn scenario_traces_for_pinned_seeds() {
    for scenario in ["hello-world", "add-42", "gather", "call-later", "yell-echo"] {
        for seed in [0u64, 7] {
            let name = format!("{scenario}-seed-{seed}");
            snapshot(&name, &trace_of(scenario, crate::quiet(seed)));
        }
        let name = format!("{scenario}-fifo");
        snapshot(
            &name,
            &trace_of(scenario, crate::quiet(0).policy(Policy::Fifo)),
        );
    }
}
