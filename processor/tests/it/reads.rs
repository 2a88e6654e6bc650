//! Reads that scale and stay in their lane: every page of every filter served by an index
//! at millions of rows, a statement timeout on reads, and reads on a pool of their own that
//! cannot take a connection the write path needs.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use migration::{Migrator, MigratorTrait};
use payments_proto::{
    limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE},
    v1::{self as pb, GetTransactionRequest, ListTransactionsRequest},
};
use processor::{
    db::{
        self,
        listing::{self, Cursor, ListFilter},
    },
    domain::Status,
    error::Error,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, QueryTrait, Statement, TransactionTrait,
};
use tonic::Code;

use crate::{
    helpers::{PostgresCluster, Setup, StartProcessor, create_database, request, unique_id},
    stalling_proxy::StallingProxy,
};

/// Rows in the table for the plan test: enough that a sort or a scan of the table costs
/// the planner far more than an index walk, few enough to fill in seconds.
const ROWS: i64 = 2_000_000;
/// One row per 10 ms, three at a time with the same `created_at`, so ties are broken by id.
const STEP_MILLIS: i64 = 10;

fn history_start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default() // 2026-01-01
}

/// Fills the table as months of traffic leave it: appended in creation order, 2 % still
/// PROCESSING, 1 % FAILED, the rest PROCESSED.
async fn fill(db: &impl ConnectionTrait, rows: i64) {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO transactions (transaction_id, source_account, destination_account, amount,
                                   currency, status, attempts, created_at, updated_at,
                                   processed_at, republish_at)
         SELECT 'pay_' || lpad(to_hex(i), 12, '0'), 'acc_' || (i % 1000), 'acc_m' || (i % 97),
                100 + i % 900, 'INR',
                CASE WHEN i % 100 = 0 THEN 'FAILED' WHEN i % 50 = 1 THEN 'PROCESSING'
                     ELSE 'PROCESSED' END,
                1, at, at, CASE WHEN i % 50 = 1 THEN NULL ELSE at + interval '30 seconds' END, at
           FROM generate_series(1, $1) AS i,
                LATERAL (SELECT $2::timestamptz + (i / 3) * $3 * interval '1 millisecond' AS at) AS t",
        [rows.into(), history_start().into(), STEP_MILLIS.into()],
    ))
    .await
    .expect("fill the table");
}

/// The plan PostgreSQL makes for exactly the statement the list runs.
async fn plan(reads: &DatabaseConnection, filter: &ListFilter) -> String {
    let statement = listing::page_query(filter).build(DbBackend::Postgres);
    let explain = Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!("EXPLAIN {}", statement.sql),
        statement.values.map(|values| values.0).unwrap_or_default(),
    );
    let lines: Vec<String> = reads
        .query_all_raw(explain)
        .await
        .expect("EXPLAIN")
        .iter()
        .map(|row| row.try_get::<String>("", "QUERY PLAN").expect("plan line"))
        .collect();
    lines.join("\n")
}

fn assert_served_by_an_index(plan: &str, what: &str) {
    assert!(
        !plan.contains("Sort") && !plan.contains("Seq Scan") && plan.contains("Index Scan"),
        "{what}: the page must be an index walk, with no sort and no table scan:\n{plan}"
    );
}

fn in_order_and_filtered(page: &[processor::db::repository::StoredTransaction], f: &ListFilter) {
    for pair in page.windows(2) {
        assert!(
            (pair[0].created_at, &pair[0].transaction_id)
                > (pair[1].created_at, &pair[1].transaction_id),
            "newest first, ties by id"
        );
    }
    for row in page {
        assert!(f.status.is_none_or(|s| row.status == s.as_str()));
        assert!(f.created_after.is_none_or(|after| row.created_at >= after));
        assert!(
            f.created_before
                .is_none_or(|before| row.created_at < before)
        );
        assert!(f.after.as_ref().is_none_or(|cursor| {
            (row.created_at, &row.transaction_id) < (cursor.created_at, &cursor.transaction_id)
        }));
    }
}

/// A PostgreSQL of the test's own that writes no WAL for a table filled in the transaction
/// that created (here: truncated) it: millions of rows cost neither the shared server's
/// disk and WAL nor minutes of the machine.
async fn server_for_bulk_loads() -> PostgresCluster {
    let cluster = PostgresCluster::start().await;
    let admin = sea_orm::Database::connect(cluster.url("postgres"))
        .await
        .expect("connect to the cluster");
    for setting in ["wal_level = minimal", "max_wal_senders = 0"] {
        admin
            .execute_unprepared(&format!("ALTER SYSTEM SET {setting}"))
            .await
            .expect("ALTER SYSTEM");
    }
    admin.close().await.ok();
    cluster.stop_server();
    cluster.start_server();
    cluster.create_database("plans").await;
    cluster
}

#[tokio::test]
async fn every_filter_and_page_of_the_list_is_an_index_walk_at_millions_of_rows() {
    let cluster = server_for_bulk_loads().await;
    let url = cluster.url("plans");
    let db = db::connect(&url, 2).await.expect("connect");
    // The schema as it was before the list's indexes, filled, and then migrated: the
    // indexes are built on a table that is already big, as in a real upgrade.
    let before_indexes = Migrator::migrations()
        .iter()
        .position(|m| m.name() == "m20261201_000003_list_indexes")
        .expect("the list indexes migration");
    Migrator::up(
        &db,
        Some(u32::try_from(before_indexes).expect("few migrations")),
    )
    .await
    .expect("migrate to before the list indexes");
    let started = Instant::now();
    let load = db.begin().await.expect("begin");
    load.execute_unprepared("TRUNCATE transactions CASCADE")
        .await
        .expect("a new, unlogged-until-commit table file");
    fill(&load, ROWS).await;
    load.commit().await.expect("commit the fill");
    let filled = started.elapsed();
    migration::apply_pending(&url)
        .await
        .expect("build the indexes");
    // Autovacuum would analyze the table soon after such a load; the test does not wait.
    db.execute_unprepared("ANALYZE transactions")
        .await
        .expect("ANALYZE");
    eprintln!(
        "{ROWS} rows filled in {filled:?}, indexed in {:?}",
        started.elapsed() - filled
    );
    let reads = db::connect_reads(&url, 1, Duration::from_secs(30))
        .await
        .expect("read pool");

    let start = history_start();
    let at = |seconds: i64| start + TimeDelta::seconds(seconds);
    let mut filters = vec![("unfiltered", ListFilter::default())];
    for status in [Status::Processing, Status::Processed, Status::Failed] {
        filters.push((
            status.as_str(),
            ListFilter {
                status: Some(status),
                ..ListFilter::default()
            },
        ));
        filters.push((
            "status and created_after and created_before",
            ListFilter {
                status: Some(status),
                created_after: Some(at(600)),
                created_before: Some(at(3_000)),
                ..ListFilter::default()
            },
        ));
    }
    filters.push((
        "created_after",
        ListFilter {
            created_after: Some(at(600)),
            ..ListFilter::default()
        },
    ));
    filters.push((
        "created_before",
        ListFilter {
            created_before: Some(at(3_000)),
            ..ListFilter::default()
        },
    ));
    filters.push((
        "created_after and created_before",
        ListFilter {
            created_after: Some(at(600)),
            created_before: Some(at(3_000)),
            ..ListFilter::default()
        },
    ));

    for (name, filter) in filters {
        for page_size in [DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE] {
            let first = ListFilter {
                page_size,
                ..filter.clone()
            };
            let first_plan = plan(&reads, &first).await;
            assert_served_by_an_index(&first_plan, &format!("{name}, page 1"));
            // Not the (created_at, id) index with a filter on status: its newest rows may
            // all be of another status (bench/growth.sh found a page of PROCESSED reading
            // past 146 000 PROCESSING rows).
            assert!(
                filter.status.is_none() || first_plan.contains("transactions_status_created_at_id"),
                "{name}, page 1: a status filter walks the status index:\n{first_plan}"
            );
            let (page, next) = listing::list(&reads, &first).await.expect("first page");
            assert_eq!(page.len(), page_size as usize, "{name}: a full first page");
            in_order_and_filtered(&page, &first);

            let second = ListFilter {
                after: Some(next.expect("more pages")),
                ..first.clone()
            };
            assert_served_by_an_index(&plan(&reads, &second).await, &format!("{name}, page 2"));
            let (page_two, _) = listing::list(&reads, &second).await.expect("second page");
            assert_eq!(
                page_two.len(),
                page_size as usize,
                "{name}: a full second page"
            );
            in_order_and_filtered(&page_two, &second);

            // A cursor deep in the history (a minute after its start) costs the same walk.
            let deep = ListFilter {
                after: Some(Cursor {
                    created_at: at(60),
                    transaction_id: "pay_".to_owned(),
                }),
                ..first.clone()
            };
            assert_served_by_an_index(&plan(&reads, &deep).await, &format!("{name}, deep page"));
            let (deep_page, _) = listing::list(&reads, &deep).await.expect("deep page");
            in_order_and_filtered(&deep_page, &deep);
        }
    }
    reads.close().await.ok();
    db.close().await.ok();
    // Dropping the cluster removes its half gigabyte.
    drop(cluster);
}

#[tokio::test]
async fn a_read_past_the_statement_timeout_is_cancelled_and_unavailable() {
    let url = create_database().await;
    let reads = db::connect_reads(&url, 1, Duration::from_millis(300))
        .await
        .expect("read pool");
    let started = Instant::now();
    let error = reads
        .execute_unprepared("SELECT pg_sleep(20)")
        .await
        .expect_err("cancelled by statement_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "cancelled long before the sleep ends"
    );
    assert_eq!(
        tonic::Status::from(Error::from(error)).code(),
        Code::Unavailable
    );
    // The server really stopped it: no statement of the read pool is still running.
    let running = reads
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM pg_stat_activity
              WHERE application_name = 'processor-reads' AND query LIKE '%pg_sleep(20)%'
                AND state = 'active' AND pid <> pg_backend_pid()",
        ))
        .await
        .expect("pg_stat_activity")
        .expect("a row")
        .try_get::<i64>("", "n")
        .expect("count");
    assert_eq!(running, 0);
    // Reads cannot write, whichever server they are pointed at.
    assert!(
        reads
            .execute_unprepared("CREATE TABLE written_by_a_read (id int)")
            .await
            .is_err()
    );
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: std::net::SocketAddr) -> String {
    let (scheme_and_user, rest) = url.split_once('@').expect("url with a user");
    let (_, path) = rest.split_once('/').expect("url with a database");
    format!("{scheme_and_user}@{addr}/{path}")
}

#[tokio::test]
async fn stuck_reads_hold_no_connection_that_ingest_needs() {
    let mut setup = Setup::new("100ms").await;
    let host_and_port = setup
        .database_url()
        .split_once('@')
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(host_and_port, _)| host_and_port.to_owned())
        .expect("database url with a host");
    let upstream = tokio::net::lookup_host(host_and_port)
        .await
        .expect("resolve the database host")
        .next()
        .expect("an address");
    let proxy = StallingProxy::start(upstream).await;
    setup
        .set("DATABASE_READ_URL", via(setup.database_url(), proxy.addr))
        .set("DATABASE_READ_MAX_CONNECTIONS", "2")
        // Fewer write connections than there will be stuck reads: were reads on this pool,
        // ingest would find none free.
        .set("DATABASE_MAX_CONNECTIONS", "3");
    let processor = setup.start().await;
    let channel = processor.channel().await;

    // The reads' server stops answering, and far more list calls come than either pool holds.
    proxy.stall();
    let mut lists = Vec::new();
    for _ in 0..40 {
        let mut client =
            pb::transaction_service_client::TransactionServiceClient::new(channel.clone());
        lists.push(tokio::spawn(async move {
            let mut call = tonic::Request::new(ListTransactionsRequest::default());
            call.set_timeout(Duration::from_secs(8));
            client.list_transactions(call).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Meanwhile every webhook is stored and answered, each well within its deadline.
    let mut writer = pb::transaction_service_client::TransactionServiceClient::new(channel.clone());
    let mut accepted = Vec::new();
    for _ in 0..30 {
        let id = unique_id("txn");
        let started = Instant::now();
        let mut call = tonic::Request::new(request(&id, "10"));
        call.set_timeout(Duration::from_secs(5));
        let answer = writer
            .ingest_transaction(call)
            .await
            .expect("ingest succeeds");
        assert!(answer.into_inner().created);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "an ingest waited {:?} behind stuck reads",
            started.elapsed()
        );
        accepted.push(id);
    }
    // No read was answered meanwhile: each that ended was refused as retryable (a read
    // waits at most READ_STATEMENT_TIMEOUT for a connection of its own pool, opening or
    // checking one included); the others still wait on the reads' server.
    let mut waiting = Vec::new();
    for list in lists {
        if list.is_finished() {
            let status = list
                .await
                .expect("list task")
                .expect_err("no read was served");
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        } else {
            waiting.push(list);
        }
    }

    // Once the reads' server answers again, reads work again and see the writes.
    proxy.resume();
    for list in waiting {
        let answer = list.await.expect("list task");
        if let Err(status) = answer {
            assert!(
                matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded),
                "a stuck read ends as retryable, not {status:?}"
            );
        }
    }
    let mut reader = processor.client().await;
    let found = reader
        .get_transaction(GetTransactionRequest {
            transaction_id: accepted[0].clone(),
        })
        .await
        .expect("reads work again");
    assert_eq!(found.into_inner().transaction_id, accepted[0]);
    processor.stop().await;
}
