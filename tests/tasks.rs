//! Tasks: join handles, abort, detach, names, yield, scheduling policies and choices.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use roof::{Choices, EventLoop, Policy, TraceMode};

use crate::{quiet, run_with};

#[test]
fn awaiting_a_handle_returns_the_result() {
    let (value, _) = run_with(quiet(0), |event_loop| {
        event_loop
            .run_until_complete(async { roof::spawn(async { 6 * 7 }).await.unwrap() })
            .unwrap()
    });
    assert_eq!(value, 42);
}

#[test]
fn abort_cancels_and_awaiting_yields_a_cancelled_error() {
    let dropped = Rc::new(RefCell::new(false));
    let seen = dropped.clone();
    let (error, _) = run_with(quiet(0), |event_loop| {
        event_loop
            .run_until_complete(async move {
                struct Guard(Rc<RefCell<bool>>);
                impl Drop for Guard {
                    fn drop(&mut self) {
                        *self.0.borrow_mut() = true;
                    }
                }
                let guard = Guard(seen);
                let mut handle = roof::spawn(async move {
                    let _guard = guard;
                    roof::sleep(Duration::from_secs(60)).await;
                    "finished"
                });
                roof::sleep(Duration::from_secs(1)).await;
                handle.abort();
                let id = handle.id();
                let error = handle.await.unwrap_err();
                assert_eq!(error.task(), id);
                error
            })
            .unwrap()
    });
    assert!(error.is_cancelled());
    assert!(*dropped.borrow(), "the aborted task's future was dropped");
}

#[test]
fn abort_after_completion_keeps_the_result() {
    let (value, _) = run_with(quiet(0).policy(Policy::Fifo), |event_loop| {
        event_loop
            .run_until_complete(async {
                let mut handle = roof::spawn(async { 5 });
                roof::sleep(Duration::from_millis(1)).await;
                assert!(handle.is_finished());
                handle.abort();
                handle.await
            })
            .unwrap()
    });
    assert_eq!(value, Ok(5));
}

#[test]
fn dropping_a_handle_detaches_the_task() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let inner = log.clone();
    let (result, _) = run_with(quiet(0), |event_loop| {
        event_loop.run_until_complete(async move {
            let task_log = inner.clone();
            drop(roof::spawn(async move {
                roof::sleep(Duration::from_secs(1)).await;
                task_log.borrow_mut().push("detached task ran");
            }));
            roof::sleep(Duration::from_secs(2)).await;
        })
    });
    result.unwrap();
    assert_eq!(*log.borrow(), ["detached task ran"]);
}

#[test]
fn task_ids_and_names_are_per_run() {
    for _ in 0..2 {
        let (ids, report) = run_with(quiet(0).trace(TraceMode::Record), |event_loop| {
            event_loop
                .run_until_complete(async {
                    let first = roof::spawn(async { roof::current_task().unwrap() });
                    let named = roof::spawn_named("worker", async {});
                    (
                        roof::current_task().unwrap(),
                        first.await.unwrap(),
                        named.id(),
                    )
                })
                .unwrap()
        });
        assert_eq!((ids.0.as_u64(), ids.1.as_u64(), ids.2.as_u64()), (1, 2, 3));
        let text = report.trace.unwrap().render();
        assert!(text.contains("spawn #3 \"worker\" by #1"), "{text}");
        assert!(text.contains("spawn #2 \"Task-2\" by #1"), "{text}");
    }
}

#[test]
fn yield_now_lets_the_others_run() {
    let log = Rc::new(RefCell::new(Vec::new()));
    let (result, _) = run_with(quiet(0).policy(Policy::Fifo), |event_loop| {
        let log = log.clone();
        event_loop.run_until_complete(async move {
            let handles: Vec<_> = (0..2)
                .map(|index| {
                    let log = log.clone();
                    roof::spawn(async move {
                        for round in 0..2 {
                            log.borrow_mut().push(format!("{index}.{round}"));
                            roof::yield_now().await;
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
        })
    });
    result.unwrap();
    assert_eq!(*log.borrow(), ["0.0", "1.0", "0.1", "1.1"]);
}

/// Three tasks each logging twice around a yield: the interleaving shows the schedule.
fn interleaving(config: roof::Config) -> (Vec<String>, roof::Report) {
    let log = Rc::new(RefCell::new(Vec::new()));
    let (result, report) = run_with(config, |event_loop| {
        let log = log.clone();
        event_loop.run_until_complete(async move {
            let handles: Vec<_> = (0..3)
                .map(|index| {
                    let log = log.clone();
                    roof::spawn(async move {
                        log.borrow_mut().push(format!("{index}a"));
                        roof::yield_now().await;
                        log.borrow_mut().push(format!("{index}b"));
                    })
                })
                .collect();
            for handle in handles {
                handle.await.unwrap();
            }
        })
    });
    result.unwrap();
    let log = log.borrow().clone();
    (log, report)
}

#[test]
fn all_zero_choices_are_fifo() {
    let (fifo, _) = interleaving(quiet(0).policy(Policy::Fifo));
    for seed in 0..20 {
        let (zeros, _) = interleaving(quiet(seed).choices(Choices(vec![0; 64])));
        assert_eq!(zeros, fifo);
    }
}

#[test]
fn recorded_choices_replay_a_random_run_exactly() {
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let (original, report) = interleaving(quiet(seed).record_choices(true));
        let choices = Choices(report.choices.clone().unwrap());
        let (replayed, replay_report) = interleaving(quiet(seed + 1000).choices(choices));
        assert_eq!(original, replayed, "seed {seed}");
        assert_eq!(report.trace_hash, replay_report.trace_hash, "seed {seed}");
        distinct.insert(original);
    }
    assert!(
        distinct.len() > 3,
        "random schedules explore interleavings: {distinct:?}"
    );
}

#[test]
fn pct_is_deterministic_and_explores() {
    let mut distinct = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let (first, a) = interleaving(quiet(seed).policy(Policy::pct(2)));
        let (second, b) = interleaving(quiet(seed).policy(Policy::pct(2)));
        assert_eq!((first.clone(), a.trace_hash), (second, b.trace_hash));
        distinct.insert(first);
    }
    assert!(distinct.len() > 1);
}

#[test]
fn user_randomness_replays_with_the_seed_and_varies_across_seeds() {
    let draw = |seed| {
        run_with(quiet(seed), |event_loop| {
            event_loop
                .run_until_complete(async {
                    let mut items: Vec<u64> = (0..10).collect();
                    roof::random::shuffle(&mut items);
                    (
                        roof::random::u64(),
                        roof::random::range(5..10),
                        items,
                        roof::random::chance(0.5),
                    )
                })
                .unwrap()
        })
        .0
    };
    assert_eq!(draw(1), draw(1));
    assert_ne!(draw(1), draw(2));
    let (_, value, _, _) = draw(3);
    assert!((5..10).contains(&value));
}

#[test]
fn user_randomness_does_not_disturb_the_schedule() {
    let schedule = |draws: usize| {
        let (_, report) = run_with(quiet(5).record_choices(true), |event_loop| {
            event_loop.run_until_complete(async move {
                let handles: Vec<_> = (0..4)
                    .map(|_| {
                        roof::spawn(async move {
                            roof::yield_now().await;
                        })
                    })
                    .collect();
                for _ in 0..draws {
                    roof::random::u64();
                }
                for handle in handles {
                    handle.await.unwrap();
                }
            })
        });
        report.choices.unwrap()
    };
    assert_eq!(schedule(0), schedule(100));
}

/// Regression: async-task frees a detached task that goes pending with no waker left anywhere,
/// without dropping its future. The loop keeps such a task alive (it is blocked, not gone): it
/// is listed in a deadlock and its future is dropped when the loop closes.
#[test]
fn a_detached_task_pending_forever_without_a_waker_stays_alive_until_close() {
    struct Flag(Rc<RefCell<bool>>);
    impl Drop for Flag {
        fn drop(&mut self) {
            *self.0.borrow_mut() = true;
        }
    }
    let dropped = Rc::new(RefCell::new(false));
    let flag = Flag(dropped.clone());
    let event_loop = roof::EventLoop::with_config(quiet(0));
    event_loop
        .create_task_named("forever", async move {
            let _flag = flag;
            std::future::pending::<()>().await;
        })
        .detach();
    let failure = event_loop.run_forever().unwrap_err();
    assert!(failure.to_string().contains("\"forever\""), "{failure}");
    assert!(!*dropped.borrow());
    drop(event_loop);
    assert!(
        *dropped.borrow(),
        "closing the loop dropped the pending task's future"
    );
}

/// A future that records where it was first polled and checks, when dropped, that it was
/// never moved since: futures are pinned, and a self-referential one (an async block
/// borrowing its own locals, as async-io's `Ready`) reads through such pointers in its drop.
struct Pinned {
    polled_at: Rc<Cell<usize>>,
    dropped_at: Rc<Cell<usize>>,
}

impl std::future::Future for Pinned {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        self.polled_at.set(std::ptr::from_ref(&*self).addr());
        std::task::Poll::Pending
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        self.dropped_at.set(std::ptr::from_ref(&*self).addr());
    }
}

#[test]
fn a_cancelled_future_is_dropped_where_it_was_polled_on_abort_and_on_close() {
    for abort in [true, false] {
        let polled_at = Rc::new(Cell::new(0));
        let dropped_at = Rc::new(Cell::new(0));
        let event_loop = EventLoop::with_config(quiet(0).policy(Policy::Fifo));
        let future = Pinned {
            polled_at: polled_at.clone(),
            dropped_at: dropped_at.clone(),
        };
        event_loop
            .run_until_complete(async move {
                let mut task = roof::spawn(future);
                roof::yield_now().await;
                if abort {
                    task.abort();
                    roof::yield_now().await;
                } else {
                    task.detach();
                }
            })
            .unwrap();
        // Aborted: dropped by the loop at once. Detached: dropped when the loop closes.
        drop(event_loop);
        assert_ne!(polled_at.get(), 0, "polled (abort: {abort})");
        assert_eq!(dropped_at.get(), polled_at.get(), "abort: {abort}");
    }
}

/// A waker that outlives its task wakes nothing, even after a new task took the old one's
/// slot in the table.
#[test]
fn a_stale_waker_wakes_nothing_even_when_its_slot_is_reused() {
    let event_loop = EventLoop::with_config(quiet(0).policy(Policy::Fifo).trace(TraceMode::Record));
    let polls_of_second = event_loop
        .run_until_complete(async {
            let kept: Rc<RefCell<Option<std::task::Waker>>> = Rc::default();
            let keep = kept.clone();
            roof::spawn(std::future::poll_fn(move |cx| {
                *keep.borrow_mut() = Some(cx.waker().clone());
                std::task::Poll::Ready(())
            }))
            .await
            .unwrap();
            // The first task is gone; the second reuses its slot and waits forever.
            let polls = Rc::new(Cell::new(0));
            let count = polls.clone();
            let second = roof::spawn(std::future::poll_fn(move |_| {
                count.set(count.get() + 1);
                std::task::Poll::<()>::Pending
            }));
            roof::yield_now().await;
            assert_eq!(polls.get(), 1);
            kept.borrow_mut().take().unwrap().wake();
            for _ in 0..3 {
                roof::yield_now().await;
            }
            second.detach();
            polls.get()
        })
        .unwrap();
    assert_eq!(
        polls_of_second, 1,
        "the stale waker woke the slot's new task"
    );
    let trace = event_loop.report().trace.unwrap().render();
    assert!(!trace.contains("wake #3 by #1"), "{trace}");
}

/// A future that panics while it is dropped: at close the loop goes on dropping the others
/// (and `drop` does not panic); cancelled by an abort, the panic fails the run.
#[test]
fn a_panic_while_dropping_a_cancelled_future_is_contained() {
    struct Bomb(Rc<Cell<u32>>);
    impl Drop for Bomb {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
            panic!("boom while dropping");
        }
    }
    let dropped = Rc::new(Cell::new(0));
    let event_loop = EventLoop::with_config(quiet(0));
    let bombs = dropped.clone();
    event_loop
        .run_until_complete(async move {
            for _ in 0..3 {
                let bomb = Bomb(bombs.clone());
                roof::spawn(async move {
                    let _bomb = bomb;
                    std::future::pending::<()>().await;
                })
                .detach();
            }
            roof::yield_now().await;
        })
        .unwrap();
    drop(event_loop);
    assert_eq!(
        dropped.get(),
        3,
        "every future dropped at close, despite the panics"
    );

    let event_loop = EventLoop::with_config(quiet(0));
    let bombs = Rc::new(Cell::new(0));
    let bomb = Bomb(bombs.clone());
    let failure = event_loop
        .run_until_complete(async move {
            let mut task = roof::spawn(async move {
                let _bomb = bomb;
                std::future::pending::<()>().await;
            });
            roof::yield_now().await;
            task.abort();
            roof::sleep(std::time::Duration::from_secs(1)).await;
        })
        .unwrap_err();
    assert!(
        matches!(&failure, roof::Failure::Panic { message, .. } if message == "boom while dropping"),
        "{failure}"
    );
    assert_eq!(bombs.get(), 1);
}

/// With an exception handler, a panicking task and a panicking callback are reported with
/// their context and the loop goes on; without one, a panic fails the run; a handler that
/// panics fails it too.
#[test]
fn an_exception_handler_hears_of_panics_and_the_loop_goes_on() {
    let event_loop = EventLoop::with_config(quiet(0).trace(TraceMode::Record));
    let heard: Rc<RefCell<Vec<roof::ExceptionContext>>> = Rc::default();
    let log = heard.clone();
    event_loop.set_exception_handler(Some(move |context: &roof::ExceptionContext| {
        log.borrow_mut().push(context.clone());
    }));
    assert!(event_loop.has_exception_handler());
    event_loop
        .host("worker", std::future::pending::<()>)
        .unwrap();
    let survived = event_loop
        .run_until_complete(async {
            let doomed = roof::spawn_named("doomed", async {
                roof::sleep(Duration::from_millis(5)).await;
                panic!("the task broke");
            });
            assert!(
                doomed.await.is_err(),
                "a panicked task's handle gives an error"
            );
            roof::get_running_loop().call_soon(|| panic!("the callback broke"));
            roof::sleep(Duration::from_millis(1)).await;
            roof::task::all_tasks().len()
        })
        .unwrap();
    assert_eq!(survived, 2, "main and the worker host's start task live on");
    let heard = heard.borrow();
    assert_eq!(heard.len(), 2, "{heard:?}");
    assert_eq!(heard[0].message, "the task broke");
    assert_eq!(heard[0].task_name.as_deref(), Some("doomed"));
    assert_eq!(heard[0].host.as_deref(), Some("main"));
    assert_eq!(heard[0].time.as_nanos(), 5_000_000);
    assert_eq!(heard[1].message, "the callback broke");
    assert_eq!(heard[1].task_name.as_deref(), Some("callback"));
    assert!(event_loop.report().passed());

    // The default again: a panic fails the run.
    event_loop.set_exception_handler(None::<fn(&roof::ExceptionContext)>);
    let failure = event_loop
        .run_until_complete(async { roof::spawn(async { panic!("now fatal") }).await })
        .unwrap_err();
    assert!(failure.to_string().contains("now fatal"), "{failure}");

    let strict = EventLoop::with_config(quiet(0));
    strict.set_exception_handler(Some(|_: &roof::ExceptionContext| {
        panic!("the handler broke")
    }));
    let failure = strict
        .run_until_complete(async { roof::spawn(async { panic!("first") }).await })
        .unwrap_err();
    assert!(
        failure.to_string().contains("the handler broke"),
        "{failure}"
    );
}

/// asyncio's `wait`: FIRST_EXCEPTION returns at the first panic (a cancellation does not
/// count), ALL_COMPLETED with a timeout returns what finished by then; the tasks left run on.
#[test]
fn wait_returns_when_asked_and_leaves_the_rest_running() {
    use roof::wait::{wait, ReturnWhen};
    let event_loop = EventLoop::with_config(quiet(0));
    event_loop.set_exception_handler(Some(|_: &roof::ExceptionContext| {}));
    event_loop
        .run_until_complete(async {
            let sleeper = |ms: u64| {
                roof::spawn(async move {
                    roof::sleep(Duration::from_millis(ms)).await;
                    ms
                })
            };
            let mut aborted = sleeper(1);
            aborted.abort();
            let doomed = roof::spawn(async {
                roof::sleep(Duration::from_millis(10)).await;
                panic!("broken")
            });
            let tasks = vec![aborted, sleeper(100), doomed];
            let waited = wait(tasks, ReturnWhen::FirstException, None).await;
            assert_eq!(
                roof::time::now().as_nanos(),
                10_000_000,
                "at the panic, not before"
            );
            let done: Vec<(usize, bool, bool)> = waited
                .done
                .iter()
                .map(|(index, result)| {
                    let error = result.as_ref().unwrap_err();
                    (*index, error.is_cancelled(), error.is_panic())
                })
                .collect();
            assert_eq!(done, [(0, true, false), (2, false, true)]);
            assert_eq!(waited.pending.len(), 1);
            let (index, survivor) = waited.pending.into_iter().next().unwrap();
            assert_eq!(index, 1);
            let waited = wait(
                vec![survivor],
                ReturnWhen::AllCompleted,
                Some(Duration::from_millis(5)),
            )
            .await;
            assert!(waited.done.is_empty(), "the timeout came first");
            let (_, survivor) = waited.pending.into_iter().next().unwrap();
            assert_eq!(survivor.await.unwrap(), 100, "it ran on");
        })
        .unwrap();
}

fn fifo_traced() -> roof::Config {
    quiet(0).policy(Policy::Fifo).trace(TraceMode::Record)
}

/// A cancel request is a trace event, and the task's end after it is a `cancel`.
#[test]
fn a_cancel_request_is_traced_and_an_uncaught_one_ends_the_task_cancelled() {
    let (cancelled, report) = run_with(fifo_traced(), |event_loop| {
        event_loop
            .run_until_complete(async {
                let mut worker = roof::spawn(roof::sleep(Duration::from_secs(5)));
                roof::sleep(Duration::from_millis(1)).await;
                assert!(worker.cancel());
                assert!(!worker.cancelled(), "not ended yet");
                assert!((&mut worker).await.unwrap_err().is_cancelled());
                worker.cancelled()
            })
            .unwrap()
    });
    assert!(cancelled);
    let trace = report.trace.unwrap().render();
    let request = trace.find("cancel-request #2 by #1").expect(&trace);
    let end = trace.find("cancel #2").expect(&trace);
    assert!(request < end, "{trace}");
    assert_eq!(
        report.virtual_time.as_secs_f64(),
        0.001,
        "the 5 s sleep did not run out"
    );
}

/// A request waits while the task awaits something that is not roof's, and is delivered at
/// its next roof await; a task that reaches none finishes normally.
#[test]
fn a_request_waits_for_the_next_roof_await() {
    let (outcome, _) = run_with(quiet(0).policy(Policy::Fifo), |event_loop| {
        event_loop
            .run_until_complete(async {
                let ready = Rc::new(Cell::new(false));
                let parked: Rc<RefCell<Option<std::task::Waker>>> = Rc::default();
                let steps = Rc::new(RefCell::new(Vec::new()));
                let not_roofs = {
                    let (ready, parked) = (ready.clone(), parked.clone());
                    move || {
                        let (ready, parked) = (ready.clone(), parked.clone());
                        std::future::poll_fn(move |cx| {
                            if ready.get() {
                                return std::task::Poll::Ready(());
                            }
                            *parked.borrow_mut() = Some(cx.waker().clone());
                            std::task::Poll::Pending
                        })
                    }
                };
                let mut worker = roof::spawn({
                    let (steps, not_roof) = (steps.clone(), not_roofs());
                    async move {
                        not_roof.await;
                        steps.borrow_mut().push("past the foreign wait");
                        roof::sleep(Duration::from_secs(1)).await;
                        steps.borrow_mut().push("slept");
                    }
                });
                roof::sleep(Duration::from_millis(1)).await;
                worker.cancel();
                roof::sleep(Duration::from_millis(1)).await;
                assert!(!worker.is_finished(), "still waiting on the foreign future");
                ready.set(true);
                parked.borrow_mut().take().unwrap().wake();
                let ended = (&mut worker).await;
                let mut finisher = roof::spawn({
                    let not_roof = not_roofs();
                    async move {
                        not_roof.await;
                        "finished"
                    }
                });
                roof::yield_now().await;
                finisher.cancel();
                let finished = (&mut finisher).await;
                (ended.is_err(), steps.take(), finished, finisher.cancelled())
            })
            .unwrap()
    });
    assert_eq!(
        outcome,
        (true, vec!["past the foreign wait"], Ok("finished"), false)
    );
}

/// A handle whose output was taken still answers for its task (it holds the task until it is
/// dropped), and awaiting it again is an error, never a panic.
#[test]
fn a_handle_answers_after_its_output_is_taken() {
    let event_loop = EventLoop::with_config(quiet(0));
    event_loop
        .run_until_complete(async {
            let mut handle = roof::spawn_named("worker", async { 42 });
            let id = handle.id();
            assert_eq!((&mut handle).await.unwrap(), 42);
            assert_eq!(handle.id(), id);
            assert!(handle.is_finished());
            assert!(!handle.cancelled());
            assert!(!handle.cancel(), "it has finished");
            handle.abort();
            assert_eq!(handle.get_name(), format!("Task-{}", id.as_u64()));
            let again = (&mut handle).await.unwrap_err();
            assert!(!again.is_panic() && again.is_cancelled());

            let mut aborted = roof::spawn(roof::sleep(Duration::from_secs(1)));
            aborted.abort();
            assert!((&mut aborted).await.unwrap_err().is_cancelled());
            assert!(aborted.cancelled() && aborted.is_finished());
        })
        .unwrap();
}

/// A task may drop another loop inside its poll: the other loop's queued tasks are run
/// cancelled there (a run inside a run), and the outer task goes on as itself.
#[test]
fn a_task_that_drops_another_loop_goes_on_as_itself() {
    struct Dropped(Rc<Cell<bool>>);
    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.set(true);
        }
    }
    let event_loop = EventLoop::with_config(quiet(0).trace(TraceMode::Record));
    let (inner_dropped, inner_polled, outer) = event_loop
        .run_until_complete(async {
            let worker = roof::spawn(async {
                let (dropped, polled) = (Rc::new(Cell::new(false)), Rc::new(Cell::new(false)));
                let other = EventLoop::with_config(quiet(1));
                let (guard, seen) = (Dropped(dropped.clone()), polled.clone());
                other
                    .create_task(async move {
                        let _guard = guard;
                        seen.set(true);
                    })
                    .detach();
                drop(other);
                roof::sleep(Duration::from_millis(5)).await;
                (dropped.get(), polled.get(), roof::task::current_task())
            });
            let id = worker.id();
            let (dropped, polled, current) = worker.await.unwrap();
            assert_eq!(current, Some(id), "the outer task is still itself");
            (dropped, polled, id)
        })
        .unwrap();
    assert!(inner_dropped, "the other loop's task was dropped");
    assert!(!inner_polled, "and never polled");
    let trace = event_loop.report().trace.unwrap().render();
    assert!(
        trace.contains(&format!("complete #{}", outer.as_u64())),
        "{trace}"
    );
}

/// Loops come and go by the tens of thousands in a sweep: their tags (16 bits in a task's
/// header) are reused, and every loop's tasks still find their loop.
#[test]
fn more_loops_than_tags_over_a_process_life_each_find_their_tasks() {
    for seed in 0..70_000u64 {
        let event_loop = EventLoop::with_config(quiet(seed));
        let answer = event_loop
            .run_until_complete(async move {
                let task = roof::spawn(async move {
                    roof::yield_now().await;
                    seed
                });
                task.await.unwrap()
            })
            .unwrap();
        assert_eq!(answer, seed);
    }
}
