//! On SQLite, one thread writes the gateway's reservations and settlements in groups (group
//! commit): what came in while the previous group was written goes in one transaction, and each
//! write is answered once its group committed. A refused reservation is rolled back alone (to a
//! savepoint); an error fails its whole group, none of which is then written. Not on
//! PostgreSQL: several processes' groups would lock the rows of many projects at once, in any
//! order.
//!
//! The thread calls SQLite in place (rusqlite, on the SQLite sqlx links): a reservation's or a
//! settlement's statements ([`Ledger`]) run on it one after the other, where sqlx would send
//! each to its worker thread and wait for the rows to come back, two thread switches a
//! statement. It takes the process's write permit for each group, as every writer does.
//!
//! Its connection commits with `synchronous = NORMAL` (WAL): a group committed survives a crash
//! of the process, as every write does, but not one of the machine that comes before the next
//! sync of the log (any other write, or a checkpoint). What such a crash may lose is the last
//! moments' reservations (their requests died with the machine) and settlements (charges and
//! usage records, never more than those moments' requests). Each request then waits for no
//! disk: two syncs, about 0.3 ms each on the shared test machine, are off its path.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use rusqlite::types::ValueRef;
use tokio::sync::{mpsc, oneshot};

use super::ledger::{Arg, Cell, Ledger};
use super::{Ask, Refused, Settlement};
use crate::{Db, DbError, DbResult};

/// The most gateway writes committed together.
const GROUP_MOST: usize = 64;

/// Where a write's outcome goes once its group committed.
type Reply<T> = oneshot::Sender<DbResult<T>>;

/// A reservation or a settlement, sent to the group writer ([`start`]).
pub(crate) enum GroupWrite {
    Reserve(Ask, Reply<Result<i64, Refused>>),
    Settle(Settlement, Reply<i64>),
}

/// A write's outcome, told once its group committed.
enum Written {
    Reserve(Reply<Result<i64, Refused>>, Result<i64, Refused>),
    Settle(Reply<i64>, i64),
}

impl Written {
    fn tell(self) {
        // A caller that went away is told nothing: what it wrote stands.
        match self {
            Written::Reserve(reply, reserved) => drop(reply.send(Ok(reserved))),
            Written::Settle(reply, charged) => drop(reply.send(Ok(charged))),
        }
    }
}

/// Starts the group writer's thread on a connection of its own to the SQLite database `file`,
/// which sqlx opened (see the module's notes); where to send it writes. The thread ends once
/// every sender is gone: `db` must hold none. Called within the Tokio runtime, whose handle the
/// thread keeps to wait for the write permit.
pub(crate) fn start(db: Db, file: &Path) -> DbResult<mpsc::Sender<GroupWrite>> {
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = rusqlite::Connection::open_with_flags(file, flags)?;
    connection.execute_batch(&crate::sqlite_settings("NORMAL"))?;
    let (sender, mut receiver) = mpsc::channel(GROUP_MOST * 16);
    let runtime = tokio::runtime::Handle::current();
    let spawned = std::thread::Builder::new().name("gateway-writer".into()).spawn(move || {
        let mut ledger = InPlace(connection);
        let mut group = Vec::with_capacity(GROUP_MOST);
        while let Some(write) = receiver.blocking_recv() {
            group.push(write);
            while group.len() < GROUP_MOST
                && let Ok(write) = receiver.try_recv()
            {
                group.push(write);
            }
            let mut written = Vec::with_capacity(group.len());
            let outcome = runtime
                .block_on(db.write_permit())
                .and_then(|_permit| write_group(&db, &mut ledger, group.drain(..), &mut written));
            match outcome {
                Ok(()) => written.into_iter().for_each(Written::tell),
                // The writes' senders are dropped: each is told that its group failed.
                Err(error) => tracing::error!(error = %error, "a group of gateway writes could not be committed"),
            }
            group.clear();
        }
    });
    spawned.map_err(|error| DbError::Sql(sqlx::Error::Io(error)))?;
    Ok(sender)
}

/// Sends a write to the group writer; its outcome once its group committed.
pub(crate) async fn in_group<T>(
    writer: &mpsc::Sender<GroupWrite>,
    write: impl FnOnce(Reply<T>) -> GroupWrite,
) -> DbResult<T> {
    const FAILED: DbError = DbError::NotWritten("the group of gateway writes with this one was not committed");
    let (reply, outcome) = oneshot::channel();
    writer.send(write(reply)).await.map_err(|_| FAILED)?;
    outcome.await.map_err(|_| FAILED)?
}

/// Writes a group in one transaction, each write's outcome into `written`; rolled back whole on
/// an error.
fn write_group(
    db: &Db,
    ledger: &mut InPlace,
    group: impl ExactSizeIterator<Item = GroupWrite>,
    written: &mut Vec<Written>,
) -> DbResult<()> {
    // Alone, a reservation needs no savepoint: refused, its transaction is rolled back.
    let alone = group.len() == 1;
    ledger.0.execute_batch("BEGIN IMMEDIATE")?;
    let outcome = (|| -> DbResult<()> {
        for write in group {
            written.push(match write {
                GroupWrite::Reserve(ask, reply) if alone => {
                    Written::Reserve(reply, at_once(db.reserve_on(ledger, &ask))?)
                }
                GroupWrite::Reserve(ask, reply) => {
                    ledger.0.execute_batch("SAVEPOINT reservation")?;
                    let reserved = at_once(db.reserve_on(ledger, &ask))?;
                    if reserved.is_err() {
                        ledger.0.execute_batch("ROLLBACK TO reservation")?;
                    }
                    ledger.0.execute_batch("RELEASE reservation")?;
                    Written::Reserve(reply, reserved)
                }
                GroupWrite::Settle(done, reply) => Written::Settle(reply, at_once(db.settle_on(ledger, &done))?),
            });
        }
        if alone && matches!(written.as_slice(), [Written::Reserve(_, Err(_))]) {
            ledger.0.execute_batch("ROLLBACK")?;
        } else {
            ledger.0.execute_batch("COMMIT")?;
        }
        Ok(())
    })();
    if outcome.is_err() && !ledger.0.is_autocommit() {
        // What the group wrote goes; the connection is left out of any transaction.
        if let Err(error) = ledger.0.execute_batch("ROLLBACK") {
            tracing::warn!(error = %error, "a group of gateway writes could not be rolled back");
        }
        written.clear();
    }
    outcome
}

/// The outcome of a future that waits for nothing: a ledger's statements over [`InPlace`], each
/// of which runs when it is called.
fn at_once<T>(future: impl Future<Output = T>) -> T {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(value) => value,
        Poll::Pending => unreachable!("a statement run in place waits for nothing"),
    }
}

/// The group writer's connection, as a [`Ledger`] whose statements run when called, their
/// futures ready.
struct InPlace(rusqlite::Connection);

/// The names of a statement's arguments, `$1` first.
const ARGUMENT_NAMES: [&str; 12] = ["$1", "$2", "$3", "$4", "$5", "$6", "$7", "$8", "$9", "$10", "$11", "$12"];

impl InPlace {
    fn statement(&self, sql: &str, args: &[Arg<'_>]) -> DbResult<rusqlite::CachedStatement<'_>> {
        let mut statement = self.0.prepare_cached(sql)?;
        for (arg, name) in args.iter().zip(ARGUMENT_NAMES) {
            let index = statement
                .parameter_index(name)?
                .ok_or_else(|| DbError::Corrupt(format!("a ledger statement without the argument {name}")))?;
            match *arg {
                Arg::Int(value) => statement.raw_bind_parameter(index, value)?,
                Arg::MaybeInt(value) => statement.raw_bind_parameter(index, value)?,
                Arg::Text(value) => statement.raw_bind_parameter(index, value)?,
            }
        }
        Ok(statement)
    }

    fn rows_now(&self, sql: &str, args: &[Arg<'_>]) -> DbResult<Vec<Vec<Cell>>> {
        let mut statement = self.statement(sql, args)?;
        let columns = statement.column_count();
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let cells = (0..columns).map(|i| match row.get_ref(i)? {
                ValueRef::Null => Ok(Cell::Int(None)),
                ValueRef::Integer(value) => Ok(Cell::Int(Some(value))),
                ValueRef::Text(text) => Ok(Cell::Text(String::from_utf8_lossy(text).into_owned())),
                other => Err(DbError::Corrupt(format!("a ledger column of type {:?}", other.data_type()))),
            });
            out.push(cells.collect::<DbResult<Vec<Cell>>>()?);
        }
        Ok(out)
    }

    fn execute_now(&self, sql: &str, args: &[Arg<'_>]) -> DbResult<u64> {
        Ok(self.statement(sql, args)?.raw_execute()? as u64)
    }
}

impl Ledger for InPlace {
    fn rows(&mut self, sql: &'static str, args: &[Arg<'_>]) -> impl Future<Output = DbResult<Vec<Vec<Cell>>>> + Send {
        std::future::ready(self.rows_now(sql, args))
    }

    fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> impl Future<Output = DbResult<u64>> + Send {
        std::future::ready(self.execute_now(sql, args))
    }
}
