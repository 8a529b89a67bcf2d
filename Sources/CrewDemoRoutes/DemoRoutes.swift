#if HTTP
    public import Hummingbird

    #if canImport(Glibc)
        import Glibc
    #endif

    /// The routes of `crew-demo serve` (seed 3.2's app), which crew-bench's HTTP rows serve too (and
    /// bench/peers/wsgi_app.py for the Python servers).
    public enum DemoRoutes {
        /// The routes: `/` (hello), `/io?ms=N` (awaits N ms, standing for a database or an outbound call),
        /// `/cpu?n=N` (N rounds of arithmetic), `POST /echo` (reads the body, up to 1 MiB, and says its size),
        /// `/trap` (an index out of range: the worker dies, the server does not) and `/block?s=N` (sleeps N s without awaiting, a blocking call that holds a thread of Swift's
        /// concurrency pool: once they are all held, the worker stops beating and the supervisor replaces it).
        public static func router() -> Router<BasicRequestContext> {
            let router = Router()
            router.get("/") { _, _ in "Hello, World!\n" }
            router.get("/io") { request, _ -> String in
                let ms = request.uri.queryParameters.get("ms", as: Int.self) ?? 100
                guard (0...60_000).contains(ms) else { throw HTTPError(.badRequest, message: "ms must be 0...60000") }
                try await Task.sleep(for: .milliseconds(ms))
                return "waited \(ms) ms in pid \(getpid())\n"
            }
            router.get("/cpu") { request, _ -> String in
                let n = request.uri.queryParameters.get("n", as: Int.self) ?? 100_000
                guard (0...100_000_000).contains(n) else {
                    throw HTTPError(.badRequest, message: "n must be 0...100000000")
                }
                return "\(work(n))\n"
            }
            router.post("/echo") { request, _ -> String in
                let body = try await request.body.collect(upTo: 1 << 20)
                return "\(body.readableBytes) bytes\n"
            }
            router.get("/block") { request, _ -> String in
                let seconds = request.uri.queryParameters.get("s", as: UInt32.self) ?? 60
                guard seconds <= 3600 else { throw HTTPError(.badRequest, message: "s must be 0...3600") }
                sleep(seconds)  // What not to do in a handler: no other task runs on this thread meanwhile.
                return "slept \(seconds) s in pid \(getpid())\n"
            }
            router.get("/trap") { request, _ -> String in
                let index = request.uri.queryParameters.get("i", as: Int.self) ?? 3
                let values = [1, 2, 3]
                return "\(values[index])\n"  // Out of range: the worker traps.
            }
            return router
        }

        /// A sum that the optimizer cannot fold away (bench/peers/wsgi_app.py computes the same, and checks one
        /// value).
        public static func work(_ n: Int) -> UInt64 {
            var x: UInt64 = 0x9E37_79B9_7F4A_7C15
            var sum: UInt64 = 0
            for i in 0..<n {
                x ^= x << 13
                x ^= x >> 7
                x ^= x << 17
                sum &+= x &* UInt64(truncatingIfNeeded: i)
            }
            return sum
        }
    }
#endif
