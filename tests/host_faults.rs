//! What a host suffers, each shown to do what it says: a pause (silence, never a reset), a
//! one-way clog, stalls of `accept`, `connect` and `bind` (late, never refused), a lost TCP
//! segment (late, never a hole), a restart after a panic, disk faults, clock jumps; every
//! fault kind of a plan fires and is reported; the engine's own fault points replay.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use roof::fault::{DiskFault, FaultKind, FaultPlan, FiredFaults, PlannedFault};
use roof::fs;
use roof::io::{AsyncReadExt, AsyncWriteExt};
use roof::net::{LinkConfig, TcpListener, TcpStream, TCP_RTO};
use roof::{Config, EventLoop, Failure, TraceMode};

use crate::quiet;

/// An echo server on `server:7`: what it reads, it writes back.
fn echo_server(lp: &EventLoop) {
    lp.host("server", || async {
        let listener = TcpListener::bind("0.0.0.0:7").await.unwrap();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            roof::spawn(async move {
                let mut buf = vec![0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 || stream.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            })
            .detach();
        }
    })
    .unwrap();
}

/// Write `bytes` to `stream` and read as many back.
async fn round_trip(stream: &mut TcpStream, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(bytes).await?;
    let mut back = vec![0u8; bytes.len()];
    stream.read_exact(&mut back).await?;
    Ok(back)
}

#[test]
fn a_paused_host_is_silent_to_its_peers_and_answers_after_it_resumes() {
    let lp = EventLoop::with_config(quiet(1));
    echo_server(&lp);
    let (late, after) = lp
        .run_until_complete(async {
            let lp = roof::get_running_loop();
            let mut stream = TcpStream::connect("server:7").await.unwrap();
            assert_eq!(round_trip(&mut stream, b"before").await.unwrap(), b"before");
            lp.pause("server").unwrap();
            assert!(lp.is_paused("server").unwrap());
            // Silence: no answer, and no reset either.
            let silent =
                roof::timeout(Duration::from_secs(2), round_trip(&mut stream, b"during")).await;
            assert!(silent.is_err(), "a paused host answers nothing: {silent:?}");
            let paused_at = roof::time::now();
            lp.resume("server").unwrap();
            let mut rest = vec![0u8; 6];
            stream.read_exact(&mut rest).await.unwrap();
            let late = String::from_utf8(rest).unwrap();
            let after = round_trip(&mut stream, b"after").await.unwrap();
            assert!(roof::time::now() >= paused_at);
            (late, after)
        })
        .unwrap();
    assert_eq!(
        late, "during",
        "what it was sent meanwhile, answered at the resume"
    );
    assert_eq!(after, b"after");
    assert!(lp.pause("main").is_err(), "main cannot be paused");
}

#[test]
fn a_paused_hosts_timers_wait_and_a_crash_ends_the_pause() {
    let lp = EventLoop::with_config(quiet(2));
    let ticks = Rc::new(RefCell::new(Vec::new()));
    let seen = ticks.clone();
    lp.host("ticker", move || {
        let seen = seen.clone();
        async move {
            loop {
                roof::sleep(Duration::from_millis(100)).await;
                seen.borrow_mut()
                    .push(roof::time::now().as_nanos() / 1_000_000);
            }
        }
    })
    .unwrap();
    lp.run_until_complete(async {
        let lp = roof::get_running_loop();
        roof::sleep(Duration::from_millis(250)).await;
        lp.pause("ticker").unwrap();
        roof::sleep(Duration::from_millis(500)).await;
        lp.crash("ticker").unwrap();
        assert!(!lp.is_paused("ticker").unwrap(), "a crash ends the pause");
        lp.restart("ticker").unwrap();
        roof::sleep(Duration::from_millis(150)).await;
    })
    .unwrap();
    // 100 and 200 before the pause; nothing while paused (its 300 ms wakeup was parked, then
    // dropped with the crash); the restarted host ticks 100 ms after its restart at 750.
    assert_eq!(*ticks.borrow(), [100, 200, 850]);
}

#[test]
fn a_one_way_clog_holds_one_direction_and_the_stream_stays_whole() {
    let lp = EventLoop::with_config(quiet(3));
    echo_server(&lp);
    let back = lp
        .run_until_complete(async {
            let lp = roof::get_running_loop();
            let mut stream = TcpStream::connect("server:7").await.unwrap();
            lp.clog_direction("main", true).unwrap();
            let held = roof::timeout(Duration::from_secs(1), round_trip(&mut stream, b"ab")).await;
            assert!(held.is_err(), "what main sends is held");
            lp.unclog("main").unwrap();
            let mut back = vec![0u8; 2];
            stream.read_exact(&mut back).await.unwrap();
            lp.clog_direction("main", false).unwrap();
            stream.write_all(b"cd").await.unwrap();
            let mut one = [0u8; 2];
            let held = roof::timeout(Duration::from_secs(1), stream.read_exact(&mut one)).await;
            assert!(held.is_err(), "what main is sent is held");
            lp.unclog("main").unwrap();
            stream.read_exact(&mut one).await.unwrap();
            back.extend_from_slice(&one);
            back
        })
        .unwrap();
    assert_eq!(back, b"abcd");
}

#[test]
fn a_stalled_accept_connect_and_bind_are_late_never_refused() {
    let lp = EventLoop::with_config(quiet(4).trace(TraceMode::Record));
    echo_server(&lp);
    lp.run_until_complete(async {
        let lp = roof::get_running_loop();
        roof::sleep(Duration::from_millis(10)).await;
        lp.stall("server", Duration::from_secs(3)).unwrap();
        let start = roof::time::now();
        let mut stream = TcpStream::connect("server:7").await.expect("not refused");
        // The SYN is answered by the listener's backlog; the accept returns at the stall's end.
        assert_eq!(round_trip(&mut stream, b"x").await.unwrap(), b"x");
        assert!(
            roof::time::now() - start >= Duration::from_millis(2_990),
            "answered only after the stall, at {}",
            roof::time::now()
        );
        lp.stall("main", Duration::from_secs(1)).unwrap();
        let before = roof::time::now();
        let _other = TcpStream::connect("server:7").await.unwrap();
        assert!(
            roof::time::now() - before >= Duration::from_secs(1),
            "connect stalled"
        );
        lp.stall("main", Duration::from_secs(1)).unwrap();
        let before = roof::time::now();
        let _socket = roof::net::UdpSocket::bind("0.0.0.0:0").await.unwrap();
        assert!(
            roof::time::now() - before >= Duration::from_secs(1),
            "bind stalled"
        );
    })
    .unwrap();
    let text = lp.report().trace.unwrap().render();
    assert!(text.contains("stall server for 3s"), "{text}");
}

#[test]
fn a_lost_tcp_segment_delays_the_stream_and_never_holes_it() {
    let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let run = |loss: f64| {
        let lp = EventLoop::with_config(quiet(5));
        echo_server(&lp);
        lp.set_link("main", "server", LinkConfig::default().loss(loss))
            .unwrap();
        let sent = payload.clone();
        lp.run_until_complete(async move {
            let stream = TcpStream::connect("server:7").await.unwrap();
            let start = roof::time::now();
            let (mut reader, mut writer) = (&stream, &stream);
            let mut back = vec![0u8; sent.len()];
            let (written, read) =
                futures_lite::future::zip(writer.write_all(&sent), reader.read_exact(&mut back))
                    .await;
            written.unwrap();
            read.unwrap();
            (back, roof::time::now() - start)
        })
        .unwrap()
    };
    let (clean, clean_took) = run(0.0);
    let (lossy, lossy_took) = run(0.3);
    assert_eq!(clean, payload);
    assert_eq!(lossy, payload, "every byte, in order, once");
    assert!(
        lossy_took >= clean_took + TCP_RTO,
        "losses cost retransmissions: {lossy_took:?} against {clean_took:?}"
    );
}

#[test]
fn a_host_restarted_on_panic_starts_again_and_without_the_option_the_run_fails() {
    let run = |restart: bool| {
        let lp = EventLoop::with_config(quiet(6));
        let starts = Rc::new(RefCell::new(0));
        let counted = starts.clone();
        lp.host("worker", move || {
            let starts = counted.clone();
            async move {
                *starts.borrow_mut() += 1;
                roof::sleep(Duration::from_millis(10)).await;
                if *starts.borrow() < 3 {
                    panic!("start {} failed", starts.borrow());
                }
            }
        })
        .unwrap();
        lp.restart_on_panic("worker", restart).unwrap();
        let outcome = lp.run_until_complete(roof::sleep(Duration::from_secs(1)));
        let count = *starts.borrow();
        (outcome, count, lp.report())
    };
    let (outcome, starts, report) = run(true);
    assert!(outcome.is_ok(), "{outcome:?}");
    assert_eq!(starts, 3);
    assert_eq!(report.injected.len(), 2, "{:?}", report.injected);
    assert!(report.injected[0]
        .contains("restart worker after task \"worker\" panicked: start 1 failed"));
    let (outcome, starts, _) = run(false);
    assert!(matches!(outcome, Err(Failure::Panic { .. })), "{outcome:?}");
    assert_eq!(starts, 1);
}

#[test]
fn disk_faults_fail_with_the_errors_the_os_gives_and_slow_disks_are_slow() {
    let lp = EventLoop::with_config(quiet(7));
    lp.run_until_complete(async {
        let lp = roof::get_running_loop();
        fs::write("/a", b"one").await.unwrap();
        lp.set_disk_fault("main", DiskFault::Failing, true).unwrap();
        for result in [
            fs::read("/a").await.map(drop),
            fs::write("/b", b"x").await,
            fs::create_dir_all("/d").await,
        ] {
            assert_eq!(result.unwrap_err().raw_os_error(), Some(5));
        }
        lp.set_disk_fault("main", DiskFault::Failing, false)
            .unwrap();
        assert_eq!(
            fs::read("/a").await.unwrap(),
            b"one",
            "the data is still there"
        );
        lp.fail_writes("main", 1).unwrap();
        let mut file = fs::File::create("/c").await.unwrap();
        assert_eq!(
            file.write_all(b"x").await.unwrap_err().raw_os_error(),
            Some(5)
        );
        file.write_all(b"y").await.unwrap();
        assert_eq!(
            fs::read("/c").await.unwrap(),
            b"y",
            "a failed write wrote nothing"
        );
        let start = roof::time::now();
        file.sync_all().await.unwrap();
        let normal = roof::time::now() - start;
        lp.set_disk_fault("main", DiskFault::Slow, true).unwrap();
        let start = roof::time::now();
        file.sync_all().await.unwrap();
        let slow = roof::time::now() - start;
        assert!(slow >= normal * 30, "{slow:?} against {normal:?}");
        lp.set_disk("main", fs::DiskConfig::default().capacity(10))
            .unwrap();
        lp.set_disk_fault("main", DiskFault::Slow, false).unwrap();
        let full = fs::write("/big", [0u8; 11]).await.unwrap_err();
        assert_eq!(full.kind(), std::io::ErrorKind::StorageFull);
        assert_eq!(full.raw_os_error(), Some(28));
    })
    .unwrap();
    let too_slow = fs::DiskConfig::default().sync_latency(Duration::from_secs(3600));
    let error = lp.set_disk("main", too_slow).unwrap_err();
    assert!(error.to_string().contains("sync latency"), "{error}");
}

/// A host for every kind of fault to act on: it serves TCP, binds, uses its disk and reads
/// its clock, over and over.
fn busy_host(lp: &EventLoop, name: &'static str, clocks: Rc<RefCell<Vec<SystemTime>>>) {
    lp.host(name, move || {
        let clocks = clocks.clone();
        async move {
            let listener = TcpListener::bind("0.0.0.0:9").await.unwrap();
            roof::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    drop(stream);
                }
            })
            .detach();
            for round in 0u32.. {
                clocks.borrow_mut().push(roof::time::system_time());
                let _ = fs::write(format!("/r{}", round % 4), round.to_le_bytes()).await;
                let _ = fs::read(format!("/r{}", round % 4)).await;
                roof::sleep(Duration::from_millis(5)).await;
            }
        }
    })
    .unwrap();
}

#[test]
fn every_fault_kind_of_a_plan_fires_and_is_reported_and_traced() {
    for &kind in FaultKind::ALL {
        let lp = EventLoop::with_config(quiet(8).trace(TraceMode::Record));
        let clocks = Rc::new(RefCell::new(Vec::new()));
        busy_host(&lp, "a", clocks.clone());
        busy_host(&lp, "b", Rc::new(RefCell::new(Vec::new())));
        let fault = PlannedFault {
            kind,
            host: "a".into(),
            peer: Some("b".into()).filter(|_| {
                matches!(
                    kind,
                    FaultKind::Partition
                        | FaultKind::OneWayPartition
                        | FaultKind::LatencySpike
                        | FaultKind::LossBurst
                )
            }),
            at: Duration::from_millis(100),
            lasts: Duration::from_millis(200),
        };
        let plan = FaultPlan {
            kinds: vec![kind],
            faults: vec![fault.clone()],
        };
        let fired = FiredFaults::default();
        let nemesis = lp.start_nemesis(plan, fired.clone());
        lp.run_until_complete(async {
            nemesis.await.unwrap();
            roof::sleep(Duration::from_millis(20)).await; // long enough to see it undone
        })
        .unwrap();
        assert_eq!(
            *fired.borrow(),
            [format!("0.100000000s {fault}")],
            "{kind:?} fired"
        );
        let text = lp.report().trace.unwrap().render();
        assert!(text.contains(" fault "), "{kind:?} traced: {text}");
        if matches!(
            kind,
            FaultKind::ClockJumpForward | FaultKind::ClockJumpBackward
        ) {
            let clocks = clocks.borrow();
            let steps: Vec<i128> = clocks
                .windows(2)
                .map(|pair| match pair[1].duration_since(pair[0]) {
                    Ok(ahead) => ahead.as_millis() as i128,
                    Err(behind) => -(behind.duration().as_millis() as i128),
                })
                .collect();
            let (jump, back) = if kind == FaultKind::ClockJumpForward {
                (steps.iter().max(), steps.iter().min())
            } else {
                (steps.iter().min(), steps.iter().max())
            };
            assert!(jump.unwrap().abs() >= 190, "{kind:?}: {steps:?}");
            assert!(back.unwrap().abs() >= 190, "{kind:?} undone: {steps:?}");
        }
    }
}

#[test]
fn the_engines_own_fault_points_fire_only_when_asked_and_replay() {
    let run = |seed: u64, buggify: bool| {
        let lp = EventLoop::with_config(Config::new(seed).echo(false).buggify(buggify));
        echo_server(&lp);
        let errors = lp
            .run_until_complete(async {
                let mut errors = 0;
                for round in 0..200u32 {
                    if fs::write("/f", round.to_le_bytes()).await.is_err() {
                        errors += 1;
                    }
                    // The server's bind may be stalled too: a refused connect is tried again.
                    let mut stream = loop {
                        match TcpStream::connect("server:7").await {
                            Ok(stream) => break stream,
                            Err(_) => roof::sleep(Duration::from_millis(100)).await,
                        }
                    };
                    round_trip(&mut stream, b"ok").await.unwrap();
                }
                errors
            })
            .unwrap();
        (errors, lp.report())
    };
    let mut seen_eio = false;
    let mut seen_stall = false;
    for seed in 0..16 {
        let (errors, report) = run(seed, true);
        let (again, replay) = run(seed, true);
        assert_eq!(
            (errors, &report.injected),
            (again, &replay.injected),
            "seed {seed} replays"
        );
        assert_eq!(report.trace_hash, replay.trace_hash);
        let eio = report
            .injected
            .iter()
            .filter(|line| line.contains("EIO"))
            .count();
        assert_eq!(errors, eio, "each EIO reported");
        seen_eio |= eio > 0;
        seen_stall |= report
            .injected
            .iter()
            .any(|line| line.contains("stall connect on main"));
        let (errors, plain) = run(seed, false);
        assert_eq!(errors, 0);
        assert!(plain.injected.is_empty());
    }
    assert!(
        seen_eio && seen_stall,
        "both fault points fired in some seed"
    );
}
