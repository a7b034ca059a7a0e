//! Every integration test, in one binary (`cargo test --test main`).

#[path = "../sim/mod.rs"]
#[allow(dead_code)]
mod sim;

mod cli;
mod event_loop;
mod scenarios;
mod snapshots;
mod tasks;
mod time;
mod trace;

use roof::{Config, EventLoop, Report};

/// A quiet config (no echo) for `seed`.
pub fn quiet(seed: u64) -> Config {
    Config::new(seed).echo(false)
}

/// Run `body` on a fresh quiet loop and return what it returned plus the report.
pub fn run_with<T>(config: Config, body: impl FnOnce(&EventLoop) -> T) -> (T, Report) {
    let event_loop = EventLoop::with_config(config.echo(false));
    let value = body(&event_loop);
    (value, event_loop.report())
}
