//! A request server and clients that retry, with a planted bug: a metastable failure, as in
//! "Metastable Failures in Distributed Systems" (Bronson et al., HotOS 2021). The clients
//! retry a timed-out request at once, without backoff, and the server serves every request
//! it was sent, also those whose client has given up. Without faults the server keeps up
//! with room to spare (the sessions ask for under half of what it serves). A pause, stall or
//! clog of the server of a few hundred milliseconds holds back requests the clients go on to
//! abandon and retry, then hands them all to the server at once: its backlog is longer than
//! the clients' timeout, so every answer comes too late, every session retries once per
//! timeout, and that is twice the work the server drains. It never catches up, though the
//! fault is long over (`roof sweep retry-storm --faults 2s`). (A crash starts no storm: it
//! empties the server's queue.) The fixed clients back off exponentially with seeded
//! jitter and send their deadline, and the fixed server drops a request whose deadline will
//! have passed before it can answer.
//!
//! The server (host `server`, restarted after a crash) listens on [`PORT`] and serves one
//! request at a time from a single queue, each for [`SERVICE_TIME`]: one connection per
//! request, whose line `REQ id` (or `REQ id deadline`, the deadline in nanoseconds of the
//! simulation's clock, which all hosts share) it answers with `OK id`. The [`CLIENTS`]
//! client hosts each run [`SESSIONS`] sessions that make [`REQUESTS`] requests one after
//! another, thinking for a while between two; each attempt connects anew (so a stall of the
//! server's `accept` holds it) and gives up after [`ATTEMPT_TIMEOUT`]. A ledger the
//! scenario keeps (the server never reads it) counts what the server served and what the
//! clients took, so a run that has not finished within [`FINISH_WITHIN`] can say how much of
//! the server's work went to requests nobody waited for.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use roof::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use roof::net::{TcpListener, TcpStream};
use roof::sync::Queue;
use roof::time::Instant;
use roof::EventLoop;

/// The port the server listens on.
pub const PORT: u16 = 8080;
/// How long the server works on one request: it serves 200 a second, one at a time.
pub const SERVICE_TIME: Duration = Duration::from_millis(5);
/// Client hosts.
pub const CLIENTS: usize = 2;
/// Sessions on each client host, each with one request outstanding at a time.
pub const SESSIONS: usize = 20;
/// Requests each session must complete.
pub const REQUESTS: usize = 6;
/// How long a session thinks between two requests (drawn from this range): the sessions ask
/// for about 90 requests a second, under half of what the server can serve.
pub const THINK_TIME: std::ops::Range<Duration> =
    Duration::from_millis(300)..Duration::from_millis(600);
/// How long a client waits for an answer before it gives that attempt up. All sessions
/// retrying once per timeout ask for `CLIENTS * SESSIONS` requests per timeout, twice what the
/// server serves in one: once every answer is late, the backlog only grows.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(100);
/// The fixed client's first backoff bound; it doubles with each failed attempt.
pub const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// The fixed client's largest backoff bound.
pub const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// The clients must all finish within this (faults start within the first seconds; a run
/// without them finishes in about three).
pub const FINISH_WITHIN: Duration = Duration::from_secs(10);

/// What the scenario counts, to tell a storm from a slow run: the server never reads it.
#[derive(Debug, Default)]
struct Ledger {
    /// Requests the sessions completed.
    finished: Cell<usize>,
    /// Attempts the sessions made (one per request when no answer is late).
    attempts: Cell<usize>,
    /// Requests the server served (service time spent).
    served: Cell<usize>,
    /// Requests the server dropped unserved, their deadline past.
    dropped: Cell<usize>,
    /// Answers a client took: the served requests whose client still waited.
    taken: Cell<usize>,
}

fn count(cell: &Cell<usize>) {
    cell.set(cell.get() + 1);
}

/// What a run did, from its ledger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tally {
    /// Requests the sessions completed (of `CLIENTS * SESSIONS * REQUESTS`).
    pub finished: usize,
    /// Attempts the sessions made.
    pub attempts: usize,
    /// Requests the server served.
    pub served: usize,
    /// Requests the server dropped unserved, their deadline past.
    pub dropped: usize,
    /// Answers the clients took.
    pub taken: usize,
}

impl Tally {
    fn of(ledger: &Ledger) -> Tally {
        Tally {
            finished: ledger.finished.get(),
            attempts: ledger.attempts.get(),
            served: ledger.served.get(),
            dropped: ledger.dropped.get(),
            taken: ledger.taken.get(),
        }
    }

    /// The share of the server's work that went to requests whose client had given up, in
    /// percent.
    pub fn wasted_percent(&self) -> usize {
        let wasted = self.served - self.taken.min(self.served);
        (wasted * 100).checked_div(self.served).unwrap_or(0)
    }

    /// The error for clients that have not finished in time.
    fn storm(&self) -> String {
        format!(
            "the clients finished {} of {} requests in {FINISH_WITHIN:?}: the server spent {}% of its work on requests their clients had given up on (a retry storm)",
            self.finished,
            CLIENTS * SESSIONS * REQUESTS,
            self.wasted_percent(),
        )
    }
}

/// A request waiting at the server: the connection to answer on, and what it asked.
struct Request {
    stream: TcpStream,
    id: String,
    deadline: Option<Instant>,
}

/// Parse `REQ id` or `REQ id deadline`.
fn parse(line: &str, stream: TcpStream) -> Option<Request> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (id, deadline) = match words.as_slice() {
        ["REQ", id] => (id, None),
        ["REQ", id, deadline] => (id, Some(Instant::from_nanos(deadline.parse().ok()?))),
        _ => return None,
    };
    Some(Request {
        stream,
        id: id.to_string(),
        deadline,
    })
}

/// The server's life: accept connections, queue each one's request, and serve the queue.
async fn server(ledger: Rc<Ledger>) {
    let listener = TcpListener::bind(("0.0.0.0", PORT))
        .await
        .expect("the port is free on the server");
    let queue = Rc::new(Queue::new(0));
    roof::spawn_named("worker", serve(queue.clone(), ledger)).detach();
    while let Ok((stream, _)) = listener.accept().await {
        roof::spawn_named("connection", receive(stream, queue.clone())).detach();
    }
}

/// Read one connection's request into the queue.
async fn receive(stream: TcpStream, queue: Rc<Queue<Request>>) {
    let mut line = String::new();
    let read = BufReader::new(&stream).read_line(&mut line).await;
    if let (Ok(1..), Some(request)) = (read, parse(&line, stream)) {
        let _ = queue.put_nowait(request);
    }
}

/// The server's one worker: each request in turn, for [`SERVICE_TIME`] each. A request with
/// a deadline it cannot meet any more is dropped unserved; one without is always served.
async fn serve(queue: Rc<Queue<Request>>, ledger: Rc<Ledger>) {
    while let Ok(request) = queue.get().await {
        if let Some(deadline) = request.deadline {
            if roof::time::now() + SERVICE_TIME > deadline {
                count(&ledger.dropped);
                continue;
            }
        }
        roof::sleep(SERVICE_TIME).await;
        count(&ledger.served);
        let mut writer = &request.stream;
        // A client that has given up has closed its end: the answer is lost, the work too.
        let _ = writer
            .write_all(format!("OK {}\n", request.id).as_bytes())
            .await;
    }
}

/// One attempt at request `id`: connect, ask, and read the answer.
async fn attempt(id: &str, deadline: Option<Instant>) -> io::Result<()> {
    let stream = TcpStream::connect(("server", PORT)).await?;
    let line = match deadline {
        Some(deadline) => format!("REQ {id} {}\n", deadline.as_nanos()),
        None => format!("REQ {id}\n"),
    };
    let mut writer = &stream;
    writer.write_all(line.as_bytes()).await?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).await?;
    if answer.trim_end() == format!("OK {id}") {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{id}: answered {answer:?}"),
        ))
    }
}

/// A uniform draw from `range`, from the seed's user stream.
fn draw(range: std::ops::Range<Duration>) -> Duration {
    let (low, high) = (range.start.as_nanos() as u64, range.end.as_nanos() as u64);
    Duration::from_nanos(roof::random::range(low..high))
}

/// The fixed client's wait after `failures` failed attempts: "full jitter", uniform below a
/// bound that doubles with each failure up to [`BACKOFF_CAP`].
fn backoff(failures: u32) -> Duration {
    let bound = BACKOFF_BASE
        .saturating_mul(1 << failures.min(16))
        .min(BACKOFF_CAP);
    draw(Duration::ZERO..bound)
}

/// Make request `id` until an attempt is answered in time.
async fn request(id: String, fixed: bool, ledger: &Ledger) {
    let mut failures = 0;
    loop {
        count(&ledger.attempts);
        let deadline = roof::time::now() + ATTEMPT_TIMEOUT;
        let sent = fixed.then_some(deadline);
        if let Ok(Ok(())) = roof::timeout_at(deadline, attempt(&id, sent)).await {
            count(&ledger.taken);
            return;
        }
        if fixed {
            roof::sleep(backoff(failures)).await;
        } else {
            // THE PLANTED BUG: retry at once (an attempt that failed early, refused by a
            // server that is down, waits out its timeout first), however many attempts
            // before this one went unanswered, and with no deadline for the server to drop
            // the abandoned ones by.
            roof::sleep_until(deadline).await;
        }
        failures += 1;
    }
}

/// One session: [`REQUESTS`] requests, thinking before each.
async fn session(name: String, fixed: bool, ledger: Rc<Ledger>) {
    for number in 0..REQUESTS {
        roof::sleep(draw(THINK_TIME)).await;
        request(format!("{name}r{number}"), fixed, &ledger).await;
        count(&ledger.finished);
    }
}

/// A client host: its sessions, concurrently.
async fn client(client: usize, fixed: bool, ledger: Rc<Ledger>) {
    let sessions: Vec<_> = (0..SESSIONS)
        .map(|session_number| {
            let name = format!("c{client}s{session_number}");
            roof::spawn_named("session", session(name, fixed, ledger.clone()))
        })
        .collect();
    for session in sessions {
        let _ = session.await;
    }
}

/// Run the system, fixed or with its planted bug, until every client has finished or
/// [`FINISH_WITHIN`] has passed: what it did, or the storm it was caught in.
pub fn run_with(event_loop: &EventLoop, fixed: bool) -> Result<Tally, String> {
    let ledger = Rc::new(Ledger::default());
    let for_server = ledger.clone();
    event_loop
        .host("server", move || server(for_server.clone()))
        .map_err(|error| error.to_string())?;
    let mut clients = Vec::new();
    for number in 0..CLIENTS {
        let name = format!("client{number}");
        let body = client(number, fixed, ledger.clone());
        clients.push(
            event_loop
                .client(&name, body)
                .map_err(|error| error.to_string())?,
        );
    }
    let all = async move {
        for client in clients {
            let _ = client.await;
        }
    };
    let finished = event_loop
        .run_until_complete(roof::timeout(FINISH_WITHIN, all))
        .map_err(super::failed)?;
    let tally = Tally::of(&ledger);
    match finished {
        Ok(()) => Ok(tally),
        Err(_) => Err(tally.storm()),
    }
}

/// The clients retry at once and the server serves abandoned requests: a retry storm.
pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    run_with(event_loop, false).map(drop)
}

/// The clients back off with jitter and the server drops requests past their deadline.
pub fn run_fixed(event_loop: &EventLoop) -> Result<(), String> {
    run_with(event_loop, true).map(drop)
}
