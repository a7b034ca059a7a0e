//! The ids everyone shares, as leaf types: nothing here imports anything of the crate.

use std::fmt;

/// A task's id, unique within one run and numbered from 1 in spawn order.
///
/// ```
/// let lp = roof::EventLoop::new();
/// let id = lp.run_until_complete(async { roof::current_task().unwrap() }).unwrap();
/// assert_eq!(id.as_u64(), 1);
/// assert_eq!(id.to_string(), "#1");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub(crate) u64);

impl TaskId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}
