//! What a test puts its system through besides schedules: a fault plan per seed (drawn, of
//! some kinds, or given), the engine's own fault points, and the liveness phase after.

use std::time::Duration;

use super::Builder;
use crate::fault::{FaultKind, FaultPlan};

/// Faults and liveness for a run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Stress {
    /// Draw a fault plan with faults starting within this window.
    pub(super) faults: Option<Duration>,
    /// Of these kinds only (`None`: [`FaultKind::DEFAULT`]).
    pub(super) kinds: Option<Vec<FaultKind>>,
    /// Or run exactly this plan.
    pub(super) plan: Option<FaultPlan>,
    /// After the faults stop, every client must finish within this.
    pub(super) liveness: Option<Duration>,
    /// Keep only these faults of the plan, by index (`ROOF_FAULTS`, fault-plan shrinking).
    pub(super) keep: Option<Vec<usize>>,
    /// The engine's own fault points fire (`Config::buggify`, `ROOF_BUGGIFY`).
    pub(super) buggify: bool,
}

impl Stress {
    /// Whether a run has faults a failure should list: a plan, or the engine's own.
    pub(super) fn has_faults(&self) -> bool {
        self.faults.is_some() || self.plan.is_some() || self.buggify
    }

    /// The fault settings, for the settings line and the build stamp's fingerprint (the
    /// text stays what it was for settings older than fault kinds and buggify).
    pub(super) fn describe_faults(&self) -> String {
        let mut text = match (&self.plan, self.faults) {
            (Some(plan), _) => format!("plan {plan}"),
            (None, Some(window)) => format!("drawn within {window:?}"),
            (None, None) => "off".to_string(),
        };
        if let Some(kinds) = &self.kinds {
            let names: Vec<String> = kinds.iter().map(FaultKind::name).collect();
            text.push_str(&format!(" of kinds {}", names.join(",")));
        }
        if self.buggify {
            text.push_str(", buggify on");
        }
        text
    }
}

impl Builder {
    /// Give every seed a fault plan drawn from it (swarm style: each seed its own mix of
    /// [`FaultKind::DEFAULT`]'s kinds: link faults, clogs, crashes, pauses, stalls, disk and
    /// clock faults), with faults starting within `window`. A failure prints the plan and the
    /// faults that fired.
    pub fn faults(mut self, window: Duration) -> Builder {
        self.stress.faults = Some(window);
        self
    }

    /// Draw the plans of [`faults`](Builder::faults) from these kinds only (say, only
    /// [`FaultKind::Crash`]; or [`FaultKind::ALL`] to add read corruption). A kind's faults
    /// are the same whichever others are allowed. `ROOF_FAULT_KINDS=crash,pause` sets it.
    ///
    /// ```
    /// use roof::fault::FaultKind;
    /// use std::time::Duration;
    /// let failure = roof::harness::Builder::new()
    ///     .seeds(0..50)
    ///     .faults(Duration::from_secs(1))
    ///     .fault_kinds(&[FaultKind::Pause])
    ///     .quiet(true)
    ///     .shrink(false)
    ///     .try_run(|sim| {
    ///         sim.host("server", || async { roof::sleep(Duration::from_secs(10)).await });
    ///         sim.client("c", async { Err::<(), _>("fails at once") });
    ///     })
    ///     .unwrap_err();
    /// let (plan, _) = failure.faults.unwrap();
    /// assert!(plan == "none" || plan.split("; ").all(|fault| fault.starts_with("Pause")), "{plan}");
    /// ```
    pub fn fault_kinds(mut self, kinds: &[FaultKind]) -> Builder {
        self.stress.kinds = Some(kinds.to_vec());
        self
    }

    /// Let the engine's own fault points fire in every seed ([`Config::buggify`]): now and
    /// then a disk operation fails with EIO or runs slow, an `accept`, `connect` or `bind`
    /// stalls. `ROOF_BUGGIFY=1` sets it. A failure lists what fired.
    ///
    /// [`Config::buggify`]: crate::Config::buggify
    pub fn buggify(mut self, on: bool) -> Builder {
        self.stress.buggify = on;
        self
    }

    /// Run exactly `plan` on every seed (say, one a proptest strategy made).
    pub fn fault_plan(mut self, plan: FaultPlan) -> Builder {
        self.stress.plan = Some(plan);
        self
    }

    /// After the faults stop (all healed, crashed hosts restarted), every client must finish
    /// within `deadline`; a stuck system fails, naming the clients that made no progress.
    pub fn liveness(mut self, deadline: Duration) -> Builder {
        self.stress.liveness = Some(deadline);
        self
    }
}
