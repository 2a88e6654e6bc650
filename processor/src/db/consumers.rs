//! The registry of live consumers (`consumers`): a transaction's lease is live while the
//! consumer named in its `lease_owner` has a row here that has not expired. A holder
//! renews every one of its leases with one statement (its heartbeat), and a name is held
//! by one live process at a time.

use std::time::Duration;

use sea_orm::{ConnectionTrait, DbErr};

use super::repository::{millis, statement};

/// A consumer name this process holds, and the process that holds it.
#[derive(Clone, Debug)]
pub struct Registration {
    pub name: String,
    pub instance: String,
}

/// What a heartbeat found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    /// Renewed in time: nobody could have taken a lease of ours.
    Renewed,
    /// Renewed, but the registration had expired first (the process was paused or cut off
    /// from PostgreSQL): other consumers may have taken some of its leases meanwhile.
    RenewedAfterLapse,
    /// Another process has taken the name since it expired: every lease is gone.
    Lost,
}

/// Registers `name` for this process unless a live process holds it; then registers
/// `name` with a unique suffix instead. `lease` is how long it lives without renewal.
pub async fn register(
    db: &impl ConnectionTrait,
    name: &str,
    lease: Duration,
) -> Result<Registration, DbErr> {
    let instance = format!("{:016x}", rand::random::<u64>());
    if try_register(db, name, &instance, lease).await? {
        return Ok(Registration {
            name: name.to_owned(),
            instance,
        });
    }
    let unique = format!("{name}-{}", &instance[..8]);
    tracing::warn!(consumer = %name, instead = %unique, "another live processor holds this CONSUMER_NAME; using a unique one");
    if try_register(db, &unique, &instance, lease).await? {
        return Ok(Registration {
            name: unique,
            instance,
        });
    }
    Err(DbErr::Custom(format!(
        "consumer names {name} and {unique} are both held by live processors"
    )))
}

async fn try_register(
    db: &impl ConnectionTrait,
    name: &str,
    instance: &str,
    lease: Duration,
) -> Result<bool, DbErr> {
    let rows = db
        .query_all_raw(statement(
            "INSERT INTO consumers (name, instance, expires_at)
             VALUES ($1, $2, now() + $3 * interval '1 millisecond')
             ON CONFLICT (name) DO UPDATE
                SET instance = EXCLUDED.instance, expires_at = EXCLUDED.expires_at
              WHERE consumers.expires_at < now()
             RETURNING name",
            [name.into(), instance.into(), millis(lease)],
        ))
        .await?;
    Ok(rows.len() == 1)
}

/// The heartbeat: extends the registration, and with it every lease it holds, by `lease`.
pub async fn renew(
    db: &impl ConnectionTrait,
    registration: &Registration,
    lease: Duration,
) -> Result<Renewal, DbErr> {
    let row = db
        .query_one_raw(statement(
            "WITH previous AS (
                 SELECT expires_at FROM consumers WHERE name = $1 AND instance = $2 FOR UPDATE)
             UPDATE consumers c
                SET expires_at = now() + $3 * interval '1 millisecond'
               FROM previous
              WHERE c.name = $1 AND c.instance = $2
             RETURNING previous.expires_at < now() AS lapsed",
            [
                registration.name.as_str().into(),
                registration.instance.as_str().into(),
                millis(lease),
            ],
        ))
        .await?;
    Ok(match row {
        None => Renewal::Lost,
        Some(row) if row.try_get::<bool>("", "lapsed")? => Renewal::RenewedAfterLapse,
        Some(_) => Renewal::Renewed,
    })
}

/// Gives the name up (a clean stop), so it and its leases are free at once.
pub async fn deregister(
    db: &impl ConnectionTrait,
    registration: &Registration,
) -> Result<(), DbErr> {
    db.execute_raw(statement(
        "DELETE FROM consumers WHERE name = $1 AND instance = $2",
        [
            registration.name.as_str().into(),
            registration.instance.as_str().into(),
        ],
    ))
    .await?;
    Ok(())
}
