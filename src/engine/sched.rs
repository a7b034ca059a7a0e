//! Scheduling policies: which ready task runs next.
//!
//! Every decision goes through one choice point, `Scheduler::choose`, which returns an index
//! into the ready queue in age order: choice 0 is always *the oldest ready task*. So a
//! recorded sequence of choices replays a run exactly, and a sequence of zeros is FIFO,
//! asyncio's own order. Nothing is drawn when only one task is ready.
//!
//! # Caveats
//! [`Policy::Random`] picks uniformly among the oldest [`RANDOM_WINDOW`] ready tasks (all of
//! them when fewer are ready, which is nearly always the case in a test). The window keeps a
//! step O(1) with a million tasks queued; a task further back waits its turn as under FIFO.

use std::collections::VecDeque;

use crate::engine::entropy::{Rng, Stream};

/// How many of the oldest ready tasks [`Policy::Random`] chooses among.
pub const RANDOM_WINDOW: usize = 64;

/// The odds of a preemption at a toolkit operation (a lock's acquire, a queue's get, ...)
/// under [`Policy::Random`] and [`Policy::Pct`]: one in this many, when another task is
/// ready. Never under [`Policy::Fifo`].
pub const PREEMPT_ODDS: u64 = 4;

/// The default number of steps over which [`Policy::Pct`] spreads its priority change points.
pub const PCT_HORIZON: u64 = 10_000;

/// The deepest bug [`Policy::Pct`] targets: a deeper depth is treated as this one (each
/// level of depth is a change point the scheduler keeps, and PCT's guarantee fades fast with
/// depth anyway).
pub const PCT_DEPTH_MAX: u32 = 1_000;

/// A scheduling policy, chosen per run.
///
/// ```
/// use roof::{Config, EventLoop, Policy};
/// let lp = EventLoop::with_config(Config::new(0).policy(Policy::Fifo).echo(false));
/// let order = lp.run_until_complete(async {
///     let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
///     let spawn = |i| { let log = log.clone(); roof::spawn(async move { log.borrow_mut().push(i) }) };
///     let tasks = [spawn(0), spawn(1), spawn(2)];
///     for task in tasks { task.await.unwrap(); }
///     log.take()
/// }).unwrap();
/// assert_eq!(order, [0, 1, 2], "FIFO runs ready tasks oldest first, as asyncio does");
/// assert_eq!(lp.policy(), Policy::Fifo);
/// assert_eq!(Policy::pct(3), Policy::Pct { depth: 3, horizon: roof::sched::PCT_HORIZON });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Policy {
    /// A seeded uniform pick among the ready tasks (the default in simulation).
    Random,
    /// First ready, first run: asyncio's order.
    Fifo,
    /// Probabilistic concurrency testing (Burckhardt et al., 2010): each task gets a random
    /// priority, the highest-priority ready task runs, and at `depth - 1` random steps within
    /// the first `horizon` the running task drops to the lowest priority. Finds any bug of
    /// depth `d` with probability at least `1 / (n * k^(d-1))`.
    ///
    /// The test harness and `roof run`/`roof sweep` adapt the default horizon
    /// ([`PCT_HORIZON`]) to each seed: the change points are spread over the steps of the
    /// seed's FIFO run, so the depth matters in a short run too.
    Pct {
        /// The bug depth to target (at least 1).
        depth: u32,
        /// Steps over which the change points are spread.
        horizon: u64,
    },
    /// Every schedule with at most `preemptions` deviations from FIFO, one run each: the test
    /// harness (`ROOF_POLICY=exhaustive:P`) and `roof sweep --exhaustive P` enumerate them. A
    /// single run under it is the first of them, FIFO.
    Exhaustive {
        /// The most choices other than the oldest ready task in one schedule.
        preemptions: u32,
    },
}

/// The most deviations [`Policy::Exhaustive`] takes: the number of schedules grows as the
/// number of choice points to this power.
pub const EXHAUSTIVE_PREEMPTIONS_MAX: u32 = 8;

impl std::fmt::Display for Policy {
    /// The form [`Policy::parse`] reads: `random`, `fifo`, `pct:D` (with `@H` for a horizon
    /// other than the default), `exhaustive:P`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Policy::Random => f.write_str("random"),
            Policy::Fifo => f.write_str("fifo"),
            Policy::Pct { depth, horizon } if *horizon == PCT_HORIZON => write!(f, "pct:{depth}"),
            Policy::Pct { depth, horizon } => write!(f, "pct:{depth}@{horizon}"),
            Policy::Exhaustive { preemptions } => write!(f, "exhaustive:{preemptions}"),
        }
    }
}

impl Policy {
    /// Every schedule with at most `preemptions` deviations from FIFO (at most
    /// [`EXHAUSTIVE_PREEMPTIONS_MAX`]; clamped).
    pub fn exhaustive(preemptions: u32) -> Policy {
        Policy::Exhaustive {
            preemptions: preemptions.min(EXHAUSTIVE_PREEMPTIONS_MAX),
        }
    }

    /// Read a policy as `ROOF_POLICY` spells it: `random`, `fifo`, `pct:D` (depth 1 to
    /// [`PCT_DEPTH_MAX`], optionally `pct:D@H` for a horizon of H steps) or `exhaustive:P`
    /// (0 to [`EXHAUSTIVE_PREEMPTIONS_MAX`]). The error says what was expected.
    ///
    /// ```
    /// use roof::Policy;
    /// assert_eq!(Policy::parse("pct:3"), Ok(Policy::pct(3)));
    /// assert_eq!(Policy::parse("exhaustive:2"), Ok(Policy::exhaustive(2)));
    /// assert_eq!(Policy::parse("fifo").unwrap().to_string(), "fifo");
    /// assert!(Policy::parse("pct:0").unwrap_err().contains("depth"));
    /// assert!(Policy::parse("chaos").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Policy, String> {
        let text = text.trim();
        let expected = "random, fifo, pct:D or exhaustive:P";
        let number = |value: &str, what: &str, max: u64| -> Result<u64, String> {
            match value.trim().parse::<u64>() {
                Ok(number) if number <= max => Ok(number),
                _ => Err(format!(
                    "{what} must be a whole number up to {max}, got {value:?}"
                )),
            }
        };
        match text.split_once(':') {
            None if text == "random" => Ok(Policy::Random),
            None if text == "fifo" => Ok(Policy::Fifo),
            Some(("pct", rest)) => {
                let (depth, horizon) = match rest.split_once('@') {
                    Some((depth, horizon)) => (depth, Some(horizon)),
                    None => (rest, None),
                };
                let depth = number(depth, "the PCT depth", u64::from(PCT_DEPTH_MAX))?;
                if depth == 0 {
                    return Err("the PCT depth must be at least 1".into());
                }
                let horizon = match horizon {
                    Some(horizon) => number(horizon, "the PCT horizon", u64::MAX)?.max(1),
                    None => PCT_HORIZON,
                };
                Ok(Policy::Pct {
                    depth: depth as u32,
                    horizon,
                })
            }
            Some(("exhaustive", rest)) => {
                let preemptions = number(
                    rest,
                    "the preemption bound",
                    u64::from(EXHAUSTIVE_PREEMPTIONS_MAX),
                )?;
                Ok(Policy::exhaustive(preemptions as u32))
            }
            _ => Err(format!("expected {expected}, got {text:?}")),
        }
    }

    /// PCT with the given depth (from 1 to [`PCT_DEPTH_MAX`]; clamped into that range) and
    /// the default horizon [`PCT_HORIZON`].
    pub fn pct(depth: u32) -> Policy {
        Policy::Pct {
            depth: depth.clamp(1, PCT_DEPTH_MAX),
            horizon: PCT_HORIZON,
        }
    }
}

/// Where choices come from: the policy, or a recorded sequence being replayed.
///
/// ```
/// use roof::{Choices, Config, EventLoop};
/// let run = |config: Config| {
///     let lp = EventLoop::with_config(config.echo(false).record_choices(true));
///     lp.run_until_complete(roof::gather!(async { 1 }, async { 2 }, async { 3 })).unwrap().unwrap();
///     lp.report()
/// };
/// let first = run(Config::new(7));
/// let recorded = Choices(first.choices.clone().unwrap());
/// // Another seed, but the recorded choices: the same schedule, event for event.
/// let replayed = run(Config::new(99).choices(recorded));
/// assert_eq!(replayed.trace_hash, first.trace_hash);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Choices(pub Vec<u32>);

/// PCT's per-run state.
#[derive(Debug, Default)]
struct PctState {
    /// Priority per task id (index = id); higher runs first. 0 means "not yet assigned".
    priorities: Vec<u64>,
    /// The steps at which the running task is demoted, sorted.
    change_points: VecDeque<u64>,
    /// The next priority a demoted task gets (below every initial one, counting down).
    next_low: u64,
}

/// The per-run scheduler: a policy, its random stream, and the record of choices made.
#[derive(Debug)]
pub(crate) struct Scheduler {
    policy: Policy,
    rng: Rng,
    replay: Option<(Vec<u32>, usize)>,
    record: Option<Vec<u32>>,
    /// How many options each recorded choice had (when recording): what exploring the
    /// schedules near a run needs.
    arities: Option<Vec<u32>>,
    pct: PctState,
    decisions: u64,
}

impl Scheduler {
    pub(crate) fn new(
        policy: Policy,
        seed: u64,
        replay: Option<Choices>,
        record: bool,
    ) -> Scheduler {
        let mut rng = Rng::new(seed, Stream::Scheduler);
        let mut pct = PctState::default();
        if let Policy::Pct { depth, horizon } = policy {
            let depth = depth.clamp(1, PCT_DEPTH_MAX);
            let mut points: Vec<u64> = (1..depth).map(|_| rng.below(horizon.max(1))).collect();
            points.sort_unstable();
            pct.change_points = points.into();
            pct.next_low = u64::from(depth);
        }
        Scheduler {
            policy,
            rng,
            replay: replay.map(|choices| (choices.0, 0)),
            record: record.then(Vec::new),
            arities: record.then(Vec::new),
            pct,
            decisions: 0,
        }
    }

    pub(crate) fn policy(&self) -> Policy {
        self.policy
    }

    /// The choices made so far, if recording.
    pub(crate) fn recorded(&self) -> Option<&[u32]> {
        self.record.as_deref()
    }

    /// How many options each recorded choice had, if recording.
    pub(crate) fn arities(&self) -> Option<&[u32]> {
        self.arities.as_deref()
    }

    fn note(&mut self, choice: usize, arity: usize) {
        if let Some(record) = &mut self.record {
            record.push(choice as u32);
        }
        if let Some(arities) = &mut self.arities {
            arities.push(u32::try_from(arity).unwrap_or(u32::MAX));
        }
    }

    /// The choice point: the index (in age order) of the ready task to run next.
    ///
    /// `task_ids` yields the ids of the ready tasks, oldest first; only PCT reads it.
    #[inline]
    pub(crate) fn choose<I>(&mut self, ready_len: usize, task_ids: I, step: u64) -> usize
    where
        I: Iterator<Item = u64>,
    {
        if ready_len <= 1 {
            return 0;
        }
        self.decisions += 1;
        let choice = match &mut self.replay {
            Some((choices, position)) => {
                // Past the end of a recorded sequence the run continues in FIFO order.
                let recorded = choices.get(*position).copied().unwrap_or(0);
                *position += 1;
                (recorded as usize).min(ready_len - 1)
            }
            None => match self.policy {
                Policy::Fifo | Policy::Exhaustive { .. } => 0,
                Policy::Random => self.rng.below(ready_len.min(RANDOM_WINDOW) as u64) as usize,
                Policy::Pct { .. } => self.pct_choice(task_ids, step),
            },
        };
        self.note(choice, ready_len);
        choice
    }

    /// The preemption point of a toolkit operation: whether the running task yields before
    /// it, so that another ready task runs first. `others_ready` tasks could run instead;
    /// with none, nothing is drawn or recorded (as a pick among one task). Recorded as a
    /// choice (1 for a preemption), so a replay and the shrinker see it as they see picks;
    /// a zero replays as no preemption, so a sequence of zeros is still FIFO.
    pub(crate) fn preempt(&mut self, others_ready: usize) -> bool {
        if others_ready == 0 {
            return false;
        }
        self.decisions += 1;
        let preempt = match &mut self.replay {
            Some((choices, position)) => {
                let recorded = choices.get(*position).copied().unwrap_or(0);
                *position += 1;
                recorded != 0
            }
            None => match self.policy {
                Policy::Fifo | Policy::Exhaustive { .. } => false,
                Policy::Random | Policy::Pct { .. } => self.rng.below(PREEMPT_ODDS) == 0,
            },
        };
        self.note(usize::from(preempt), 2);
        preempt
    }

    /// The choice point of a `select` over `branches` futures: the branch polled first (the
    /// others follow in order, wrapping around). 0 under FIFO (declaration order, as a
    /// `biased` select); uniform under Random and PCT; recorded and replayed as a pick is.
    /// Nothing is drawn or recorded for one branch.
    pub(crate) fn choose_branch(&mut self, branches: usize) -> usize {
        if branches <= 1 {
            return 0;
        }
        self.decisions += 1;
        let choice = match &mut self.replay {
            Some((choices, position)) => {
                let recorded = choices.get(*position).copied().unwrap_or(0);
                *position += 1;
                (recorded as usize).min(branches - 1)
            }
            None => match self.policy {
                Policy::Fifo | Policy::Exhaustive { .. } => 0,
                Policy::Random | Policy::Pct { .. } => self.rng.below(branches as u64) as usize,
            },
        };
        self.note(choice, branches);
        choice
    }

    fn pct_choice<I: Iterator<Item = u64>>(&mut self, task_ids: I, step: u64) -> usize {
        let mut best = (0usize, 0u64, 0u64);
        for (index, id) in task_ids.enumerate() {
            let priority = self.pct_priority(id);
            if index == 0 || priority > best.1 {
                best = (index, priority, id);
            }
        }
        if self
            .pct
            .change_points
            .front()
            .is_some_and(|&point| point <= step)
        {
            self.pct.change_points.pop_front();
            self.pct.next_low = self.pct.next_low.saturating_sub(1).max(1);
            let low = self.pct.next_low;
            self.pct.priorities[best.2 as usize] = low;
        }
        best.0
    }

    fn pct_priority(&mut self, id: u64) -> u64 {
        let index = id as usize;
        if self.pct.priorities.len() <= index {
            self.pct.priorities.resize(index + 1, 0);
        }
        if self.pct.priorities[index] == 0 {
            // Initial priorities sit above every demoted one; ties are broken by age.
            self.pct.priorities[index] = 1_000 + self.rng.below(1 << 40);
        }
        self.pct.priorities[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_always_chooses_the_oldest() {
        let mut scheduler = Scheduler::new(Policy::Fifo, 1, None, true);
        for step in 0..10 {
            assert_eq!(scheduler.choose(5, 1..6, step), 0);
        }
        assert_eq!(scheduler.recorded(), Some(&[0; 10][..]));
    }

    #[test]
    fn random_stays_in_window_and_replays() {
        let mut scheduler = Scheduler::new(Policy::Random, 9, None, true);
        let picks: Vec<usize> = (0..200)
            .map(|step| scheduler.choose(1000, 0..1000, step))
            .collect();
        assert!(picks.iter().all(|&pick| pick < RANDOM_WINDOW));
        assert!(picks.iter().any(|&pick| pick != 0));
        let recorded = Choices(scheduler.recorded().unwrap().to_vec());
        let mut replay = Scheduler::new(Policy::Random, 12345, Some(recorded), false);
        let replayed: Vec<usize> = (0..200)
            .map(|step| replay.choose(1000, 0..1000, step))
            .collect();
        assert_eq!(picks, replayed);
    }

    #[test]
    fn preemption_points_draw_under_random_never_under_fifo_and_replay() {
        let mut fifo = Scheduler::new(Policy::Fifo, 1, None, true);
        assert!((0..100).all(|_| !fifo.preempt(3)));
        assert_eq!(
            fifo.recorded(),
            Some(&[0; 100][..]),
            "recorded as no preemption"
        );
        let mut random = Scheduler::new(Policy::Random, 1, None, true);
        let drawn: Vec<bool> = (0..400).map(|_| random.preempt(2)).collect();
        let preempted = drawn.iter().filter(|&&preempt| preempt).count();
        assert!(
            (50..150).contains(&preempted),
            "about one in four: {preempted}"
        );
        assert!(!random.preempt(0), "alone, a task is never preempted");
        assert_eq!(
            random.recorded().unwrap().len(),
            400,
            "and nothing is recorded"
        );
        let recorded = Choices(random.recorded().unwrap().to_vec());
        let mut replay = Scheduler::new(Policy::Fifo, 99, Some(recorded), false);
        let replayed: Vec<bool> = (0..400).map(|_| replay.preempt(2)).collect();
        assert_eq!(drawn, replayed);
    }

    #[test]
    fn a_single_ready_task_draws_nothing() {
        let mut scheduler = Scheduler::new(Policy::Random, 3, None, true);
        assert_eq!(scheduler.choose(1, 0..1, 0), 0);
        assert_eq!(scheduler.recorded(), Some(&[][..]));
    }

    #[test]
    fn replay_past_the_end_is_fifo_and_clamps() {
        let mut scheduler = Scheduler::new(Policy::Random, 3, Some(Choices(vec![7])), false);
        assert_eq!(scheduler.choose(3, 0..3, 0), 2);
        assert_eq!(scheduler.choose(3, 0..3, 1), 0);
    }

    #[test]
    fn pct_runs_the_highest_priority_task_consistently() {
        let mut scheduler = Scheduler::new(Policy::pct(1), 5, None, false);
        let first = scheduler.choose(3, [10, 11, 12].into_iter(), 0);
        let again = scheduler.choose(3, [10, 11, 12].into_iter(), 1);
        assert_eq!(first, again);
    }
}
