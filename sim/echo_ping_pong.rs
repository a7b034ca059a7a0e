//! The EchoClientProtocol of the asyncio notes against the yell server, bounded to a number
//! of exchanges; `connection_lost` stops the loop.
//!
//! ```python
//! class EchoClientProtocol(asyncio.Protocol):
//!     def talk(self):
//!         self.transport.write(self.message)
//!
//!     def connection_made(self, transport):
//!         self.transport = transport
//!         self.talk()
//!
//!     def data_received(self, data):
//!         self.talk()
//!
//!     def connection_lost(self, exc):
//!         self.loop.stop()
//! ```
//!
//! The notes' client talks again on every `data_received`; since the network may cut an
//! answer in two, this one talks again once a whole answer is in.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use roof::protocol::{create_connection, Protocol, Transport};
use roof::{EventLoop, LoopHandle};

use super::yell_echo;

/// What the client says.
pub const MESSAGE: &[u8] = b"Hello World!";
/// Exchanges before the client closes.
pub const EXCHANGES: u32 = 5;

/// The notes' EchoClientProtocol, bounded: it talks `limit` times, checking each answer is its
/// message upper-cased, then closes.
struct EchoClientProtocol {
    message: Vec<u8>,
    limit: u32,
    event_loop: LoopHandle,
    transport: Option<Transport>,
    received: Vec<u8>,
    outcome: Rc<RefCell<Outcome>>,
}

/// What the client saw.
#[derive(Default)]
struct Outcome {
    exchanges: u32,
    /// The first answer that was not the message upper-cased.
    wrong: Option<Vec<u8>>,
    /// `connection_lost` was called.
    ended: bool,
    /// The error the connection was lost with, if any.
    lost: Option<io::Error>,
    /// The time allowed ran out first.
    timed_out: bool,
}

impl EchoClientProtocol {
    fn talk(&self) {
        if let Some(transport) = &self.transport {
            transport.write(&self.message);
        }
    }
}

impl Protocol for EchoClientProtocol {
    fn connection_made(&mut self, transport: Transport) {
        self.transport = Some(transport);
        self.talk();
    }

    fn data_received(&mut self, data: &[u8]) {
        self.received.extend_from_slice(data);
        while self.received.len() >= self.message.len() {
            let answer: Vec<u8> = self.received.drain(..self.message.len()).collect();
            let mut outcome = self.outcome.borrow_mut();
            outcome.exchanges += 1;
            roof::println!(
                "exchange {}: {}",
                outcome.exchanges,
                String::from_utf8_lossy(&answer)
            );
            if answer != self.message.to_ascii_uppercase() && outcome.wrong.is_none() {
                outcome.wrong = Some(answer);
            }
            if outcome.exchanges < self.limit && outcome.wrong.is_none() {
                self.talk();
            } else if let Some(transport) = &self.transport {
                transport.close();
            }
        }
    }

    fn connection_lost(&mut self, error: Option<io::Error>) {
        let mut outcome = self.outcome.borrow_mut();
        outcome.ended = true;
        outcome.lost = error;
        self.event_loop.stop();
    }
}

/// Talk to the yell server at `addr`: send `message`, wait for it upper-cased, `exchanges`
/// times, then close. Runs until the connection is lost, as the notes' client does
/// (`run_forever`, stopped by `connection_lost`), or until `timeout` has passed (an error:
/// a server that accepts and never answers must not hang the client). The same code runs on
/// a simulated loop and, for `roof client`, on a real one.
pub fn talk(
    event_loop: &EventLoop,
    addr: &str,
    message: &[u8],
    exchanges: u32,
    timeout: Option<Duration>,
) -> Result<(), String> {
    let outcome = Rc::new(RefCell::new(Outcome::default()));
    let deadline = timeout.map(|timeout| {
        let (handle, outcome) = (event_loop.handle(), outcome.clone());
        event_loop.call_later(timeout, move || {
            outcome.borrow_mut().timed_out = true;
            handle.stop();
        })
    });
    let result = exchange(event_loop, addr, message, exchanges, &outcome);
    if let Some(deadline) = deadline {
        deadline.cancel();
    }
    let outcome = outcome.borrow();
    match (timeout, outcome.timed_out) {
        (Some(timeout), true) => Err(format!(
            "no answer from {addr} within {timeout:?}: {} of {exchanges} exchanges done",
            outcome.exchanges
        )),
        _ => result,
    }
}

fn exchange(
    event_loop: &EventLoop,
    addr: &str,
    message: &[u8],
    exchanges: u32,
    outcome: &Rc<RefCell<Outcome>>,
) -> Result<(), String> {
    let protocol = EchoClientProtocol {
        message: message.to_vec(),
        limit: exchanges,
        event_loop: event_loop.handle(),
        transport: None,
        received: Vec::new(),
        outcome: outcome.clone(),
    };
    event_loop
        .run_until_complete(create_connection(protocol, addr.to_string()))
        .map_err(super::failed)?
        .map_err(|error| format!("cannot connect to {addr}: {error}"))?;
    // On real sockets a short exchange can end while `run_until_complete` winds down (it
    // runs one more batch after its future), and that `stop` is spent: as with asyncio,
    // only run forever if the connection is still there.
    if !outcome.borrow().ended {
        event_loop.run_forever().map_err(super::failed)?;
    }
    let outcome = outcome.borrow();
    if let Some(answer) = &outcome.wrong {
        return Err(format!(
            "sent {:?} and got back {:?}, not the message upper-cased",
            String::from_utf8_lossy(message),
            String::from_utf8_lossy(answer)
        ));
    }
    if outcome.exchanges != exchanges {
        let how = match &outcome.lost {
            Some(error) => format!(" ({error})"),
            None => String::new(),
        };
        return Err(format!(
            "the connection was lost after {} of {exchanges} exchanges{how}",
            outcome.exchanges
        ));
    }
    Ok(())
}

pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    event_loop
        .host("server", || yell_echo::serve(yell_echo::PORT))
        .map_err(|error| error.to_string())?;
    talk(
        event_loop,
        &format!("server:{}", yell_echo::PORT),
        MESSAGE,
        EXCHANGES,
        None,
    )
}
