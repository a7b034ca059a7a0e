//! The engine: data structures that know no kernel, no clock and no facade. They import only
//! each other (leaf types first) and std; the kernel composes them.

pub(crate) mod cancel;
pub(crate) mod clock;
pub(crate) mod disk;
pub(crate) mod entropy;
pub(crate) mod fabric;
pub(crate) mod hint;
pub(crate) mod id;
pub(crate) mod report;
pub(crate) mod sched;
pub(crate) mod task;
pub(crate) mod timer;
pub(crate) mod trace;
