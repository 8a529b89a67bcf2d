#if HTTP
    import Crew
    import CrewHTTP
    import Hummingbird

    #if canImport(Glibc)
        import Glibc
    #endif

    /// Seed 3.2: the Django app deployed for IO-heavy requests, several processes of many coroutines each.
    ///
    /// ```
    /// $ uwsgi --gevent 100 --gevent-monkey-patch --http :8000 -M --processes 4 --wsgi-file wsgi.py
    /// $ gunicorn --worker-class=gevent wsgi:application -b 0.0.0.0:8000
    /// ```
    ///
    /// The twin: `crew-demo serve --bind 127.0.0.1:8000 --processes 4 --concurrency 100`, a supervisor of four
    /// worker processes serving this router, each with up to 100 requests at once.
    enum Seed32 {
        /// The routes: `/` (hello), `/io?ms=N` (awaits N ms, standing for a database or an outbound call),
        /// `/cpu?n=N` (N rounds of arithmetic) and `/trap` (an index out of range: the worker dies, the server
        /// does not).
        static func router() -> Router<BasicRequestContext> {
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
            router.get("/trap") { request, _ -> String in
                let index = request.uri.queryParameters.get("i", as: Int.self) ?? 3
                let values = [1, 2, 3]
                return "\(values[index])\n"  // Out of range: the worker traps.
            }
            return router
        }

        /// A sum that the optimizer cannot fold away.
        static func work(_ n: Int) -> UInt64 {
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

        static let serve = Crew.HTTPServer.worker("seed32.serve") { router().buildResponder() }

        static let functions: [any AnyFunction] = [serve]
    }
#endif
