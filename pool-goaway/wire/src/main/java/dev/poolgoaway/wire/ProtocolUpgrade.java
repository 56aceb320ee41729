package dev.poolgoaway.wire;

import java.time.Duration;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Asks the server for protocol 3.3 on pgjdbc's behalf, and backs off where a server or pooler refuses it.
 *
 * <p>The server sends GoAway only to 3.3 clients, and pgjdbc 42.7 asks for 3.0 or 3.2. When pgjdbc asks for 3.2
 * the StartupMessage goes out as 3.3; {@link BackendFilter} then translates the server's answer so pgjdbc sees
 * exactly what its own request would have produced. A request pinned to 3.0 goes out unchanged.
 *
 * <p>Some poolers (and servers from before NegotiateProtocolVersion existed) reject an unknown minor version with
 * an ErrorResponse ({@code 0A000} or {@code 08P01} whose message speaks of the protocol) instead of negotiating.
 * Such a peer is remembered for {@link #REMEMBER_REFUSAL}, logged once, and meanwhile gets pgjdbc's own request.
 * The memory expires so that a pooler upgraded in place is asked again.
 */
final class ProtocolUpgrade {

    private static final Logger log = LoggerFactory.getLogger(ProtocolUpgrade.class);

    /** The first protocol minor version whose servers send GoAway. */
    static final int GOAWAY_MINOR = 3;
    /** pgjdbc's newest protocol minor version: a request for it is the one we raise. */
    static final int PGJDBC_MINOR = 2;
    /** Peers remembered as refusing 3.3; a bound so that a storm of distinct hosts cannot grow it forever. */
    static final int MAX_REMEMBERED_PEERS = 10_000;
    /** How long a refusal is remembered. */
    static final Duration REMEMBER_REFUSAL = Duration.ofHours(1);

    private static final String FEATURE_NOT_SUPPORTED = "0A000";
    private static final String PROTOCOL_VIOLATION = "08P01";

    /** Peer ({@code host:port}) to the {@link System#nanoTime()} its refusal expires at. */
    private final Map<String, Long> refusingPeers;

    /** The process-wide instance: what one connection learned about a peer spares the next. */
    static final ProtocolUpgrade SHARED = new ProtocolUpgrade(new ConcurrentHashMap<>());

    ProtocolUpgrade(Map<String, Long> refusingPeers) {
        this.refusingPeers = refusingPeers;
    }

    /**
     * Decides the protocol version to send for one StartupMessage.
     *
     * @param peer           the server, as {@code host:port}
     * @param requestedMinor what pgjdbc asked for
     * @return the attempt, to be told the server's first reply
     */
    Attempt begin(String peer, int requestedMinor) {
        boolean raise = requestedMinor == PGJDBC_MINOR && !refuses(peer);
        return new Attempt(peer, requestedMinor, raise ? GOAWAY_MINOR : requestedMinor);
    }

    /**
     * An attempt that sends exactly what pgjdbc asked for: the replay after a refusal.
     *
     * @param peer           the server, as {@code host:port}
     * @param requestedMinor what pgjdbc asked for
     * @return the attempt
     */
    Attempt asRequested(String peer, int requestedMinor) {
        return new Attempt(peer, requestedMinor, requestedMinor);
    }

    /** @return true if {@code peer} was seen refusing protocol 3.3 */
    boolean refuses(String peer) {
        Long until = refusingPeers.get(peer);
        if (until == null) {
            return false;
        }
        if (System.nanoTime() - until < 0) {
            return true;
        }
        refusingPeers.remove(peer, until);
        return false;
    }

    /** One StartupMessage and the server's first reply to it. */
    final class Attempt {
        private final String peer;
        private final int requestedMinor;
        private final int sentMinor;
        private volatile boolean replySeen;

        private Attempt(String peer, int requestedMinor, int sentMinor) {
            this.peer = peer;
            this.requestedMinor = requestedMinor;
            this.sentMinor = sentMinor;
        }

        int requestedMinor() {
            return requestedMinor;
        }

        int sentMinor() {
            return sentMinor;
        }

        boolean rewritten() {
            return sentMinor != requestedMinor;
        }

        boolean replySeen() {
            return replySeen;
        }

        /** The server answered with something other than a negotiation: the version sent is in force. */
        void accepted(ConnectionSignals signals) {
            replySeen = true;
            signals.protocolMinor(sentMinor);
        }

        /** The server answered with NegotiateProtocolVersion: its version is in force. */
        void negotiated(int serverMinor, ConnectionSignals signals) {
            replySeen = true;
            signals.protocolMinor(serverMinor);
        }

        /**
         * The server's first reply was an ErrorResponse.
         *
         * @return true if it refused the version we raised: the peer is remembered and gets pgjdbc's own request
         *         from now on
         */
        boolean rejected(String sqlState, String message) {
            replySeen = true;
            // PgBouncer answers an unknown startup parameter with 08P01 too: only a complaint about the protocol
            // version counts, or one misconfigured connection would turn GoAway off for the peer.
            boolean versionRefused = (FEATURE_NOT_SUPPORTED.equals(sqlState) || PROTOCOL_VIOLATION.equals(sqlState))
                    && message.toLowerCase(Locale.ROOT).contains("protocol");
            if (!rewritten() || !versionRefused) {
                return false;
            }
            if (refusingPeers.size() < MAX_REMEMBERED_PEERS
                    && refusingPeers.put(peer, System.nanoTime() + REMEMBER_REFUSAL.toNanos()) == null) {
                log.warn("{} refused protocol 3.{} ({} {}); connections to it now ask for pgjdbc's 3.{} "
                        + "and cannot receive GoAway", peer, sentMinor, sqlState, LogText.sanitize(message),
                        requestedMinor);
            }
            return true;
        }
    }
}
