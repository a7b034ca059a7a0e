//! Fault plans drawn from the seed, swarm style, and the nemesis that carries them out.
//!
//! [`FaultPlan::draw`] picks, for one seed, which kinds of fault this run gets (each kind is
//! enabled with probability one half, so some seeds get none, some only crashes, ...), then a
//! few faults of each enabled kind at random times within a window, each undone after a while.
//! Every draw comes from the seed's faults stream. [`LoopHandle::start_nemesis`] runs a plan
//! on the loop and reports which faults actually fired (a crash of a host that is already down
//! does not); after the last one everything is healed and every crashed host restarted.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use crate::engine::entropy::{Rng, Stream};
use crate::event_loop::LoopHandle;
use crate::fault::{DiskFault, LinkFaultId};
use crate::net::LinkFault;
use crate::task::JoinHandle;
use crate::time::ClockJump;

/// A kind of fault.
///
/// ```
/// use roof::fault::{FaultKind, FaultPlan};
/// use std::time::Duration;
/// let hosts = ["a".to_string(), "b".to_string()];
/// for seed in 0..20 {
///     let plan = FaultPlan::draw(seed, &hosts, Duration::from_secs(1));
///     for fault in &plan.faults {
///         assert!(plan.kinds.contains(&fault.kind), "only the kinds this seed enabled");
///         let link = matches!(fault.kind, FaultKind::Partition | FaultKind::OneWayPartition
///             | FaultKind::LatencySpike | FaultKind::LossBurst);
///         assert_eq!(fault.peer.is_some(), link, "a link fault names two hosts, others one");
///     }
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum FaultKind {
    /// Cut two hosts apart, both ways.
    Partition,
    /// Cut one direction between two hosts.
    OneWayPartition,
    /// Hold everything a host sends or receives.
    Clog,
    /// Crash a host (restarted when the fault ends).
    Crash,
    /// Add [`SPIKE_LATENCY`] of latency and as much jitter to a link for a while, on top
    /// of its own configuration.
    LatencySpike,
    /// Lose a third of a link's packets for a while, on top of its own loss: datagrams are
    /// lost, TCP segments retransmitted (late, with the segments behind them waiting).
    LossBurst,
    /// Pause a host (its tasks and timers stop, its sockets stay open; resumed at the end).
    Pause,
    /// Hold everything a host sends, while it still hears its peers.
    ClogOutgoing,
    /// Hold everything sent to a host, while its peers still hear it.
    ClogIncoming,
    /// Stall a host's `accept`, `connect` and `bind` for the fault's duration.
    Stall,
    /// A failing disk: every operation on the host's disk fails with EIO.
    DiskFailure,
    /// A full disk: every write that grows a file fails with ENOSPC.
    DiskFull,
    /// A slow disk: operations take [`SLOW_DISK_FACTOR`](crate::fs::SLOW_DISK_FACTOR) times
    /// as long.
    SlowDisk,
    /// The host's wall clock jumps ahead by the fault's duration, and back at its end.
    ClockJumpForward,
    /// The host's wall clock jumps back by the fault's duration, and ahead at its end.
    ClockJumpBackward,
    /// Reads on the host's disk come back with a flipped bit, one in four. Opt-in: never
    /// in [`FaultKind::DEFAULT`], so only a run that asks for it gets it.
    ReadCorruption,
}

impl FaultKind {
    /// Every kind there is.
    pub const ALL: &'static [FaultKind] = &[
        FaultKind::Partition,
        FaultKind::OneWayPartition,
        FaultKind::Clog,
        FaultKind::Crash,
        FaultKind::LatencySpike,
        FaultKind::LossBurst,
        FaultKind::Pause,
        FaultKind::ClogOutgoing,
        FaultKind::ClogIncoming,
        FaultKind::Stall,
        FaultKind::DiskFailure,
        FaultKind::DiskFull,
        FaultKind::SlowDisk,
        FaultKind::ClockJumpForward,
        FaultKind::ClockJumpBackward,
        FaultKind::ReadCorruption,
    ];

    /// Every kind a plan draws from unless told otherwise: all but
    /// [`ReadCorruption`](FaultKind::ReadCorruption), the last of [`ALL`](FaultKind::ALL).
    pub const DEFAULT: &'static [FaultKind] = FaultKind::ALL.split_at(FaultKind::ALL.len() - 1).0;

    /// The kind's name in kebab case, as `ROOF_FAULT_KINDS` takes it: `partition`,
    /// `clock-jump-forward`, ...
    ///
    /// ```
    /// use roof::fault::FaultKind;
    /// assert_eq!(FaultKind::ClockJumpForward.name(), "clock-jump-forward");
    /// assert_eq!(FaultKind::from_name("disk-full"), Some(FaultKind::DiskFull));
    /// assert!(FaultKind::ALL.iter().all(|kind| FaultKind::from_name(&kind.name()) == Some(*kind)));
    /// ```
    pub fn name(&self) -> String {
        let mut name = String::new();
        for (index, c) in format!("{self:?}").chars().enumerate() {
            if c.is_ascii_uppercase() && index > 0 {
                name.push('-');
            }
            name.push(c.to_ascii_lowercase());
        }
        name
    }

    /// The kind named `name` (as [`name`](FaultKind::name) spells it).
    pub fn from_name(name: &str) -> Option<FaultKind> {
        FaultKind::ALL
            .iter()
            .copied()
            .find(|kind| kind.name() == name)
    }

    /// Kinds named in a comma-separated list (`crash,pause`); the first unknown name is
    /// the error.
    ///
    /// ```
    /// use roof::fault::FaultKind;
    /// assert_eq!(FaultKind::parse_list("crash, pause"), Ok(vec![FaultKind::Crash, FaultKind::Pause]));
    /// assert_eq!(FaultKind::parse_list("crash,fire"), Err("fire".to_string()));
    /// assert!(FaultKind::parse_list("").is_err());
    /// ```
    pub fn parse_list(text: &str) -> Result<Vec<FaultKind>, String> {
        text.split(',')
            .map(str::trim)
            .map(|name| FaultKind::from_name(name).ok_or_else(|| name.to_string()))
            .collect()
    }

    /// Whether it hits a pair of hosts (a link) rather than one.
    fn needs_pair(self) -> bool {
        matches!(
            self,
            FaultKind::Partition
                | FaultKind::OneWayPartition
                | FaultKind::LatencySpike
                | FaultKind::LossBurst
        )
    }
}

/// The latency (and the jitter) a [`FaultKind::LatencySpike`] adds to a link.
pub const SPIKE_LATENCY: Duration = Duration::from_millis(50);

/// The loss probability a [`FaultKind::LossBurst`] adds to a link.
pub const BURST_LOSS: f64 = 1.0 / 3.0;

/// The network kinds (the first six), drawn from the faults stream as they were before host
/// faults existed; the host kinds after them from a stream of their own.
const NETWORK_KINDS: &[FaultKind] = FaultKind::ALL.split_at(6).0;
const HOST_KINDS: &[FaultKind] = FaultKind::ALL.split_at(6).1;

/// One fault of a plan: what, on which hosts, when, for how long.
///
/// ```
/// use roof::fault::{FaultKind, PlannedFault};
/// use std::time::Duration;
/// let cut = PlannedFault {
///     kind: FaultKind::Partition,
///     host: "server".into(),
///     peer: Some("client".into()),
///     at: Duration::from_millis(100),
///     lasts: Duration::from_millis(50),
/// };
/// assert_eq!(cut.to_string(), "Partition server client at 100ms for 50ms");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFault {
    /// The kind.
    pub kind: FaultKind,
    /// The host it hits (or the first of the pair).
    pub host: String,
    /// The other host, for a link fault.
    pub peer: Option<String>,
    /// When it starts, from the start of the run.
    pub at: Duration,
    /// How long until it is undone.
    pub lasts: Duration,
}

impl fmt::Display for PlannedFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.peer {
            Some(peer) => format!("{} {peer}", self.host),
            None => self.host.clone(),
        };
        write!(
            f,
            "{:?} {target} at {:?} for {:?}",
            self.kind, self.at, self.lasts
        )
    }
}

/// The faults one seed gets.
///
/// ```
/// use roof::fault::{FaultKind, FaultPlan, FiredFaults, PlannedFault};
/// use std::time::Duration;
/// let lp = roof::EventLoop::with_config(roof::Config::new(0).echo(false));
/// lp.host("server", || async { roof::println!("server up") }).unwrap();
/// let crash = PlannedFault { kind: FaultKind::Crash, host: "server".into(), peer: None,
///     at: Duration::from_secs(1), lasts: Duration::from_secs(2) };
/// let plan = FaultPlan { kinds: vec![FaultKind::Crash], faults: vec![crash] };
/// let fired = FiredFaults::default();
/// lp.run_until_complete(lp.start_nemesis(plan, fired.clone())).unwrap().unwrap();
/// assert_eq!(*fired.borrow(), ["1.000000000s Crash server at 1s for 2s"]);
/// assert_eq!(lp.report().output, "server up\nserver up\n", "crashed, then restarted");
/// assert_eq!(FaultPlan::none().to_string(), "none");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultPlan {
    /// The kinds this seed enabled (swarm testing).
    pub kinds: Vec<FaultKind>,
    /// The faults, by start time.
    pub faults: Vec<PlannedFault>,
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.faults.is_empty() {
            return f.write_str("none");
        }
        let faults: Vec<String> = self.faults.iter().map(ToString::to_string).collect();
        f.write_str(&faults.join("; "))
    }
}

impl FaultPlan {
    /// The plan with only the faults at `indices` (positions in this plan, as a failure
    /// prints them; the fault-plan shrinker's `ROOF_FAULTS`), in their order.
    ///
    /// ```
    /// use roof::fault::FaultPlan;
    /// use std::time::Duration;
    /// let hosts = ["a".to_string(), "b".to_string()];
    /// let plan = (0..50)
    ///     .map(|seed| FaultPlan::draw(seed, &hosts, Duration::from_secs(1)))
    ///     .find(|plan| plan.faults.len() >= 3)
    ///     .unwrap();
    /// let kept = plan.keep(&[2, 0]);
    /// assert_eq!(kept.faults, [plan.faults[0].clone(), plan.faults[2].clone()]);
    /// assert!(plan.keep(&[]).faults.is_empty());
    /// ```
    pub fn keep(&self, indices: &[usize]) -> FaultPlan {
        FaultPlan {
            kinds: self.kinds.clone(),
            faults: self
                .faults
                .iter()
                .enumerate()
                .filter(|(index, _)| indices.contains(index))
                .map(|(_, fault)| fault.clone())
                .collect(),
        }
    }

    /// No faults.
    pub fn none() -> FaultPlan {
        FaultPlan::default()
    }

    /// Draw the plan of `seed` for `hosts`, with faults starting within `window`; any of
    /// the hosts may be crashed (and restarted). See [`draw_among`](FaultPlan::draw_among)
    /// when only some of them can restart.
    ///
    /// ```
    /// use roof::fault::FaultPlan;
    /// use std::time::Duration;
    /// let hosts = ["server".to_string(), "client".to_string()];
    /// let plan = FaultPlan::draw(3, &hosts, Duration::from_secs(1));
    /// assert_eq!(plan, FaultPlan::draw(3, &hosts, Duration::from_secs(1)));
    /// assert!(plan.faults.iter().all(|fault| fault.at < Duration::from_secs(1)));
    /// ```
    pub fn draw(seed: u64, hosts: &[String], window: Duration) -> FaultPlan {
        FaultPlan::draw_among(seed, hosts, hosts, window)
    }

    /// Draw the plan of `seed`: link faults and clogs among `hosts`, crashes only among
    /// `restartable` (hosts whose start function brings them back; a client that runs once
    /// cannot come back, so crashing it would only fail the seed). The harness draws its
    /// plans this way.
    ///
    /// ```
    /// use roof::fault::{FaultKind, FaultPlan};
    /// use std::time::Duration;
    /// let hosts = ["server".to_string(), "client".to_string()];
    /// let servers = ["server".to_string()];
    /// for seed in 0..100 {
    ///     let plan = FaultPlan::draw_among(seed, &hosts, &servers, Duration::from_secs(1));
    ///     assert!(plan.faults.iter().all(|f| f.kind != FaultKind::Crash || f.host == "server"));
    /// }
    /// ```
    pub fn draw_among(
        seed: u64,
        hosts: &[String],
        restartable: &[String],
        window: Duration,
    ) -> FaultPlan {
        FaultPlan::draw_kinds(seed, hosts, restartable, window, FaultKind::DEFAULT)
    }

    /// [`draw_among`](FaultPlan::draw_among), with only the kinds in `allowed` (say, only
    /// crashes; or [`FaultKind::ALL`] to add read corruption). A kind's faults are the same
    /// whichever other kinds are allowed.
    ///
    /// ```
    /// use roof::fault::{FaultKind, FaultPlan};
    /// use std::time::Duration;
    /// let hosts = ["server".to_string(), "client".to_string()];
    /// let window = Duration::from_secs(1);
    /// let all = FaultPlan::draw_kinds(5, &hosts, &hosts, window, FaultKind::ALL);
    /// let crashes = FaultPlan::draw_kinds(5, &hosts, &hosts, window, &[FaultKind::Crash]);
    /// let kept: Vec<_> = all.faults.iter().filter(|f| f.kind == FaultKind::Crash).cloned().collect();
    /// assert_eq!(crashes.faults, kept);
    /// ```
    pub fn draw_kinds(
        seed: u64,
        hosts: &[String],
        restartable: &[String],
        window: Duration,
        allowed: &[FaultKind],
    ) -> FaultPlan {
        let mut network = Rng::new(seed, Stream::Faults);
        let mut host = Rng::new(seed, Stream::HostFaults);
        let mut kinds = Vec::new();
        let mut faults = Vec::new();
        for (rng, group) in [(&mut network, NETWORK_KINDS), (&mut host, HOST_KINDS)] {
            let enabled: Vec<FaultKind> =
                group.iter().copied().filter(|_| rng.chance(1, 2)).collect();
            if !hosts.is_empty() && !window.is_zero() {
                draw_faults(rng, &enabled, hosts, restartable, window, &mut faults);
            }
            kinds.extend(enabled);
        }
        kinds.retain(|kind| allowed.contains(kind));
        faults.retain(|fault: &PlannedFault| allowed.contains(&fault.kind));
        faults.sort_by_key(|fault| (fault.at, fault.kind));
        FaultPlan { kinds, faults }
    }
}

/// A few faults (one or two) of each of `kinds`, at random times within `window`.
fn draw_faults(
    rng: &mut Rng,
    kinds: &[FaultKind],
    hosts: &[String],
    restartable: &[String],
    window: Duration,
    faults: &mut Vec<PlannedFault>,
) {
    let window_ns = window.as_nanos().min(u128::from(u64::MAX)) as u64;
    for &kind in kinds {
        let needs_pair = kind.needs_pair();
        if needs_pair && hosts.len() < 2 {
            continue;
        }
        let targets = if kind == FaultKind::Crash {
            restartable
        } else {
            hosts
        };
        if targets.is_empty() {
            continue;
        }
        for _ in 0..=rng.below(2) {
            let host = targets[rng.below(targets.len() as u64) as usize].clone();
            let peer = needs_pair.then(|| {
                let others: Vec<&String> = hosts.iter().filter(|&other| *other != host).collect();
                others[rng.below(others.len() as u64) as usize].clone()
            });
            let at = Duration::from_nanos(rng.below(window_ns));
            let lasts = Duration::from_nanos(1 + rng.below(window_ns / 4 + 1));
            faults.push(PlannedFault {
                kind,
                host,
                peer,
                at,
                lasts,
            });
        }
    }
}

/// What a nemesis did: the faults that fired, as lines for the report.
pub type FiredFaults = Rc<RefCell<Vec<String>>>;

impl LoopHandle {
    /// Carry out `plan` on this loop: each fault at its time, undone after its duration; when
    /// the last is undone, heal everything and restart every crashed host. The handle finishes
    /// then. `fired` collects what actually happened.
    pub fn start_nemesis(&self, plan: FaultPlan, fired: FiredFaults) -> JoinHandle<()> {
        let handle = self.clone();
        let start = self.now();
        JoinHandle::spawned(self.kernel.spawn_on(
            0,
            nemesis(handle, plan, fired, start),
            Some(crate::engine::task::TaskName::Static("nemesis")),
        ))
    }
}

/// An action of the nemesis, at an instant.
enum Step {
    Start(PlannedFault),
    End(PlannedFault),
}

async fn nemesis(
    handle: LoopHandle,
    plan: FaultPlan,
    fired: FiredFaults,
    start: crate::time::Instant,
) {
    let mut steps: Vec<(Duration, usize, Step)> = Vec::new();
    for (index, fault) in plan.faults.into_iter().enumerate() {
        steps.push((fault.at + fault.lasts, index, Step::End(fault.clone())));
        steps.push((fault.at, index, Step::Start(fault)));
    }
    steps.sort_by_key(|(at, index, step)| (*at, matches!(step, Step::Start(_)), *index));
    let note = |line: String| fired.borrow_mut().push(line);
    // The link faults in force, by the index of the planned fault that started them.
    let mut degraded: BTreeMap<usize, LinkFaultId> = BTreeMap::new();
    for (at, index, step) in steps {
        crate::time::sleep_until(start + at).await;
        match step {
            Step::Start(fault) => {
                if let Some((line, link_fault)) = apply(&handle, &fault) {
                    note(format!("{} {line}", handle.now()));
                    if let Some(id) = link_fault {
                        degraded.insert(index, id);
                    }
                }
            }
            Step::End(fault) => undo(&handle, &fault, degraded.remove(&index)),
        }
    }
    handle.heal_all();
    for host in handle.hosts() {
        if matches!(handle.is_up(&host), Ok(false)) {
            let _ = handle.restart(&host);
        }
        if matches!(handle.is_paused(&host), Ok(true)) {
            let _ = handle.resume(&host);
        }
    }
}

/// Start `fault`; the line saying what fired (nothing if it could not, such as a crash of a
/// host that is down), and the id of a link fault to restore at its end.
fn apply(handle: &LoopHandle, fault: &PlannedFault) -> Option<(String, Option<LinkFaultId>)> {
    let peer = fault.peer.as_deref().unwrap_or(&fault.host);
    let host = fault.host.as_str();
    let mut link_fault = None;
    let done = match fault.kind {
        FaultKind::Partition => handle.partition(host, peer).is_ok(),
        FaultKind::OneWayPartition => handle.partition_oneway(host, peer).is_ok(),
        FaultKind::Clog => handle.clog(host).is_ok(),
        FaultKind::Crash => handle.crash(host).is_ok(),
        FaultKind::LatencySpike | FaultKind::LossBurst => {
            let degradation = if fault.kind == FaultKind::LatencySpike {
                LinkFault::default()
                    .latency(SPIKE_LATENCY)
                    .jitter(SPIKE_LATENCY)
            } else {
                LinkFault::default().loss(BURST_LOSS)
            };
            link_fault = handle.degrade_link(host, peer, degradation).ok();
            link_fault.is_some()
        }
        FaultKind::Pause => handle.pause(host).is_ok(),
        FaultKind::ClogOutgoing => handle.clog_direction(host, true).is_ok(),
        FaultKind::ClogIncoming => handle.clog_direction(host, false).is_ok(),
        FaultKind::Stall => handle.stall(host, fault.lasts).is_ok(),
        FaultKind::ClockJumpForward => handle
            .jump_clock(host, ClockJump::Forward(fault.lasts))
            .is_ok(),
        FaultKind::ClockJumpBackward => handle
            .jump_clock(host, ClockJump::Backward(fault.lasts))
            .is_ok(),
        FaultKind::DiskFailure
        | FaultKind::DiskFull
        | FaultKind::SlowDisk
        | FaultKind::ReadCorruption => handle
            .set_disk_fault(host, disk_fault(fault.kind), true)
            .is_ok(),
    };
    done.then(|| (fault.to_string(), link_fault))
}

/// End `fault`: heal, unclog, restart, or restore the link it degraded.
fn undo(handle: &LoopHandle, fault: &PlannedFault, link_fault: Option<LinkFaultId>) {
    let peer = fault.peer.as_deref().unwrap_or(&fault.host);
    let host = fault.host.as_str();
    let _ = match fault.kind {
        FaultKind::Partition | FaultKind::OneWayPartition => handle.heal(host, peer),
        FaultKind::Clog => handle.unclog(host),
        FaultKind::Crash => {
            if matches!(handle.is_up(host), Ok(false)) {
                handle.restart(host)
            } else {
                Ok(())
            }
        }
        FaultKind::LatencySpike | FaultKind::LossBurst => {
            if let Some(id) = link_fault {
                handle.restore_link(id);
            }
            Ok(())
        }
        FaultKind::Pause => handle.resume(host),
        FaultKind::ClogOutgoing | FaultKind::ClogIncoming => handle.unclog(host),
        // A stall ends by itself.
        FaultKind::Stall => Ok(()),
        FaultKind::ClockJumpForward => handle.jump_clock(host, ClockJump::Backward(fault.lasts)),
        FaultKind::ClockJumpBackward => handle.jump_clock(host, ClockJump::Forward(fault.lasts)),
        FaultKind::DiskFailure
        | FaultKind::DiskFull
        | FaultKind::SlowDisk
        | FaultKind::ReadCorruption => handle.set_disk_fault(host, disk_fault(fault.kind), false),
    };
}

/// The switchable disk fault a plan's disk kind turns on.
fn disk_fault(kind: FaultKind) -> DiskFault {
    match kind {
        FaultKind::DiskFailure => DiskFault::Failing,
        FaultKind::DiskFull => DiskFault::Full,
        FaultKind::SlowDisk => DiskFault::Slow,
        _ => DiskFault::Corrupting,
    }
}
