/// How a child ended, and the error that fails what it still held: its pid and exit status, the tail of its
/// standard error, whether it ever got as far as serving, and the protocol error that ended its connection, if any.
struct DeathReport: Equatable, Sendable {
    var pid: Int32
    var status: Crew.ExitStatus
    var lastStderr: String
    /// The child got as far as serving: it said hello (it reached `Crew.bootstrap`) and its initializer, if it
    /// had one, succeeded.
    var served: Bool
    /// It sent bytes that are not the protocol (it was killed for it).
    var protocolError: String?
    /// It said hello and was running its initializer (a pool's `initializer`) when it ended.
    var initializing = false

    /// The error for a call of `function` that the death fails (nil: for the owner, with no call in mind).
    func error(function: String?) -> CrewError {
        if let protocolError {
            return CrewError(
                .protocolError,
                "the connection to the child broke: \(protocolError)",
                pid: pid,
                exitStatus: status,
                lastStderr: lastStderr,
                function: function
            )
        }
        var message = "the child process \(pid) ended (\(status))"
        if let function { message += " before answering a call of \"\(function)\"" }
        if initializing {
            message += "; it was running its initializer and never served"
        } else if !served {
            message += "; it never started serving: does its main call Crew.bootstrap before anything else?"
        }
        return CrewError(
            .workerCrashed, message, pid: pid, exitStatus: status, lastStderr: lastStderr, function: function)
    }
}
