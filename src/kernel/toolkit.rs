//! What the toolkit (`roof::sync`, `roof::select`) asks of the kernel: a trace event per
//! operation, a preemption point before each one that waits, the branch a select polls
//! first, and a number for each primitive.

use std::cell::Cell;

use super::Kernel;
use crate::engine::trace::EventKind;

impl Kernel {
    /// Trace `op` on the primitive `kind` whose number (in the run of loop `self.id`) is kept
    /// in `object`: numbered from 1 at its first traced use in this run.
    pub(crate) fn record_sync(
        &self,
        kind: &'static str,
        object: &Cell<(u32, u64)>,
        op: &'static str,
    ) {
        if !self.trace.enabled() {
            return;
        }
        let (loop_id, mut number) = object.get();
        if loop_id != self.id || number == 0 {
            number = self.sync_objects.get() + 1;
            self.sync_objects.set(number);
            object.set((self.id, number));
        }
        self.record(EventKind::Sync {
            task: self.exec.current.get(),
            kind,
            object: number,
            op,
        });
    }

    /// The branch a `select` over `branches` futures polls first (the scheduler's choice).
    pub(crate) fn choose_branch(&self, branches: usize) -> usize {
        self.scheduler.borrow_mut().choose_branch(branches)
    }

    /// The preemption point before a toolkit operation: whether the running task should
    /// yield first (the scheduler's decision, drawn only when another task is ready).
    pub(crate) fn preempt_here(&self) -> bool {
        let others = self.exec.ready.borrow().len();
        self.scheduler.borrow_mut().preempt(others)
    }
}
