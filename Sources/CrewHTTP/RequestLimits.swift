import Crew
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Answers requests over a worker's request-line and body limits before they reach the app, and closes their
/// connections: 414 for a request line over `--limit-request-line`, 413 for a declared body over
/// `--limit-request-body` (a body sent in chunks that grows past the limit is cut off with its connection).
///
/// NIO's decoder bounds the whole head (`--limit-request-head`), each field and the number of fields; this handler,
/// after it, adds the two limits it does not have.
final class RequestLimits: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let requestLine: Int
    private let body: Int
    private var bodyBytes = 0
    /// Set once a request is refused: nothing more is read from the connection.
    private var refused = false

    /// - Parameters:
    ///   - requestLine: The longest request line in bytes (method, target and version); 0: no limit.
    ///   - body: The largest body in bytes; 0: no limit.
    init(requestLine: Int, body: Int) {
        self.requestLine = requestLine
        self.body = body
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !refused else { return }
        switch unwrapInboundIn(data) {
        case .head(let request):
            bodyBytes = 0
            // "GET /path HTTP/1.1": the method, the target, the version and two spaces.
            let line = request.method.rawValue.utf8.count + (request.path?.utf8.count ?? 0) + 10
            if requestLine > 0 && line > requestLine {
                return refuse(context, .uriTooLong)
            }
            if body > 0, let declared = request.headerFields[.contentLength].flatMap({ Int($0) }), declared > body {
                return refuse(context, .contentTooLarge)
            }
        case .body(let bytes):
            bodyBytes += bytes.readableBytes
            if body > 0 && bodyBytes > body {
                // The app has the request already: its body stream ends with an error, and the connection closes.
                refused = true
                context.fireErrorCaught(
                    CrewError(.invalidArgument, "a request body grew past the limit of \(body) bytes"))
                context.close(promise: nil)
                return
            }
        case .end:
            break
        }
        context.fireChannelRead(data)
    }

    private func refuse(_ context: ChannelHandlerContext, _ status: HTTPResponse.Status) {
        refused = true
        let head = HTTPResponse(status: status, headerFields: [.connection: "close", .contentLength: "0"])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
    }
}
