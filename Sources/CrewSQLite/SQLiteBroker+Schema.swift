import CCrewShims
import CrewQueue
import FoundationEssentials
import GRDB
import GRDBSQLite
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

extension SQLiteBroker {
    /// Creates the schema, or checks that the file's is one this code knows and brings it up to date.
    static func migrate(_ db: Database) throws {
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        var version = 0
        if tables.contains("crew_schema") {
            version = try Int.fetchOne(db, sql: "SELECT version FROM crew_schema") ?? 0
            guard version <= schemaVersion else {
                throw BrokerError(
                    .incompatibleSchema,
                    "the database has schema version \(version), newer than this Crew's \(schemaVersion): upgrade Crew"
                )
            }
        } else if !tables.isEmpty {
            throw BrokerError(
                .incompatibleSchema,
                "the database has tables of its own (\(tables.sorted().joined(separator: ", "))) and no Crew schema: not a Crew database"
            )
        }
        // Each step takes the schema from version i to i + 1, all in the open transaction.
        for step in migrations.dropFirst(version) { try db.execute(sql: step) }
        if version < schemaVersion {
            try db.execute(sql: "UPDATE crew_schema SET version = ?", arguments: [schemaVersion])
        }
    }

    /// Checks, without writing, that the file holds a schema this code reads (a read-only broker's check).
    static func checkSchema(_ db: Database) throws {
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
        guard tables.contains("crew_schema") else {
            throw BrokerError(
                .incompatibleSchema,
                "no Crew schema in the database (tables: \(tables.sorted().joined(separator: ", ")))")
        }
        let version = try Int.fetchOne(db, sql: "SELECT version FROM crew_schema") ?? 0
        guard version == schemaVersion else {
            throw BrokerError(
                .incompatibleSchema,
                "the database has schema version \(version) and this Crew reads \(schemaVersion)"
                    + (version < schemaVersion ? ": open it once for writing to migrate it" : ": upgrade Crew")
            )
        }
    }

    /// The schema's history: step i brings version i to i + 1.
    static let migrations = [
        // 1: the jobs and the periodic schedules.
        """
        CREATE TABLE crew_schema (version INTEGER NOT NULL);
        INSERT INTO crew_schema (version) VALUES (1);
        CREATE TABLE crew_jobs (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            arguments TEXT NOT NULL,
            queue TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL CHECK (state IN
                ('scheduled', 'available', 'running', 'succeeded', 'retrying', 'failed', 'cancelled', 'expired')),
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL DEFAULT 1,
            run_at REAL NOT NULL,
            expires_at REAL,
            lease_until REAL,
            worker TEXT,
            result TEXT,
            errors TEXT NOT NULL DEFAULT '[]',
            created_at REAL NOT NULL,
            finished_at REAL,
            result_ttl REAL
        );
        CREATE TABLE crew_schedules (name TEXT PRIMARY KEY, next_run REAL NOT NULL);
        CREATE INDEX crew_jobs_claim ON crew_jobs (state, queue, priority DESC, run_at);
        CREATE INDEX crew_jobs_lease ON crew_jobs (state, lease_until);
        CREATE INDEX crew_jobs_expiry ON crew_jobs (expires_at) WHERE expires_at IS NOT NULL;
        CREATE INDEX crew_jobs_due ON crew_jobs (state, run_at);
        """,
        // 2: partial indexes, each holding only the jobs its statement looks for (available jobs for a claim,
        // waiting ones for their time, running ones for their lease, ended ones with a TTL): a claim no longer
        // reads past ended jobs, and an enqueue writes two indexes instead of four.
        """
        DROP INDEX crew_jobs_claim;
        DROP INDEX crew_jobs_lease;
        DROP INDEX crew_jobs_expiry;
        DROP INDEX crew_jobs_due;
        CREATE INDEX crew_jobs_available ON crew_jobs (queue, priority DESC, run_at) WHERE state = 'available';
        CREATE INDEX crew_jobs_waiting ON crew_jobs (run_at) WHERE state IN ('scheduled', 'retrying');
        CREATE INDEX crew_jobs_leases ON crew_jobs (lease_until) WHERE state = 'running';
        CREATE INDEX crew_jobs_waiting_expiry ON crew_jobs (expires_at)
            WHERE expires_at IS NOT NULL AND state IN ('scheduled', 'available', 'retrying');
        CREATE INDEX crew_jobs_ttl ON crew_jobs (finished_at + result_ttl)
            WHERE result_ttl IS NOT NULL AND finished_at IS NOT NULL;
        """,
    ]
}
