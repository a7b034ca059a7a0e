//! The asyncio facade: callbacks, stop, run_forever, gather, outcomes of a run.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use roof::time::Instant;
use roof::{EventLoop, Failure, Policy};

use crate::{quiet, run_with};

type Log = Rc<RefCell<Vec<String>>>;

fn push(log: &Log, text: impl Into<String>) {
    log.borrow_mut().push(text.into());
}

#[test]
fn call_later_with_equal_deadlines_runs_in_scheduling_order() {
    for policy in [Policy::Fifo, Policy::Random] {
        let log: Log = Log::default();
        let (_, report) = run_with(quiet(3).policy(policy), |event_loop| {
            for name in ["a", "b", "c", "d"] {
                let log = log.clone();
                event_loop.call_later(Duration::from_secs(1), move || push(&log, name));
            }
            let handle = event_loop.handle();
            event_loop.call_later(Duration::from_secs(2), move || handle.stop());
            event_loop.run_forever()
        });
        assert!(report.passed(), "{:?}", report.outcome);
        // Under FIFO the order is exact; Random may interleave the callback tasks, but the
        // timers themselves fire in order (checked through FIFO).
        if policy == Policy::Fifo {
            assert_eq!(*log.borrow(), ["a", "b", "c", "d"]);
        } else {
            assert_eq!(log.borrow().len(), 4);
        }
    }
}

#[test]
fn earlier_deadlines_run_first_whatever_the_scheduling_order() {
    let log: Log = Log::default();
    let (result, _) = run_with(quiet(0).policy(Policy::Fifo), |event_loop| {
        for (name, ms) in [("third", 300), ("first", 100), ("second", 200)] {
            let log = log.clone();
            event_loop.call_later(Duration::from_millis(ms), move || push(&log, name));
        }
        let handle = event_loop.handle();
        event_loop.call_at(Instant::from_nanos(1_000_000_000), move || handle.stop());
        event_loop.run_forever()
    });
    result.unwrap();
    assert_eq!(*log.borrow(), ["first", "second", "third"]);
}

#[test]
fn a_cancelled_callback_never_runs() {
    let log: Log = Log::default();
    let (result, _) = run_with(quiet(0), |event_loop| {
        let kept = log.clone();
        let dropped = log.clone();
        event_loop.call_later(Duration::from_secs(1), move || push(&kept, "kept"));
        let handle =
            event_loop.call_later(Duration::from_secs(1), move || push(&dropped, "cancelled"));
        assert_eq!(handle.when(), 1.0);
        handle.cancel();
        let mut soon = {
            let log = log.clone();
            event_loop.call_soon(move || push(&log, "soon cancelled"))
        };
        soon.cancel();
        let stopper = event_loop.handle();
        event_loop.call_later(Duration::from_secs(2), move || stopper.stop());
        event_loop.run_forever()
    });
    result.unwrap();
    assert_eq!(*log.borrow(), ["kept"]);
}

#[test]
fn many_cancelled_callbacks_leave_the_others_to_run_by_deadline() {
    // Enough cancellations to make the timer queue compact itself; each callback's slot must
    // still hold its own callback afterwards.
    let log: Log = Log::default();
    let (result, _) = run_with(quiet(0), |event_loop| {
        let mut handles = Vec::new();
        for index in 0..3000u64 {
            let log = log.clone();
            let delay = Duration::from_millis(1 + index % 7);
            handles.push(event_loop.call_later(delay, move || push(&log, index.to_string())));
        }
        for (index, handle) in handles.iter().enumerate() {
            if index % 3 != 0 {
                handle.cancel();
            }
        }
        // New timers take the slots the cancelled ones free.
        for index in 3000..3100u64 {
            let log = log.clone();
            event_loop.call_later(Duration::from_millis(8), move || {
                push(&log, index.to_string())
            });
        }
        let stopper = event_loop.handle();
        event_loop.call_later(Duration::from_secs(1), move || stopper.stop());
        event_loop.run_forever()
    });
    result.unwrap();
    // Exactly the kept callbacks ran, each once, earlier deadlines first (callbacks due at
    // the same time run as tasks, in the scheduler's order).
    let deadline = |index: u64| if index >= 3000 { 8 } else { 1 + index % 7 };
    let ran: Vec<u64> = log
        .borrow()
        .iter()
        .map(|text| text.parse().unwrap())
        .collect();
    let mut sorted = ran.clone();
    sorted.sort_unstable();
    let kept: Vec<u64> = (0..3000u64)
        .filter(|index| index % 3 == 0)
        .chain(3000..3100)
        .collect();
    assert_eq!(sorted, kept);
    assert!(ran
        .windows(2)
        .all(|pair| deadline(pair[0]) <= deadline(pair[1])));
}

#[test]
fn call_soon_runs_after_the_ready_tasks() {
    let log: Log = Log::default();
    let (result, _) = run_with(quiet(0).policy(Policy::Fifo), |event_loop| {
        let log = log.clone();
        event_loop.run_until_complete(async move {
            let later = log.clone();
            roof::get_running_loop().call_soon(move || push(&later, "callback"));
            let task_log = log.clone();
            let task = roof::spawn(async move { push(&task_log, "task") });
            push(&log, "main");
            task.await.unwrap();
            roof::sleep(Duration::ZERO).await;
        })
    });
    result.unwrap();
    assert_eq!(*log.borrow(), ["main", "callback", "task"]);
}

#[test]
fn stop_before_the_future_completes_is_an_error() {
    let (result, report) = run_with(quiet(0), |event_loop| {
        let handle = event_loop.handle();
        event_loop.call_later(Duration::from_secs(1), move || handle.stop());
        event_loop.run_until_complete(roof::sleep(Duration::from_secs(10)))
    });
    let failure = result.unwrap_err();
    assert_eq!(failure.kind(), "error");
    assert!(
        failure
            .to_string()
            .contains("stopped before the future completed"),
        "{failure}"
    );
    assert_eq!(report.virtual_time.as_secs_f64(), 1.0);
}

#[test]
fn time_reports_loop_seconds() {
    let event_loop = EventLoop::with_config(quiet(0));
    assert_eq!(event_loop.time(), 0.0);
    event_loop
        .run_until_complete(roof::sleep(Duration::from_millis(2500)))
        .unwrap();
    assert_eq!(event_loop.time(), 2.5);
    assert!(!event_loop.is_running());
    let running = event_loop
        .run_until_complete(async { roof::get_running_loop().is_running() })
        .unwrap();
    assert!(running);
}

#[test]
fn the_loop_can_run_again_and_keeps_its_state() {
    let event_loop = EventLoop::with_config(quiet(0));
    let background = event_loop.create_task(async {
        roof::sleep(Duration::from_secs(5)).await;
        "background"
    });
    event_loop
        .run_until_complete(roof::sleep(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(event_loop.time(), 1.0);
    let value = event_loop.run_until_complete(background).unwrap().unwrap();
    assert_eq!(value, "background");
    assert_eq!(event_loop.time(), 5.0);
}

#[test]
fn close_cancels_pending_tasks_and_the_loop_cannot_run_again() {
    struct Flag(Rc<RefCell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            *self.0.borrow_mut() = true;
        }
    }
    let dropped = Rc::new(RefCell::new(false));
    let event_loop = EventLoop::with_config(quiet(0));
    let flag = Flag(dropped.clone());
    event_loop
        .create_task(async move {
            let _flag = flag;
            roof::sleep(Duration::from_secs(100)).await;
        })
        .detach();
    event_loop.run_until_complete(async {}).unwrap();
    assert!(!*dropped.borrow());
    event_loop.close();
    assert!(*dropped.borrow(), "closing drops the pending task's future");
    assert!(event_loop.is_closed());
    let failure = event_loop.run_until_complete(async {}).unwrap_err();
    assert_eq!(failure.kind(), "misuse");
}

#[test]
fn a_second_loop_cannot_run_inside_the_first() {
    let (result, _) = run_with(quiet(0), |event_loop| {
        event_loop.run_until_complete(async {
            let inner = EventLoop::with_config(quiet(1));
            inner.run_until_complete(async {}).unwrap_err()
        })
    });
    let failure = result.unwrap();
    assert_eq!(failure.kind(), "misuse");
    assert!(failure.to_string().contains("already running"));
}

#[test]
fn the_running_loop_is_known_only_while_it_runs() {
    let outside = || std::panic::catch_unwind(roof::time::now).unwrap_err();
    let message = |payload: Box<dyn std::any::Any + Send>| {
        payload
            .downcast_ref::<&str>()
            .map(|text| text.to_string())
            .unwrap_or_default()
    };
    let slept = |event_loop: &EventLoop, secs: u64| {
        let at = event_loop.run_until_complete(async move {
            roof::sleep(Duration::from_secs(secs)).await;
            roof::time::now()
        });
        at.unwrap().as_secs_f64()
    };
    assert!(message(outside()).contains("inside a running EventLoop"));
    let first = EventLoop::with_config(quiet(0));
    assert_eq!(slept(&first, 5), 5.0);
    // Ended, then dropped: no loop runs, and asking is the same clear panic.
    assert!(message(outside()).contains("inside a running EventLoop"));
    drop(first);
    assert!(message(outside()).contains("inside a running EventLoop"));
    // A second loop, made after the first is gone, sees its own clock from its origin.
    let second = EventLoop::with_config(quiet(1));
    assert_eq!(slept(&second, 2), 2.0);
    // A run refused (a loop inside a loop) leaves the outer one running as itself.
    let third = EventLoop::with_config(quiet(2));
    let (refused, after) = second
        .run_until_complete(async move {
            let refused = third.run_until_complete(async {}).unwrap_err();
            roof::sleep(Duration::from_secs(1)).await;
            (refused, roof::time::now())
        })
        .unwrap();
    assert_eq!(refused.kind(), "misuse");
    assert_eq!(after.as_secs_f64(), 3.0);
    assert!(message(outside()).contains("inside a running EventLoop"));
}

#[test]
fn gather_returns_results_in_argument_order_whatever_finishes_first() {
    for seed in 0..30 {
        let (results, _) = run_with(quiet(seed), |event_loop| {
            let futures: Vec<_> = (0..5u64)
                .map(|index| async move {
                    roof::sleep(Duration::from_millis(50 - index * 10)).await;
                    index
                })
                .collect();
            event_loop
                .run_until_complete(roof::gather(futures))
                .unwrap()
                .unwrap()
        });
        assert_eq!(results, [0, 1, 2, 3, 4]);
    }
}

#[test]
fn gather_runs_concurrently() {
    let (elapsed, _) = run_with(quiet(0), |event_loop| {
        event_loop
            .run_until_complete(async {
                let slow = |ms| roof::sleep(Duration::from_millis(ms));
                roof::gather!(slow(100), slow(100), slow(100), async { 7 })
                    .await
                    .unwrap();
                roof::time::now()
            })
            .unwrap()
    });
    assert_eq!(elapsed.as_nanos(), 100_000_000);
}

#[test]
fn a_panicking_task_is_a_failure_naming_task_time_and_message() {
    let (result, report) = run_with(quiet(11), |event_loop| {
        event_loop.run_until_complete(async {
            let bad = roof::spawn_named("bad", async {
                roof::sleep(Duration::from_millis(1500)).await;
                panic!("boom at {}", roof::time::now());
            });
            bad.await
        })
    });
    let failure = result.unwrap_err();
    match &failure {
        Failure::Panic {
            name,
            time,
            message,
            ..
        } => {
            assert_eq!(name, "bad");
            assert_eq!(time.as_nanos(), 1_500_000_000);
            assert_eq!(message, "boom at 1.500000000s");
        }
        other => panic!("expected a panic, got {other:?}"),
    }
    assert_eq!(report.seed, 11);
    assert_eq!(report.outcome, Err(failure));
}

#[test]
fn a_panic_does_not_stop_the_next_run() {
    for seed in 0..3 {
        let (result, _) = run_with(quiet(seed), |event_loop| {
            event_loop.run_until_complete(async { panic!("seed-specific failure") })
        });
        assert_eq!(result.unwrap_err().kind(), "panic");
    }
    let (result, _) = run_with(quiet(3), |event_loop| {
        event_loop.run_until_complete(async { 1 })
    });
    assert_eq!(result.unwrap(), 1);
}

#[test]
fn deadlock_lists_the_blocked_tasks_by_name() {
    let (result, _) = run_with(quiet(0), |event_loop| {
        event_loop.run_until_complete(async {
            let (sender, receiver) = std::sync::mpsc::channel::<()>();
            let waiter = roof::spawn_named("waiter", std::future::pending::<()>());
            drop((sender, receiver));
            waiter.await.unwrap();
        })
    });
    match result.unwrap_err() {
        Failure::Deadlock { blocked, .. } => {
            let names: Vec<&str> = blocked.iter().map(|(_, name)| name.as_str()).collect();
            assert_eq!(names, ["main", "waiter"]);
        }
        other => panic!("expected a deadlock, got {other:?}"),
    }
}

#[test]
fn run_forever_with_nothing_to_do_is_a_deadlock() {
    let (result, _) = run_with(quiet(0), |event_loop| event_loop.run_forever());
    assert_eq!(result.unwrap_err().kind(), "deadlock");
}

#[test]
fn the_time_limit_is_a_failure() {
    let (result, report) = run_with(quiet(0).time_max(Duration::from_secs(60)), |event_loop| {
        event_loop.run_until_complete(roof::sleep(Duration::from_secs(61)))
    });
    match result.unwrap_err() {
        Failure::TimeLimit { limit, time } => {
            assert_eq!(limit, Duration::from_secs(60));
            assert_eq!(time, Instant::ORIGIN);
        }
        other => panic!("expected the time limit, got {other:?}"),
    }
    assert!(!report.passed());
}

#[test]
fn the_step_limit_is_a_failure() {
    let (result, report) = run_with(quiet(0).steps_max(100), |event_loop| {
        event_loop.run_until_complete(async {
            loop {
                roof::yield_now().await;
            }
        })
    });
    assert!(matches!(
        result.unwrap_err(),
        Failure::StepLimit { limit: 100, .. }
    ));
    assert_eq!(report.steps, 101);
}

#[test]
fn default_limits_are_documented_values() {
    assert_eq!(roof::TIME_MAX_DEFAULT, Duration::from_secs(86_400));
    assert_eq!(roof::STEPS_MAX_DEFAULT, 10_000_000);
    let config = roof::Config::new(0);
    assert_eq!(config.time_max, roof::TIME_MAX_DEFAULT);
    assert_eq!(config.policy, Policy::Random);
}

#[test]
fn in_simulation_tells_a_running_loop() {
    assert!(!roof::in_simulation());
    let event_loop = EventLoop::with_config(quiet(0));
    assert!(event_loop
        .run_until_complete(async { roof::in_simulation() })
        .unwrap());
    assert!(!roof::in_simulation());
}
