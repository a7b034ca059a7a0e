//! What the simulated network did with one packet: the pieces of a packet's life that a
//! timeline draws as an arrow (sent, then delivered, held, parked, dropped or lost).

use std::fmt;

use serde::Serialize;

/// What happened to a packet after it was sent ([`EventKind::Packet`](super::EventKind::Packet)).
///
/// ```
/// use roof::trace::PacketOp;
/// assert_eq!(PacketOp::Deliver.to_string(), "deliver");
/// assert_eq!(PacketOp::Hold.to_string(), "hold");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PacketOp {
    /// It reached its end or socket.
    Deliver,
    /// It arrived on a cut link (partition, clog) and waits there; TCP sends it again when
    /// the link heals.
    Hold,
    /// A held segment was sent again because its link healed.
    Resend,
    /// A segment arrived before an earlier one toward its end and waits for the gap to
    /// fill (a stream is never reordered).
    Park,
    /// It was thrown away on arrival: a datagram on a cut link or for no socket, a segment
    /// of a connection that is gone.
    Drop,
    /// A datagram lost on a lossy link (it never left).
    Lost,
}

impl fmt::Display for PacketOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PacketOp::Deliver => "deliver",
            PacketOp::Hold => "hold",
            PacketOp::Resend => "resend",
            PacketOp::Park => "park",
            PacketOp::Drop => "drop",
            PacketOp::Lost => "lost",
        })
    }
}
