#if HTTP
    import Crew
    import CrewDemoRoutes
    import CrewHTTP
    import Hummingbird

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
        /// The routes (``DemoRoutes``): `/` (hello), `/io?ms=N` (awaits N ms), `/cpu?n=N`, `/trap` and `/block?s=N`.
        static func router() -> Router<BasicRequestContext> { DemoRoutes.router() }

        static let serve = Crew.HTTPServer.worker("seed32.serve") { router().buildResponder() }

        static let functions: [any AnyFunction] = [serve]
    }
#endif
