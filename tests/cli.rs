//! The `roof` command line, run as a user would: output lines and exit codes.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

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

/// Run `roof` with a deadline: a hang is a failure too. (The wall clock only bounds the wait
/// for a child process; nothing is timed.)
#[allow(clippy::disallowed_methods)]
fn roof_within(args: &[&str], deadline: Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_roof"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run roof");
    let started = Instant::now();
    while child.try_wait().expect("wait for roof").is_none() {
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("roof {args:?} still running after {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("roof's output")
}

/// Malformed invocations: each is a clean usage error (exit 2, clap's whole message on
/// stderr, nothing on stdout), never a panic, an abort or a hang. The first ones crashed or
/// hung roof before.
const MALFORMED: &[&[&str]] = &[
    &["run", "gather", "--choices", "18446744073709551615z"],
    &["run", "gather", "--choices", "1000000000000z"],
    &["run", "gather", "--pct", "4294967295"],
    &["run", "gather", "--choices", "9999999z,9999999z"],
    &["run", "gather", "--choices", "1,x"],
    &["run", "gather", "--choices", "qz"],
    &["run", "gather", "--choices", "-1"],
    &["run", "gather", "--choices", "4294967296"],
    &["run", "gather", "--choices", ",,"],
    &["run", "gather", "--seed", "abc"],
    &["run", "gather", "--seed", "-1"],
    &["run", "gather", "--seed", "18446744073709551616"],
    &["run", "gather", "--seed", ""],
    &["run", "gather", "--seed", "1.5"],
    &["run", "gather", "--seed"],
    &["run", "no-such-scenario"],
    &["run", "gathr"],
    &["run", ""],
    &["run"],
    &["run", "gather", "extra"],
    &["run", "gather", "--no-such-flag"],
    &["run", "gather", "--pct", "0"],
    &["run", "gather", "--pct", "1001"],
    &["run", "gather", "--pct", "-3"],
    &["run", "gather", "--pct", "x"],
    &["run", "gather", "--pct"],
    &["run", "gather", "--fifo", "--pct", "2"],
    &["run", "gather", "--trace=yes"],
    &["run", "gather", "--json", "--json"],
    &["rn", "gather"],
    &["swep", "gather"],
    &["--no-such-flag"],
    &[""],
    &["sweep"],
    &["sweep", "nope"],
    &["sweep", "gather", "--seeds", "5..2"],
    &["sweep", "gather", "--seeds", "x..3"],
    &["sweep", "gather", "--seeds", "3..3"],
    &["sweep", "gather", "--seeds", "0"],
    &["sweep", "gather", "--seeds", ".."],
    &["sweep", "gather", "--seeds", "1..2..3"],
    &["sweep", "gather", "--seeds", "-5..5"],
    &["sweep", "gather", "--seeds", "0..18446744073709551616"],
    &["sweep", "gather", "--seeds", "18446744073709551616"],
    &["sweep", "gather", "--seeds", ""],
    &["sweep", "gather", "--shard", "4/3"],
    &["sweep", "gather", "--shard", "0/3"],
    &["sweep", "gather", "--shard", "1/0"],
    &["sweep", "gather", "--shard", "3"],
    &["sweep", "gather", "--shard", "a/b"],
    &["sweep", "gather", "--shard", "1/18446744073709551616"],
    &["sweep", "gather", "--shard", "/"],
    &["sweep", "gather", "--jobs", "zero"],
    &["sweep", "gather", "--jobs", "0"],
    &["sweep", "gather", "--jobs", "1025"],
    &["sweep", "gather", "--jobs", "18446744073709551615"],
    &["sweep", "gather", "--jobs", "-1"],
    &["sweep", "gather", "--pct", "0"],
    &["sweep", "gather", "--pct", "4294967295"],
    &["sweep", "gather", "--failures"],
    &["sweep", "gather", "--failures", "/no-such-dir/failures.txt"],
    &["sweep", "gather", "--failures", ""],
    &["shrink", "config-race"],
    &["shrink", "config-race", "--seed", "x"],
    &["shrink", "config-race", "--seed", "0", "--budget", "0"],
    &[
        "shrink",
        "config-race",
        "--seed",
        "0",
        "--budget",
        "18446744073709551615",
    ],
    &[
        "shrink",
        "config-race",
        "--seed",
        "0",
        "--budget",
        "10000001",
    ],
    &["shrink", "nope", "--seed", "0"],
    &["sweep", "bank", "--exhaustive", "9"],
    &["sweep", "bank", "--exhaustive", "1", "--fifo"],
    &["sweep", "bank", "--schedules-max", "5"],
    &["run", "http-get", "--keep-faults", "0"],
    &["run", "http-get", "--faults", "2s", "--keep-faults", "x"],
    &["run", "http-get", "--faults", "0s"],
    &["shrink", "http-get", "--seed", "7", "--faults", "forever"],
    &["list", "extra"],
    &["client", "--count", "0"],
    &["client", "--count", "4294967296"],
    &["client", "--count", "1000001"],
    &["client", "--message", ""],
    &["client", "--timeout", "0s"],
    &["client", "--timeout", "forever"],
    &["client", "--timeout", "10"],
    &["client", "--timeout", "3days"],
    &["client", "--timeout", "-1s"],
    &["client", "--nope"],
    &["serve", "--nope"],
    &["serve", "extra"],
];

#[test]
fn malformed_invocations_are_clean_usage_errors() {
    for args in MALFORMED {
        let output = roof_within(args, Duration::from_secs(20));
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
        assert!(message.starts_with("error: "), "{args:?}: {message}");
        assert!(!message.contains("panicked"), "{args:?}: {message}");
        assert!(stdout(&output).is_empty(), "{args:?}: {}", stdout(&output));
    }
    // The message is clap's whole one: what is wrong, how to call it, and what was meant.
    let missing = stderr(&roof(&["run"]));
    assert!(
        missing.contains("<SCENARIO>") && missing.contains("Usage: roof run"),
        "{missing}"
    );
    let typo = stderr(&roof(&["run", "gathr"]));
    assert!(typo.contains("a similar value exists: 'gather'"), "{typo}");
    let subcommand = stderr(&roof(&["swep", "gather"]));
    assert!(subcommand.contains("'sweep'"), "{subcommand}");
    let limit = stderr(&roof(&["run", "gather", "--pct", "4294967295"]));
    assert!(limit.contains("from 1 to 1000"), "{limit}");
    let choices = stderr(&roof(&[
        "run",
        "gather",
        "--choices",
        "18446744073709551615z",
    ]));
    assert!(choices.contains("more than 10000000 choices"), "{choices}");
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["--version"],
        &["help", "sweep"],
    ] {
        let output = roof(args);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(!stdout(&output).is_empty(), "{args:?}");
    }
}

/// A closed stdout (`roof ... | head`) ends roof quietly, as coreutils end (141, the status
/// of a process SIGPIPE ended), where it used to panic.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_roof_quietly() {
    for args in [
        &["list"][..],
        &["run", "yell-echo", "--trace"],
        &["run", "gather", "--json"],
        &["sweep", "kv-store", "--seeds", "0..50"],
        &["shrink", "config-race", "--seed", "0"],
        &["--help"],
    ] {
        let (reader, writer) = rustix::pipe::pipe().expect("a pipe");
        drop(reader);
        let output = Command::new(env!("CARGO_BIN_EXE_roof"))
            .args(args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run roof");
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(141), "{args:?}: {message}");
        assert!(!message.contains("panicked"), "{args:?}: {message}");
        assert!(!message.contains("Broken pipe"), "{args:?}: {message}");
    }
}

#[test]
fn a_random_seed_with_json_prints_only_json_on_stdout() {
    let output = roof(&["run", "add-42", "--seed", "random", "--json"]);
    assert_eq!(output.status.code(), Some(0));
    let value: serde_json::Value = serde_json::from_str(stdout(&output).trim()).unwrap();
    let seed = value["seed"].as_u64().unwrap();
    assert_eq!(
        stderr(&output).trim(),
        format!("seed: {seed} (drawn with --seed random)")
    );
}

#[test]
fn a_shard_without_seeds_says_so_and_huge_ranges_stream() {
    let empty = roof(&["sweep", "gather", "--seeds", "0..3", "--shard", "4/4"]);
    assert_eq!(empty.status.code(), Some(0));
    assert!(
        stderr(&empty).contains("shard 4/4 of seeds 0..3 holds no seed"),
        "{}",
        stderr(&empty)
    );
    assert!(
        stdout(&empty).contains(": 0 run, 0 passed, 0 failed"),
        "{}",
        stdout(&empty)
    );
    // A range too large to list, sharded so finely that the shard holds ten seeds: computed,
    // not filtered (this hung).
    let huge = roof_within(
        &[
            "sweep",
            "gather",
            "--seeds",
            "0..99999999999999",
            "--shard",
            "1/10000000000000",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(huge.status.code(), Some(0), "{}", stderr(&huge));
    assert!(
        stdout(&huge).contains(": 10 run, 10 passed"),
        "{}",
        stdout(&huge)
    );
}

/// Ctrl-C stops a sweep of any size (this one would take longer than the universe), prints
/// the summary of what ran, and exits 130.
#[cfg(unix)]
#[test]
// Waits a little for the child process to start its sweep; nothing is timed.
#[allow(clippy::disallowed_methods)]
fn ctrl_c_ends_a_sweep_with_its_summary_and_status_130() {
    for seeds in ["18446744073709551615", "0..99999999999999"] {
        let child = Command::new(env!("CARGO_BIN_EXE_roof"))
            .args(["sweep", "gather", "--seeds", seeds, "--jobs", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run roof");
        std::thread::sleep(Duration::from_millis(700));
        let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("a pid");
        rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
        let output = child.wait_with_output().expect("roof's output");
        let text = stdout(&output);
        assert_eq!(output.status.code(), Some(130), "{text}{}", stderr(&output));
        let summary = text.lines().last().unwrap();
        assert!(summary.starts_with("sweep gather seeds "), "{summary}");
        assert!(
            summary.contains(" run, ") && summary.contains(", interrupted after "),
            "{summary}"
        );
    }
}

/// Every failing seed is reported: all in the final list, and all in --failures FILE, as
/// they are found (the file streams; the list in memory is bounded).
#[test]
fn a_sweep_reports_every_failing_seed_and_writes_them_to_a_file() {
    let path = std::env::temp_dir().join(format!("roof-failures-{}.txt", std::process::id()));
    let output = roof(&[
        "sweep",
        "kv-store",
        "--seeds",
        "0..400",
        "--jobs",
        "2",
        "--failures",
        path.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let text = stdout(&output);
    let listed: Vec<u64> = text
        .lines()
        .filter_map(|line| line.strip_prefix("failed seed "))
        .map(|rest| rest.split(':').next().unwrap().parse().unwrap())
        .collect();
    let summary = text.lines().last().unwrap();
    assert!(
        summary.contains(&format!("{} failed", listed.len())),
        "{summary}"
    );
    assert!(
        listed.len() > 20,
        "more than the live ones: {}",
        listed.len()
    );
    assert!(
        listed.windows(2).all(|pair| pair[0] < pair[1]),
        "sorted: {listed:?}"
    );
    let file = std::fs::read_to_string(&path).unwrap();
    let mut in_file: Vec<u64> = file
        .lines()
        .map(|line| {
            let replay = line.split(" # ").next().unwrap();
            replay.rsplit(' ').next().unwrap().parse().unwrap()
        })
        .collect();
    in_file.sort_unstable();
    assert_eq!(in_file, listed, "the file holds every failing seed");
    assert!(
        file.lines()
            .all(|line| line.starts_with("roof run kv-store --seed ")),
        "{file}"
    );
    assert!(
        text.contains(&format!("every failing seed is in {}", path.display())),
        "{text}"
    );
    std::fs::remove_file(&path).unwrap();
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
        assert!(
            text.contains(&format!("--features real-net -- {command}")),
            "{text}"
        );
    }
}

#[test]
fn sweep_exhaustive_finds_the_fewest_deviations_and_says_when_all_schedules_pass() {
    let found = roof(&["sweep", "bank", "--seeds", "0..3", "--exhaustive", "1"]);
    assert_eq!(found.status.code(), Some(1), "{}", stderr(&found));
    let text = stdout(&found);
    assert!(
        text.contains("1 deviations from FIFO, the fewest"),
        "{text}"
    );
    let replay = text
        .lines()
        .find_map(|line| line.strip_prefix("replay: roof "))
        .expect(&text);
    let headline = text.lines().next().unwrap();
    let reason = headline.split_once("failed: ").unwrap().1;
    let words: Vec<&str> = replay.split_whitespace().collect();
    let replayed = roof(&words);
    assert_eq!(replayed.status.code(), Some(1));
    assert!(stdout(&replayed).contains(reason), "{}", stdout(&replayed));

    let passed = roof(&[
        "sweep",
        "bank-fixed",
        "--seeds",
        "0..2",
        "--exhaustive",
        "1",
    ]);
    assert_eq!(passed.status.code(), Some(0), "{}", stderr(&passed));
    assert!(
        stdout(&passed).contains("no failure in all"),
        "{}",
        stdout(&passed)
    );
    let capped = roof(&[
        "sweep",
        "bank-fixed",
        "--seeds",
        "0..2",
        "--exhaustive",
        "2",
        "--schedules-max",
        "5",
    ]);
    assert_eq!(capped.status.code(), Some(0));
    assert!(
        stdout(&capped).contains("stopped at the cap"),
        "{}",
        stdout(&capped)
    );
}

#[test]
fn shrink_is_proven_minimal_for_every_planted_bug() {
    for (scenario, seed) in [("config-race", "3"), ("bank", "1")] {
        let output = roof(&["shrink", scenario, "--seed", seed]);
        let text = stdout(&output);
        assert!(
            text.contains("shrunk: ") && text.contains(", 1 deviations from FIFO, proven minimal"),
            "{scenario}: {text}"
        );
    }
}

#[test]
fn sweep_with_faults_lists_failing_seeds_whose_replay_line_fails_the_same_way() {
    let output = roof(&["sweep", "http-get", "--seeds", "0..20", "--faults", "2s"]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let text = format!("{}{}", stdout(&output), stderr(&output));
    let replay = text
        .lines()
        .find_map(|line| {
            line.split_once("roof run ")
                .map(|(_, rest)| format!("run {rest}"))
        })
        .expect(&text);
    assert!(replay.contains("--faults 2s"), "{replay}");
    let words: Vec<&str> = replay
        .split_whitespace()
        .take_while(|word| *word != "#")
        .collect();
    let replayed = roof(&words);
    assert_eq!(replayed.status.code(), Some(1), "{}", stdout(&replayed));
    assert!(
        stdout(&replayed).contains("fault-plan: #0"),
        "{}",
        stdout(&replayed)
    );
}

#[test]
fn shrink_with_faults_keeps_the_faults_that_matter_and_its_line_replays() {
    let output = roof(&["shrink", "http-get", "--seed", "7", "--faults", "2s"]);
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{text}{}", stderr(&output));
    assert!(
        text.contains("faults that matter: 1 of ") && text.contains(": #0 Crash example.com"),
        "{text}"
    );
    let failure = text
        .lines()
        .find_map(|line| line.strip_prefix("failure: "))
        .unwrap()
        .to_string();
    let replay = text
        .lines()
        .find_map(|line| line.strip_prefix("replay: roof "))
        .expect(&text);
    assert!(replay.contains("--faults 2s --keep-faults 0"), "{replay}");
    let words: Vec<&str> = replay.split_whitespace().collect();
    let replayed = roof(&words);
    assert_eq!(replayed.status.code(), Some(1));
    let out = stdout(&replayed);
    assert!(out.contains(&format!("failed: {failure}")), "{out}");
    assert!(out.contains("faults-kept: #0\n"), "{out}");
    let fired = out
        .lines()
        .find_map(|line| line.strip_prefix("faults-fired: "))
        .unwrap();
    assert_eq!(
        fired.matches(" at ").count(),
        1,
        "only the crash kept ran: {out}"
    );
}

#[test]
fn run_writes_a_timeline_page_and_a_perfetto_trace() {
    let dir = std::env::temp_dir().join(format!("roof-cli-timeline-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (page, trace) = (dir.join("run.html"), dir.join("trace.json"));
    let output = roof(&[
        "run",
        "yell-echo",
        "--seed",
        "2",
        "--timeline",
        page.to_str().unwrap(),
        "--perfetto",
        trace.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains(&format!("timeline: {}", page.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!("perfetto: {}", trace.display())),
        "{text}"
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("seed <b>2</b>"));
    assert!(
        !html.contains("<script src") && !html.contains("<link"),
        "everything inline"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    assert!(json["traceEvents"].as_array().unwrap().len() > 100);
    // The same seed, the same page, byte for byte.
    let again = dir.join("again.html");
    roof(&[
        "run",
        "yell-echo",
        "--seed",
        "2",
        "--timeline",
        again.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read(&again).unwrap(), html.as_bytes());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_page_that_cannot_be_written_is_a_usage_error() {
    let output = roof(&["run", "gather", "--timeline", "/nonexistent-dir/run.html"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("cannot write the timeline to /nonexistent-dir/run.html"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn diff_draws_a_failing_seed_beside_its_shrunk_replay() {
    let dir = std::env::temp_dir().join(format!("roof-cli-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("diff.html");
    let output = roof(&[
        "diff",
        "bank",
        "--seed",
        "1",
        "--timeline",
        page.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("second run (shrunk replay): seed 1 failed"),
        "{text}"
    );
    assert!(text.contains("traces diverge at event"), "{text}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("first divergence at event"));
    // A passing seed is run twice: a determinism check, identical.
    let output = roof(&[
        "diff",
        "gather",
        "--seed",
        "3",
        "--timeline",
        page.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    assert!(
        stdout(&output).contains("the runs are identical"),
        "{}",
        stdout(&output)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
