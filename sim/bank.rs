//! A bank on roof's toolkit: tellers take transfer orders from a job queue, lock the
//! accounts, move the money and log each transfer to an audit queue. The planted bug: a
//! teller checks the balance under the source account's lock, lets the lock go to write the
//! audit line, and debits after, so two transfers from one account both pass the check and
//! overdraw it. In FIFO order no teller ever waits at the audit queue, so the bug never
//! shows; the preemption point before `put` lets another teller in between, and a sweep finds
//! the seeds where it does. `bank-fixed` holds both locks (taken in account order) from the
//! check to the debit.

use std::cell::Cell;
use std::rc::Rc;

use roof::sync::{Lock, Queue};
use roof::EventLoop;

/// Accounts, each opening with [`OPENING`].
pub const ACCOUNTS: usize = 3;
/// Each account's opening balance.
pub const OPENING: i64 = 100;
/// Tellers taking orders from the job queue.
pub const TELLERS: usize = 3;
/// Transfer orders: (from, to, amount). Two in flight from one account at once overdraw it
/// (100 covers one transfer of 60, not two); in order, each is covered or refused.
pub const ORDERS: [(usize, usize, i64); 8] = [
    (0, 1, 60),
    (0, 2, 60),
    (1, 0, 60),
    (2, 0, 60),
    (0, 1, 60),
    (0, 2, 60),
    (1, 2, 60),
    (2, 1, 60),
];

struct Account {
    lock: Lock,
    balance: Cell<i64>,
}

pub fn run(event_loop: &EventLoop) -> Result<(), String> {
    run_bank(event_loop, false)
}

pub fn run_fixed(event_loop: &EventLoop) -> Result<(), String> {
    run_bank(event_loop, true)
}

fn run_bank(event_loop: &EventLoop, fixed: bool) -> Result<(), String> {
    event_loop
        .run_until_complete(async move {
            let accounts: Rc<Vec<Account>> = Rc::new(
                (0..ACCOUNTS)
                    .map(|_| Account {
                        lock: Lock::new(),
                        balance: Cell::new(OPENING),
                    })
                    .collect(),
            );
            let jobs = Rc::new(Queue::new(0));
            let audit = Rc::new(Queue::new(0));
            for order in ORDERS {
                jobs.put_nowait(Some(order))
                    .map_err(|error| error.to_string())?;
            }
            for _ in 0..TELLERS {
                jobs.put_nowait(None).map_err(|error| error.to_string())?;
            }
            let tellers: Vec<_> = (1..=TELLERS)
                .map(|teller| {
                    let (accounts, jobs, audit) = (accounts.clone(), jobs.clone(), audit.clone());
                    roof::spawn_named(format!("teller-{teller}"), async move {
                        // An order, or the end marker (`None`): each is one `task_done`.
                        while let Some((from, to, amount)) = jobs.get().await.expect("jobs open") {
                            if fixed {
                                transfer_fixed(&accounts, &audit, from, to, amount).await;
                            } else {
                                transfer(&accounts, &audit, from, to, amount).await;
                            }
                            jobs.task_done().expect("one task_done per job");
                        }
                        jobs.task_done().expect("one task_done per end marker");
                    })
                })
                .collect();
            jobs.join().await;
            for teller in tellers {
                teller.await.map_err(|error| error.to_string())?;
            }
            let balances: Vec<i64> = accounts
                .iter()
                .map(|account| account.balance.get())
                .collect();
            roof::println!("balances {balances:?}, {} audit lines", audit.qsize());
            if let Some(overdrawn) = balances.iter().position(|&balance| balance < 0) {
                return Err(format!(
                    "account {overdrawn} is overdrawn: balances {balances:?}"
                ));
            }
            let total: i64 = balances.iter().sum();
            if total != OPENING * ACCOUNTS as i64 {
                return Err(format!("money appeared or vanished: balances {balances:?}"));
            }
            Ok(())
        })
        .map_err(super::failed)?
}

/// THE PLANTED BUG: the check and the debit are under two separate holds of the lock, with
/// the audit write between them.
async fn transfer(
    accounts: &[Account],
    audit: &Queue<String>,
    from: usize,
    to: usize,
    amount: i64,
) {
    let funded = {
        let _source = accounts[from].lock.acquire().await;
        accounts[from].balance.get() >= amount
    };
    if !funded {
        audit
            .put(format!("refused {amount} from {from}"))
            .await
            .expect("audit open");
        return;
    }
    audit
        .put(format!("move {amount} from {from} to {to}"))
        .await
        .expect("audit open");
    let _source = accounts[from].lock.acquire().await;
    accounts[from]
        .balance
        .set(accounts[from].balance.get() - amount);
    drop(_source);
    let _target = accounts[to].lock.acquire().await;
    accounts[to]
        .balance
        .set(accounts[to].balance.get() + amount);
}

/// Both locks, in account order (no deadlock), from the check to the credit.
async fn transfer_fixed(
    accounts: &[Account],
    audit: &Queue<String>,
    from: usize,
    to: usize,
    amount: i64,
) {
    let (first, second) = (from.min(to), from.max(to));
    let _first = accounts[first].lock.acquire().await;
    let _second = accounts[second].lock.acquire().await;
    if accounts[from].balance.get() < amount {
        audit
            .put(format!("refused {amount} from {from}"))
            .await
            .expect("audit open");
        return;
    }
    audit
        .put(format!("move {amount} from {from} to {to}"))
        .await
        .expect("audit open");
    accounts[from]
        .balance
        .set(accounts[from].balance.get() - amount);
    accounts[to]
        .balance
        .set(accounts[to].balance.get() + amount);
}
