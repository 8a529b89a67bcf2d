// CrewHTTP is built on Hummingbird and SwiftNIO, which Crew's package resolves only with its `HTTP` trait (on by
// default).
#if !HTTP
    #error("CrewHTTP needs Crew's HTTP trait: depend on Crew with `traits: [\"HTTP\"]` (or its default traits)")
#endif
