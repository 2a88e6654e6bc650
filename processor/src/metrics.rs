//! Prometheus metrics, served at `/metrics` on `METRICS_ADDR`. Names and meanings are
//! listed in the README's operations section; recording happens where the event happens.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

pub const INGEST_TOTAL: &str = "payments_ingest_total";
pub const GRPC_REQUESTS_TOTAL: &str = "payments_grpc_requests_total";
pub const GRPC_REQUEST_SECONDS: &str = "payments_grpc_request_duration_seconds";
pub const STREAM_LENGTH: &str = "payments_stream_length";
pub const STREAM_PENDING: &str = "payments_stream_pending";
pub const IN_FLIGHT: &str = "payments_transactions_in_flight";
pub const FINISHED_TOTAL: &str = "payments_transactions_finished_total";
pub const ATTEMPTS_TOTAL: &str = "payments_processing_attempts_total";
pub const CREATED_TO_FINISHED_SECONDS: &str = "payments_created_to_finished_seconds";
pub const EXTERNAL_CALLS_TOTAL: &str = "payments_external_calls_total";
pub const EXTERNAL_CALLS_REPEATED_TOTAL: &str = "payments_external_calls_repeated_total";
pub const OUTBOX_PUBLISHED_TOTAL: &str = "payments_outbox_published_total";
pub const CLAIMED_ENTRIES_TOTAL: &str = "payments_claimed_entries_total";
pub const ORPHAN_ENTRIES_TOTAL: &str = "payments_orphan_entries_total";
pub const DEPENDENCY_UP: &str = "payments_dependency_up";
pub const RETENTION_REMOVED_TOTAL: &str = "payments_retention_removed_total";

/// The process-wide recorder (see `service_support::metrics`), with this binary's
/// metrics described.
pub fn handle() -> PrometheusHandle {
    let handle = service_support::metrics::handle();
    describe();
    handle
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        INGEST_TOTAL,
        "Ingest calls by outcome: created, duplicate, conflict, rejected, unavailable, error."
    );
    describe_counter!(GRPC_REQUESTS_TOTAL, "gRPC calls by method and status code.");
    describe_histogram!(GRPC_REQUEST_SECONDS, "gRPC call latency by method.");
    describe_gauge!(STREAM_LENGTH, "Entries in the work stream (XLEN).");
    describe_gauge!(
        STREAM_PENDING,
        "Entries delivered to the group and not acknowledged."
    );
    describe_gauge!(
        IN_FLIGHT,
        "Transactions this processor is working on (waiting out their delay)."
    );
    describe_counter!(
        FINISHED_TOTAL,
        "Transactions finished by this processor, by final status."
    );
    describe_counter!(ATTEMPTS_TOTAL, "External call attempts by outcome.");
    describe_counter!(
        EXTERNAL_CALLS_TOTAL,
        "External calls by outcome: succeeded, retryable_status, timeout, transport_error, refused, simulated_failure."
    );
    describe_counter!(
        EXTERNAL_CALLS_REPEATED_TOTAL,
        "External calls made again for a transaction whose earlier call was cut (a crash, a stop grace); each carries the same Idempotency-Key."
    );
    describe_histogram!(
        CREATED_TO_FINISHED_SECONDS,
        "Time from a transaction's creation to its final status."
    );
    describe_counter!(
        OUTBOX_PUBLISHED_TOTAL,
        "Transactions published again by the outbox."
    );
    describe_counter!(
        CLAIMED_ENTRIES_TOTAL,
        "Stream entries claimed from consumers presumed dead."
    );
    describe_counter!(
        ORPHAN_ENTRIES_TOTAL,
        "Stream entries naming a transaction PostgreSQL does not have (acknowledged and dropped)."
    );
    describe_counter!(
        RETENTION_REMOVED_TOTAL,
        "What retention removed, by kind: transactions, processing_attempts, dead_letters, consumers."
    );
    describe_gauge!(
        DEPENDENCY_UP,
        "1 while the dependency (postgres, redis) answers, else 0."
    );
}

/// Records one gRPC call.
pub fn grpc_call(method: &'static str, code: tonic::Code, elapsed: Duration) {
    metrics::counter!(GRPC_REQUESTS_TOTAL, "method" => method, "code" => format!("{code:?}"))
        .increment(1);
    metrics::histogram!(GRPC_REQUEST_SECONDS, "method" => method).record(elapsed.as_secs_f64());
}
