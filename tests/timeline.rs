//! The timeline: the page model on pinned traces (lanes, arrows, bands, failure), the data
//! section pinned by a snapshot, the Perfetto export's structure, determinism, and size.

use std::time::Duration;

use roof::io::{AsyncReadExt, AsyncWriteExt};
use roof::net::{LinkFault, TcpListener, TcpStream, UdpSocket};
use roof::timeline::model::{BandKind, Ending, Fate, MarkKind};
use roof::timeline::{diff_html, Timeline};
use roof::trace::{EventKind, PacketOp};
use roof::{Config, EventLoop, Policy, Report, TraceMode};

use crate::sim;

fn recorded(name: &str, seed: u64) -> Report {
    let scenario = sim::find(name).unwrap();
    sim::run(
        scenario,
        Config::new(seed).trace(TraceMode::Record).echo(false),
    )
}

/// The first seed of `name` that fails.
pub(crate) fn first_failing(name: &str) -> u64 {
    (0..200)
        .find(|&seed| !recorded(name, seed).passed())
        .expect("a planted bug shows within 200 seeds")
}

fn count(report: &Report, wanted: impl Fn(&EventKind) -> bool) -> usize {
    let trace = report.trace.as_ref().unwrap();
    trace
        .events
        .iter()
        .filter(|event| wanted(&event.kind))
        .count()
}

#[test]
fn yell_echo_has_a_lane_per_host_and_an_arrow_per_packet() {
    let report = recorded("yell-echo", 0);
    let timeline = Timeline::of_report(&report).unwrap();
    let model = timeline.model();
    let hosts: Vec<&str> = model.hosts.iter().map(|lane| lane.name.as_str()).collect();
    assert_eq!(hosts, ["server", "nc-1", "nc-2", "nc-3", "main"]);
    let sends = count(&report, |kind| matches!(kind, EventKind::Send { .. }));
    let delivered = count(&report, |kind| {
        matches!(
            kind,
            EventKind::Packet {
                op: PacketOp::Deliver,
                ..
            }
        )
    });
    assert!(delivered > 20, "{delivered}");
    assert_eq!(model.arrows.len(), sends);
    let fates = |fate| {
        model
            .arrows
            .iter()
            .filter(|arrow| arrow.fate == fate)
            .count()
    };
    assert_eq!(fates(Fate::Delivered), delivered);
    let events = &timeline.trace().events;
    for arrow in &model.arrows {
        let EventKind::Send { from, to, .. } = &events[arrow.send].kind else {
            panic!("arrow {arrow:?} starts at a send");
        };
        assert_eq!(
            (&model.hosts[arrow.from].name, &model.hosts[arrow.to].name),
            (from, to)
        );
        if let Some(end) = arrow.end {
            assert!(end > arrow.send && events[end].time_ns >= events[arrow.send].time_ns);
        }
    }
    // Every segment the server's connection tasks read was woken for them: the arrows of
    // data toward the server end on a connection task's row.
    let to_server = model
        .arrows
        .iter()
        .filter(|arrow| model.hosts[arrow.to].name == "server" && arrow.what.ends_with("bytes"));
    for arrow in to_server {
        let reader = model.task(arrow.reader.expect("a reader")).unwrap();
        assert_eq!(reader.name, "connection", "{arrow:?}");
    }
    // Tasks: spawn to end, polls inside; the clients complete.
    for task in &model.tasks {
        assert!(
            matches!(&events[task.spawn].kind, EventKind::Spawn { task: id, .. } if id.as_u64() == task.id)
        );
        for &poll in &task.polls {
            assert!(poll > task.spawn && task.end.is_none_or(|end| poll < end));
        }
    }
    for client in ["nc-1", "nc-2", "nc-3"] {
        let task = model.tasks.iter().find(|task| task.name == client).unwrap();
        assert_eq!(task.ending, Ending::Complete, "{client}");
        assert_eq!(model.hosts[task.host].name, client);
    }
    let printed = model
        .marks
        .iter()
        .filter(|mark| mark.kind == MarkKind::Print)
        .count();
    assert_eq!(printed, report.output.lines().count());
    assert!(model.failure.is_none());
}

#[test]
fn a_failing_seed_is_marked_where_it_failed() {
    let seed = first_failing("kv-store");
    let report = recorded("kv-store", seed);
    let timeline = Timeline::of_report(&report).unwrap();
    let failure = timeline.model().failure.as_ref().expect("a failure mark");
    assert_eq!(
        failure.text,
        report.outcome.as_ref().unwrap_err().to_string()
    );
    let failed_at = match report.outcome.as_ref().unwrap_err() {
        roof::Failure::Error { time, .. } => time.as_nanos(),
        other => panic!("kv-store fails with an error, not {other:?}"),
    };
    let event = &timeline.trace().events[failure.event];
    assert!(event.time_ns <= failed_at, "{event} after {failed_at}");
    assert!(timeline.header().failed);
    assert_eq!(timeline.header().seed, Some(seed));
}

/// An echo server on port 7, a task per connection.
async fn echo_on_port_7() {
    let listener = TcpListener::bind("0.0.0.0:7").await.unwrap();
    while let Ok((mut stream, _)) = listener.accept().await {
        roof::spawn(async move {
            let mut buf = [0u8; 256];
            while let Ok(n @ 1..) = stream.read(&mut buf).await {
                if stream.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        })
        .detach();
    }
}

/// A program that meets every fault a band draws: a partition (held segments, a dropped
/// datagram), a clog, a degraded link, and a crash with its restart.
fn faulted_run(seed: u64) -> Report {
    let lp = EventLoop::with_config(Config::new(seed).trace(TraceMode::Record).echo(false));
    lp.host("server", || async {
        let udp = UdpSocket::bind("0.0.0.0:9").await.unwrap();
        roof::spawn(async move {
            let mut buf = [0u8; 64];
            while udp.recv_from(&mut buf).await.is_ok() {}
        })
        .detach();
        echo_on_port_7().await;
    })
    .unwrap();
    lp.run_until_complete(async {
        let handle = roof::get_running_loop();
        let udp = UdpSocket::bind("0.0.0.0:0").await.unwrap();
        let mut stream = TcpStream::connect("server:7").await.unwrap();
        let mut buf = [0u8; 64];
        let ms = Duration::from_millis;
        handle.partition("main", "server").unwrap();
        stream.write_all(b"held").await.unwrap();
        udp.send_to(b"cut", "server:9").await.unwrap();
        roof::sleep(ms(20)).await;
        handle.heal("main", "server").unwrap();
        let _ = stream.read(&mut buf).await;
        handle.clog("server").unwrap();
        roof::sleep(ms(10)).await;
        handle.unclog("server").unwrap();
        let spike = handle
            .degrade_link("main", "server", LinkFault::default().latency(ms(30)))
            .unwrap();
        stream.write_all(b"slow").await.unwrap();
        let _ = stream.read(&mut buf).await;
        handle.restore_link(spike);
        handle.crash("server").unwrap();
        roof::sleep(ms(10)).await;
        handle.restart("server").unwrap();
        roof::sleep(ms(10)).await;
    })
    .unwrap();
    lp.report()
}

#[test]
fn faults_become_bands_over_the_lanes_they_hit() {
    let report = faulted_run(3);
    let timeline = Timeline::of_report(&report).unwrap();
    let model = timeline.model();
    let lane = |name: &str| {
        model
            .hosts
            .iter()
            .position(|lane| lane.name == name)
            .unwrap()
    };
    let (main, server) = (lane("main"), lane("server"));
    let kinds: Vec<(BandKind, Vec<usize>)> = model
        .bands
        .iter()
        .map(|band| (band.kind, band.hosts.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (BandKind::Partition, vec![main, server]),
            (BandKind::Partition, vec![server, main]),
            (BandKind::Clog, vec![server]),
            (BandKind::Degrade, vec![main, server]),
            (BandKind::Crash, vec![server]),
        ]
    );
    let events = &timeline.trace().events;
    for band in &model.bands {
        let end = band.end.expect("every fault here ends");
        assert!(end > band.start);
        let text = |index: usize| events[index].to_string();
        assert!(text(band.start).contains(&band.label), "{}", band.label);
        assert!(text(end).contains(" fault "), "{}", text(end));
    }
    // The segment sent into the partition was held and then delivered; the datagram was
    // dropped on the cut link.
    let held = model
        .arrows
        .iter()
        .find(|arrow| arrow.held)
        .expect("a held segment");
    assert_eq!(
        (held.fate, held.what.as_str()),
        (Fate::Delivered, "4 bytes")
    );
    let heal = model.bands[0].end.unwrap();
    assert!(held.end.unwrap() > heal, "delivered after the heal");
    let datagram = model
        .arrows
        .iter()
        .find(|arrow| arrow.conn.is_none())
        .expect("the datagram");
    assert_eq!(datagram.fate, Fate::Dropped);
    // The crash cancelled the server's tasks.
    let cancelled = model
        .tasks
        .iter()
        .filter(|task| task.host == server && task.ending == Ending::Cancel)
        .count();
    assert!(cancelled >= 2, "{cancelled}");
}

/// The data section, one item per line under each key: what the page draws, pinned.
fn readable(data: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(data).unwrap();
    let mut out = String::new();
    for (key, value) in value.as_object().unwrap() {
        match (key.as_str(), value) {
            ("events", value) => {
                for part in ["shapes", "rows"] {
                    out.push_str(&format!("{key}.{part}:\n"));
                    for item in value[part].as_array().unwrap() {
                        out.push_str(&format!("  {item}\n"));
                    }
                }
            }
            (_, serde_json::Value::Array(items)) => {
                out.push_str(&format!("{key}:\n"));
                for item in items {
                    out.push_str(&format!("  {item}\n"));
                }
            }
            (_, value) => out.push_str(&format!("{key}: {value}\n")),
        }
    }
    out
}

#[test]
fn the_page_data_of_a_pinned_failing_seed() {
    let report = recorded("kv-store", 4);
    assert!(!report.passed(), "kv-store seed 4 fails");
    let data = Timeline::of_report(&report)
        .unwrap()
        .title("kv-store")
        .data_json();
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"),
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!("timeline-kv-store-seed-4", readable(&data));
    });
}

#[test]
fn the_page_gives_back_every_trace_line() {
    for (name, seed) in [
        ("yell-echo", 7),
        ("kv-store", 4),
        ("call-later", 0),
        ("bank", 1),
    ] {
        let timeline = Timeline::of_report(&recorded(name, seed)).unwrap();
        let lines: Vec<String> = timeline
            .trace()
            .events
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(timeline.page_lines(), lines, "{name} seed {seed}");
    }
    let timeline = Timeline::of_report(&faulted_run(5)).unwrap();
    let lines: Vec<String> = timeline
        .trace()
        .events
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(timeline.page_lines(), lines, "the faulted run");
}

#[test]
fn the_same_seed_gives_a_byte_identical_page() {
    let page = |seed| {
        Timeline::of_report(&recorded("yell-echo", seed))
            .unwrap()
            .to_html()
    };
    assert_eq!(page(3), page(3));
    assert_ne!(page(3), page(4));
    let perfetto = |seed| {
        Timeline::of_report(&recorded("http-get", seed))
            .unwrap()
            .to_perfetto()
    };
    assert_eq!(perfetto(2), perfetto(2));
    let diff = || {
        let first = Timeline::of_report(&recorded("kv-store", 4)).unwrap();
        let second = Timeline::of_report(&recorded("kv-store", 5)).unwrap();
        diff_html(&first, &second)
    };
    assert_eq!(diff(), diff());
}

#[test]
fn a_diff_page_names_the_first_divergence() {
    let first = Timeline::of_report(&recorded("bank", 1)).unwrap();
    let fifo = sim::run(
        sim::find("bank").unwrap(),
        Config::new(1)
            .policy(Policy::Fifo)
            .trace(TraceMode::Record)
            .echo(false),
    );
    let second = Timeline::of_report(&fifo).unwrap();
    let divergence = first.trace().first_divergence(second.trace()).unwrap();
    let page = diff_html(&first, &second);
    assert!(page.contains(&format!("first divergence at event {}", divergence.index)));
    assert!(
        page.contains("\"diff\":{\"index\":"),
        "the script knows where"
    );
    let same = diff_html(&first, &first);
    assert!(same.contains("the two runs are identical"));
}

/// Chrome's Trace Event Format, as its document specifies it: an object with `traceEvents`,
/// each event with `ph`, `pid`, `tid`, `ts` in microseconds (metadata events aside), `dur`
/// on complete events, flow starts and finishes paired by `id`.
#[test]
fn the_perfetto_export_follows_the_trace_event_format() {
    let report = faulted_run(3);
    let timeline = Timeline::of_report(&report).unwrap();
    let value: serde_json::Value = serde_json::from_str(&timeline.to_perfetto()).unwrap();
    assert_eq!(value["displayTimeUnit"], "ns");
    let events = value["traceEvents"].as_array().unwrap();
    let mut processes = std::collections::BTreeSet::new();
    let mut threads = std::collections::BTreeSet::new();
    let mut starts = std::collections::BTreeMap::new();
    let mut finishes = std::collections::BTreeMap::new();
    let mut instants = 0;
    for event in events {
        let ph = event["ph"].as_str().expect("ph");
        assert!(event["pid"].is_u64() && event["tid"].is_u64(), "{event}");
        assert!(event["name"].is_string(), "{event}");
        match ph {
            "M" => {
                let name = event["name"].as_str().unwrap();
                assert!(
                    ["process_name", "thread_name", "process_sort_index"].contains(&name),
                    "{event}"
                );
                if name == "process_name" {
                    processes.insert(event["pid"].as_u64().unwrap());
                }
                if name == "thread_name" {
                    threads.insert((
                        event["pid"].as_u64().unwrap(),
                        event["tid"].as_u64().unwrap(),
                    ));
                }
                continue;
            }
            "X" => assert!(event["dur"].as_f64().unwrap() >= 0.0, "{event}"),
            "s" => {
                starts.insert(event["id"].as_u64().unwrap(), event["ts"].as_f64().unwrap());
            }
            "f" => {
                assert_eq!(event["bp"], "e", "{event}");
                finishes.insert(event["id"].as_u64().unwrap(), event["ts"].as_f64().unwrap());
            }
            "i" => {
                assert!(
                    ["g", "p", "t"].contains(&event["s"].as_str().unwrap()),
                    "{event}"
                );
                instants += 1;
            }
            other => panic!("unexpected phase {other}: {event}"),
        }
        let ts = event["ts"].as_f64().expect("ts");
        assert!(ts >= 0.0);
        // Every slice and instant sits on a named process and thread.
        let (pid, tid) = (
            event["pid"].as_u64().unwrap(),
            event["tid"].as_u64().unwrap(),
        );
        assert!(processes.contains(&pid), "{event}");
        assert!(threads.contains(&(pid, tid)), "{event}");
    }
    let model = timeline.model();
    assert_eq!(processes.len(), model.hosts.len());
    assert_eq!(threads.len(), model.hosts.len() + model.tasks.len());
    let delivered = model
        .arrows
        .iter()
        .filter(|arrow| arrow.fate == Fate::Delivered)
        .count();
    assert_eq!(starts.len(), delivered);
    assert_eq!(
        starts.keys().collect::<Vec<_>>(),
        finishes.keys().collect::<Vec<_>>()
    );
    for (id, start) in &starts {
        assert!(finishes[id] >= *start, "flow {id} ends before it starts");
    }
    assert!(instants >= 2 * model.bands.len(), "faults as instants");
    // Virtual nanoseconds, exactly, as microseconds with three decimals.
    let last = timeline.trace().events.last().unwrap().time_ns;
    let latest = events
        .iter()
        .filter_map(|event| event["ts"].as_f64())
        .fold(0.0, f64::max);
    assert_eq!((latest * 1000.0).round() as u64, last);
}

/// A run of about 100,000 events: many clients sending lines to an echo server.
pub(crate) fn large_run() -> Report {
    let lp = EventLoop::with_config(Config::new(1).trace(TraceMode::Record).echo(false));
    lp.host("server", || async {
        echo_on_port_7().await;
    })
    .unwrap();
    for client in 0..20 {
        lp.host(&format!("client-{client}"), move || async move {
            let mut stream = TcpStream::connect("server:7").await.unwrap();
            let mut buf = [0u8; 256];
            for line in 0..450 {
                let text = format!("client {client} line {line}\n");
                stream.write_all(text.as_bytes()).await.unwrap();
                let mut got = 0;
                while got < text.len() {
                    got += stream.read(&mut buf).await.unwrap();
                }
                if line % 50 == 0 {
                    roof::log!("client {client} at line {line}");
                }
            }
        })
        .unwrap();
    }
    lp.run_until_complete(async {
        roof::sleep(Duration::from_secs(60)).await;
    })
    .unwrap();
    lp.report()
}

#[test]
fn a_page_of_100k_events_stays_under_40_bytes_per_event() {
    let report = large_run();
    let events = report.trace.as_ref().unwrap().events.len();
    assert!((90_000..200_000).contains(&events), "{events} events");
    let timeline = Timeline::of_report(&report).unwrap();
    let page = timeline.to_html();
    let per_event = page.len() as f64 / events as f64;
    eprintln!(
        "{events} events: page {} bytes, {per_event:.1} bytes per event; data {} bytes",
        page.len(),
        timeline.data_json().len()
    );
    assert!(per_event <= 40.0, "{per_event:.1} bytes per event");
    assert_eq!(timeline.header().drawn, events, "all drawn");
}

#[test]
fn disk_operations_are_marks_on_their_tasks() {
    let lp = EventLoop::with_config(Config::new(2).trace(TraceMode::Record).echo(false));
    lp.run_until_complete(async {
        let mut file = roof::fs::File::create("/wal").await.unwrap();
        file.write_all(b"record").await.unwrap();
        file.sync_all().await.unwrap();
    })
    .unwrap();
    let timeline = Timeline::of_report(&lp.report()).unwrap();
    let model = timeline.model();
    let disk: Vec<&str> = model
        .marks
        .iter()
        .filter(|mark| mark.kind == MarkKind::Disk)
        .map(|mark| mark.text.as_str())
        .collect();
    assert_eq!(disk, ["open /wal", "write /wal 0+6", "sync /wal"]);
    assert!(model.marks.iter().all(|mark| mark.task == Some(1)));
}

#[test]
fn pauses_one_way_clogs_and_disk_faults_are_bands_and_stalls_marks_on_their_host() {
    let lp = EventLoop::with_config(Config::new(2).echo(false).trace(TraceMode::Record));
    lp.host("db", || async {
        loop {
            roof::sleep(Duration::from_millis(5)).await;
        }
    })
    .unwrap();
    lp.run_until_complete(async {
        let handle = roof::get_running_loop();
        handle.pause("db").unwrap();
        roof::sleep(Duration::from_millis(20)).await;
        handle.resume("db").unwrap();
        handle.clog_direction("db", true).unwrap();
        roof::sleep(Duration::from_millis(20)).await;
        handle.unclog("db").unwrap();
        handle
            .set_disk_fault("db", roof::fault::DiskFault::Full, true)
            .unwrap();
        roof::sleep(Duration::from_millis(20)).await;
        handle
            .set_disk_fault("db", roof::fault::DiskFault::Full, false)
            .unwrap();
        handle.stall("db", Duration::from_millis(5)).unwrap();
        handle.pause("db").unwrap();
        roof::sleep(Duration::from_millis(20)).await;
        handle.crash("db").unwrap();
    })
    .unwrap();
    let timeline = Timeline::of_report(&lp.report()).unwrap();
    let model = timeline.model();
    let db = model
        .hosts
        .iter()
        .position(|lane| lane.name == "db")
        .unwrap();
    let bands: Vec<(BandKind, Vec<usize>, bool)> = model
        .bands
        .iter()
        .map(|band| (band.kind, band.hosts.clone(), band.end.is_some()))
        .collect();
    assert_eq!(
        bands,
        [
            (BandKind::Pause, vec![db], true),
            (BandKind::Clog, vec![db], true),
            (BandKind::Disk, vec![db], true),
            (BandKind::Pause, vec![db], true),
            (BandKind::Crash, vec![db], false),
        ],
        "a crash ends the pause"
    );
    assert!(model
        .marks
        .iter()
        .any(|mark| mark.text.starts_with("stall db") && mark.host == Some(db)));
}
