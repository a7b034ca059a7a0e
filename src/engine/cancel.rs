//! Where the cancellation request of the task being polled stands (asyncio's
//! `Task.cancel()`), for the task's guard and the primitives its poll reaches.
//!
//! A thread polls one task at a time, so one thread-local [`CancelState`] serves: the guard
//! (`task.rs`) moves a task's pending request here when its poll begins and acts on what it
//! became when the poll ends.

use std::cell::Cell;

/// Where the cancellation request of the task being polled stands during its poll.
///
/// The task's guard moves a pending request (`REQUESTED`) here when the poll begins (a
/// thread polls one task at a time); the roof primitives the poll reaches read it; after the
/// poll the guard acts on what it became.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CancelState {
    /// No request.
    None,
    /// A request waits for the task's next await on a roof primitive.
    Requested,
    /// A join handle passed the request on to the task it awaits (asyncio cancels the task a
    /// cancelled task awaits): the request is consumed, and the handle raises it again if
    /// that task ends cancelled.
    Forwarded,
    /// A primitive delivered it: it returned `Pending`, and the poll is unwinding to a
    /// `catch_cancelled`, or, with none, to the guard, which ends the task as cancelled.
    Delivered,
    /// A `catch_cancelled` caught it, or a gather or task group took it to cancel its
    /// members (and raises it once they end): consumed.
    Caught,
}

thread_local! {
    /// The [`CancelState`] of the poll under way on this thread.
    static POLL_CANCEL: Cell<CancelState> = const { Cell::new(CancelState::None) };
}

/// The [`CancelState`] of the poll under way.
pub(crate) fn cancel_state() -> CancelState {
    POLL_CANCEL.with(Cell::get)
}

/// The [`CancelState`] the poll just made ended with, leaving `None` for the next one.
#[inline(always)]
pub(crate) fn take_cancel_state() -> CancelState {
    POLL_CANCEL.with(|cell| {
        let state = cell.get();
        if state != CancelState::None {
            cell.set(CancelState::None);
        }
        state
    })
}

/// Change the [`CancelState`] of the poll under way.
pub(crate) fn set_cancel_state(state: CancelState) {
    POLL_CANCEL.with(|cell| cell.set(state));
}

/// Whether a cancellation request of the task being polled waits to be delivered.
pub(crate) fn cancel_requested() -> bool {
    matches!(
        cancel_state(),
        CancelState::Requested | CancelState::Forwarded
    )
}

/// At a roof primitive's await: whether a cancellation request of the task being polled is
/// delivered here (then the primitive returns `Pending`, changing nothing).
#[inline]
pub(crate) fn deliver_cancel() -> bool {
    POLL_CANCEL.with(|cell| match cell.get() {
        CancelState::None | CancelState::Caught => false,
        CancelState::Requested | CancelState::Forwarded | CancelState::Delivered => {
            cell.set(CancelState::Delivered);
            true
        }
    })
}
