import PostgresNIO

// The broker's hot statements, prepared once per connection (postgres-nio prepares a statement on a connection the
// first time it runs there): the server plans them once, not on every claim. Values are bound, never spliced.

/// A prepared statement whose rows the broker reads itself.
protocol CrewStatement: PostgresPreparedStatement where Row == PostgresRow {}

extension CrewStatement {
    func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

/// The columns of a job, in the order ``PostgresBroker/record(_:)`` reads them.
let jobColumns =
    "id, name, arguments, queue, priority, state, attempts, max_attempts, run_at, expires_at, lease_until, worker, result, errors, created_at, finished_at"

/// Stores jobs from parallel arrays (one round trip however many). NaN stands for NULL: arrays of optionals do not
/// bind.
struct InsertJobs: CrewStatement {
    static let sql = """
        INSERT INTO crew_jobs (id, name, arguments, queue, priority, state, max_attempts, run_at, expires_at, created_at, result_ttl)
        SELECT id, name, arguments, queue, priority, state, max_attempts, run_at, nullif(expires_at, 'NaN'), $11, nullif(ttl, 'NaN')
        FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::bigint[],
                    $8::float8[], $9::float8[], $10::float8[])
            AS j(id, name, arguments, queue, priority, state, max_attempts, run_at, expires_at, ttl)
        """
    var ids, names, arguments, queues: [String]
    var priorities: [Int]
    var states: [String]
    var maxAttempts: [Int]
    var runAt, expiresAt, ttl: [Double]
    var now: Double

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 11)
        bindings.append(ids)
        bindings.append(names)
        bindings.append(arguments)
        bindings.append(queues)
        bindings.append(priorities)
        bindings.append(states)
        bindings.append(maxAttempts)
        bindings.append(runAt)
        bindings.append(expiresAt)
        bindings.append(ttl)
        bindings.append(now)
        return bindings
    }
}

/// Claims available jobs: per queue, in the available index's own order (one index scan each, not a sort of every
/// waiting job); rows other workers hold are skipped, not waited for. The same statement first moves jobs by the
/// clock (expiry; scheduled and retrying jobs whose time has come): those it makes available are not claimable in
/// this statement (it sees the table as it began), so each returned row carries how many it moved, and the broker
/// claims again when that is worth it.
struct ClaimJobs: CrewStatement {
    static let sql = """
        WITH expired AS (
            UPDATE crew_jobs SET state = 'expired', finished_at = $4
            WHERE id = ANY(ARRAY(
                SELECT id FROM crew_jobs
                WHERE expires_at IS NOT NULL AND expires_at <= $4 AND state IN ('scheduled', 'available', 'retrying')
                FOR UPDATE SKIP LOCKED))
            RETURNING id
        ), due AS (
            UPDATE crew_jobs SET state = 'available'
            WHERE id = ANY(ARRAY(
                SELECT id FROM crew_jobs
                WHERE state IN ('scheduled', 'retrying') AND run_at <= $4 AND (expires_at IS NULL OR expires_at > $4)
                FOR UPDATE SKIP LOCKED))
            RETURNING id
        ), claimed AS (
            UPDATE crew_jobs SET state = 'running', attempts = attempts + 1, lease_until = $1, worker = $2
            WHERE id = ANY(ARRAY(
                SELECT j.id FROM unnest($3::text[]) AS q(name) CROSS JOIN LATERAL (
                    SELECT id, priority, run_at, seq FROM crew_jobs
                    WHERE state = 'available' AND queue = q.name AND (expires_at IS NULL OR expires_at > $4)
                    ORDER BY priority DESC, run_at, seq
                    LIMIT $5
                    FOR UPDATE SKIP LOCKED
                ) AS j
                ORDER BY j.priority DESC, j.run_at, j.seq
                LIMIT $5))
            RETURNING \(jobColumns)
        )
        SELECT claimed.*, (SELECT count(*) FROM due) AS moved FROM claimed
        UNION ALL
        SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            (SELECT count(*) FROM due)
        WHERE NOT EXISTS (SELECT 1 FROM claimed)
        """
    static var bindingDataTypes: [PostgresDataType] { [.float8, .text, .textArray, .float8, .int8] }
    var until: Double
    var worker: String
    var queues: [String]
    var now: Double
    var limit: Int

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 5)
        bindings.append(until)
        bindings.append(worker)
        bindings.append(queues)
        bindings.append(now)
        bindings.append(limit)
        return bindings
    }
}

/// Records outcomes: results of successes, and failures (retrying if a retry time is given — NaN for none — and
/// attempts are left, failed otherwise), only where `worker` still holds the job.
struct RecordOutcomes: CrewStatement {
    static let sql = """
        WITH s AS (
            UPDATE crew_jobs SET state = 'succeeded', result = o.result, lease_until = NULL, finished_at = $1
            FROM unnest($3::text[], $4::text[]) AS o(id, result)
            WHERE crew_jobs.id = o.id AND crew_jobs.state = 'running' AND crew_jobs.worker = $2
            RETURNING crew_jobs.id, crew_jobs.state
        ), f AS (
            UPDATE crew_jobs SET
                state = CASE WHEN o.retry_at <> 'NaN' AND attempts < max_attempts THEN 'retrying' ELSE 'failed' END,
                errors = (crew_errors(errors) || jsonb_build_array(o.error::jsonb))::text,
                run_at = CASE WHEN o.retry_at <> 'NaN' AND attempts < max_attempts THEN o.retry_at ELSE run_at END,
                finished_at = CASE WHEN o.retry_at <> 'NaN' AND attempts < max_attempts THEN NULL ELSE $1 END,
                lease_until = NULL
            FROM unnest($5::text[], $6::text[], $7::float8[]) AS o(id, error, retry_at)
            WHERE crew_jobs.id = o.id AND crew_jobs.state = 'running' AND crew_jobs.worker = $2
            RETURNING crew_jobs.id, crew_jobs.state
        )
        SELECT id, state FROM s UNION ALL SELECT id, state FROM f
        """
    static var bindingDataTypes: [PostgresDataType] {
        [.float8, .text, .textArray, .textArray, .textArray, .textArray, .float8Array]
    }
    var now: Double
    var worker: String
    var succeeded, results, failed, errors: [String]
    var retryAt: [Double]

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 7)
        bindings.append(now)
        bindings.append(worker)
        bindings.append(succeeded)
        bindings.append(results)
        bindings.append(failed)
        bindings.append(errors)
        bindings.append(retryAt)
        return bindings
    }
}

/// One job by id.
struct FetchJob: CrewStatement {
    static let sql = "SELECT \(jobColumns) FROM crew_jobs WHERE id = $1"
    static var bindingDataTypes: [PostgresDataType] { [.text] }
    var id: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(id)
        return bindings
    }
}

/// Extends the leases `worker` holds; returns the ids it still holds.
struct RenewLeases: CrewStatement {
    static let sql = """
        UPDATE crew_jobs SET lease_until = $1 WHERE id = ANY($2::text[]) AND state = 'running' AND worker = $3 RETURNING id
        """
    static var bindingDataTypes: [PostgresDataType] { [.float8, .textArray, .text] }
    var until: Double
    var ids: [String]
    var worker: String

    func makeBindings() throws -> PostgresBindings {
        var bindings = PostgresBindings(capacity: 3)
        bindings.append(until)
        bindings.append(ids)
        bindings.append(worker)
        return bindings
    }
}
