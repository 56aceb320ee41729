package dev.poolgoaway.wire;

import java.io.IOException;
import java.net.Socket;

/**
 * A socket's two filtered streams, sharing one {@link BackendFilter}: what the server sends passes the filter on
 * its way to pgjdbc, what pgjdbc sends passes the {@link FrontendOutputStream}. The plain and the TLS socket each
 * make theirs on first use, over their own plaintext streams, recording into the connection's one
 * {@link ConnectionSignals}.
 *
 * @param in  the server's bytes, filtered
 * @param out pgjdbc's bytes, with the startup raised
 */
record FilteredStreams(BackendInputStream in, FrontendOutputStream out) {

    /**
     * @param socket      whose streams are filtered
     * @param peer        the server as {@code host:port}, for logs and the signals
     * @param canRetry    whether a failed startup may be replayed on a new connection
     * @param tls         the TLS layer under the plaintext, or null
     * @param reconnector opens a new connection for a replay
     * @param signals     the connection's signals
     * @param upgrade     the protocol versions to ask for
     * @param request     how GoAway is requested
     * @return the streams
     * @throws IOException if the socket's streams cannot be had
     */
    static FilteredStreams open(Socket socket, String peer, boolean canRetry, BackendInputStream.EncryptedTransport tls,
            BackendInputStream.Reconnector reconnector, ConnectionSignals signals, ProtocolUpgrade upgrade,
            GoAwayRequest request) throws IOException {
        BackendFilter filter = new BackendFilter(signals, peer, canRetry);
        BackendInputStream in = new BackendInputStream(socket.getInputStream(), filter, tls, reconnector);
        FrontendOutputStream out = new FrontendOutputStream(socket.getOutputStream(), filter, upgrade, peer, request);
        signals.poller(in);
        signals.server(peer);
        signals.peerAddress(socket.getInetAddress());
        return new FilteredStreams(in, out);
    }
}
