// The `Crew` type has the module's name, so `Crew.ProcessPool` would mean a member of the type, not the module's
// top-level type: these aliases make the qualified spelling work, for an app that declares a `ProcessPool` (or
// any of these names) of its own and needs to say which one it means.

extension Crew {
    /// ``ProcessPool``, by its qualified name.
    public typealias ProcessPool = Crew::ProcessPool
    /// ``ThreadPool``, by its qualified name.
    public typealias ThreadPool = Crew::ThreadPool
    /// ``CoroutinePool``, by its qualified name.
    public typealias CoroutinePool = Crew::CoroutinePool
    /// ``WorkerPool``, by its qualified name.
    public typealias WorkerPool = Crew::WorkerPool
    /// ``AsyncResult``, by its qualified name.
    public typealias AsyncResult = Crew::AsyncResult
    /// ``PoolResults``, by its qualified name.
    public typealias PoolResults = Crew::PoolResults
    /// ``AsyncEvent``, by its qualified name.
    public typealias AsyncEvent = Crew::AsyncEvent
    /// ``BlockingPool``, by its qualified name.
    public typealias BlockingPool = Crew::BlockingPool
    /// ``SharedValue``, by its qualified name.
    public typealias SharedValue = Crew::SharedValue
    /// ``SharedArray``, by its qualified name.
    public typealias SharedArray = Crew::SharedArray
    /// ``AnyFunction``, by its qualified name.
    public typealias AnyFunction = Crew::AnyFunction
    /// ``FunctionRegistration``, by its qualified name.
    public typealias FunctionRegistration = Crew::FunctionRegistration
}
