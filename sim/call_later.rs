//! A callback that reschedules itself every second, on `run_forever`.
//!
//! ```python
//! def hello_world():
//!     loop.call_later(1, hello_world)
//!     print("Hello world!")
//!
//! loop.call_later(1, hello_world)
//! loop.run_forever()
//! ```
//!
//! The notes' program runs forever; the scenario stops the loop at 5.5 s, after five ticks,
//! as `loop.call_later(5.5, loop.stop)` would.

use std::time::Duration;

use roof::{EventLoop, LoopHandle};

/// Ticks before the loop is stopped.
pub const TICKS: u32 = 5;

fn hello_world(event_loop: LoopHandle) {
    let again = event_loop.clone();
    event_loop.call_later(Duration::from_secs(1), move || hello_world(again));
    roof::println!("Hello world!");
}

pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    let handle = event_loop.handle();
    event_loop.call_later(Duration::from_secs(1), move || hello_world(handle));
    let stopper = event_loop.handle();
    event_loop.call_later(
        Duration::from_millis(500) + Duration::from_secs(TICKS.into()),
        move || stopper.stop(),
    );
    event_loop.run_forever().map_err(super::failed)?;
    let ticks = event_loop.report().output.matches("Hello world!").count();
    if ticks != TICKS as usize {
        return Err(format!(
            "{ticks} ticks before the stop at 5.5 s, expected {TICKS}"
        ));
    }
    Ok(())
}
