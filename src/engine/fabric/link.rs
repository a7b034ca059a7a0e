//! Links: how a packet travels between two hosts. A link's own configuration
//! ([`LinkConfig`]), the faults on it ([`LinkFault`], composed on top and removed without
//! touching it), and the delays drawn from the seed's network stream.

use std::time::Duration;

use super::*;

/// How a link between two hosts behaves; every random draw comes from the seed.
///
/// ```
/// use roof::net::LinkConfig;
/// use std::time::Duration;
/// let lossy = LinkConfig::default().latency(Duration::from_millis(5)).loss(0.1);
/// assert_eq!(lossy.latency, Duration::from_millis(5));
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct LinkConfig {
    /// One-way latency.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` for every segment or datagram.
    pub jitter: Duration,
    /// Probability that a UDP datagram is lost, or that a TCP segment is lost and has to be
    /// retransmitted (it arrives [`TCP_RTO`] later, doubling with each further loss; the
    /// segments behind it wait for it, as TCP's receiver does).
    pub loss: f64,
    /// Probability that a UDP datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a UDP datagram is held back by up to `latency` more (reordering it).
    pub reorder: f64,
    /// Probability that a TCP write is cut into several segments (at random points).
    pub split: f64,
    /// The largest TCP segment, in bytes.
    pub mss: usize,
}

impl Default for LinkConfig {
    /// 1 ms latency, up to 1 ms jitter, a quarter of writes split, no UDP loss.
    fn default() -> Self {
        LinkConfig {
            latency: Duration::from_millis(1),
            jitter: Duration::from_millis(1),
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            split: 0.25,
            mss: 1460,
        }
    }
}

impl LinkConfig {
    /// Set the one-way latency.
    pub fn latency(mut self, latency: Duration) -> LinkConfig {
        self.latency = latency;
        self
    }

    /// Set the jitter bound.
    pub fn jitter(mut self, jitter: Duration) -> LinkConfig {
        self.jitter = jitter;
        self
    }

    /// Set the UDP loss probability.
    pub fn loss(mut self, probability: f64) -> LinkConfig {
        self.loss = probability;
        self
    }

    /// Set the UDP duplication probability.
    pub fn duplicate(mut self, probability: f64) -> LinkConfig {
        self.duplicate = probability;
        self
    }

    /// Set the UDP reordering probability.
    pub fn reorder(mut self, probability: f64) -> LinkConfig {
        self.reorder = probability;
        self
    }

    /// Set the probability that a TCP write is split into several segments.
    pub fn split(mut self, probability: f64) -> LinkConfig {
        self.split = probability;
        self
    }
}

/// A fault on a link, on top of what the link does: extra latency and jitter (a latency
/// spike), extra loss (a loss burst). It composes with the link's own configuration, and
/// ending it leaves that configuration as it is.
///
/// ```
/// use roof::net::{LinkConfig, LinkFault};
/// use std::time::Duration;
/// let spike = LinkFault::default().latency(Duration::from_millis(50));
/// let link = spike.apply(LinkConfig::default().latency(Duration::from_millis(10)));
/// assert_eq!(link.latency, Duration::from_millis(60));
/// let burst = LinkFault::default().loss(0.5).apply(LinkConfig::default().loss(0.5));
/// assert_eq!(burst.loss, 0.75);
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct LinkFault {
    /// Latency added to the link's own.
    pub extra_latency: Duration,
    /// Jitter added to the link's own.
    pub extra_jitter: Duration,
    /// A loss probability on top of the link's own: a packet gets through only if neither
    /// loses it.
    pub extra_loss: f64,
}

impl LinkFault {
    /// Add `latency` to the link's latency.
    pub fn latency(mut self, latency: Duration) -> LinkFault {
        self.extra_latency = latency;
        self
    }

    /// Add `jitter` to the link's jitter.
    pub fn jitter(mut self, jitter: Duration) -> LinkFault {
        self.extra_jitter = jitter;
        self
    }

    /// Lose packets with probability `probability` on top of the link's own loss.
    pub fn loss(mut self, probability: f64) -> LinkFault {
        self.extra_loss = probability;
        self
    }

    /// `link` with this fault on it.
    pub fn apply(&self, link: LinkConfig) -> LinkConfig {
        let extra_loss = self.extra_loss.clamp(0.0, 1.0);
        LinkConfig {
            latency: link.latency.saturating_add(self.extra_latency),
            jitter: link.jitter.saturating_add(self.extra_jitter),
            loss: 1.0 - (1.0 - link.loss.clamp(0.0, 1.0)) * (1.0 - extra_loss),
            ..link
        }
    }
}

/// What a TCP segment's arrival time is drawn from: a link's latency and jitter, in
/// nanoseconds, and its loss probability.
#[derive(Clone, Copy)]
pub(super) struct Timing {
    pub(super) latency: u64,
    pub(super) jitter: u64,
    pub(super) loss: f64,
}

impl Fabric {
    /// The link `from -> to` as it behaves now: its own configuration (or the default), with
    /// the link faults on it.
    pub(crate) fn link(&self, from: HostIndex, to: HostIndex) -> &LinkConfig {
        self.links.get(&(from, to)).unwrap_or(&self.default_link)
    }

    /// Configure the link between `a` and `b`, both ways. Link faults on it stay, on top of
    /// the new configuration.
    pub(crate) fn set_link(&mut self, a: HostIndex, b: HostIndex, config: LinkConfig) {
        self.own_links.insert((a, b), config.clone());
        self.own_links.insert((b, a), config);
        self.refresh_link((a, b));
        self.refresh_link((b, a));
    }

    pub(crate) fn set_default_link(&mut self, config: LinkConfig) {
        self.default_link = config;
        let faulty: BTreeSet<(HostIndex, HostIndex)> = self
            .link_faults
            .values()
            .flat_map(|(a, b, _)| [(*a, *b), (*b, *a)])
            .collect();
        for pair in faulty {
            self.refresh_link(pair);
        }
    }

    /// Degrade the link between `a` and `b` (both ways) until [`restore_link`] with the
    /// returned id; it composes with the link's own configuration and with other faults.
    ///
    /// [`restore_link`]: Fabric::restore_link
    pub(crate) fn degrade_link(&mut self, a: HostIndex, b: HostIndex, fault: LinkFault) -> u64 {
        let id = self.next_link_fault;
        self.next_link_fault += 1;
        self.link_faults.insert(id, (a, b, fault));
        self.refresh_link((a, b));
        self.refresh_link((b, a));
        id
    }

    /// End the link fault `id` (nothing if it ended already): the link behaves as configured
    /// again, with whatever other faults remain. Returns the hosts it was on.
    pub(crate) fn restore_link(&mut self, id: u64) -> Option<(HostIndex, HostIndex)> {
        let (a, b, _) = self.link_faults.remove(&id)?;
        self.refresh_link((a, b));
        self.refresh_link((b, a));
        Some((a, b))
    }

    /// Recompute what link `pair` does: its own configuration or the default, then each
    /// fault on it, oldest first.
    pub(super) fn refresh_link(&mut self, pair: (HostIndex, HostIndex)) {
        let own = self.own_links.get(&pair);
        let mut faults = self
            .link_faults
            .values()
            .filter(|(a, b, _)| (*a, *b) == pair || (*b, *a) == pair)
            .map(|(_, _, fault)| fault)
            .peekable();
        if own.is_none() && faults.peek().is_none() {
            self.links.remove(&pair);
            return;
        }
        let mut link = own.unwrap_or(&self.default_link).clone();
        for fault in faults {
            link = fault.apply(link);
        }
        self.links.insert(pair, link);
    }

    /// How much later than planned a TCP segment arrives on a link that loses with
    /// probability `loss`: [`TCP_RTO`] for its first loss, doubling for each further one.
    /// Nothing is drawn on a lossless link (the usual case). The arrival planned without the
    /// losses stays the end's `last_arrival`: the segments sent after it arrive on time and
    /// are parked until it gets through.
    #[inline(always)]
    pub(super) fn retransmit_delay(&mut self, loss: f64) -> u64 {
        if loss <= 0.0 {
            return 0;
        }
        let mut extra = 0;
        let mut timeout = TCP_RTO.as_nanos() as u64;
        for _ in 0..TCP_LOSSES_MAX {
            if self.rng.get().unit_f64() >= loss {
                break;
            }
            extra += timeout;
            timeout *= 2;
        }
        extra
    }
}
