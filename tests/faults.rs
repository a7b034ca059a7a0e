//! Faults from the seed: swarm-style plans, the nemesis, buggify, and the liveness phase.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use roof::fault::{FaultKind, FaultPlan};
use roof::harness::{Builder, Sim};
use roof::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use roof::net::TcpStream;
use roof::Failure;

use crate::sim::yell_echo;

#[test]
fn plans_are_drawn_per_seed_in_swarm_style() {
    let hosts: Vec<String> = ["server", "replica", "client"].map(String::from).to_vec();
    let window = Duration::from_secs(1);
    let plans: Vec<FaultPlan> = (0..200)
        .map(|seed| FaultPlan::draw(seed, &hosts, window))
        .collect();
    assert_eq!(
        plans[7],
        FaultPlan::draw(7, &hosts, window),
        "a plan replays with its seed"
    );
    let narrow: Vec<FaultPlan> = (0..200)
        .map(|seed| {
            FaultPlan::draw_kinds(
                seed,
                &hosts,
                &hosts,
                window,
                &[FaultKind::Crash, FaultKind::Pause],
            )
        })
        .collect();
    assert!(
        narrow.iter().any(|plan| plan.faults.is_empty()),
        "some seeds get no faults"
    );
    assert!(
        narrow.iter().any(|plan| plan.kinds.len() == 1),
        "some a single kind"
    );
    assert!(
        plans
            .iter()
            .all(|plan| !plan.kinds.contains(&FaultKind::ReadCorruption)),
        "read corruption only when asked for"
    );
    for kind in FaultKind::DEFAULT {
        assert!(
            plans
                .iter()
                .any(|plan| plan.faults.iter().any(|fault| fault.kind == *kind)),
            "{kind:?} is drawn"
        );
    }
    assert!(
        plans
            .iter()
            .any(|plan| plan.kinds.contains(&FaultKind::Crash)),
        "some crashes"
    );
    assert!(
        plans
            .iter()
            .any(|plan| !plan.kinds.contains(&FaultKind::Crash)),
        "some without"
    );
    assert!(
        plans.iter().any(|plan| plan.kinds.len() >= 4),
        "some a rich mix"
    );
    for plan in &plans {
        assert!(plan
            .faults
            .iter()
            .all(|fault| plan.kinds.contains(&fault.kind) && fault.at < window));
        assert!(plan
            .faults
            .iter()
            .all(|fault| fault.peer.as_ref() != Some(&fault.host)));
    }
    assert_eq!(FaultPlan::none().to_string(), "none");
}

/// A client that keeps at it: every step has a timeout, any error means reconnect and retry.
pub async fn resilient_client(exchanges: usize) -> Result<(), String> {
    let mut done = 0;
    while done < exchanges {
        let attempt = async {
            let stream = TcpStream::connect(("server", yell_echo::PORT)).await?;
            let mut reader = BufReader::new(&stream);
            let mut writer = &stream;
            writer
                .write_all(format!("line {done}\n").as_bytes())
                .await?;
            let mut answer = String::new();
            reader.read_line(&mut answer).await?;
            Ok::<String, std::io::Error>(answer)
        };
        match roof::timeout(Duration::from_millis(200), attempt).await {
            Ok(Ok(answer)) if answer == format!("LINE {done}\n") => done += 1,
            Ok(Ok(answer)) if answer.is_empty() => {} // the server went away mid-exchange
            Ok(Ok(answer)) => return Err(format!("wrong answer {answer:?}")),
            Ok(Err(_)) | Err(_) => roof::sleep(Duration::from_millis(10)).await,
        }
    }
    Ok(())
}

fn resilient_world(sim: &Sim) {
    sim.host("server", || yell_echo::serve(yell_echo::PORT));
    sim.client("c1", resilient_client(5));
    sim.client("c2", resilient_client(5));
}

#[test]
fn a_resilient_system_survives_every_seed_of_faults_and_makes_progress_after() {
    let ran = Builder::new()
        .seeds(0..60)
        .faults(Duration::from_secs(1))
        .liveness(Duration::from_secs(5))
        .try_run(resilient_world)
        .unwrap();
    assert_eq!(ran, 60);
}

#[test]
fn faults_fire_and_show_in_the_trace() {
    // Find a seed whose plan crashes the server, and watch it happen.
    let hosts = ["server", "c1", "c2", "tripwire"].map(String::from);
    let seed = (0..200)
        .find(|&seed| {
            FaultPlan::draw_among(seed, &hosts, &hosts[..1], Duration::from_secs(1))
                .faults
                .iter()
                .any(|fault| fault.kind == FaultKind::Crash && fault.host == "server")
        })
        .unwrap();
    let failure = Builder::new()
        .seed(seed)
        .faults(Duration::from_secs(1))
        .print_trace(true)
        .try_run(|sim| {
            resilient_world(sim);
            sim.client("tripwire", async {
                roof::sleep(Duration::from_secs(10)).await;
                Err::<(), _>("stop here to see the report")
            });
        })
        .unwrap_err();
    let (plan, fired) = failure.faults.clone().unwrap();
    assert!(plan.contains("Crash server"), "{plan}");
    assert!(
        fired.iter().any(|line| line.contains("Crash server")),
        "{fired:?}"
    );
    let trace = failure.trace.clone().unwrap();
    assert!(
        trace.contains("fault crash server") && trace.contains("fault restart server"),
        "{trace}"
    );
    let text = failure.to_string();
    assert!(
        text.contains("roof: fault plan: ") && text.contains("roof: faults fired: "),
        "{text}"
    );
}

#[test]
fn a_server_that_does_not_come_back_fails_the_liveness_phase_naming_the_stuck_clients() {
    // The planted bug: the server only listens in its first life.
    let world = |sim: &Sim| {
        let lives = Rc::new(Cell::new(0));
        sim.host("server", move || {
            let lives = lives.clone();
            async move {
                lives.set(lives.get() + 1);
                if lives.get() == 1 {
                    yell_echo::serve(yell_echo::PORT).await;
                }
            }
        });
        sim.client("c1", resilient_client(20));
    };
    let failure = Builder::new()
        .seeds(0..300)
        .faults(Duration::from_secs(1))
        .liveness(Duration::from_secs(5))
        .try_run(world)
        .unwrap_err();
    let text = failure.failure.to_string();
    assert!(
        text.contains("liveness: no progress within 5s after the faults stopped at"),
        "{text}"
    );
    assert!(text.contains("still running: c1"), "{text}");
    assert!(matches!(failure.failure, Failure::Error { .. }));
    let (_, fired) = failure.faults.unwrap();
    assert!(
        fired.iter().any(|line| line.contains("Crash server")),
        "{fired:?}"
    );
}

#[test]
fn buggify_is_per_seed_per_site_and_replays() {
    let count = |seed: u64| {
        let event_loop = roof::EventLoop::with_config(crate::quiet(seed));
        event_loop
            .run_until_complete(async {
                let first = (0..200).filter(|_| roof::buggify!()).count();
                let second = (0..200).filter(|_| roof::buggify!()).count();
                (first, second)
            })
            .unwrap()
    };
    let counts: Vec<(usize, usize)> = (0..100).map(count).collect();
    assert_eq!(counts[3], count(3), "replays with the seed");
    let active_first = counts.iter().filter(|(first, _)| *first > 0).count();
    assert!(
        (10..45).contains(&active_first),
        "a site is active in about a quarter of seeds: {active_first}"
    );
    assert!(
        counts
            .iter()
            .any(|(first, second)| (*first > 0) != (*second > 0)),
        "sites are independent"
    );
    let hits: usize = counts.iter().map(|(first, _)| *first).sum();
    let per_active = hits as f64 / active_first as f64 / 200.0;
    assert!(
        (0.18..0.32).contains(&per_active),
        "an active site fires about a quarter of the time: {per_active}"
    );
    assert!(!roof::buggify!(), "never outside a simulation");
}

/// The harness draws crashes only among the hosts that restart: a client runs once, so
/// crashing it would fail the seed for nothing the system did (and half the drawn crashes
/// used to be spent that way, discarded).
#[test]
fn the_harness_crashes_only_hosts_that_restart() {
    let mut server_crashes = 0;
    for seed in 0..100 {
        let failure = Builder::new()
            .seed(seed)
            .faults(Duration::from_secs(1))
            .try_run(|sim| {
                resilient_world(sim);
                sim.client("tripwire", async {
                    roof::sleep(Duration::from_secs(10)).await;
                    Err::<(), _>("stop here to see the plan")
                });
            })
            .unwrap_err();
        assert!(
            failure.failure.to_string().contains("stop here"),
            "seed {seed}: {failure}"
        );
        let (plan, fired) = failure.faults.unwrap();
        for client in ["c1", "c2", "tripwire"] {
            assert!(
                !plan.contains(&format!("Crash {client} ")),
                "seed {seed}: {plan}"
            );
        }
        server_crashes += fired
            .iter()
            .filter(|line| line.contains("Crash server"))
            .count();
    }
    assert!(
        server_crashes > 20,
        "crashes land on the server: {server_crashes}"
    );
}

/// A latency spike and a loss burst add to the test's own link settings (set before or
/// during the fault) and leave them as they were when they end; they used to overwrite them
/// with the defaults.
#[test]
fn link_faults_compose_with_the_tests_link_settings_and_restore_them() {
    use roof::fault::{PlannedFault, BURST_LOSS, SPIKE_LATENCY};
    use roof::net::{LinkConfig, UdpSocket};

    let event_loop = roof::EventLoop::with_config(crate::quiet(0));
    event_loop
        .host("db", || async {
            let socket = UdpSocket::bind("0.0.0.0:53").await.unwrap();
            let mut buf = [0u8; 16];
            loop {
                let (count, from) = socket.recv_from(&mut buf).await.unwrap();
                socket.send_to(&buf[..count], from).await.unwrap();
            }
        })
        .unwrap();
    let own = LinkConfig::default()
        .latency(Duration::from_millis(10))
        .jitter(Duration::ZERO)
        .loss(0.1);
    event_loop.set_link("main", "db", own.clone()).unwrap();
    let fault = |kind, at: u64| PlannedFault {
        kind,
        host: "main".to_string(),
        peer: Some("db".to_string()),
        at: Duration::from_millis(at),
        lasts: Duration::from_millis(100),
    };
    let plan = FaultPlan {
        kinds: vec![FaultKind::LatencySpike, FaultKind::LossBurst],
        faults: vec![
            fault(FaultKind::LatencySpike, 100),
            fault(FaultKind::LossBurst, 150),
        ],
    };
    let nemesis = event_loop.start_nemesis(plan, Rc::default());
    let handle = event_loop.handle();
    let moved = own.clone().latency(Duration::from_millis(20));
    let (during, after, round_trip) = event_loop
        .run_until_complete(async move {
            roof::sleep(Duration::from_millis(120)).await;
            // The test reconfigures the link in the middle of the spike.
            handle.set_link("main", "db", moved).unwrap();
            roof::sleep(Duration::from_millis(60)).await;
            let during = handle.link("main", "db").unwrap();
            nemesis.await.unwrap();
            let after = handle.link("main", "db").unwrap();
            // The link behaves as configured again: a round trip takes 2 x 20 ms exactly
            // (retrying the pings its own 10% loss drops).
            let socket = UdpSocket::bind("0.0.0.0:0").await.unwrap();
            let round_trip = loop {
                let sent = roof::time::now();
                socket.send_to(b"ping", "db:53").await.unwrap();
                let mut buf = [0u8; 16];
                let reply = roof::timeout(Duration::from_millis(100), socket.recv_from(&mut buf));
                if reply.await.is_ok() {
                    break roof::time::now() - sent;
                }
            };
            (during, after, round_trip)
        })
        .unwrap();
    assert_eq!(during.latency, Duration::from_millis(20) + SPIKE_LATENCY);
    assert_eq!(during.jitter, SPIKE_LATENCY);
    assert!(
        (during.loss - (1.0 - 0.9 * (1.0 - BURST_LOSS))).abs() < 1e-12,
        "{during:?}"
    );
    assert_eq!(
        after,
        own.latency(Duration::from_millis(20)),
        "the test's settings, restored"
    );
    assert_eq!(round_trip, Duration::from_millis(40));
}
