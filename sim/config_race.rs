//! Workers that assume the config loader ran first: a planted ordering bug that FIFO never
//! shows and only some schedules do.
//!
//! A loader takes a few steps (awaits) to load the configuration; workers take as many steps
//! to start, then read it. In FIFO order the loader, spawned first, is always a step ahead;
//! a scheduler that lets a worker overtake it once exposes the missing synchronisation. This is
//! the scenario to shrink: `roof shrink config-race --seed N` finds the few deviations from FIFO
//! that matter.

use std::cell::RefCell;
use std::rc::Rc;

use roof::EventLoop;

/// Workers started after the loader.
pub const WORKERS: usize = 3;
/// Steps (awaits) the loader and each worker take before loading / reading.
pub const STEPS: usize = 3;
/// Steps each worker works after reading the configuration.
pub const WORK: usize = 40;

pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    event_loop
        .run_until_complete(async {
            let config: Rc<RefCell<Option<&'static str>>> = Rc::new(RefCell::new(None));
            let loader = {
                let config = config.clone();
                roof::spawn_named("loader", async move {
                    for _ in 0..STEPS {
                        roof::yield_now().await;
                    }
                    *config.borrow_mut() = Some("threads=4");
                })
            };
            let workers: Vec<_> = (1..=WORKERS)
                .map(|worker| {
                    let config = config.clone();
                    roof::spawn_named(format!("worker-{worker}"), async move {
                        for _ in 0..STEPS {
                            roof::yield_now().await;
                        }
                        // THE PLANTED BUG: nothing makes the worker wait for the loader.
                        let Some(setting) = *config.borrow() else {
                            return Err(format!(
                                "worker-{worker} read the configuration before the loader wrote it"
                            ));
                        };
                        for _ in 0..WORK {
                            roof::yield_now().await;
                        }
                        roof::println!("worker-{worker} ran with {setting}");
                        Ok(())
                    })
                })
                .collect();
            loader.await.map_err(|error| error.to_string())?;
            for worker in workers {
                worker.await.map_err(|error| error.to_string())??;
            }
            Ok(())
        })
        .map_err(super::failed)?
}
