import CrewPostgres
import CrewQueue
import Foundation
import Logging
import PostgresNIO

/// The throwaway PostgreSQL server `scripts/test` starts (`scripts/postgres`): its URL is in `CREW_TEST_POSTGRES`.
/// Each test gets a database of its own.
public enum PostgresTestServer {
    public static let url = ProcessInfo.processInfo.environment["CREW_TEST_POSTGRES"]
    public static var available: Bool { url != nil }

    struct NotConfigured: Error, CustomStringConvertible {
        var description: String { "CREW_TEST_POSTGRES is not set: run the tests with ./scripts/test" }
    }

    /// The server's socket directory (the URL's `host=`).
    public static var socketDirectory: String {
        get throws {
            guard let url, let range = url.range(of: "host=") else { throw NotConfigured() }
            return String(url[range.upperBound...].prefix { $0 != "&" })
        }
    }

    /// A new, empty database; its URL, with `query` (such as `notifications=off`) added.
    public static func freshDatabase(_ query: String? = nil) async throws -> String {
        let directory = try socketDirectory
        let name = "crew_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
        let logger = Logger(label: "crew.test.postgres")
        let admin = try await PostgresConnection.connect(
            configuration: .init(
                unixSocketPath: directory + "/.s.PGSQL.5432", username: "postgres", password: nil, database: "postgres"),
            id: 1, logger: logger
        )
        try await admin.query("CREATE DATABASE \(unescaped: name)", logger: logger)
        try await admin.close()
        return "postgres://postgres@/\(name)?host=\(directory)" + (query.map { "&" + $0 } ?? "")
    }

    /// Runs SQL on a database, as a person editing it by hand would; returns how many rows it returned.
    @discardableResult
    public static func sql(_ url: String, _ statement: String) async throws -> Int {
        let broker = try await PostgresBroker.connect(url: url)
        defer { broker.close() }
        return try await broker.client.withConnection { connection in
            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: Logger(label: "crew.test.postgres"))
                .collect().count
        }
    }

    /// Restarts the server (stopped, then started again on the same data) and returns once it is back.
    public static func restart() async throws {
        guard let request = ProcessInfo.processInfo.environment["CREW_TEST_POSTGRES_RESTART"] else {
            throw NotConfigured()
        }
        guard FileManager.default.createFile(atPath: request, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: request])
        }
        let deadline = ContinuousClock.now + .seconds(120)
        while FileManager.default.fileExists(atPath: request) && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}
