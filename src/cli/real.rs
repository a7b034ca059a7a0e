//! `roof serve` and `roof client`: the yell-echo server and the echo client of `sim/`, on real
//! sockets (feature `real-net`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use roof::protocol::create_server;
use roof::EventLoop;

use super::{out, Usage};
use crate::sim::{echo_ping_pong, yell_echo::YellEchoServer};

/// Parse `--addr`: `host:port`, the host a literal address or a name the OS resolves.
pub(crate) fn parse_addr(addr: &str) -> Result<SocketAddr, Usage> {
    let bad = |why: String| Usage(format!("invalid --addr '{addr}': {why}"));
    if let Ok(parsed) = addr.parse::<SocketAddr>() {
        return Ok(parsed);
    }
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port, e.g. 127.0.0.1:1234".into()))?;
    let port: u16 = port
        .parse()
        .map_err(|_| bad(format!("'{port}' is not a port (0 to 65535)")))?;
    let resolved: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|error| bad(format!("cannot resolve '{host}': {error}")))?
        .collect();
    resolved
        .iter()
        .find(|addr| addr.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| bad(format!("'{host}' has no address")))
}

/// Serve yell-echo on `addr` until Ctrl-C, then close the server and wait for its
/// connections to end (a second Ctrl-C drops them).
pub(crate) fn serve(addr: SocketAddr) -> Result<i32, Usage> {
    let event_loop = EventLoop::real();
    let server = match event_loop.run_until_complete(create_server(YellEchoServer::default, addr)) {
        Ok(Ok(server)) => server,
        Ok(Err(error)) => return Err(Usage(error.to_string())),
        Err(failure) => {
            out::error_line(format_args!("error: {failure}"));
            return Ok(1);
        }
    };
    out::line(format_args!(
        "Serving on {} (Ctrl-C to stop)",
        server.local_addr()
    ));
    let outcome = event_loop.run_until_complete(async move {
        roof::net::real::ctrl_c().await?;
        out::line("Closing the server");
        server.close();
        let closed = async {
            server.wait_closed().await;
            true
        };
        let interrupted = async {
            // Only a second Ctrl-C gets here: drop the connections still open.
            let _ = roof::net::real::ctrl_c().await;
            false
        };
        // `or` polls in order (no hidden randomness): the server first.
        let clean = futures_lite::future::or(closed, interrupted).await;
        std::io::Result::Ok(clean)
    });
    event_loop.close();
    match outcome {
        Ok(Ok(true)) => {
            out::line("Server closed");
            Ok(0)
        }
        Ok(Ok(false)) => {
            out::line("Server closed; open connections dropped");
            Ok(0)
        }
        Ok(Err(error)) => {
            out::error_line(format_args!("error: cannot wait for Ctrl-C: {error}"));
            Ok(1)
        }
        Err(failure) => {
            out::error_line(format_args!("error: {failure}"));
            Ok(1)
        }
    }
}

/// Talk to a yell-echo server: send `message` `count` times, each time waiting for it to
/// come back upper-cased. Exit 1 if the server cannot be reached, answers wrong, or does not
/// finish within `timeout`.
pub(crate) fn client(
    addr: SocketAddr,
    message: &str,
    count: u32,
    timeout: Duration,
) -> Result<i32, Usage> {
    let event_loop = EventLoop::real();
    let result = echo_ping_pong::talk(
        &event_loop,
        &addr.to_string(),
        message.as_bytes(),
        count,
        Some(timeout),
    );
    event_loop.close();
    match result {
        Ok(()) => Ok(0),
        Err(error) => {
            out::error_line(format_args!("error: {error}"));
            Ok(1)
        }
    }
}
