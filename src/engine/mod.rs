//! The engine: data structures that know no kernel, no clock and no facade. They import only
//! each other's leaf types and std (and their crates); the kernel composes them.

pub(crate) mod hint;
pub(crate) mod id;
pub(crate) mod task;
