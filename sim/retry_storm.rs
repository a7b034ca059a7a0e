//! (being written)

use roof::EventLoop;

/// The system with its planted bug.
pub fn run(_event_loop: &EventLoop) -> Result<(), String> {
    Ok(())
}

/// The system fixed.
pub fn run_fixed(_event_loop: &EventLoop) -> Result<(), String> {
    Ok(())
}
