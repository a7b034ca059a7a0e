//! One seed of a test: the [`Sim`] a test body fills in, and running it until every client
//! is done or one failed (with the seed's fault plan and the liveness phase).

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::rc::Rc;

use super::Stress;
use crate::engine::report::Report;
use crate::event_loop::EventLoop;
use crate::fault::{FaultKind, FaultPlan, FiredFaults};
use crate::kernel::Config;
use crate::task::JoinHandle;

/// The clients of one run: their tasks, and which have finished.
#[derive(Default)]
pub(super) struct Clients {
    /// Name and task of each client, in the order they were added.
    tasks: Vec<(String, JoinHandle<Result<(), ()>>)>,
    /// Which clients returned `Ok`, by index.
    finished: Rc<RefCell<Vec<bool>>>,
}

/// The simulation a test body sets up: hosts (servers) and clients.
///
/// ```
/// let seeds = std::cell::RefCell::new(Vec::new());
/// roof::harness::Builder::new().seeds(0..3).run(|sim: &roof::harness::Sim| {
///     seeds.borrow_mut().push(sim.seed()); // the loop's methods, through Deref
///     sim.host("server", || async {});
///     sim.client("c", async { Ok::<(), String>(()) });
///     assert_eq!(sim.hosts(), ["main", "server", "c"]);
/// });
/// assert_eq!(seeds.into_inner(), [0, 1, 2]);
/// ```
pub struct Sim {
    event_loop: EventLoop,
    clients: RefCell<Clients>,
}

impl Sim {
    /// Add a host running `start` (again after each restart). Panics on a taken or invalid
    /// name: that is a mistake in the test itself.
    pub fn host<F, Fut>(&self, name: &str, start: F) -> &Sim
    where
        F: Fn() -> Fut + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        if let Err(error) = self.event_loop.host(name, start) {
            panic!("roof: sim.host({name:?}): {error}");
        }
        self
    }

    /// Add a client host running `future` once. The seed passes when every client returns
    /// `Ok`; an `Err` fails it with the error's message, at the virtual time it was returned
    /// (the failure reported is the earliest of the run, whichever client it came from).
    pub fn client<Fut, E>(&self, name: &str, future: Fut) -> &Sim
    where
        Fut: Future<Output = Result<(), E>> + 'static,
        E: fmt::Display + 'static,
    {
        let client = name.to_string();
        let mut clients = self.clients.borrow_mut();
        let index = clients.tasks.len();
        let finished = clients.finished.clone();
        finished.borrow_mut().push(false);
        let wrapped = async move {
            match future.await {
                Ok(()) => {
                    finished.borrow_mut()[index] = true;
                    Ok(())
                }
                Err(error) => {
                    let message = error.to_string();
                    crate::kernel::with(|kernel| kernel.client_failed(&client, &message));
                    Err(())
                }
            }
        };
        match self.event_loop.client(name, wrapped) {
            Ok(handle) => clients.tasks.push((name.to_string(), handle)),
            Err(error) => panic!("roof: sim.client({name:?}): {error}"),
        }
        self
    }

    /// The loop underneath, for faults and anything else (`sim.crash("server")`, ...).
    pub fn event_loop(&self) -> &EventLoop {
        &self.event_loop
    }
}

impl std::ops::Deref for Sim {
    type Target = EventLoop;

    fn deref(&self) -> &EventLoop {
        &self.event_loop
    }
}

/// One run's result and the faults it had.
pub(super) struct SeedRun {
    pub(super) report: Report,
    pub(super) plan: FaultPlan,
    pub(super) fired: Vec<String>,
}

/// Run one seed: build the sim, let `body` fill it, run until every client is done or one
/// failed (with the seed's fault plan and the liveness deadline, when asked for).
pub(super) fn run_seed(config: Config, body: &dyn Fn(&Sim), stress: Stress) -> SeedRun {
    let seed = config.seed;
    let config = config.buggify(stress.buggify);
    let sim = Sim {
        event_loop: EventLoop::with_config(config),
        clients: RefCell::new(Clients::default()),
    };
    body(&sim);
    let Clients { tasks, finished } = std::mem::take(&mut *sim.clients.borrow_mut());
    let client_names: Vec<String> = tasks.iter().map(|(name, _)| name.clone()).collect();
    let restartable = sim.restartable_hosts();
    let mut plan = match (&stress.plan, stress.faults) {
        (Some(plan), _) => plan.clone(),
        (None, None) => FaultPlan::none(),
        (None, Some(window)) => {
            let hosts: Vec<String> = sim
                .hosts()
                .into_iter()
                .filter(|host| host != "main")
                .collect();
            // Clients run once: a crash is drawn among the hosts that restart.
            let kinds = stress.kinds.as_deref().unwrap_or(FaultKind::DEFAULT);
            FaultPlan::draw_kinds(seed, &hosts, &restartable, window, kinds)
        }
    };
    // The same for a given plan: crashing a client would fail the seed for nothing the
    // system did.
    plan.faults
        .retain(|fault| fault.kind != FaultKind::Crash || restartable.contains(&fault.host));
    if let Some(keep) = &stress.keep {
        plan = plan.keep(keep);
    }
    let fired: FiredFaults = Rc::new(RefCell::new(Vec::new()));
    let nemesis = (stress.faults.is_some() || stress.plan.is_some())
        .then(|| sim.start_nemesis(plan.clone(), fired.clone()));
    // Done when every client is, or as soon as one fails (its error is the run's failure
    // already, recorded when it happened).
    let mut waiting = tasks;
    let all_clients = std::future::poll_fn(move |cx| {
        let mut index = 0;
        while index < waiting.len() {
            match std::pin::Pin::new(&mut waiting[index].1).poll(cx) {
                std::task::Poll::Pending => index += 1,
                std::task::Poll::Ready(Ok(Ok(()))) => {
                    waiting.remove(index).1.detach();
                }
                std::task::Poll::Ready(Ok(Err(()))) => return std::task::Poll::Ready(Ok(())),
                std::task::Poll::Ready(Err(_)) => {
                    let name = waiting.remove(index).0;
                    return std::task::Poll::Ready(Err(format!(
                        "client {name:?} failed: the client was cancelled"
                    )));
                }
            }
        }
        if waiting.is_empty() {
            std::task::Poll::Ready(Ok(()))
        } else {
            std::task::Poll::Pending
        }
    });
    let watchdog = async move {
        if let Some(nemesis) = nemesis {
            let _ = nemesis.await;
        }
        let Some(deadline) = stress.liveness else {
            return std::future::pending().await;
        };
        let stopped = crate::time::now();
        crate::time::sleep(deadline).await;
        let stuck: Vec<&str> = finished
            .borrow()
            .iter()
            .zip(&client_names)
            .filter(|(done, _)| !**done)
            .map(|(_, name)| name.as_str())
            .collect();
        Err(format!(
            "liveness: no progress within {deadline:?} after the faults stopped at {stopped}: still running: {}",
            stuck.join(", ")
        ))
    };
    let outcome = sim
        .event_loop
        .run_until_complete(first_of(all_clients, watchdog));
    if let Ok(Err(message)) = outcome {
        sim.event_loop.fail(message);
    }
    let report = sim.event_loop.report();
    // What the nemesis did, then what the engine did on its own.
    let mut fired = fired.borrow().clone();
    fired.extend(report.injected.iter().cloned());
    SeedRun {
        report,
        plan,
        fired,
    }
}

/// Whichever of two futures finishes first, polling `a` before `b` (no hidden randomness).
pub(super) async fn first_of<T>(a: impl Future<Output = T>, b: impl Future<Output = T>) -> T {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(value) = a.as_mut().poll(cx) {
            return std::task::Poll::Ready(value);
        }
        b.as_mut().poll(cx)
    })
    .await
}
