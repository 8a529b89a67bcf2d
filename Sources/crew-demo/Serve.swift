#if HTTP
    import ArgumentParser
    import Crew
    import CrewHTTP
    import Logging

    extension CrewDemo {
        /// Seed 3.2's twin: the demo's router served by supervised worker processes.
        struct Serve: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Serves the demo's routes from supervised worker processes (seed 3.2: gunicorn, uWSGI).",
                discussion: """
                    Routes: / (hello), /io?ms=N (awaits N ms), /cpu?n=N (N rounds of arithmetic), /trap (an index \
                    out of range: only that worker's requests fail), /block?s=N (a blocking sleep: once every \
                    thread is held, the worker stops beating and is replaced). Signals, as gunicorn's: TERM or INT stop \
                    gracefully, QUIT at once, HUP reloads, TTIN and TTOU add and remove a worker.
                    """
            )

            @OptionGroup var serve: Crew.HTTPServer.ServeOptions

            func run() async throws {
                var logger = Logger(label: "crew.http")
                logger.logLevel = serve.level
                let server = try Crew.HTTPServer(worker: Seed32.serve, options: serve.options, logger: logger)
                try await server.run()
            }
        }
    }
#endif
