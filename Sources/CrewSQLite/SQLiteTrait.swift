// CrewSQLite is built on GRDB, which Crew's package resolves only with its `SQLite` trait (on by default).
#if !SQLite
    #error("CrewSQLite needs Crew's SQLite trait: depend on Crew with `traits: [\"SQLite\"]` (or its default traits)")
#endif
