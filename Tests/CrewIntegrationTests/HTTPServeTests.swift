import Crew
import CrewTesting
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `crew-demo serve`, seed 3.2's twin, run as a user runs it: many slow requests at once, a handler that traps,
/// and a graceful stop.
@Suite(.serialized) struct HTTPServeTests {
    /// A running `crew-demo serve`, its log in a file.
    final class Server {
        let process: Process
        let log: URL
        var port = 0

        init(_ arguments: [String], bind: String = "127.0.0.1:0") throws {
            log = FileManager.default.temporaryDirectory.appendingPathComponent("crew-serve-\(UUID()).log")
            guard FileManager.default.createFile(atPath: log.path, contents: nil) else {
                throw CocoaError(.fileWriteUnknown)
            }
            process = Process()
            process.executableURL = URL(fileURLWithPath: CrewTesting.productsDirectory + "/crew-demo")
            process.arguments = ["serve", "--bind", bind, "--log-level", "info"] + arguments
            let handle = try FileHandle(forWritingTo: log)
            process.standardError = handle
            process.standardOutput = handle
            try process.run()
        }

        deinit {
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            try? FileManager.default.removeItem(at: log)
        }

        var text: String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }

        /// The lines of the log that match `pattern`'s first group.
        func matches(_ pattern: String) -> [String] {
            let regex = try! NSRegularExpression(pattern: pattern)
            let text = self.text
            return regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
                Range($0.range(at: 1), in: text).map { String(text[$0]) }
            }
        }

        /// Waits until it listens and `workers` workers are ready.
        func waitUntilReady(workers: Int) async throws {
            for _ in 0..<600 {
                if let port = matches("listening on 127\\.0\\.0\\.1:(\\d+)").first.flatMap(Int.init) {
                    self.port = port
                }
                if text.contains("listening on") && matches("worker (\\d+) \\(pid").count >= workers { return }
                try await Task.sleep(for: .milliseconds(50))
            }
            throw ServeFailure(log: text)
        }

        var workerPIDs: [Int32] { matches("\\(pid (\\d+),").compactMap { Int32($0) } }
    }

    struct ServeFailure: Error, CustomStringConvertible {
        var log: String
        var description: String { "the server did not get ready; its log:\n\(log)" }
    }

    /// Runs curl on `urls` all at once; returns each request's status code (000: no answer) and the wall time.
    func curlParallel(_ urls: [String]) throws -> (codes: [String], seconds: Double) {
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        var arguments = [
            "--silent", "--parallel", "--parallel-immediate", "--parallel-max", "\(urls.count)", "--max-time", "30",
        ]
        for url in urls { arguments += ["--output", "/dev/null", "--write-out", "%{http_code}\\n", url] }
        curl.arguments = arguments
        let out = Pipe()
        curl.standardOutput = out
        let start = Date()
        try curl.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        curl.waitUntilExit()
        let seconds = Date().timeIntervalSince(start)
        return (String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init), seconds)
    }

    /// One request on a connection of its own, without retries: its status line, or "" if the connection closed
    /// first.
    func rawGet(_ port: Int, _ path: String) -> String {
        rawResponse(port, path).split(separator: "\r\n").first.map(String.init) ?? ""
    }

    /// One request on a connection of its own, without retries: the whole response, or "" if the connection
    /// closed first.
    func rawResponse(_ port: Int, _ path: String) -> String {
        guard let fd = connectLocally(port) else { return "" }
        defer { close(fd) }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A new connection to 127.0.0.1:`port`, or nil if it is refused.
    func connectLocally(_ port: Int) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Sends `bytes` on a connection of its own (closing its sending side after them if `finish`), and returns the
    /// status line of the answer, or "" if the connection closed first.
    func rawStatus(_ port: Int, _ bytes: [UInt8], finish: Bool = false) -> String {
        guard let fd = connectLocally(port) else { return "" }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if finish { shutdown(fd, Int32(SHUT_WR)) }
        var received: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while !received.contains(13) {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            received += chunk[0..<n]
        }
        return String(decoding: received, as: UTF8.self).split(separator: "\r\n").first.map(String.init) ?? ""
    }

    /// 20 slow requests (`/io?ms=1500`), each on a connection of its own, sent now.
    func slowRequests(_ port: Int) -> [Task<String, any Error>] {
        (0..<20).map { _ in Task { try await Crew.blocking { self.rawResponse(port, "/io?ms=1500") } } }
    }

    /// The responses of `requests` answered 200, and how many were not.
    func outcome(of requests: [Task<String, any Error>]) async throws -> (answered: [String], failed: Int) {
        var answered: [String] = []
        var failed = 0
        for request in requests {
            let response = try await request.value
            if response.hasPrefix("HTTP/1.1 200") { answered.append(response) } else { failed += 1 }
        }
        return (answered, failed)
    }

    /// Whether every process of `pids` has exited within 10 s.
    func allExit(_ pids: [Int32]) async throws -> Bool {
        for _ in 0..<200 {
            if pids.allSatisfy({ kill($0, 0) != 0 }) { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return pids.allSatisfy { kill($0, 0) != 0 }
    }

    /// Stops the server with SIGTERM and returns its exit status.
    func stop(_ server: Server) async throws -> Int32 {
        kill(server.process.processIdentifier, SIGTERM)
        for _ in 0..<600 where server.process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        return server.process.isRunning ? -1 : server.process.terminationStatus
    }

    @Test(.timeLimit(.minutes(3)))
    func fourHundredSlowRequestsOnFourByAHundredRunTogether() async throws {
        let server = try Server(["--processes", "4", "--concurrency", "100"])
        try await server.waitUntilReady(workers: 4)
        let url = "http://127.0.0.1:\(server.port)/io?ms=100"
        _ = try curlParallel([url])  // The first connection's costs, out of the way.
        // Two curls of 200 each (one curl runs at most 300 transfers at once).
        let start = ContinuousClock.now
        async let first = Crew.blocking { try self.curlParallel(Array(repeating: url, count: 200)).codes }
        async let second = Crew.blocking { try self.curlParallel(Array(repeating: url, count: 200)).codes }
        let codes = try await first + second
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        print("400 concurrent /io?ms=100 on 4 x 100: \(seconds) s")
        #expect(
            codes.count == 400 && codes.allSatisfy { $0 == "200" },
            "\(Dictionary(grouping: codes) { $0 }.mapValues(\.count))")
        // One after another they would take 40 s; a request at a time per worker, 10 s; ten at a time, 1 s.
        // Together: about 0.1 s plus the connections' cost (0.4-0.5 s here, unloaded).
        #expect(seconds < 1)
        let pids = server.workerPIDs
        #expect(try await stop(server) == 0)
        #expect(pids.count == 4 && pids.allSatisfy { kill($0, 0) != 0 }, "workers: \(pids); log:\n\(server.text)")
    }

    @Test(.timeLimit(.minutes(3)))
    func aTrapEndsOnlyTheRequestsOfItsWorker() async throws {
        // Each worker with its own socket (SO_REUSEPORT): the system spreads connections over both.
        let server = try Server(["--processes", "2", "--concurrency", "100", "--reuse-port"])
        try await server.waitUntilReady(workers: 2)
        let port = server.port
        // Slow requests in flight on both workers, then a request whose handler traps.
        let slow = slowRequests(port)
        try await Task.sleep(for: .milliseconds(300))
        let trapped = try await Crew.blocking { self.rawGet(port, "/trap") }
        #expect(trapped == "", "the trapping request got an answer: \(trapped)")
        let (answered, failed) = try await outcome(of: slow)
        let died = server.matches("worker (\\d+) died").compactMap(Int.init)
        #expect(died.count == 1, "\(server.text)")
        let deadPID = died.first.flatMap { id in server.matches("worker \(id) \\(pid (\\d+),").first }
        // The requests on the trapping worker fail; every answer came from the other worker.
        #expect(failed >= 1 && !answered.isEmpty, "failed \(failed), answered \(answered.count)")
        #expect(deadPID != nil && answered.allSatisfy { !$0.contains("in pid \(deadPID ?? "?")\n") })
        // The server goes on: a new worker takes the dead one's place, and answers.
        try await server.waitUntilReady(workers: 3)
        #expect(rawGet(port, "/") == "HTTP/1.1 200 OK")
        // The supervisor says which worker died, and why.
        #expect(server.text.contains("died: killed by signal 4 (SIGILL)"), "\(server.text)")
        #expect(try await stop(server) == 0)
    }

    @Test(.timeLimit(.minutes(3)))
    func badRequestsAreAnswered4xxAndTheWorkerStaysUp() async throws {
        let server = try Server(["--processes", "1", "--limit-request-body", "1000"])
        try await server.waitUntilReady(workers: 1)
        let port = server.port
        func request(_ text: String) -> [UInt8] { Array(text.utf8) }
        let manyFields = (0..<200).map { "X-\($0): 1\r\n" }.joined()
        let cases: [(String, [UInt8], Bool, String)] = [
            (
                "a header field over --limit-request-field-size",
                request("GET / HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 20_000))\r\n\r\n"), false,
                "HTTP/1.1 400"
            ),
            (
                "more fields than --limit-request-fields", request("GET / HTTP/1.1\r\nHost: x\r\n\(manyFields)\r\n"),
                false, "HTTP/1.1 400"
            ),
            ("an unknown method", request("BREW / HTTP/1.1\r\nHost: x\r\n\r\n"), false, "HTTP/1.1 400"),
            ("bytes that are not HTTP", [0, 1, 2, 32, 13, 10, 13, 10], false, "HTTP/1.1 400"),
            (
                "a request line of 100 000 bytes",
                request("GET /\(String(repeating: "a", count: 100_000)) HTTP/1.1\r\nHost: x\r\n\r\n"), false,
                "HTTP/1.1 400"
            ),
            (
                "a request line over --limit-request-line (4094)",
                request("GET /\(String(repeating: "a", count: 5_000)) HTTP/1.1\r\nHost: x\r\n\r\n"), false,
                "HTTP/1.1 414"
            ),
            (
                "a body over --limit-request-body",
                request(
                    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n\(String(repeating: "a", count: 5000))"
                ),
                false, "HTTP/1.1 413"
            ),
            (
                "a body cut short", request("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"), true,
                "HTTP/1.1 4"
            ),
        ]
        for (what, bytes, finish, expected) in cases {
            let status = try await Crew.blocking { self.rawStatus(port, bytes, finish: finish) }
            #expect(status.hasPrefix(expected), "\(what): \(status)")
        }
        #expect(rawGet(port, "/") == "HTTP/1.1 200 OK")
        #expect(!server.text.contains("died"), "\(server.text)")
        #expect(try await stop(server) == 0)
    }

    @Test(.timeLimit(.minutes(3)))
    func aClientThatTricklesItsHeadIsCutOffAndHoldsNoSlot() async throws {
        // One connection slot, and a keep-alive time (which bounds how long a request's head may take) of 1 s.
        let server = try Server(["--processes", "1", "--worker-connections", "1", "--keep-alive", "1"])
        try await server.waitUntilReady(workers: 1)
        let port = server.port
        // A byte of a request head every 100 ms: the whole head would take over 100 s.
        let trickle = Task {
            try await Crew.blocking { () -> Double in
                guard let fd = self.connectLocally(port) else { return -1 }
                defer { close(fd) }
                let start = ContinuousClock.now
                let head = Array("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8) + Array(repeating: 97, count: 1000)
                for var byte in head {
                    if send(fd, &byte, 1, Int32(MSG_NOSIGNAL)) != 1 { break }
                    usleep(100_000)
                    var probe: UInt8 = 0
                    let n = recv(fd, &probe, 1, Int32(MSG_DONTWAIT))
                    if n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK) { break }  // closed (or answered)
                }
                let elapsed = ContinuousClock.now - start
                return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        // Meanwhile a request waits for the only slot, in the backlog; it is answered once the trickler is cut off.
        let waiting = try await Crew.blocking { self.rawGet(port, "/") }
        #expect(waiting == "HTTP/1.1 200 OK")
        let seconds = try await trickle.value
        #expect(seconds > 0 && seconds < 30, "the trickling client was cut off after \(seconds) s")
        #expect(try await stop(server) == 0)
    }

    @Test(.timeLimit(.minutes(3)))
    func aWorkerWhoseHandlersBlockEveryThreadIsReplaced() async throws {
        let server = try Server(["--processes", "1", "--timeout", "2"])
        try await server.waitUntilReady(workers: 1)
        let port = server.port
        let blocked = server.workerPIDs
        // More blocking requests than Swift's concurrency pool has threads (one per core): the worker's heartbeat
        // task cannot run.
        let cores = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        let requests = (0..<(cores + 2)).map { _ in
            Task { try await Crew.blocking { self.rawGet(port, "/block?s=600") } }
        }
        // After --timeout without a beat the worker is sent SIGTERM, then SIGKILL, and another takes its place.
        try await server.waitUntilReady(workers: 2)
        #expect(server.text.contains("stopped beating (timeout 2.0 seconds)"), "\(server.text)")
        for request in requests { #expect(try await request.value == "") }
        #expect(rawGet(port, "/") == "HTTP/1.1 200 OK")
        #expect(blocked.count == 1 && blocked.allSatisfy { kill($0, 0) != 0 })
        #expect(try await stop(server) == 0)
    }

    @Test(.timeLimit(.minutes(3)))
    func aKilledWorkerEndsOnlyItsRequestsAndAnotherServesSoon() async throws {
        // Each worker with its own socket: the system spreads the connections over both.
        let server = try Server(["--processes", "2", "--concurrency", "100", "--reuse-port"])
        try await server.waitUntilReady(workers: 2)
        let port = server.port
        let slow = slowRequests(port)
        try await Task.sleep(for: .milliseconds(300))
        let victim = server.workerPIDs[0]
        kill(victim, SIGKILL)
        let killed = ContinuousClock.now
        try await server.waitUntilReady(workers: 3)
        let replaced = ContinuousClock.now - killed
        print("a worker killed with SIGKILL was replaced, ready, in \(replaced)")
        // Within a second unloaded; the bound leaves room for a loaded machine.
        #expect(replaced < .seconds(5))
        let (answered, failed) = try await outcome(of: slow)
        // Only the killed worker's requests failed; every other one was answered by the other worker.
        #expect(failed >= 1 && !answered.isEmpty, "failed \(failed), answered \(answered.count)")
        #expect(answered.allSatisfy { !$0.contains("in pid \(victim)\n") })
        #expect(rawGet(port, "/") == "HTTP/1.1 200 OK")
        #expect(try await stop(server) == 0)
    }

    @Test(.timeLimit(.minutes(3)))
    func cpuWorkSpreadsOverTheProcesses() async throws {
        // The shared socket (no --reuse-port): the workers take the connections between them.
        let server = try Server(["--processes", "2"])
        try await server.waitUntilReady(workers: 2)
        let pids = server.workerPIDs
        let before = pids.map(cpuSeconds)
        let url = "http://127.0.0.1:\(server.port)/cpu?n=20000000"
        let (codes, _) = try curlParallel(Array(repeating: url, count: 16))
        #expect(codes.count == 16 && codes.allSatisfy { $0 == "200" }, "\(codes)")
        let used = zip(pids.map(cpuSeconds), before).map { $0 - $1 }
        // Both processes did a share of the work: on two cores, throughput grows with --processes (crew-bench's
        // http.cpu-16.processes row measures how much).
        let total = used.reduce(0, +)
        #expect(total > 0 && used.allSatisfy { $0 > total * 0.15 }, "CPU seconds per worker: \(used)")
        #expect(try await stop(server) == 0)
    }

    /// A process's CPU time (user and system), in seconds.
    func cpuSeconds(_ pid: Int32) -> Double {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return 0 }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After the command: state (0), ppid (1), ... utime (11), stime (12), in clock ticks.
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    @Test(.timeLimit(.minutes(3)))
    func aReloadUnderLoadFailsNoRequest() async throws {
        let server = try Server(["--processes", "2", "--concurrency", "100"])
        try await server.waitUntilReady(workers: 2)
        let old = Set(server.workerPIDs)
        let url = "http://127.0.0.1:\(server.port)/io?ms=20"
        // Rounds of 50 requests at once, for about two seconds, with a reload (SIGHUP) in the middle.
        let load = Task.detached { () -> [String] in
            var codes: [String] = []
            for _ in 0..<40 { codes += try self.curlParallel(Array(repeating: url, count: 50)).codes }
            return codes
        }
        try await Task.sleep(for: .milliseconds(500))
        kill(server.process.processIdentifier, SIGHUP)
        let codes = try await load.value
        #expect(codes.count == 2_000)
        #expect(codes.allSatisfy { $0 == "200" }, "\(Dictionary(grouping: codes) { $0 }.mapValues(\.count))")
        // The new generation serves; the old one has gone.
        try await server.waitUntilReady(workers: 4)
        let new = Set(server.workerPIDs).subtracting(old)
        #expect(new.count == 2)
        let oldGone = try await allExit(Array(old))
        #expect(oldGone, "old workers still running: \(old)")
        #expect(server.text.contains("generation 2 is ready"))
        #expect(try await stop(server) == 0)
    }

    @Test(.timeLimit(.minutes(3)))
    func aWorkerIsReplacedAfterItsRequestLimit() async throws {
        let server = try Server(["--processes", "1", "--max-requests", "5", "--max-requests-jitter", "2"])
        try await server.waitUntilReady(workers: 1)
        // Kept-alive or not, every request is answered; a worker serves 5 to 7 of them, then another takes over.
        let (codes, _) = try curlParallel(Array(repeating: "http://127.0.0.1:\(server.port)/io?ms=0", count: 1))
        #expect(codes == ["200"])
        var pids: [String] = []
        for _ in 0..<19 {
            let port = server.port
            let response = try await Crew.blocking { self.rawResponse(port, "/io?ms=0") }
            #expect(response.hasPrefix("HTTP/1.1 200"), "\(response)")
            pids += response.split(separator: " ").last.map { [String($0.dropLast())] } ?? []
        }
        let workers = Set(pids)
        #expect(workers.count >= 3, "pids: \(pids)")
        for _ in 0..<100 where server.matches("worker (\\d+) exited on its own").count < 2 {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(server.matches("worker (\\d+) exited on its own").count >= 2, "\(server.text)")
        #expect(try await stop(server) == 0)
    }

    @Test(.timeLimit(.minutes(3)))
    func aUnixSocketIsOwnerOnlyAndThePIDFileIsKeptWhileItRuns() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("crew-serve-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let socketPath = directory + "/serve.sock"
        let pidPath = directory + "/serve.pid"
        let server = try Server(["--processes", "1", "--pid", pidPath], bind: "unix:" + socketPath)
        try await server.waitUntilReady(workers: 1)
        var status = stat()
        #expect(stat(socketPath, &status) == 0 && status.st_mode & 0o777 == 0o600, "mode \(status.st_mode & 0o777)")
        let pid = try String(contentsOfFile: pidPath, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(pid == "\(server.process.processIdentifier)")
        let curl = Process()
        curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        curl.arguments = ["--silent", "--max-time", "10", "--unix-socket", socketPath, "http://x/"]
        let out = Pipe()
        curl.standardOutput = out
        try curl.run()
        let body = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        curl.waitUntilExit()
        #expect(body == "Hello, World!\n")
        #expect(try await stop(server) == 0)
        #expect(!FileManager.default.fileExists(atPath: pidPath))
    }

    @Test(.timeLimit(.minutes(3)))
    func termLetsRequestsInFlightFinishAndQuitDoesNot() async throws {
        for (signal, answered) in [(SIGTERM, true), (SIGQUIT, false)] {
            let server = try Server(["--processes", "2", "--reuse-port"])
            try await server.waitUntilReady(workers: 2)
            let slow = slowRequests(server.port)
            try await Task.sleep(for: .milliseconds(300))
            kill(server.process.processIdentifier, signal)
            let (done, failed) = try await outcome(of: slow)
            if answered {
                #expect(done.count == 20 && failed == 0, "SIGTERM: \(done.count) answered, \(failed) failed")
            } else {
                #expect(done.isEmpty && failed == 20, "SIGQUIT: \(done.count) answered, \(failed) failed")
            }
            for _ in 0..<200 where server.process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
            #expect(!server.process.isRunning && server.process.terminationStatus == 0, "\(server.text)")
            #expect(server.workerPIDs.allSatisfy { kill($0, 0) != 0 })
        }
    }

    @Test(.timeLimit(.minutes(3)))
    func ttinAndTtouAddAndRemoveAWorker() async throws {
        let server = try Server(["--processes", "1"])
        try await server.waitUntilReady(workers: 1)
        kill(server.process.processIdentifier, SIGTTIN)
        try await server.waitUntilReady(workers: 2)
        let pids = server.workerPIDs
        #expect(pids.count == 2 && pids.allSatisfy { kill($0, 0) == 0 })
        kill(server.process.processIdentifier, SIGTTOU)
        // The oldest worker goes; the newer one serves on.
        let gone = try await allExit([pids[0]])
        #expect(gone && kill(pids[1], 0) == 0, "\(server.text)")
        let port = server.port
        #expect(try await Crew.blocking { self.rawGet(port, "/") } == "HTTP/1.1 200 OK")
        #expect(try await stop(server) == 0)
    }

    @Test(.timeLimit(.minutes(3)))
    func anIdleKeptAliveConnectionIsClosedAfterTheKeepAliveTime() async throws {
        let server = try Server(["--processes", "1", "--keep-alive", "1"])
        try await server.waitUntilReady(workers: 1)
        let port = server.port
        let closedAfter = try await Crew.blocking { () -> Double in
            guard let fd = self.connectLocally(port) else { return -1 }
            defer { close(fd) }
            let request = Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)
            _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            var timeout = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var chunk = [UInt8](repeating: 0, count: 4096)
            guard chunk.withUnsafeMutableBytes({ recv(fd, $0.baseAddress, $0.count, 0) }) > 0 else { return -2 }
            // Answered and kept alive; now idle until the server closes it.
            let start = ContinuousClock.now
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            let elapsed = ContinuousClock.now - start
            return n == 0 ? Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18 : -3
        }
        #expect(closedAfter > 0.5 && closedAfter < 10, "closed after \(closedAfter) s")
        #expect(try await stop(server) == 0)
    }

    @Test(.timeLimit(.minutes(3)))
    func killingTheSupervisorEndsEveryWorker() async throws {
        let server = try Server(["--processes", "2"])
        try await server.waitUntilReady(workers: 2)
        let pids = server.workerPIDs
        #expect(pids.count == 2)
        kill(server.process.processIdentifier, SIGKILL)
        let gone = try await allExit(pids)
        #expect(gone, "workers outlived their supervisor: \(pids)")
    }

    @Test func badCommandLinesAreRefusedWithTheReason() throws {
        for (arguments, reason) in [
            (["--processes", "0"], "processes must be at least 1"),
            (["--bind", "nowhere"], "is not an address"),
            (["--bind", "0.0.0.0:8000"], "reachable from other machines"),
            (["--log-level", "loud"], "--log-level must be one of"),
            (["--timeout", "inf"], "--timeout must be a number of seconds"),
            (["--keep-alive", "0"], "--keep-alive must be more than 0"),
            (["--unix-mode", "999"], "--unix-mode must be an octal mode"),
            (["--bind", "unix:/tmp/crew-x.sock", "--reuse-port"], "a unix: socket's file can be bound by one only"),
            (["--bind", "127.example.com:80"], "reachable from other machines"),
        ] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: CrewTesting.productsDirectory + "/crew-demo")
            process.arguments = ["serve"] + arguments
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            #expect(process.terminationStatus != 0, "\(arguments)")
            #expect(text.contains(reason), "\(arguments): \(text)")
        }
    }
}
