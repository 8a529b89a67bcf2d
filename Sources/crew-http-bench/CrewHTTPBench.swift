#if HTTP
    import ArgumentParser
    import Crew
    import CrewDemoRoutes
    import CrewHTTP
    import Hummingbird
    import Logging

    /// The servers of crew-bench's HTTP rows, in one program so that both run the same code for the same routes:
    /// `serve` is Crew's prefork server, `bare` a Hummingbird application in one process (the floor Crew adds its
    /// supervisor and workers to).
    @main
    enum Main {
        static func main() async throws {
            // First: a worker is this program started again, and runs its function here.
            try Crew.bootstrap(CrewHTTPBench.serveWorker)
            await CrewHTTPBench.main(nil)
        }
    }

    struct CrewHTTPBench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "crew-http-bench",
            abstract: "The servers crew-bench drives with wrk: Crew's prefork server and a bare Hummingbird app.",
            subcommands: [Serve.self, Bare.self]
        )

        static let serveWorker = Crew.HTTPServer.worker("crew-http-bench.serve") {
            DemoRoutes.router().buildResponder()
        }

        struct Serve: AsyncParsableCommand {
            static let configuration = CommandConfiguration(abstract: "Crew's prefork server (crew-demo serve's).")

            @OptionGroup var serve: Crew.HTTPServer.ServeOptions

            func run() async throws {
                var logger = Logger(label: "crew.http")
                logger.logLevel = serve.level
                try await Crew.HTTPServer(worker: CrewHTTPBench.serveWorker, options: serve.options, logger: logger)
                    .run()
            }
        }

        struct Bare: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "A Hummingbird application in one process, on 127.0.0.1.")

            @Option(help: "The port.") var port: Int
            @Option(help: "The listening socket's backlog.") var backlog = 2048

            func run() async throws {
                var logger = Logger(label: "bare")
                logger.logLevel = .warning
                let app = Application(
                    router: DemoRoutes.router(),
                    configuration: .init(address: .hostname("127.0.0.1", port: port), backlog: backlog),
                    logger: logger
                )
                try await app.runService()
            }
        }
    }
#else
    @main
    enum CrewHTTPBench {
        static func main() {
            print("crew-http-bench needs Crew's HTTP trait")
        }
    }
#endif
