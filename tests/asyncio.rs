//! Where roof mirrors asyncio, it behaves as CPython does: each program here is the port of
//! one in `tests/reference/`, run under `Policy::Fifo`, and prints what CPython printed.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use roof::{EventLoop, Policy, TimerHandle};

use crate::quiet;

fn reference(name: &str) -> String {
    let path = format!("{}/tests/reference/{name}.out", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// A FIFO loop, quiet: what the program prints is in its report.
fn fifo() -> EventLoop {
    EventLoop::with_config(quiet(0).policy(Policy::Fifo))
}

fn python_bool(value: bool) -> &'static str {
    if value {
        "True"
    } else {
        "False"
    }
}

/// `tests/reference/timer_cancel_due.py`: both timers fall due together; the first callback
/// cancels the second, which asyncio then skips.
#[test]
fn a_timer_cancelled_after_it_fell_due_does_not_run() {
    let event_loop = fifo();
    let second: Rc<RefCell<Option<TimerHandle>>> = Rc::default();
    let cancel = second.clone();
    event_loop.call_later(Duration::from_millis(1), move || {
        roof::println!("first: cancelling second");
        cancel.borrow().as_ref().unwrap().cancel();
    });
    *second.borrow_mut() = Some(event_loop.call_later(Duration::from_millis(1), || {
        roof::println!("second ran");
    }));
    let handle = event_loop.handle();
    event_loop.call_later(Duration::from_millis(2), move || handle.stop());
    event_loop.run_forever().unwrap();
    let cancelled = second.borrow().as_ref().unwrap().cancelled();
    roof::println!("second cancelled: {}", python_bool(cancelled));
    assert_eq!(event_loop.report().output, reference("timer_cancel_due"));
}

/// `tests/reference/cancel_finally.py`: an aborted task is finished only once its future
/// was dropped, its drop guards (asyncio: its `finally`) run.
#[test]
fn an_aborted_task_is_finished_only_after_its_drop_guards_ran() {
    struct Finally;
    impl Drop for Finally {
        fn drop(&mut self) {
            roof::println!("worker: finally runs");
        }
    }
    let event_loop = fifo();
    event_loop
        .run_until_complete(async {
            let mut task = roof::spawn(async {
                let _finally = Finally;
                roof::sleep(Duration::from_secs(10)).await;
            });
            roof::sleep(Duration::ZERO).await;
            task.abort();
            roof::println!("after cancel: done = {}", python_bool(task.is_finished()));
            if let Err(error) = (&mut task).await {
                assert!(error.is_cancelled());
                roof::println!("awaited: cancelled");
            }
            roof::println!("after await: done = {}", python_bool(task.is_finished()));
        })
        .unwrap();
    assert_eq!(event_loop.report().output, reference("cancel_finally"));
}

/// `tests/reference/sleep_zero.py`: `sleep(0)` is a bare yield, so the task is queued behind
/// what was ready when it yielded, ahead of what is queued later in the same iteration.
#[test]
fn sleep_zero_is_a_bare_yield() {
    let event_loop =
        EventLoop::with_config(quiet(0).policy(Policy::Fifo).trace(roof::TraceMode::Record));
    let task = event_loop.create_task(async {
        roof::sleep(Duration::ZERO).await;
        roof::println!("main: resumed after sleep(0)");
    });
    let handle = event_loop.handle();
    event_loop.call_soon(move || {
        handle.call_soon(|| roof::println!("callback queued after main yielded"));
    });
    event_loop
        .run_until_complete(async move { task.await.unwrap() })
        .unwrap();
    let report = event_loop.report();
    assert_eq!(report.output, reference("sleep_zero"));
    let timers = report
        .trace
        .unwrap()
        .events
        .iter()
        .filter(|event| matches!(event.kind, roof::trace::EventKind::TimerSet { .. }))
        .count();
    assert_eq!(timers, 0, "sleep(0) arms no timer");
}

/// `tests/reference/call_later_ties.py`: callbacks due at one instant run in scheduling order
/// under FIFO; under the random policy their order is drawn from the seed (which is what
/// finds bugs that depend on it), and replays with it.
#[test]
fn callbacks_due_together_run_in_scheduling_order_under_fifo_and_seeded_order_under_random() {
    let run = |policy: Policy, seed: u64| {
        let event_loop = EventLoop::with_config(quiet(seed).policy(policy));
        for name in ["a", "b", "c", "d"] {
            event_loop.call_later(Duration::from_millis(500), move || roof::println!("{name}"));
        }
        let handle = event_loop.handle();
        event_loop.call_later(Duration::from_millis(500), move || handle.stop());
        event_loop.run_forever().unwrap();
        event_loop.report().output
    };
    assert_eq!(run(Policy::Fifo, 0), reference("call_later_ties"));
    let orders: std::collections::BTreeSet<String> =
        (0..32).map(|seed| run(Policy::Random, seed)).collect();
    assert!(orders.len() > 4, "random orders across seeds: {orders:?}");
    assert_eq!(
        run(Policy::Random, 9),
        run(Policy::Random, 9),
        "a seed replays its order"
    );
    for order in &orders {
        let mut lines: Vec<&str> = order.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["a", "b", "c", "d"], "each runs once");
    }
}

/// `tests/reference/gather_nested.py`: gather schedules its members when called, so a gather
/// of gathers runs them in the order the inner gathers were made; a timeout around a gather
/// (asyncio's `wait_for`) aborts every member.
#[test]
fn gather_schedules_members_when_called_and_a_timeout_aborts_them_all() {
    type Job = std::pin::Pin<Box<dyn std::future::Future<Output = &'static str>>>;
    fn job(name: &'static str, delay_ms: u64) -> Job {
        Box::pin(async move {
            roof::println!("{name} starts");
            roof::sleep(Duration::from_millis(delay_ms)).await;
            roof::println!("{name} ends");
            name
        })
    }
    let event_loop = fifo();
    event_loop
        .run_until_complete(async {
            let first = roof::gather(vec![job("a", 20), job("b", 10)]);
            let second = roof::gather(vec![job("c", 10), job("d", 0)]);
            roof::println!("main: both gathers made");
            roof::sleep(Duration::ZERO).await;
            roof::println!("main: gathering them");
            let gathered = roof::gather(vec![first, second]).await.unwrap();
            let inner: Vec<Vec<&str>> = gathered.into_iter().map(Result::unwrap).collect();
            let text = format!("{inner:?}").replace('"', "'");
            roof::println!("gathered: {text}");
            let doomed = roof::gather(vec![job("e", 50), job("f", 1000)]);
            if roof::timeout(Duration::from_millis(100), doomed)
                .await
                .is_err()
            {
                roof::println!("timed out");
            }
            roof::sleep(Duration::from_secs(2)).await;
            roof::println!("f never ended");
        })
        .unwrap();
    assert_eq!(event_loop.report().output, reference("gather_nested"));
}

/// `tests/reference/task_group.py`: a TaskGroup waits for all; the first failure aborts the
/// others, which end before the group reports it.
#[test]
fn a_task_group_waits_for_all_and_its_first_failure_cancels_the_rest() {
    struct Cancelled(&'static str, bool);
    impl Drop for Cancelled {
        fn drop(&mut self) {
            if !self.1 {
                roof::println!("{} cancelled", self.0);
            }
        }
    }
    async fn job(name: &'static str, delay_ms: u64, fail: bool) -> Result<&'static str, String> {
        roof::println!("{name} starts");
        let mut guard = Cancelled(name, false);
        roof::sleep(Duration::from_millis(delay_ms)).await;
        guard.1 = true;
        if fail {
            roof::println!("{name} fails");
            return Err(name.to_string());
        }
        roof::println!("{name} ends");
        Ok(name)
    }
    let event_loop = fifo();
    event_loop
        .run_until_complete(async {
            let group = roof::wait::TaskGroup::new();
            group.spawn(job("a", 20, false));
            group.spawn(job("b", 10, false));
            let results = group.wait().await.unwrap();
            roof::println!("results: {} {}", results[0], results[1]);
            let group = roof::wait::TaskGroup::new();
            group.spawn(job("c", 10, true));
            group.spawn(job("d", 1000, false));
            group.spawn(job("e", 5, false));
            if let Err(roof::wait::GroupError::Failed(error)) = group.wait().await {
                roof::println!("failed: ['{error}']");
            }
        })
        .unwrap();
    assert_eq!(event_loop.report().output, reference("task_group"));
}

/// `tests/reference/task_cancel.py`: `Task.cancel()` reaches the task at its next await; it
/// may catch it, clean up with awaits and finish, or let it through; a task awaiting another
/// passes the request on; a task awaiting a future cancels the future.
#[test]
fn a_cancel_request_is_seen_at_the_next_await_as_asyncio_delivers_it() {
    use roof::sync::Lock;
    use roof::task::catch_cancelled;
    type Log = Rc<RefCell<Vec<String>>>;
    fn note(log: &Log, line: impl Into<String>) {
        log.borrow_mut().push(line.into());
    }
    fn flush(log: &Log) {
        for line in log.borrow_mut().drain(..) {
            roof::println!("{line}");
        }
    }
    let long = Duration::from_secs(10);
    let event_loop = fifo();
    event_loop
        .run_until_complete(async move {
            let log: Log = Rc::default();
            let zero = || roof::sleep(Duration::ZERO);

            let cleaner = roof::spawn({
                let log = log.clone();
                async move {
                    match catch_cancelled(roof::sleep(long)).await {
                        Ok(()) => None,
                        Err(_) => {
                            note(&log, "cleaner: cancelled, cleaning up");
                            roof::sleep(Duration::from_secs(1)).await;
                            note(&log, "cleaner: clean");
                            Some("cleaned")
                        }
                    }
                }
            });
            zero().await;
            roof::println!("cancel returns {}", python_bool(cleaner.cancel()));
            let mut cleaner = cleaner;
            let result = (&mut cleaner).await.unwrap().unwrap();
            roof::println!(
                "result: {result} | cancelled: {}",
                python_bool(cleaner.cancelled())
            );
            flush(&log);

            let mut plain = roof::spawn(async move { roof::sleep(long).await });
            zero().await;
            plain.cancel();
            assert!((&mut plain).await.unwrap_err().is_cancelled());
            roof::println!("plain: cancelled = {}", python_bool(plain.cancelled()));

            let mut unstarted = roof::spawn(async move { roof::sleep(long).await });
            unstarted.cancel();
            assert!((&mut unstarted).await.unwrap_err().is_cancelled());
            roof::println!(
                "unstarted: cancelled = {}",
                python_bool(unstarted.cancelled())
            );

            let mut reraiser = roof::spawn({
                let log = log.clone();
                async move {
                    if let Err(cancelled) = catch_cancelled(roof::sleep(long)).await {
                        note(&log, "reraiser: saw it, raising again");
                        cancelled.raise::<()>().await;
                    }
                }
            });
            zero().await;
            reraiser.cancel();
            assert!((&mut reraiser).await.is_err());
            roof::println!(
                "reraiser: cancelled = {}",
                python_bool(reraiser.cancelled())
            );
            flush(&log);

            let lock = Rc::new(Lock::new());
            let held = lock.acquire().await;
            let mut waiter = roof::spawn({
                let (lock, log) = (lock.clone(), log.clone());
                async move {
                    let acquired = catch_cancelled(async {
                        let _guard = lock.acquire().await;
                        note(&log, "waiter: took the lock");
                    })
                    .await;
                    if let Err(cancelled) = acquired {
                        note(&log, "waiter: cancelled while waiting for the lock");
                        cancelled.raise::<()>().await;
                    }
                }
            });
            zero().await;
            waiter.cancel();
            zero().await;
            drop(held);
            assert!((&mut waiter).await.is_err());
            roof::println!(
                "waiter: cancelled = {} | lock locked = {}",
                python_bool(waiter.cancelled()),
                python_bool(lock.locked())
            );
            flush(&log);

            let mut outer = roof::spawn({
                let log = log.clone();
                async move {
                    let mut child = roof::spawn({
                        let log = log.clone();
                        async move {
                            if let Err(cancelled) = catch_cancelled(roof::sleep(long)).await {
                                note(&log, "inner: cancelled");
                                cancelled.raise::<()>().await;
                            }
                        }
                    });
                    if let Err(cancelled) = catch_cancelled(&mut child).await {
                        note(
                            &log,
                            format!(
                                "outer: cancelled, child cancelled = {}",
                                python_bool(child.cancelled())
                            ),
                        );
                        cancelled.raise::<()>().await;
                    }
                }
            });
            zero().await;
            zero().await;
            outer.cancel();
            assert!((&mut outer).await.is_err());
            roof::println!("outer: cancelled = {}", python_bool(outer.cancelled()));
            flush(&log);

            let mut parent = roof::spawn({
                let log = log.clone();
                async move {
                    let child = roof::spawn({
                        let log = log.clone();
                        async move {
                            if catch_cancelled(roof::sleep(long)).await.is_err() {
                                note(&log, "swallower: swallowed");
                            }
                            7
                        }
                    });
                    let value = child.await.unwrap();
                    note(&log, format!("parent: child returned {value}"));
                    value
                }
            });
            zero().await;
            zero().await;
            parent.cancel();
            let value = (&mut parent).await.unwrap();
            roof::println!(
                "parent result: {value} | cancelled: {}",
                python_bool(parent.cancelled())
            );
            flush(&log);

            let future = Rc::new(roof::Future::<u8>::new());
            let mut on_future = roof::spawn({
                let (future, log) = (future.clone(), log.clone());
                async move {
                    if let Err(cancelled) = catch_cancelled(&*future).await {
                        note(
                            &log,
                            format!(
                                "on_future: cancelled, future cancelled = {}",
                                python_bool(future.cancelled())
                            ),
                        );
                        cancelled.raise::<()>().await;
                    }
                }
            });
            zero().await;
            on_future.cancel();
            assert!((&mut on_future).await.is_err());
            roof::println!(
                "on_future: task cancelled = {}",
                python_bool(on_future.cancelled())
            );
            flush(&log);

            let plain = roof::spawn(async move { roof::sleep(long).await });
            zero().await;
            plain.cancel();
            zero().await;
            roof::println!("cancel after done returns {}", python_bool(plain.cancel()));
        })
        .unwrap();
    assert_eq!(event_loop.report().output, reference("task_cancel"));
}

/// `tests/reference/cancel_gather.py`: cancelling a task that awaits a gather or a task group
/// cancels the members, waits for them, then ends the task cancelled, even though the
/// members caught theirs; a shielded task runs on.
#[test]
fn cancelling_a_gather_or_a_group_cancels_the_members_and_a_shield_keeps_its_task() {
    use roof::task::catch_cancelled;
    type Seen = Rc<RefCell<Vec<&'static str>>>;
    fn member(name: &'static str, seen: &Seen) -> impl std::future::Future<Output = &'static str> {
        let seen = seen.clone();
        async move {
            if catch_cancelled(roof::sleep(Duration::from_secs(9)))
                .await
                .is_err()
            {
                seen.borrow_mut().push(name);
            }
            name
        }
    }
    fn listed(seen: &Seen) -> String {
        let names: Vec<String> = seen
            .borrow()
            .iter()
            .map(|name| format!("'{name}'"))
            .collect();
        format!("[{}]", names.join(", "))
    }
    let second = Duration::from_secs(1);
    let event_loop = fifo();
    event_loop
        .run_until_complete(async move {
            let seen: Seen = Rc::default();
            let mut parent =
                roof::spawn(roof::gather(vec![member("a", &seen), member("b", &seen)]));
            roof::sleep(second).await;
            parent.cancel();
            match (&mut parent).await {
                Ok(result) => roof::println!("gather result {result:?}"),
                Err(_) => roof::println!(
                    "gather parent cancelled: {} | members saw it: {}",
                    python_bool(parent.cancelled()),
                    listed(&seen)
                ),
            }

            let seen: Seen = Rc::default();
            let mut parent = roof::spawn({
                let seen = seen.clone();
                async move {
                    let group = roof::wait::TaskGroup::<&str, ()>::new();
                    for name in ["c", "d"] {
                        let member = member(name, &seen);
                        group.spawn(async move { Ok(member.await) });
                    }
                    group.wait().await.unwrap();
                    "group done"
                }
            });
            roof::sleep(second).await;
            parent.cancel();
            match (&mut parent).await {
                Ok(result) => roof::println!("group result {result}"),
                Err(_) => roof::println!(
                    "group parent cancelled: {} | members saw it: {}",
                    python_bool(parent.cancelled()),
                    listed(&seen)
                ),
            }

            let saved = Rc::new(Cell::new(false));
            let mut awaiter = roof::spawn({
                let saved = saved.clone();
                async move {
                    roof::task::shield(async move {
                        roof::sleep(2 * second).await;
                        saved.set(true);
                    })
                    .await
                    .unwrap();
                }
            });
            roof::sleep(second).await;
            awaiter.cancel();
            assert!((&mut awaiter).await.is_err());
            roof::println!(
                "shield awaiter cancelled: {} | saved yet: {}",
                python_bool(awaiter.cancelled()),
                python_bool(saved.get())
            );
            roof::sleep(2 * second).await;
            roof::println!("saved after: {}", python_bool(saved.get()));
        })
        .unwrap();
    assert_eq!(event_loop.report().output, reference("cancel_gather"));
}

/// `tests/reference/exception_handler.py`: with a handler set, a callback that panics is
/// reported to it and the loop goes on; `call_exception_handler` reaches the same handler.
#[test]
fn an_exception_handler_hears_a_panicking_callback_and_the_loop_goes_on() {
    let event_loop = fifo();
    event_loop
        .run_until_complete(async {
            let running = roof::get_running_loop();
            running.set_exception_handler(Some(|context: &roof::ExceptionContext| {
                roof::println!("handler: {}", context.message);
            }));
            running.call_soon(|| roof::println!("callback 1 runs"));
            running.call_soon(|| panic!("boom"));
            running.call_soon(|| roof::println!("callback 2 runs"));
            roof::sleep(Duration::from_millis(100)).await;
            running.call_exception_handler(&roof::ExceptionContext::new("disk nearly full"));
            roof::println!("the loop went on");
        })
        .unwrap();
    assert_eq!(event_loop.report().output, reference("exception_handler"));
}

/// `tests/reference/gather_wait.py`: gather's two modes (fail fast with the others running
/// on; every result), `wait`'s three `return_when` and its timeout, `as_completed`'s order.
/// A member that raises in Python panics here, under an exception handler that lets the
/// loop go on.
#[test]
fn gather_modes_wait_and_as_completed_behave_as_cpython() {
    use roof::wait::{as_completed, wait, ReturnWhen};
    async fn job(name: &'static str, delay_ms: u64, fail: bool) -> &'static str {
        roof::sleep(Duration::from_millis(delay_ms)).await;
        if fail {
            roof::println!("{name} fails");
            panic!("{name}");
        }
        roof::println!("{name} ends");
        name
    }
    fn names(done: &[(usize, Result<&'static str, roof::JoinError>)]) -> String {
        let mut names: Vec<String> = done
            .iter()
            .map(|(_, result)| format!("'{}'", result.as_ref().unwrap()))
            .collect();
        names.sort();
        format!("[{}]", names.join(", "))
    }
    let event_loop = fifo();
    event_loop.set_exception_handler(Some(|_: &roof::ExceptionContext| {}));
    event_loop
        .run_until_complete(async {
            let gathered = roof::gather(vec![
                job("a", 300, false),
                job("b", 100, true),
                job("c", 200, false),
            ])
            .await;
            if gathered.is_err() {
                roof::println!("gather failed fast");
            }
            roof::sleep(Duration::from_millis(500)).await;
            let results =
                roof::gather_results(vec![job("d", 200, false), job("e", 100, true)]).await;
            let shown: Vec<String> = results
                .iter()
                .map(|result| match result {
                    Ok(name) => format!("'{name}'"),
                    Err(_) => "'error'".into(),
                })
                .collect();
            roof::println!("return_exceptions: [{}]", shown.join(", "));

            let tasks = [("f", 300), ("g", 100), ("h", 200)]
                .map(|(name, delay)| roof::spawn(job(name, delay, false)))
                .into();
            let first = wait(tasks, ReturnWhen::FirstCompleted, None).await;
            roof::println!(
                "first completed: {} | pending: {}",
                names(&first.done),
                first.pending.len()
            );
            let pending = first.pending.into_iter().map(|(_, task)| task).collect();
            let timed = wait(
                pending,
                ReturnWhen::AllCompleted,
                Some(Duration::from_millis(150)),
            )
            .await;
            roof::println!(
                "timeout: done {} | pending: {}",
                names(&timed.done),
                timed.pending.len()
            );
            let pending = timed.pending.into_iter().map(|(_, task)| task).collect();
            let all = wait(pending, ReturnWhen::AllCompleted, None).await;
            roof::println!(
                "all completed: {} | pending: {}",
                names(&all.done),
                all.pending.len()
            );

            let tasks = [("i", 100, false), ("j", 200, true), ("k", 300, false)]
                .map(|(name, delay, fail)| roof::spawn(job(name, delay, fail)))
                .into();
            let first = wait(tasks, ReturnWhen::FirstException, None).await;
            roof::println!(
                "first exception: done {} | pending: {}",
                first.done.len(),
                first.pending.len()
            );
            let pending = first.pending.into_iter().map(|(_, task)| task).collect();
            wait(pending, ReturnWhen::AllCompleted, None).await;

            let tasks = [("l", 300), ("m", 100), ("n", 200)]
                .map(|(name, delay)| roof::spawn(job(name, delay, false)))
                .into();
            let mut completed = as_completed(tasks);
            let mut order = Vec::new();
            while let Some((_, result)) = completed.next().await {
                order.push(format!("'{}'", result.unwrap()));
            }
            roof::println!("as_completed: [{}]", order.join(", "));
        })
        .unwrap();
    assert_eq!(event_loop.report().output, reference("gather_wait"));
}
