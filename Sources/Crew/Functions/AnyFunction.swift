/// A registered function of any argument and result type, as ``Crew/bootstrap(_:options:)-(Crew.AnyFunction...,_)``
/// takes them. ``Crew/Function`` is the conforming type.
public protocol AnyFunction: Sendable {
    /// The name the function is registered under.
    var name: String { get }
    /// How a child process runs the function from encoded arguments.
    var registration: FunctionRegistration { get }
}
