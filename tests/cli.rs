//! The `roof` command line, run as a user would: output lines and exit codes.

use std::process::{Command, Output};

fn roof(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_roof"))
        .args(args)
        .output()
        .expect("run roof")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn list_names_every_scenario() {
    let output = roof(&["list"]);
    assert_eq!(output.status.code(), Some(0));
    let text = stdout(&output);
    for name in [
        "hello-world",
        "add-42",
        "gather",
        "call-later",
        "yell-echo",
        "echo-ping-pong",
        "http-get",
        "kv-store",
        "config-race",
    ] {
        assert!(text.lines().any(|line| line.starts_with(name)), "{text}");
    }
}

#[test]
fn run_prints_output_then_seed_time_and_hash() {
    let output = roof(&["run", "gather", "--fifo", "--seed", "12"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..3],
        ["hello world!", "hello Python!", "[None, None]"]
    );
    assert_eq!(lines[3], "seed: 12");
    assert_eq!(lines[4], "virtual-time: 0.100000000s");
    assert!(
        lines[5].starts_with("trace-hash: ") && lines[5].len() == "trace-hash: ".len() + 16,
        "{text}"
    );
    assert_eq!(
        roof(&["run", "gather", "--fifo", "--seed", "12"]).stdout,
        output.stdout
    );
}

#[test]
fn run_trace_and_json() {
    let traced = stdout(&roof(&["run", "call-later", "--trace"]));
    assert!(traced.contains("5.000000000s print #"), "{traced}");
    let json = stdout(&roof(&["run", "add-42", "--json", "--trace"]));
    let value: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(value["passed"], true);
    assert_eq!(value["output"], "hello world!\nAdding 42\n65\n");
    assert!(value["trace"].as_array().unwrap().len() > 3);
}

#[test]
fn random_seed_is_printed_before_the_run() {
    let text = stdout(&roof(&["run", "add-42", "--seed", "random"]));
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("seed: ") && first.ends_with("(drawn with --seed random)"),
        "{text}"
    );
}

#[test]
fn sweep_summarises() {
    let output = roof(&["sweep", "gather", "--seeds", "0..200"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let summary = text.lines().last().unwrap();
    assert!(
        summary.starts_with("sweep gather seeds 0..200: 200 run, 200 passed, 0 failed, "),
        "{summary}"
    );
    assert!(summary.ends_with(" seeds/s"), "{summary}");
}

#[test]
fn bad_usage_is_one_line_and_exit_2() {
    for args in [
        &["run", "gather", "--seed", "abc"][..],
        &["run", "no-such-scenario"],
        &["sweep", "gather", "--seeds", "5..2"],
        &["sweep", "gather", "--seeds", "x..3"],
        &["run", "gather", "--no-such-flag"],
        &["run", "gather", "--pct", "0"],
    ] {
        let output = roof(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "{args:?}: {message}");
        assert!(message.starts_with("error: "), "{args:?}: {message}");
        assert!(stdout(&output).is_empty(), "{args:?}");
    }
}

#[test]
fn a_sweep_with_failing_seeds_lists_them_with_replay_commands_and_exits_1() {
    let output = roof(&["sweep", "kv-store", "--seeds", "0..100"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = stdout(&output);
    let replays: Vec<&str> = text
        .lines()
        .filter(|line| line.starts_with("failed seed "))
        .collect();
    assert!(!replays.is_empty(), "{text}");
    let seed = replays[0]
        .split_whitespace()
        .nth(2)
        .unwrap()
        .trim_end_matches(':');
    assert!(
        replays[0].ends_with(&format!("replay: roof run kv-store --seed {seed}")),
        "{}",
        replays[0]
    );
    let summary = text.lines().last().unwrap();
    assert!(
        summary.contains(&format!("{} failed", replays.len())),
        "{summary}"
    );
    // The replay command fails the same way.
    let replay = roof(&["run", "kv-store", "--seed", seed]);
    assert_eq!(replay.status.code(), Some(1));
    assert!(
        stdout(&replay).contains("failed: scenario failed"),
        "{}",
        stdout(&replay)
    );
}

#[test]
fn shrink_prints_a_token_that_run_replays() {
    let output = roof(&["shrink", "config-race", "--seed", "0"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    let original: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("original: "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let shrunk: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("shrunk: "))
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(shrunk * 10 <= original, "{text}");
    let token = text
        .lines()
        .find_map(|l| l.strip_prefix("token: "))
        .unwrap();
    let replay = roof(&["run", "config-race", "--seed", "0", "--choices", token]);
    assert_eq!(
        replay.status.code(),
        Some(1),
        "the shrunk choices still fail"
    );
    let fifo = roof(&["run", "config-race", "--seed", "0", "--choices", "-"]);
    assert_eq!(fifo.status.code(), Some(0), "no deviations: FIFO passes");
    let bad = roof(&["run", "config-race", "--choices", "1,x"]);
    assert_eq!(bad.status.code(), Some(2));
    let passing = roof(&["shrink", "gather", "--seed", "1"]);
    assert_eq!(passing.status.code(), Some(1));
}

#[test]
fn shards_are_disjoint_and_cover_the_range_and_jobs_agree() {
    let failing = |args: &[&str]| -> Vec<u64> {
        let output = roof(args);
        stdout(&output)
            .lines()
            .filter_map(|line| line.strip_prefix("failed seed "))
            .map(|rest| rest.split(':').next().unwrap().parse().unwrap())
            .collect()
    };
    let all = failing(&["sweep", "config-race", "--seeds", "0..60"]);
    let mut sharded = Vec::new();
    for shard in ["1/3", "2/3", "3/3"] {
        sharded.extend(failing(&[
            "sweep",
            "config-race",
            "--seeds",
            "0..60",
            "--shard",
            shard,
            "--jobs",
            "2",
        ]));
    }
    sharded.sort();
    assert_eq!(sharded, all);
    let summary = stdout(&roof(&[
        "sweep", "gather", "--seeds", "0..10", "--shard", "2/3",
    ]));
    assert!(
        summary
            .lines()
            .last()
            .unwrap()
            .starts_with("sweep gather seeds 0..10 shard 2/3: 3 run"),
        "{summary}"
    );
    for args in [
        &["sweep", "gather", "--shard", "4/3"][..],
        &["sweep", "gather", "--jobs", "zero"],
    ] {
        let output = roof(args);
        assert_eq!(output.status.code(), Some(2));
        assert_eq!(stderr(&output).lines().count(), 1);
    }
}

#[test]
fn sweep_checks_determinism() {
    let output = roof(&[
        "sweep",
        "http-get",
        "--seeds",
        "0..30",
        "--check-determinism",
        "--jobs",
        "2",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
}

#[cfg(not(feature = "real-net"))]
#[test]
fn serve_and_client_say_how_to_enable_real_sockets() {
    for command in ["serve", "client"] {
        let output = roof(&[command]);
        assert_eq!(output.status.code(), Some(2), "{command}");
        let text = stderr(&output);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains(&format!("--features real-net -- {command}")),
            "{text}"
        );
    }
}
