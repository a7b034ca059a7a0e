//! Leader election on a lease, with a planted bug: each node times its lease with its wall
//! clock. Nothing shows it while the clocks agree; when a leader's wall clock steps back (an
//! NTP step, or the step back at the end of a jump ahead) the leader renews late and goes on
//! believing in a lease the coordinator has since given to the other node: two leaders. A
//! plan with clock jumps (`roof sweep lease --faults 2s`) finds it, no other fault does. The
//! fixed node times its lease with the monotonic clock.
//!
//! The coordinator, on host `coord`, is a lock service over TCP: `ACQUIRE <node>` grants the
//! lease (`GRANTED <ttl_ms>`) when it is free or expired, or renews it for its holder, and
//! answers `DENIED` otherwise. It times leases with the monotonic clock, and after each
//! (re)start it grants nothing for one TTL: it lost its table, and a holder may still
//! believe in its lease. It is correct.
//!
//! Nodes `n1` and `n2` loop: ask for the lease when they have none (every [`ASK_EVERY`])
//! or it is due for renewal, on one connection, dropped when an answer is late (so that a
//! late answer is never taken for the answer to a newer request); and while they believe
//! they hold it, do leader work every [`WORK_EVERY`]. By the node's clock, its lease ends
//! `TTL - MARGIN` after it *sent* the request that won it (the coordinator granted it later,
//! so its own lease lasts longer), and is due for renewal [`RENEW_AFTER`] after.
//!
//! The oracle is the truth both sides record, outside the hosts so it survives their
//! crashes: the coordinator each grant (node, from, until), each node each act of leader
//! work (node, when), both on the monotonic clock. After [`RUN_FOR`], every act must lie
//! inside a grant of the same node: one made while the other node held the lease is two
//! leaders; one made while no node held it (the other could not reach the coordinator in
//! time) is a leader without a lease, as unsafe, only luckier. And some node must lead again
//! in the run's last [`RECOVERED_WITHIN`], after the faults.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use roof::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use roof::net::{TcpListener, TcpStream};
use roof::time::Instant;
use roof::EventLoop;

/// The host of the coordinator.
pub const COORDINATOR: &str = "coord";
/// The nodes that compete for the lease.
pub const NODES: [&str; 2] = ["n1", "n2"];
/// The port the coordinator listens on.
pub const PORT: u16 = 7171;
/// How long a grant lasts.
pub const TTL: Duration = Duration::from_millis(300);
/// How much sooner than the coordinator a node takes its lease to end.
pub const MARGIN: Duration = Duration::from_millis(50);
/// A holder renews its lease this long after it sent the request that won it.
pub const RENEW_AFTER: Duration = Duration::from_millis(100);
/// How often a leader works.
pub const WORK_EVERY: Duration = Duration::from_millis(10);
/// How often a node that does not lead asks for the lease.
pub const ASK_EVERY: Duration = Duration::from_millis(25);
/// How long the system runs before the oracle checks it: past the faults (a 2 s window,
/// each fault lasting up to a quarter of it) and the recovery after them.
pub const RUN_FOR: Duration = Duration::from_secs(4);
/// The last stretch of the run, in which some node must act as leader again.
pub const RECOVERED_WITHIN: Duration = Duration::from_secs(1);
/// How long a node waits for one answer (connect, send, read) before it gives up on it.
const ANSWER_WAIT: Duration = Duration::from_millis(50);
/// How long the coordinator's supervisor waits before it starts a coordinator that stopped.
const RESTART_DELAY: Duration = Duration::from_millis(100);

/// One grant, as the coordinator made it.
#[derive(Clone, Debug)]
struct Grant {
    node: String,
    from: Instant,
    until: Instant,
}

/// What happened, by the monotonic clock: grants and acts of leader work.
#[derive(Debug, Default)]
struct Oracle {
    grants: Vec<Grant>,
    acts: Vec<(&'static str, Instant)>,
}

type Shared = Rc<RefCell<Oracle>>;

fn secs(at: Instant) -> String {
    format!("{:.3}s", at.as_secs_f64())
}

impl Oracle {
    /// The grants in force at `at`: renewals of one node's lease overlap, the grants of
    /// two nodes never do.
    fn in_force(&self, at: Instant) -> impl Iterator<Item = &Grant> + Clone {
        self.grants
            .iter()
            .filter(move |grant| grant.from <= at && at < grant.until)
    }

    /// An act of leader work outside every grant of its node, described: the first made
    /// while the other node held the lease (two leaders), else the first of all.
    fn violation(&self) -> Option<String> {
        let outside: Vec<(&str, Instant, Option<&Grant>)> = self
            .acts
            .iter()
            .filter_map(|&(node, at)| {
                let mut in_force = self.in_force(at);
                if in_force.clone().any(|grant| grant.node == node) {
                    return None;
                }
                Some((node, at, in_force.find(|grant| grant.node != node)))
            })
            .collect();
        let &(node, at, usurper) = outside
            .iter()
            .find(|(_, _, usurper)| usurper.is_some())
            .or(outside.first())?;
        let Some(ended) = self
            .grants
            .iter()
            .filter(|grant| grant.node == node && grant.until <= at)
            .map(|grant| grant.until)
            .max()
        else {
            return Some(format!(
                "{node} acted as leader at {}, but it was never granted the lease",
                secs(at)
            ));
        };
        let Some(usurper) = usurper else {
            return Some(format!(
                "{node} acted as leader at {}, but its lease ended at {} (no other node held it then): a leader without a lease",
                secs(at),
                secs(ended)
            ));
        };
        // The other node has held it since its first grant after this node's lease ended.
        let since = self
            .grants
            .iter()
            .filter(|grant| grant.node == usurper.node && grant.from >= ended)
            .map(|grant| grant.from)
            .min()
            .unwrap_or(usurper.from);
        Some(format!(
            "{node} acted as leader at {}, but its lease ended at {} ({} has held it since {}): two leaders",
            secs(at),
            secs(ended),
            usurper.node,
            secs(since)
        ))
    }

    /// The check after the run: no act outside a grant, and a leader again at the end.
    fn check(&self, end: Instant) -> Result<(), String> {
        if let Some(violation) = self.violation() {
            return Err(violation);
        }
        let recovered = Instant::ORIGIN + (end - Instant::ORIGIN).saturating_sub(RECOVERED_WITHIN);
        if !self.acts.iter().any(|&(_, at)| at >= recovered) {
            return Err(format!(
                "no node acted as leader after {}: the lease was never (re)granted",
                secs(recovered)
            ));
        }
        Ok(())
    }
}

/// The coordinator's lease table: who holds the lease, until when.
struct Table {
    holder: Option<(String, Instant)>,
    /// Grants nothing before this: one TTL after it started.
    quiet_until: Instant,
}

impl Table {
    /// Answer `ACQUIRE node` now.
    fn acquire(&mut self, node: &str, oracle: &Shared) -> String {
        let now = roof::time::now();
        if now < self.quiet_until {
            return "DENIED".to_string();
        }
        let free = match &self.holder {
            None => true,
            Some((holder, until)) => holder == node || now >= *until,
        };
        if !free {
            return "DENIED".to_string();
        }
        let until = now + TTL;
        self.holder = Some((node.to_string(), until));
        oracle.borrow_mut().grants.push(Grant {
            node: node.to_string(),
            from: now,
            until,
        });
        format!("GRANTED {}", TTL.as_millis())
    }
}

/// The coordinator's life: a fresh table, then a task for each connection.
async fn coordinator(oracle: Shared) -> io::Result<()> {
    let table = Rc::new(RefCell::new(Table {
        holder: None,
        quiet_until: roof::time::now() + TTL,
    }));
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // A node that gave up before its connection was accepted.
            Err(error) if error.kind() == io::ErrorKind::ConnectionAborted => continue,
            Err(error) => return Err(error),
        };
        let (table, oracle) = (table.clone(), oracle.clone());
        // A connection that breaks ends its task; a crash ends them all.
        roof::spawn(async move {
            let _ = serve(stream, &table, &oracle).await;
        })
        .detach();
    }
}

/// Answer the requests of one connection, until it ends.
async fn serve(stream: TcpStream, table: &RefCell<Table>, oracle: &Shared) -> io::Result<()> {
    let mut reader = BufReader::new(&stream);
    let mut writer = &stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let answer = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["ACQUIRE", node] => table.borrow_mut().acquire(node, oracle),
            _ => "ERR".to_string(),
        };
        writer.write_all(format!("{answer}\n").as_bytes()).await?;
    }
}

/// Which clock a node times its lease with.
#[derive(Clone, Copy, Debug)]
enum Clock {
    /// `roof::time::system_time()`: the host's wall clock, which can jump (the bug).
    Wall,
    /// `roof::time::now()`: the monotonic clock (the fix).
    Monotonic,
}

impl Clock {
    /// The clock's reading, as time since its epoch.
    fn read(self) -> Duration {
        match self {
            Clock::Wall => roof::time::system_time()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default(),
            Clock::Monotonic => roof::time::now().elapsed_since_origin(),
        }
    }
}

/// A node's lease as it believes in it, by its clock.
#[derive(Clone, Copy, Debug)]
struct Lease {
    end: Duration,
    renew_at: Duration,
}

/// The coordinator's answer to a node.
enum Answer {
    Granted(Duration),
    Denied,
}

/// Ask the coordinator for the lease on `connection` (connecting first if there is none);
/// `None` without an answer in time, and then the connection is dropped, so that a late
/// answer is never read as the answer to a later request.
async fn ask(connection: &mut Option<TcpStream>, node: &str) -> Option<Answer> {
    if connection.is_none() {
        let connect = TcpStream::connect((COORDINATOR, PORT));
        *connection = Some(roof::timeout(ANSWER_WAIT, connect).await.ok()?.ok()?);
    }
    let stream = connection.as_ref()?;
    let exchange = async {
        let mut writer = stream;
        writer
            .write_all(format!("ACQUIRE {node}\n").as_bytes())
            .await?;
        let mut answer = String::new();
        match BufReader::new(stream).read_line(&mut answer).await? {
            0 => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            _ => Ok(answer),
        }
    };
    let answer = match roof::timeout(ANSWER_WAIT, exchange).await {
        Ok(Ok(answer)) => answer,
        _ => {
            *connection = None;
            return None;
        }
    };
    match answer.split_whitespace().collect::<Vec<_>>().as_slice() {
        ["GRANTED", ttl_ms] => ttl_ms
            .parse()
            .ok()
            .map(|ms| Answer::Granted(Duration::from_millis(ms))),
        ["DENIED"] => Some(Answer::Denied),
        _ => None,
    }
}

/// A node's life: win or renew the lease when due, and work while it believes it leads.
async fn node(name: &'static str, clock: Clock, oracle: Shared) {
    let mut connection = None;
    let mut lease: Option<Lease> = None;
    loop {
        let due = lease.is_none_or(|lease| clock.read() >= lease.renew_at);
        if due {
            let sent = clock.read();
            match ask(&mut connection, name).await {
                Some(Answer::Granted(ttl)) => {
                    lease = Some(Lease {
                        end: sent + ttl.saturating_sub(MARGIN),
                        renew_at: sent + RENEW_AFTER,
                    });
                }
                Some(Answer::Denied) => lease = None,
                // No answer: the lease, if any, holds until it ends.
                None => {}
            }
        }
        if lease.is_some_and(|lease| clock.read() < lease.end) {
            // The leader work: here, recording that it happened.
            oracle.borrow_mut().acts.push((name, roof::time::now()));
            roof::sleep(WORK_EVERY).await;
        } else {
            roof::sleep(ASK_EVERY).await;
        }
    }
}

fn run_with(event_loop: &EventLoop, clock: Clock) -> Result<(), String> {
    let oracle = Shared::default();
    let shared = oracle.clone();
    event_loop
        .host(COORDINATOR, move || {
            let oracle = shared.clone();
            async move {
                if let Err(error) = coordinator(oracle).await {
                    // The process exits, and its supervisor starts it again a little later.
                    roof::sleep(RESTART_DELAY).await;
                    panic!("coordinator stopped: {error}");
                }
            }
        })
        .map_err(|error| error.to_string())?;
    event_loop
        .restart_on_panic(COORDINATOR, true)
        .map_err(|error| error.to_string())?;
    for name in NODES {
        let shared = oracle.clone();
        event_loop
            .host(name, move || node(name, clock, shared.clone()))
            .map_err(|error| error.to_string())?;
    }
    event_loop
        .run_until_complete(async move {
            roof::sleep(RUN_FOR).await;
            oracle.borrow().check(roof::time::now())
        })
        .map_err(super::failed)?
}

/// The nodes with their planted bug: each times its lease with its wall clock.
pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    run_with(event_loop, Clock::Wall)
}

/// The nodes fixed: each times its lease with the monotonic clock.
pub fn run_fixed(event_loop: &EventLoop) -> Result<(), String> {
    run_with(event_loop, Clock::Monotonic)
}
