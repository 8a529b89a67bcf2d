// CrewPostgres is built on postgres-nio, which Crew's package resolves only with its `PostgreSQL` trait (on by
// default).
#if !PostgreSQL
    #error(
        "CrewPostgres needs Crew's PostgreSQL trait: depend on Crew with `traits: [\"PostgreSQL\"]` (or its default traits)"
    )
#endif
