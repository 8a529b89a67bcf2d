import CrewQueue
import FoundationEssentials
import Logging
import PostgresNIO
import Synchronization

extension PostgresBroker {
    /// Creates the schema, or checks that the database's is one this code knows and brings it up to date. Two
    /// processes starting at once take turns (an advisory lock held for the migration's transaction).
    static func migrate(_ connection: PostgresConnection, logger: Logger) async throws {
        try await connection.withTransaction(logger: logger) { connection in
            try await connection.query("SELECT pg_advisory_xact_lock(7243519086)", logger: logger)
            let exists =
                try await connection.query(
                    "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'crew_schema'",
                    logger: logger
                ).collect().first?.decode(Int.self) ?? 0
            var version = 0
            if exists > 0 {
                version =
                    try await connection.query("SELECT version FROM crew_schema", logger: logger)
                    .collect().first?.decode(Int.self) ?? 0
                guard version <= schemaVersion else {
                    throw BrokerError(
                        .incompatibleSchema,
                        "the database has Crew schema version \(version), newer than this Crew's \(schemaVersion): upgrade Crew"
                    )
                }
            }
            for step in migrations.dropFirst(version) {
                for statement in step {
                    try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
            }
            if version < schemaVersion {
                try await connection.query("UPDATE crew_schema SET version = \(schemaVersion)", logger: logger)
            }
        }
    }

    /// The schema's history: step i brings version i to i + 1 (one statement per string).
    static let migrations: [[String]] = [
        [
            "CREATE TABLE crew_schema (version bigint NOT NULL)",
            "INSERT INTO crew_schema (version) VALUES (1)",
            """
            CREATE TABLE crew_jobs (
                seq bigserial NOT NULL,
                id text PRIMARY KEY,
                name text NOT NULL,
                arguments text NOT NULL,
                queue text NOT NULL,
                priority bigint NOT NULL DEFAULT 0,
                state text NOT NULL CHECK (state IN
                    ('scheduled', 'available', 'running', 'succeeded', 'retrying', 'failed', 'cancelled', 'expired')),
                attempts bigint NOT NULL DEFAULT 0,
                max_attempts bigint NOT NULL DEFAULT 1,
                run_at double precision NOT NULL,
                expires_at double precision,
                lease_until double precision,
                worker text,
                result text,
                errors text NOT NULL DEFAULT '[]',
                created_at double precision NOT NULL,
                finished_at double precision,
                result_ttl double precision
            )
            """,
            "CREATE TABLE crew_schedules (name text PRIMARY KEY, next_run double precision NOT NULL)",
            // Partial indexes, each holding only the jobs its statement looks for.
            "CREATE INDEX crew_jobs_available ON crew_jobs (queue, priority DESC, run_at, seq) WHERE state = 'available'",
            "CREATE INDEX crew_jobs_waiting ON crew_jobs (run_at) WHERE state IN ('scheduled', 'retrying')",
            "CREATE INDEX crew_jobs_leases ON crew_jobs (lease_until) WHERE state = 'running'",
            """
            CREATE INDEX crew_jobs_waiting_expiry ON crew_jobs (expires_at)
                WHERE expires_at IS NOT NULL AND state IN ('scheduled', 'available', 'retrying')
            """,
            """
            CREATE INDEX crew_jobs_ttl ON crew_jobs ((finished_at + result_ttl))
                WHERE result_ttl IS NOT NULL AND finished_at IS NOT NULL
            """,
            // An error history as JSON; one edited by hand into something else is kept as a message, not a failure.
            """
            CREATE FUNCTION crew_errors(history text) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
            BEGIN
                IF jsonb_typeof(history::jsonb) = 'array' THEN RETURN history::jsonb; END IF;
                RETURN jsonb_build_array(jsonb_build_object('attempt', 0, 'message', 'unreadable error history: ' || left(history, 200), 'at', 0));
            EXCEPTION WHEN others THEN
                RETURN jsonb_build_array(jsonb_build_object('attempt', 0, 'message', 'unreadable error history: ' || left(history, 200), 'at', 0));
            END
            $$
            """,
            // Wake-ups: an insert notifies crew_jobs once per statement; an update notifies crew_jobs for a row
            // that became available and crew_results for one that ended (row triggers whose WHEN is false cost
            // nothing, so claims and lease renewals pay nothing; PostgreSQL folds a transaction's equal
            // notifications into one). Triggers, so that a job inserted by another program wakes workers too.
            """
            CREATE FUNCTION crew_notify_jobs() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('crew_jobs', '');
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE FUNCTION crew_notify_results() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('crew_results', '');
                RETURN NULL;
            END
            $$
            """,
            """
            CREATE TRIGGER crew_jobs_inserted AFTER INSERT ON crew_jobs
                FOR EACH STATEMENT EXECUTE FUNCTION crew_notify_jobs()
            """,
            """
            CREATE TRIGGER crew_jobs_available AFTER UPDATE OF state ON crew_jobs
                FOR EACH ROW WHEN (NEW.state = 'available' AND OLD.state <> 'available') EXECUTE FUNCTION crew_notify_jobs()
            """,
            """
            CREATE TRIGGER crew_jobs_ended AFTER UPDATE OF state ON crew_jobs
                FOR EACH ROW WHEN (NEW.state IN ('succeeded', 'failed', 'cancelled', 'expired'))
                EXECUTE FUNCTION crew_notify_results()
            """,
        ]
    ]
}
