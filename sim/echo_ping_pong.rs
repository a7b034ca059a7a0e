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

use std::cell::Cell;
use std::io;
use std::rc::Rc;

use roof::protocol::{create_connection, Protocol, Transport};
use roof::{EventLoop, LoopHandle};

use super::yell_echo;

/// What the client says.
pub const MESSAGE: &[u8] = b"Hello World!";
/// Exchanges before the client closes.
pub const EXCHANGES: u32 = 5;

struct EchoClientProtocol {
    message: &'static [u8],
    event_loop: LoopHandle,
    transport: Option<Transport>,
    received: Vec<u8>,
    exchanges: Rc<Cell<u32>>,
}

impl EchoClientProtocol {
    fn talk(&self) {
        if let Some(transport) = &self.transport {
            transport.write(self.message);
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
            let count = self.exchanges.get() + 1;
            self.exchanges.set(count);
            roof::println!("exchange {count}: {}", String::from_utf8_lossy(&answer));
            if count < EXCHANGES {
                self.talk();
            } else if let Some(transport) = &self.transport {
                transport.close();
            }
        }
    }

    fn connection_lost(&mut self, _error: Option<io::Error>) {
        self.event_loop.stop();
    }
}

pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    event_loop
        .host("server", || yell_echo::serve(yell_echo::PORT))
        .map_err(|error| error.to_string())?;
    let exchanges = Rc::new(Cell::new(0));
    let protocol = EchoClientProtocol {
        message: MESSAGE,
        event_loop: event_loop.handle(),
        transport: None,
        received: Vec::new(),
        exchanges: exchanges.clone(),
    };
    event_loop
        .run_until_complete(create_connection(protocol, ("server", yell_echo::PORT)))
        .map_err(super::failed)?
        .map_err(|error| format!("create_connection: {error}"))?;
    event_loop.run_forever().map_err(super::failed)?;
    if exchanges.get() != EXCHANGES {
        return Err(format!(
            "{} exchanges before the connection was lost, expected {EXCHANGES}",
            exchanges.get()
        ));
    }
    Ok(())
}
