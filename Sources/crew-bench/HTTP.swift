import Foundation

#if canImport(Glibc)
    import Glibc
#endif

// Prefork HTTP serving (seed 3.2) against gunicorn's and uWSGI's gevent workers, with a bare Hummingbird app in one
// process as the floor. Every server serves the same routes (crew-demo's DemoRoutes, and bench/peers/wsgi_app.py
// for the Python servers), on 127.0.0.1, with the same listen backlog, the same worker processes and the same
// requests per worker where it has them; one wrk, with the same settings, drives them all in turn, so the client
// costs every server the same.

extension CrewBench {
    /// One server under load: how to start, stop and reload it, and what it was given.
    struct HTTPServerUnderTest {
        var who: String
        var setup: String
        /// The command line, given the port to listen on.
        var command: (Int) -> [String]
        var stopSignal: Int32 = SIGTERM
        /// nil: the server cannot reload.
        var reloadSignal: Int32? = SIGHUP
        /// Whether its workers are children of the process started (prefork), or that process itself.
        var prefork = true
        /// It closes the connection after every answer without saying so: wrk counts each such close as a read
        /// error, which is then no failure.
        var closesEveryConnection = false

        /// `result`, with the reads ended by its closes not counted as failures when it closes every connection.
        func counted(_ result: WrkResult) -> WrkResult {
            guard closesEveryConnection else { return result }
            var result = result
            result.closedAfterAnswer = result.readErrors
            result.readErrors = 0
            return result
        }
    }

    /// What one wrk run printed.
    ///
    /// `readErrors` are connections that ended before an answer; for a server that closes every connection
    /// unannounced, see ``HTTPServerUnderTest/counted(_:)``.
    struct WrkResult {
        var requestsPerSecond = 0.0
        var requests = 0.0
        var p50Milliseconds = 0.0
        var p99Milliseconds = 0.0
        var connectErrors = 0.0
        var readErrors = 0.0
        var writeErrors = 0.0
        var timeouts = 0.0
        var non2xx = 0.0
        /// Read errors that were a connection closed after its answer (a server that closes every connection).
        var closedAfterAnswer: Double?

        /// Requests that did not get a 2xx answer in time, or whose connection failed.
        var failed: Double { connectErrors + readErrors + writeErrors + timeouts + non2xx }

        var details: [String: Double] {
            [
                "p50_ms": p50Milliseconds, "p99_ms": p99Milliseconds, "timeouts": timeouts,
                "connect_errors": connectErrors, "read_write_errors": readErrors + writeErrors, "non_2xx": non2xx,
            ].merging(closedAfterAnswer.map { ["closes_after_answer": $0] } ?? [:]) { a, _ in a }
        }

        /// Parses wrk's report (`--latency`).
        static func parse(_ text: String) throws -> WrkResult {
            var result = WrkResult()
            var sawRate = false
            var inDistribution = false
            for raw in text.split(separator: "\n") {
                let line = raw.trimmingCharacters(in: .whitespaces)
                let words = line.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init)
                if line.hasPrefix("Latency Distribution") {
                    inDistribution = true
                    continue
                }
                if inDistribution, words.count == 2, words[0].hasSuffix("%") {
                    let value = try milliseconds(words[1], in: text)
                    if words[0] == "50%" || words[0] == "50.000%" { result.p50Milliseconds = value }
                    if words[0] == "99%" || words[0] == "99.000%" { result.p99Milliseconds = value }
                    continue
                }
                inDistribution = false
                if line.hasPrefix("Requests/sec:"), words.count >= 2, let value = Double(words[1]) {
                    result.requestsPerSecond = value
                    sawRate = true
                } else if line.contains("requests in"), let value = Double(words[0]) {
                    result.requests = value
                } else if line.hasPrefix("Socket errors:") {
                    // Socket errors: connect 0, read 0, write 0, timeout 0
                    for (index, word) in words.enumerated() where index + 1 < words.count {
                        let value = Double(words[index + 1]) ?? 0
                        switch word {
                        case "connect": result.connectErrors = value
                        case "read": result.readErrors = value
                        case "write": result.writeErrors = value
                        case "timeout": result.timeouts = value
                        default: break
                        }
                    }
                } else if line.hasPrefix("Non-2xx or 3xx responses:"), let value = Double(words.last ?? "") {
                    result.non2xx = value
                }
            }
            guard sawRate else { throw BenchError("wrk printed no Requests/sec line:\n\(text)") }
            return result
        }

        static func milliseconds(_ word: String, in text: String) throws -> Double {
            for (suffix, scale) in [("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60_000.0)]
            where word.hasSuffix(suffix) {
                if let value = Double(word.dropLast(suffix.count)) { return value * scale }
            }
            throw BenchError("wrk printed a latency of \"\(word)\", not a time:\n\(text)")
        }
    }

    /// Where the Python servers live, as bench/peers/http_peer.py prints it (it makes their venv first).
    struct PythonServers: Decodable {
        var gunicorn: String
        var uwsgi: String
        var appDirectory: String
        var versions: [String: String]

        enum CodingKeys: String, CodingKey {
            case gunicorn, uwsgi, versions
            case appDirectory = "app_dir"
        }
    }

    func http(_ report: inout Report) throws {
        let executable = Machine.executableDirectory + "/crew-http-bench"
        guard access(executable, X_OK) == 0 else {
            throw BenchError(
                "the http workload runs crew-http-bench, which is not built beside crew-bench: build every product "
                    + "(swift build -c release), then run .build/release/crew-bench")
        }
        guard Shell.firstLine("command -v wrk") != nil else {
            throw BenchError("the http workload needs wrk: apt-get install wrk")
        }
        Self.raiseOpenFileLimit()
        let processes = 2
        let perWorker = 1000
        let backlog = 2048
        let seconds = quick ? 3 : 5
        let rounds = quick ? 1 : 3
        let cpuRounds = 100_000
        report.versions["wrk"] = Shell.firstLine("wrk --version 2>&1")?.split(separator: " ").dropFirst().first.map(
            String.init)
        for package in ["hummingbird", "swift-nio"] {
            if let version = Self.resolvedVersion(package) { report.versions[package] = version }
        }

        func crew(processes: Int) -> HTTPServerUnderTest {
            HTTPServerUnderTest(
                who: processes == 1 ? "Crew, 1 process" : "Crew",
                setup: "crew-http-bench serve --processes \(processes) --concurrency \(perWorker) "
                    + "--worker-connections \(perWorker) --backlog \(backlog) (keep-alive 2 s; each worker runs its "
                    + "handlers on Swift's concurrency pool and its I/O on NIO's event loops, a thread per core each)",
                command: { port in
                    [
                        executable, "serve", "--processes", "\(processes)", "--concurrency", "\(perWorker)",
                        "--worker-connections", "\(perWorker)", "--backlog", "\(backlog)", "--log-level", "warning",
                        "--bind", "127.0.0.1:\(port)",
                    ]
                })
        }
        var servers: [HTTPServerUnderTest] = [
            crew(processes: processes),
            HTTPServerUnderTest(
                who: "Hummingbird",
                setup: "crew-http-bench bare: one Hummingbird 2 Application, one process (Swift's concurrency pool "
                    + "and NIO's event loops, a thread per core each), --backlog \(backlog)",
                command: { port in [executable, "bare", "--backlog", "\(backlog)", "--port", "\(port)"] },
                reloadSignal: nil, prefork: false),
        ]
        if !skipPython {
            status("http: the Python servers' venv (bench/peers/http_peer.py)")
            let command = [python, "\(peers)/http_peer.py", "{}"].map(Shell.quoted).joined(separator: " ")
            let output = try Shell.run(command)
            let line = String(decoding: output, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
            let python: PythonServers
            do {
                python = try JSONDecoder().decode(PythonServers.self, from: Data(line.utf8))
            } catch {
                throw BenchError("\(command) printed no server paths: \(line)")
            }
            for (name, version) in python.versions { report.versions[name] = version }
            servers.append(
                HTTPServerUnderTest(
                    who: "gunicorn",
                    setup: "gunicorn -w \(processes) -k gevent --worker-connections \(perWorker) --backlog \(backlog) "
                        + "--keep-alive 2 wsgi_app:application (a gevent worker runs Python on one thread)",
                    command: { port in
                        [
                            python.gunicorn, "-w", "\(processes)", "-k", "gevent", "--worker-connections",
                            "\(perWorker)", "--backlog", "\(backlog)", "--keep-alive", "2", "--no-control-socket",
                            "--log-level", "warning", "--chdir", python.appDirectory, "-b", "127.0.0.1:\(port)",
                            "wsgi_app:application",
                        ]
                    }))
            // uWSGI two ways: the seed's `--http` (a router process in front of the workers, which keeps
            // connections alive), and `--http-socket` (the workers speak HTTP, and close every connection: its
            // gevent mode hangs on a kept-alive one, unbit/uwsgi#1964).
            let uwsgi = [
                python.uwsgi, "--master", "--processes", "\(processes)", "--gevent", "\(perWorker)",
                "--gevent-monkey-patch", "--listen", "\(backlog)", "--disable-logging", "--wsgi-file",
                python.appDirectory + "/wsgi_app.py",
            ]
            servers.append(
                HTTPServerUnderTest(
                    who: "uWSGI --http",
                    setup: "uwsgi --master --processes \(processes) --gevent \(perWorker) --gevent-monkey-patch "
                        + "--listen \(backlog) --http --http-keepalive (a router process in front, keep-alive)",
                    command: { port in uwsgi + ["--http", "127.0.0.1:\(port)", "--http-keepalive"] },
                    stopSignal: SIGINT))
            servers.append(
                HTTPServerUnderTest(
                    who: "uWSGI --http-socket",
                    setup: "uwsgi --master --processes \(processes) --gevent \(perWorker) --gevent-monkey-patch "
                        + "--listen \(backlog) --http-socket (no keep-alive: a new connection per request)",
                    command: { port in uwsgi + ["--http-socket", "127.0.0.1:\(port)"] },
                    stopSignal: SIGINT, closesEveryConnection: true))
        }

        // The load rows: path, connections, and the row's name.
        let loads: [(id: String, path: String, connections: Int, title: String)] = [
            ("hello-64", "/", 64, "hello (`/`), keep-alive, 64 connections"),
            ("hello-1000", "/", 1000, "hello (`/`), keep-alive, 1 000 connections"),
            ("io-1000", "/io?ms=10", 1000, "`/io?ms=10` (awaits 10 ms), 1 000 connections"),
            ("cpu-16", "/cpu?n=\(cpuRounds)", 16, "`/cpu?n=\(Self.count(cpuRounds))`, 16 connections"),
        ]
        var figures: [String: [String: [WrkResult]]] = [:]  // server, load: one result per round
        var starts: [String: [Double]] = [:]
        var rss: [String: [Double]] = [:]
        var reloads: [String: [WrkResult]] = [:]
        var cpuOneProcess: [WrkResult] = []

        for round in 1...rounds {
            for server in servers {
                status("http: \(server.who), round \(round) of \(rounds)")
                let running = try RunningServer(server)
                defer { running.stop() }
                starts[server.who, default: []].append(running.startSeconds)
                _ = try wrk(port: running.port, path: "/", connections: 64, seconds: 1)  // warm-up, untimed
                for load in loads {
                    let result = try wrk(
                        port: running.port, path: load.path, connections: load.connections, seconds: seconds)
                    figures[server.who, default: [:]][load.id, default: []].append(server.counted(result))
                }
                let workers = running.workerPIDs()
                let sizes = workers.map { Self.residentMiB($0) }.sorted()
                if !sizes.isEmpty { rss[server.who, default: []].append(sizes[sizes.count / 2]) }
                if let signal = server.reloadSignal {
                    reloads[server.who, default: []].append(
                        server.counted(
                            try wrk(
                                port: running.port, path: "/", connections: 64, seconds: seconds + 3,
                                during: (after: 1.5, signal: signal, pid: running.pid))))
                }
            }
            // /cpu on one Crew process, to show the throughput the second adds.
            let running = try RunningServer(crew(processes: 1))
            defer { running.stop() }
            cpuOneProcess.append(
                try wrk(port: running.port, path: loads[3].path, connections: 16, seconds: seconds))
        }

        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        }
        func medianResult(_ results: [WrkResult]) -> WrkResult {
            results.sorted { $0.requestsPerSecond < $1.requestsPerSecond }[results.count / 2]
        }
        func side(_ server: HTTPServerUnderTest, _ value: Double, _ details: [String: Double]? = nil) -> Side {
            Side(
                who: server.who, setup: server.setup, value: value, details: details)
        }
        let client =
            "wrk -t2 --timeout 2s --latency, \(seconds) s per row after a 1 s warm-up, \(rounds == 1 ? "one round" : "the median of \(rounds) rounds") (by requests/s); every server on 127.0.0.1"
        func add(
            _ id: String, _ workload: String, _ unit: String, lowerIsBetter: Bool, window: String,
            _ value: (HTTPServerUnderTest) -> (Double, [String: Double]?)?
        ) {
            var sides: [String: Side] = [:]
            for server in servers {
                if let (figure, details) = value(server) { sides[server.who] = side(server, figure, details) }
            }
            guard let crew = sides["Crew"] else { return }
            report.add(
                Row(
                    id: "http.\(id)", workload: workload, unit: unit, lowerIsBetter: lowerIsBetter, window: window,
                    crew: crew,
                    floor: sides["Hummingbird"].map {
                        var s = $0
                        s.who = "Hummingbird (floor)"
                        return s
                    },
                    peers: ["gunicorn", "uWSGI --http", "uWSGI --http-socket"].compactMap { sides[$0] }))
        }
        for load in loads {
            add(load.id, load.title, "requests/s", lowerIsBetter: false, window: client) { server in
                figures[server.who]?[load.id].map { medianResult($0) }.map { ($0.requestsPerSecond, $0.details) }
            }
            if load.connections == 1000 {
                add(
                    load.id + ".p99", load.title + ": p99 latency", "ms", lowerIsBetter: true,
                    window: client + "; the p99 of the round with the median requests/s"
                ) { server in
                    figures[server.who]?[load.id].map { medianResult($0) }.map { ($0.p99Milliseconds, $0.details) }
                }
            }
        }
        if let two = figures["Crew"]?["cpu-16"].map(medianResult), !cpuOneProcess.isEmpty {
            let one = medianResult(cpuOneProcess)
            report.add(
                Row(
                    id: "http.cpu-16.processes", workload: "\(loads[3].title): 2 processes against 1",
                    unit: "requests/s", lowerIsBetter: false, window: client,
                    crew: side(servers[0], two.requestsPerSecond, two.details),
                    peers: [side(crew(processes: 1), one.requestsPerSecond, one.details)]))
        }
        add(
            "rss", "resident memory of one worker after the load rows", "MiB", lowerIsBetter: true,
            window: "VmRSS of each worker process (the median worker), read after the rows above"
        ) { server in rss[server.who].map { (median($0), nil) } }
        add(
            "start", "start to first answer", "s", lowerIsBetter: true,
            window: "the server's command started until `GET /` is first answered 200 (polled every 5 ms)"
        ) { server in starts[server.who].map { (median($0), nil) } }
        add(
            "reload", "requests failed during a SIGHUP reload under load, 64 connections", "failed requests",
            lowerIsBetter: true,
            window: "wrk for \(seconds + 3) s on `/`, SIGHUP to the server 1.5 s in; failed: connect, read, write and "
                + "timeout errors plus non-2xx answers (the median round)"
        ) { server in
            reloads[server.who].map { results in
                let result = results.sorted { $0.failed < $1.failed }[results.count / 2]
                return (result.failed, result.details.merging(["requests": result.requests]) { a, _ in a })
            }
        }
    }

    /// Runs wrk against `path`; with `during`, sends a signal to a process that many seconds into the run.
    func wrk(
        port: Int, path: String, connections: Int, seconds: Int,
        during: (after: Double, signal: Int32, pid: pid_t)? = nil
    ) throws -> WrkResult {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("crew-bench-wrk-\(getpid()).txt")
            .path
        defer { unlink(output) }
        let wrk = try Spawned(
            [
                "/usr/bin/env", "wrk", "-t2", "-c\(connections)", "-d\(seconds)s", "--timeout", "2s", "--latency",
                "http://127.0.0.1:\(port)\(path)",
            ], output: output)
        if let during {
            usleep(useconds_t(during.after * 1_000_000))
            kill(during.pid, during.signal)
        }
        let status = wrk.wait()
        let text = Machine.read(output)
        guard status == 0 else { throw BenchError("wrk failed (status \(status)):\n\(text)") }
        return try WrkResult.parse(text)
    }

    /// A program started with `posix_spawn` in a process group of its own, its output to a file, reaped by its own
    /// pid. (Foundation's `Process` lost wrk's exit once uWSGI's master had re-executed itself on a reload.)
    final class Spawned {
        let pid: pid_t
        private var status: Int32?

        init(_ arguments: [String], output: String) throws {
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
            var attributes = posix_spawnattr_t()
            posix_spawnattr_init(&attributes)
            defer { posix_spawnattr_destroy(&attributes) }
            posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
            posix_spawnattr_setpgroup(&attributes, 0)
            var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
            defer { for pointer in argv { free(pointer) } }
            var pid: pid_t = 0
            let rc = posix_spawnp(&pid, arguments[0], &actions, &attributes, &argv, environ)
            guard rc == 0 else { throw BenchError("cannot start \(arguments[0]): \(String(cString: strerror(rc)))") }
            self.pid = pid
        }

        var isRunning: Bool {
            guard status == nil else { return false }
            var raw: Int32 = 0
            let rc = waitpid(pid, &raw, WNOHANG)
            if rc == pid || (rc < 0 && errno == ECHILD) {
                status = rc == pid ? Self.decode(raw) : -1
                return false
            }
            return true
        }

        /// Waits for the exit; the exit code, or 128 + the signal.
        func wait() -> Int32 {
            if let status { return status }
            var raw: Int32 = 0
            while true {
                let rc = waitpid(pid, &raw, 0)
                if rc == pid { break }
                if rc < 0 && errno == EINTR { continue }
                status = -1
                return -1
            }
            let decoded = Self.decode(raw)
            status = decoded
            return decoded
        }

        private static func decode(_ raw: Int32) -> Int32 {
            (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
        }
    }

    /// A server started on a free port, answering `GET /`.
    final class RunningServer {
        let process: Spawned
        let port: Int
        let startSeconds: Double
        let server: HTTPServerUnderTest
        let log: String
        var pid: pid_t { process.pid }

        init(_ server: HTTPServerUnderTest) throws {
            self.server = server
            port = try Self.freePort()
            log =
                FileManager.default.temporaryDirectory.appendingPathComponent(
                    "crew-bench-http-\(getpid())-\(server.who.filter { $0.isLetter }).log"
                ).path
            let started = ContinuousClock.now
            let process = try Spawned(server.command(port), output: log)
            self.process = process
            let deadline = started + .seconds(60)
            while !Self.answers(port: port) {
                guard process.isRunning, ContinuousClock.now < deadline else {
                    let text = Machine.read(log)
                    kill(process.pid, SIGKILL)
                    _ = process.wait()
                    throw BenchError("\(server.who) did not answer on port \(port):\n\(text.suffix(2000))")
                }
                usleep(5_000)
            }
            let elapsed = ContinuousClock.now - started
            startSeconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        }

        /// The processes that serve: the started process's children for a prefork server, or itself.
        func workerPIDs() -> [pid_t] {
            guard server.prefork else { return [pid] }
            let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
            return entries.compactMap { Int32($0) }.filter { candidate in
                // /proc/PID/stat: "pid (comm) state ppid ..."; comm may hold spaces, so read after the last ')'.
                let stat = Machine.read("/proc/\(candidate)/stat")
                guard let close = stat.lastIndex(of: ")") else { return false }
                let fields = stat[stat.index(after: close)...].split(separator: " ")
                return fields.count > 1 && Int32(fields[1]) == pid
            }
        }

        /// Stops the server with its stop signal, and kills what is left after 30 s.
        func stop() {
            defer { unlink(log) }
            guard process.isRunning else { return }
            let workers = workerPIDs()
            kill(pid, server.stopSignal)
            let deadline = ContinuousClock.now + .seconds(30)
            while process.isRunning && ContinuousClock.now < deadline { usleep(10_000) }
            if process.isRunning { kill(pid, SIGKILL) }
            _ = process.wait()
            // None should be left, and none may outlive the row: the whole group goes.
            kill(-pid, SIGKILL)
            for worker in workers { kill(worker, SIGKILL) }
        }

        static func freePort() throws -> Int {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { throw BenchError("socket: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                    bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
                }
            }
            guard bound else { throw BenchError("bind: \(String(cString: strerror(errno)))") }
            return Int(UInt16(bigEndian: address.sin_port))
        }

        /// Whether `GET /` on the port is answered 200.
        static func answers(port: Int) -> Bool {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard fd >= 0 else { return false }
            defer { close(fd) }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = UInt16(port).bigEndian
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
                }
            }
            guard connected else { return false }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            let request = Array("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".utf8)
            guard write(fd, request, request.count) == request.count else { return false }
            var buffer = [UInt8](repeating: 0, count: 64)
            let n = read(fd, &buffer, buffer.count)
            guard n > 12 else { return false }
            return String(decoding: buffer[0..<n], as: UTF8.self).hasPrefix("HTTP/1.1 200")
                || String(decoding: buffer[0..<n], as: UTF8.self).hasPrefix("HTTP/1.0 200")
        }
    }

    /// wrk's 1 000 connections and the servers' need more than the usual 1 024 descriptors: the soft limit is
    /// raised to the hard one, for this process and the servers and wrk it starts.
    static func raiseOpenFileLimit() {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        limit.rlim_cur = limit.rlim_max
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }

    /// A process's resident memory, in MiB (VmRSS).
    static func residentMiB(_ pid: pid_t) -> Double {
        for line in Machine.read("/proc/\(pid)/status").split(separator: "\n") where line.hasPrefix("VmRSS:") {
            let kib = line.split(separator: " ").dropFirst().first.flatMap { Double($0) } ?? 0
            return kib / 1024
        }
        return 0
    }

    /// A package's version as Package.resolved pins it (in the directory crew-bench runs from).
    static func resolvedVersion(_ package: String) -> String? {
        guard let data = FileManager.default.contents(atPath: "Package.resolved"),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let pins = object["pins"] as? [[String: Any]]
        else { return nil }
        let pin = pins.first { ($0["identity"] as? String) == package }
        return (pin?["state"] as? [String: Any])?["version"] as? String
    }
}
