import CrewQueue
import FoundationEssentials
import PostgresNIO

/// Reads a broker URL: `postgres://user:password@host:port/database?options`.
enum PostgresURL {
    /// The client configuration, the broker's options and a description of the server (without the password).
    ///
    /// - Throws: ``BrokerError`` `invalidArgument` for a URL it cannot read.
    static func parse(_ url: String) throws -> (PostgresClient.Configuration, PostgresBroker.Options, String) {
        guard url.hasPrefix("postgres://") || url.hasPrefix("postgresql://"),
            let components = URLComponents(string: url)
        else {
            throw BrokerError(
                .invalidArgument, "not a PostgreSQL URL: \(url) (postgres://user:password@host:port/database)")
        }
        let user = components.user ?? "postgres"
        let password = components.password
        var database = String(components.path.drop { $0 == "/" })
        if database.isEmpty { database = user }
        let port = components.port ?? 5432
        var options = PostgresBroker.Options()
        var socketDirectory: String?
        for item in components.queryItems ?? [] {
            switch (item.name, item.value ?? "") {
            case ("host", let value) where value.hasPrefix("/"): socketDirectory = value
            case ("notifications", let value) where ["off", "false", "0", "no"].contains(value):
                options.notifications = false
            case ("notifications", _): options.notifications = true
            case ("connections", let value):
                guard let count = Int(value), count >= 1 else {
                    throw BrokerError(.invalidArgument, "connections=\(value) in \(url): a count of at least 1")
                }
                options.maximumConnections = count
            case ("timeout", let value):
                guard let seconds = Double(value), seconds > 0 else {
                    throw BrokerError(
                        .invalidArgument, "timeout=\(value) in \(url): seconds a statement may go unanswered")
                }
                options.statementTimeout = .milliseconds(Int(seconds * 1000))
            case ("vacuum", let value) where ["off", "false", "0", "no"].contains(value): options.vacuumEvery = nil
            case ("vacuum", let value):
                guard let count = Int(value), count >= 1 else {
                    throw BrokerError(
                        .invalidArgument, "vacuum=\(value) in \(url): a count of jobs of at least 1, or off")
                }
                options.vacuumEvery = count
            case ("sslmode", "disable"): break
            case (let name, _):
                throw BrokerError(
                    .invalidArgument,
                    "unknown option \(name) in \(url) (host=/socket/directory, notifications=off, connections=N, timeout=SECONDS, vacuum=N|off)"
                )
            }
        }
        if let socketDirectory {
            let socket = socketDirectory + "/.s.PGSQL.\(port)"
            let configuration = PostgresClient.Configuration(
                unixSocketPath: socket, username: user, password: password, database: database)
            return (configuration, options, "\(user)@\(socket)/\(database)")
        }
        guard let host = components.host, !host.isEmpty else {
            throw BrokerError(
                .invalidArgument, "no host in \(url): postgres://user@host/database, or ?host=/socket/directory")
        }
        let configuration = PostgresClient.Configuration(
            host: host, port: port, username: user, password: password, database: database, tls: .disable
        )
        return (configuration, options, "\(user)@\(host):\(port)/\(database)")
    }
}
