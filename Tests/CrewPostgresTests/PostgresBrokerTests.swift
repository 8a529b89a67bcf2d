import Crew
import CrewPostgres
import CrewQueue
import CrewTestHelpers
import Foundation
import Logging
import PostgresNIO
import Testing

/// What only the PostgreSQL broker has: a server, credentials, notifications, the caller's transactions.
@Suite(.enabled(if: PostgresTestServer.available, "needs the PostgreSQL server that ./scripts/test starts"))
struct PostgresBrokerTests {
    let logger = Logger(label: "crew.test.postgres")

    @Test func wrongCredentialsAndUnreachableServersFailAtStartNotHang() async throws {
        let directory = try PostgresTestServer.socketDirectory
        let cases = [
            "postgres://nobody@/postgres?host=\(directory)",  // no such role
            "postgres://postgres@/no_such_database?host=\(directory)",
            "postgres://postgres@/postgres?host=/nonexistent/directory",
            "postgres://postgres@127.0.0.1:1/postgres",  // nothing listens on port 1
        ]
        for url in cases {
            let started = ContinuousClock.now
            let error = await #expect(throws: BrokerError.self, "\(url)") {
                _ = try await PostgresBroker.connect(url: url)
            }
            #expect(error?.code == .unavailable, "\(url): \(String(describing: error))")
            // Well inside the 5 s connect timeout (no retry loop behind it). Not a timing assertion: a hang would
            // be minutes.
            #expect(ContinuousClock.now - started < .seconds(60))
        }
        let refused = await #expect(throws: BrokerError.self) {
            _ = try await PostgresBroker.connect(url: "postgres://nobody@/postgres?host=\(directory)")
        }
        #expect(refused?.message.contains("nobody") == true, "\(String(describing: refused))")
        for bad in [
            "mysql://localhost/db", "postgres://postgres@/db?colour=blue", "postgres://postgres@/db?connections=0",
            "postgres://postgres@/db?vacuum=0", "postgres://postgres@/db?vacuum=often",
        ] {
            let error = await #expect(throws: BrokerError.self) { _ = try await PostgresBroker.connect(url: bad) }
            #expect(error?.code == .invalidArgument, "\(bad)")
        }
    }

    @Test func aJobEnqueuedInTheCallersTransactionExistsOnlyIfItCommits() async throws {
        let broker = try await PostgresBroker.connect(url: PostgresTestServer.freshDatabase())
        defer { broker.close() }
        _ = try await broker.client.withConnection { connection in
            try await connection.query("CREATE TABLE orders (id bigint PRIMARY KEY)", logger: logger)
        }
        struct Refused: Error {}
        await #expect(throws: (any Error).self) {
            try await broker.client.withTransaction(logger: logger) { connection in
                try await connection.query("INSERT INTO orders VALUES (1)", logger: logger)
                try await broker.enqueue(
                    [NewJob(id: JobID("rolled-back"), name: "ship", arguments: "[1]")], connection: connection)
                throw Refused()
            }
        }
        #expect(try await broker.job(JobID("rolled-back")) == nil)
        // Listening first (the broker starts listening when first asked, and raises the signal once it listens):
        // from then on only a notification moves the mark.
        let listening = broker.signalMark(.jobs)
        await broker.awaitSignal(.jobs, after: listening, timeout: .seconds(3600))
        let mark = broker.signalMark(.jobs)
        try await broker.client.withTransaction(logger: logger) { connection in
            try await connection.query("INSERT INTO orders VALUES (2)", logger: logger)
            try await broker.enqueue(
                [NewJob(id: JobID("committed"), name: "ship", arguments: "[2]")], connection: connection)
            // Not visible to others before the commit.
            #expect(try await broker.job(JobID("committed")) == nil)
        }
        #expect(try await broker.job(JobID("committed"))?.state == .available)
        // The commit notified the workers (wait as long as it takes: without the notification this never ends,
        // and the test's time limit fails it).
        await broker.awaitSignal(.jobs, after: mark, timeout: .seconds(3600))
    }

    @Test func aBusyBrokerVacuumsTheJobsTableSoClaimsDoNotWadeThroughDeadEntries() async throws {
        let url = try await PostgresTestServer.freshDatabase("vacuum=1000")
        let broker = try await PostgresBroker.connect(url: url)
        defer { broker.close() }
        // Autovacuum off for this table, so that only the broker's own vacuum can clean it.
        try await PostgresTestServer.sql(url, "ALTER TABLE crew_jobs SET (autovacuum_enabled = false)")
        func vacuums() async throws -> Int {
            try await broker.client.withConnection { connection in
                var count = 0
                let rows = try await connection.query(
                    "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'crew_jobs'", logger: logger
                )
                for try await value in rows.decode(Int.self) { count = value }
                return count
            }
        }
        let before = try await vacuums()
        try await broker.enqueue((0..<1500).map { NewJob(id: JobID("j\($0)"), name: "f", arguments: "[]") })
        #expect(try await broker.purge(queue: "default") == 1500)  // 1 500 dead rows: past the threshold.
        let deadline = ContinuousClock.now + .seconds(60)
        while try await vacuums() == before && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(try await vacuums() > before)
        // The broker still works, and a broker told not to vacuum does not.
        try await broker.enqueue(NewJob(id: JobID("after"), name: "f", arguments: "[]"))
        #expect(
            try await broker.claim(queues: ["default"], limit: 5, worker: "w", lease: .seconds(30)).map(\.id) == [
                JobID("after")
            ])
        let quiet = try await PostgresBroker.connect(
            url: url.replacingOccurrences(of: "vacuum=1000", with: "vacuum=off"))
        defer { quiet.close() }
        let counted = try await vacuums()
        try await quiet.enqueue((0..<1500).map { NewJob(id: JobID("q\($0)"), name: "f", arguments: "[]") })
        _ = try await quiet.purge(queue: "default")
        try await Task.sleep(for: .milliseconds(500))
        #expect(try await vacuums() == counted)
    }

    @Test func theBrokersConnectionsRunPreparedStatementsOnOnePlan() async throws {
        let broker = try await PostgresBroker.connect(url: PostgresTestServer.freshDatabase())
        defer { broker.close() }
        let mode = try await broker.client.withConnection { connection in
            var mode = ""
            for try await (value) in try await connection.query("SHOW plan_cache_mode", logger: logger).decode(
                String.self)
            {
                mode = value
            }
            return mode
        }
        #expect(mode == "force_generic_plan")
    }

    @Test func withoutNotificationsWorkersAndWaitersStillGetThereByPolling() async throws {
        let url = try await PostgresTestServer.freshDatabase("notifications=off")
        let broker = try await PostgresBroker.connect(url: url)
        defer { broker.close() }
        let double = QueueTask(QueuedWork.double)
        let worker = QueueWorker(
            broker: broker, tasks: [double], executor: try .coroutines(4),
            configuration: QueueWorker.Configuration(concurrency: 4, pollInterval: .milliseconds(20))
        )
        let serving = Task { try await worker.run() }
        let handles = try await TaskClient(broker: broker).enqueueMany(double, Array(0..<50))
        for (i, handle) in handles.enumerated() { #expect(try await handle.result(timeout: .seconds(60)) == i * 2) }
        // No notification arrived: the marks never moved.
        #expect(broker.signalMark(.jobs) == 0 && broker.signalMark(.results) == 0)
        worker.stop()
        try await serving.value
    }

    @Test func aRowEditedByHandIntoNonsenseIsReportedAndSkipped() async throws {
        let url = try await PostgresTestServer.freshDatabase()
        let broker = try await PostgresBroker.connect(url: url)
        defer { broker.close() }
        try await broker.enqueue([
            NewJob(id: JobID("orphan"), name: "f", arguments: "[]", maxAttempts: 2),
            NewJob(id: JobID("garbled"), name: "f", arguments: "[]", maxAttempts: 2),
        ])
        // Running with no worker and no lease; an error history that is not JSON.
        try await PostgresTestServer.sql(
            url,
            """
            UPDATE crew_jobs SET state = 'running', worker = NULL, lease_until = NULL, attempts = 1 WHERE id = 'orphan'
            """)
        try await PostgresTestServer.sql(
            url,
            """
            UPDATE crew_jobs SET state = 'running', worker = 'w', lease_until = 0, attempts = 1, errors = 'not json' WHERE id = 'garbled'
            """)
        #expect(try await broker.reapExpiredLeases() == 2)
        let orphan = try #require(try await broker.job(JobID("orphan")))
        #expect(orphan.state == .available && orphan.errors.last?.message.contains("stopped renewing") == true)
        let garbled = try #require(try await broker.job(JobID("garbled")))
        #expect(garbled.state == .available)
        #expect(
            garbled.errors.first?.message.contains("unreadable error history: not json") == true, "\(garbled.errors)")
        // A state no broker writes is refused by the table itself.
        await #expect(throws: (any Error).self) {
            try await PostgresTestServer.sql(url, "UPDATE crew_jobs SET state = 'half-done' WHERE id = 'orphan'")
        }
    }

    @Test func aDroppedConnectionMidClaimLosesNoJob() async throws {
        // A claim whose connection is cut may be left without an answer: it fails after the statement timeout
        // (2 s here) instead of waiting forever.
        let url = try await PostgresTestServer.freshDatabase("timeout=2")
        let broker = try await PostgresBroker.connect(url: url)
        defer { broker.close() }
        try await broker.enqueue((0..<200).map { NewJob(id: JobID("j\($0)"), name: "f", arguments: "[\($0)]") })
        var claimed: Set<JobID> = []
        var cut = 0
        for round in 0..<200 {
            if round % 10 == 5 {
                // Every connection of the broker is cut, as a failover or a proxy would.
                cut +=
                    (try? await PostgresTestServer.sql(
                        url,
                        """
                        SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                        WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
                        """)) ?? 0
            }
            do {
                for job in try await broker.claim(queues: ["default"], limit: 3, worker: "w", lease: .seconds(60)) {
                    #expect(claimed.insert(job.id).inserted, "\(job.id) claimed twice")
                }
            } catch let error as BrokerError {
                // A claim on a connection that was cut fails cleanly (the pool reconnects for the next one).
                #expect(error.code == .unavailable, "\(error)")
            }
            if claimed.count == 200 { break }
        }
        // A claim cut off before its commit claimed nothing; one cut off after it is returned by the reaper.
        let jobs = try await broker.jobs(queue: nil, states: nil, limit: 1000)
        #expect(jobs.count == 200)
        let running = jobs.filter { $0.state == .running }
        #expect(Set(running.map(\.id)).isSuperset(of: claimed))
        #expect(claimed.count + jobs.filter { $0.state == .available }.count + (running.count - claimed.count) == 200)
        #expect(cut > 0, "no connection was cut")
    }
}
