import CrewQueue
import CrewSQLite
import CrewTestHelpers
import Foundation
import Synchronization
import Testing

/// What only the SQLite broker has: a file.
@Suite struct SQLiteBrokerTests {
    @Test func jobsOutliveTheBrokerAndTheFilesAreOwnerOnly() async throws {
        let path = try TemporaryDatabase.path()
        do {
            let broker = try SQLiteBroker(path: path)
            try await broker.enqueue(NewJob(id: JobID("durable"), name: "f", arguments: "[1]"))
        }
        let reopened = try SQLiteBroker(path: path)
        #expect(try await reopened.job(JobID("durable"))?.arguments == "[1]")
        for file in [path, path + "-wal", path + "-wake"] where FileManager.default.fileExists(atPath: file) {
            let mode = try FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int
            #expect(mode == 0o600, "\(file)")
        }
    }

    /// A worker and a producer started together open a new file at once (each its own connections, as two programs
    /// do): all of them set it up and use it, none fails with "locked".
    @Test func programsOpeningANewFileTogetherAllGetIt() async throws {
        for _ in 0..<20 {
            let path = try TemporaryDatabase.path()
            let openers = 6
            let start = DispatchSemaphore(value: 0)
            let opened = Mutex<[Result<SQLiteBroker, any Error>]>([])
            // Real threads, released together: the opening is synchronous, and two cooperative threads would
            // take the openers in turns.
            let all: [Result<SQLiteBroker, any Error>] = await withCheckedContinuation { done in
                for _ in 0..<openers {
                    Foundation.Thread {
                        start.wait()
                        let result = Result { try SQLiteBroker(path: path) }
                        let results = opened.withLock {
                            $0.append(result)
                            return $0
                        }
                        if results.count == openers { done.resume(returning: results) }
                    }.start()
                }
                for _ in 0..<openers { start.signal() }
            }
            for (index, result) in all.enumerated() {
                let broker = try result.get()
                try await broker.enqueue(NewJob(id: JobID("job-\(index)"), name: "f", arguments: "[]"))
            }
            #expect(try await SQLiteBroker(path: path).jobs(queue: nil, states: nil, limit: .max).count == openers)
        }
    }

    /// Runs SQL on a database with the `sqlite3` shell, as a person editing it by hand would.
    static func sqlite3(_ path: String, _ sql: String) throws {
        let shell = Foundation.Process()
        shell.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        shell.arguments = [path, sql]
        try shell.run()
        shell.waitUntilExit()
    }

    @Test func aFullDiskIsATypedErrorAndLeavesNothingHalfWritten() async throws {
        let path = try TemporaryDatabase.path()
        try await SQLiteBroker(path: path).enqueue(NewJob(id: JobID("first"), name: "f", arguments: "[]"))
        // A page quota stands in for a full disk: the next pages cannot be written (SQLITE_FULL).
        let full = try SQLiteBroker(path: path, maxPages: 16)
        let big = String(repeating: "x", count: 20_000)
        let jobs = (0..<20).map { _ in NewJob(name: "f", arguments: "\"\(big)\"") }
        let error = await #expect(throws: BrokerError.self) { try await full.enqueue(jobs) }
        #expect(error?.code == .storage && error?.message.contains("full") == true, "\(String(describing: error))")
        let left = try await SQLiteBroker(path: path).jobs(queue: nil, states: nil, limit: .max)
        #expect(left.map(\.id) == [JobID("first")])  // All or nothing: none of the twenty.
        try await full.enqueue(NewJob(id: JobID("small"), name: "f", arguments: "[]"))  // Room for a small one.
    }

    @Test func aDatabaseLockedByAnotherProgramIsATypedErrorNotAHang() async throws {
        let path = try TemporaryDatabase.path()
        let broker = try SQLiteBroker(path: path, busyTimeout: .milliseconds(200))
        // Another program holds the write lock.
        let holder = Foundation.Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        holder.arguments = [path]
        let input = Pipe()
        holder.standardInput = input
        try holder.run()
        input.fileHandleForWriting.write(Data("BEGIN IMMEDIATE; INSERT INTO crew_schema VALUES (1);\n".utf8))
        try await Task.sleep(for: .milliseconds(300))
        let error = await #expect(throws: BrokerError.self) {
            try await broker.enqueue(NewJob(name: "f", arguments: "[]"))
        }
        #expect(error?.code == .storage && error?.message.contains("locked") == true, "\(String(describing: error))")
        input.fileHandleForWriting.write(Data("ROLLBACK;\n.quit\n".utf8))
        holder.waitUntilExit()
        try await broker.enqueue(NewJob(name: "f", arguments: "[]"))  // Free again: it works.
    }

    @Test func aReadOnlyDatabaseIsATypedErrorAndStaysAsItWas() async throws {
        let path = try TemporaryDatabase.path()
        try await SQLiteBroker(path: path).enqueue(NewJob(id: JobID("kept"), name: "f", arguments: "[]"))
        let reader = try SQLiteBroker(path: path, readOnly: true)
        #expect(try await reader.job(JobID("kept"))?.state == .available)
        #expect(try await reader.counts().first?.counts[.available] == 1)
        for write in [
            { try await reader.enqueue(NewJob(name: "f", arguments: "[]")) },
            { _ = try await reader.claim(queues: ["default"], limit: 1, worker: "w", lease: .seconds(5)) },
            { _ = try await reader.cancel(JobID("kept")) },
        ] as [@Sendable () async throws -> Void] {
            let error = await #expect(throws: BrokerError.self) { try await write() }
            #expect(
                error?.code == .storage && error?.message.contains("read-only") == true, "\(String(describing: error))")
        }
        #expect(
            try await SQLiteBroker(path: path).jobs(queue: nil, states: nil, limit: 10).map(\.state) == [.available])
        // A file this process may not write (file modes do not bind root, which CI runs as).
        if getuid() != 0 {
            let locked = try TemporaryDatabase.path()
            try await SQLiteBroker(path: locked).enqueue(NewJob(name: "f", arguments: "[]"))
            let directory = (locked as NSString).deletingLastPathComponent
            for file in try FileManager.default.contentsOfDirectory(atPath: directory) {
                chmod(directory + "/" + file, 0o400)
            }
            chmod(directory, 0o500)
            defer { chmod(directory, 0o700) }
            let error = await #expect(throws: BrokerError.self) {
                try await SQLiteBroker(path: locked).enqueue(NewJob(name: "f", arguments: "[]"))
            }
            #expect(error?.code == .storage, "\(String(describing: error))")
        }
    }

    @Test func aVersionOneDatabaseIsMigratedWithItsJobs() async throws {
        let path = try TemporaryDatabase.path()
        try await SQLiteBroker(path: path).enqueue(NewJob(id: JobID("old"), name: "f", arguments: "[7]"))
        // Back to version 1 by hand: its four indexes instead of version 2's five.
        try Self.sqlite3(
            path,
            """
            DROP INDEX crew_jobs_available; DROP INDEX crew_jobs_waiting; DROP INDEX crew_jobs_leases;
            DROP INDEX crew_jobs_waiting_expiry; DROP INDEX crew_jobs_ttl;
            CREATE INDEX crew_jobs_claim ON crew_jobs (state, queue, priority DESC, run_at);
            CREATE INDEX crew_jobs_lease ON crew_jobs (state, lease_until);
            CREATE INDEX crew_jobs_expiry ON crew_jobs (expires_at) WHERE expires_at IS NOT NULL;
            CREATE INDEX crew_jobs_due ON crew_jobs (state, run_at);
            UPDATE crew_schema SET version = 1;
            """)
        let broker = try SQLiteBroker(path: path)
        #expect(try await broker.job(JobID("old"))?.arguments == "[7]")
        #expect(try Self.sqlite3Output(path, "SELECT version FROM crew_schema;") == "2")
        #expect(
            try Self.sqlite3Output(
                path, "SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'crew_jobs_%' ORDER BY name;")
                == "crew_jobs_available\ncrew_jobs_leases\ncrew_jobs_ttl\ncrew_jobs_waiting\ncrew_jobs_waiting_expiry")
        // And it still claims.
        #expect(
            try await broker.claim(queues: ["default"], limit: 1, worker: "w", lease: .seconds(5)).map(\.id) == [
                JobID("old")
            ])
    }

    /// What the `sqlite3` shell prints for `sql`, trimmed.
    static func sqlite3Output(_ path: String, _ sql: String) throws -> String {
        let shell = Foundation.Process()
        shell.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        shell.arguments = [path, sql]
        let output = Pipe()
        shell.standardOutput = output
        try shell.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        shell.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func foreignAndNewerDatabasesAreRefusedClearly() throws {
        let garbage = try TemporaryDatabase.path()
        try Data(repeating: 0x5A, count: 4096).write(to: URL(fileURLWithPath: garbage))
        let notSQLite = try #require(throws: BrokerError.self) { try SQLiteBroker(path: garbage) }
        #expect(notSQLite.code == .incompatibleSchema)

        let foreign = try TemporaryDatabase.path()
        _ = try SQLiteBroker(path: foreign)  // A Crew database...
        let other = try TemporaryDatabase.path()
        try Self.sqlite3(other, "CREATE TABLE people (name TEXT);")
        let notCrew = try #require(throws: BrokerError.self) { try SQLiteBroker(path: other) }
        #expect(notCrew.code == .incompatibleSchema)

        try Self.sqlite3(foreign, "UPDATE crew_schema SET version = 99;")
        let tooNew = try #require(throws: BrokerError.self) { try SQLiteBroker(path: foreign) }
        #expect(tooNew.code == .incompatibleSchema && tooNew.message.contains("99"))
    }
}
