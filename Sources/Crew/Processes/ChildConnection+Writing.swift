// The writing paths of a child's connection: a caller sends on its own thread while it holds the right to write;
// when the socket is full, the reactor takes the rest (and the right) and sends as room comes. The machine says who
// holds the right and what was queued meanwhile.

import CCrewShims
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension ChildConnection {
    /// Sends `bytes` and then whatever the machine says was queued meanwhile; if the socket is full, hands the
    /// rest to the reactor.
    func sendFromCaller(_ first: [UInt8]) {
        var bytes = first
        while true {
            var offset = 0
            switch sendSome(bytes, from: &offset) {
            case .done:
                let next = state.withLock { $0.machine.sendFinished() }
                if case .send(let more)? = next.first {
                    bytes = more
                    continue
                }
                perform(next)
            case .wouldBlock:
                perform(state.withLock { $0.machine.sendBlocked(rest: Array(bytes[offset...])) })
            case .broken:
                perform(state.withLock { $0.machine.sendBroken() })
            }
            return
        }
    }

    /// Sends while the reactor holds the right to write: first what a caller could not send, then what the
    /// machine says was queued since; keeps watching for room while the socket is full.
    func flushFromReactor() {
        while true {
            if flushOffset >= flushBuffer.count {
                let next = state.withLock { $0.machine.sendFinished() }
                if case .send(let more)? = next.first {
                    flushBuffer = more
                    flushOffset = 0
                    continue
                }
                flushBuffer = []
                flushOffset = 0
                perform(next)
                armSocket()
                return
            }
            switch sendSome(flushBuffer, from: &flushOffset) {
            case .done:
                continue
            case .wouldBlock:
                armSocket()
                return
            case .broken:
                flushBuffer = []
                flushOffset = 0
                perform(state.withLock { $0.machine.sendBroken() })
                armSocket()
                return
            }
        }
    }

    enum SendOutcome {
        case done, wouldBlock, broken
    }

    /// Sends as much of `bytes[offset...]` as the socket takes, advancing `offset` (never copying the rest).
    func sendSome(_ bytes: [UInt8], from offset: inout Int) -> SendOutcome {
        while offset < bytes.count {
            let from = offset
            let n = bytes.withUnsafeBytes { raw in
                send(socket, raw.baseAddress! + from, raw.count - from, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && errno == EAGAIN {
                return .wouldBlock
            } else {
                // EPIPE or ECONNRESET: the child is gone; its pidfd will say how.
                return .broken
            }
        }
        return .done
    }
}
