package dev.poolgoaway.testkit;

import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.Optional;

/**
 * Facts about one client connection through a {@link GoAwayProxy}, as of the moment they were read.
 *
 * @param id            the proxy's number for the connection, from 1
 * @param client        the client's address
 * @param upstream      the server it was forwarded to; null while the client's startup has not chosen one yet
 * @param backendPid    the upstream backend's pid (0 until BackendKeyData)
 * @param protocolMinor the protocol minor version the client asked for (0, 2, 3, ...)
 * @param goAwayCapable whether the proxy's {@link GoAwayProxy.Dialect} sends this client GoAway: it asked for 3.3,
 *                      or for the GoAway extension, as the dialect wants
 * @param tls           whether the client side is TLS
 * @param bytesToServer bytes forwarded client to server
 * @param bytesToClient bytes forwarded server to client, plus what the proxy injected
 * @param connectedAt   when the client connected
 * @param goAwaySentAt  when the proxy sent it GoAway, if it did
 * @param closedAt      when the connection ended, if it has
 */
public record ProxiedConnection(long id, InetSocketAddress client, InetSocketAddress upstream, int backendPid,
        int protocolMinor, boolean goAwayCapable, boolean tls, long bytesToServer, long bytesToClient,
        Instant connectedAt,
        Optional<Instant> goAwaySentAt, Optional<Instant> closedAt) {

    /** @return true while the connection is open */
    public boolean open() {
        return closedAt.isEmpty();
    }
}
