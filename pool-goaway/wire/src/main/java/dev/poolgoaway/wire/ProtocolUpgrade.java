package dev.poolgoaway.wire;

import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Asks the server for protocol 3.3 on pgjdbc's behalf, and degrades to exactly pgjdbc's own request where a
 * server or a middlebox fails on it.
 *
 * <p>The server sends GoAway only to 3.3 clients, and pgjdbc 42.7 asks for 3.0 (its default) or 3.2. Either
 * request goes out as 3.3; {@link BackendFilter} then translates the answer so that pgjdbc sees what its own
 * request would have produced (no NegotiateProtocolVersion it did not expect, a 4-byte cancel key in a 3.0
 * session: see {@link CancelKeys}).
 *
 * <p>The raised request is an attempt. Real peers fail on it in ways no text match can cover: PgBouncer up to
 * 1.22 answers {@code FATAL 08P01 bad packet header}, pgpool-II 4.3 {@code ERROR backend response with kind 'v'
 * when expecting 'R'}, PostgreSQL 9.3 to 10.1 {@code FATAL 0A000 unsupported frontend protocol}, in the server's
 * language; pgpool-II in front of a server that grants 3.2 or later fails after authentication on the long
 * cancel key. So an attempt fails when the peer answers it with an ErrorResponse (or closes the connection)
 * before pgjdbc has answered any authentication challenge, or after a challenge-free authentication but before
 * the first ReadyForQuery; except for the answers the peer gives regardless of the version asked for
 * ({@link #NOT_ABOUT_THE_VERSION}). The owner then opens a new connection and replays pgjdbc's StartupMessage
 * byte for byte. No retry can cost a second failed login: a retry happens only before pgjdbc has sent any
 * credentials, and never for an authentication failure.
 *
 * <p>A peer is remembered as refusing only when the replay succeeds where the raised request failed (else the
 * failure was not about the version and the peer is asked again next time). It is remembered for
 * {@link #REMEMBER_REFUSAL}, so that a pooler upgraded in place is asked again, and logged once as a WARN.
 *
 * <p>One failure cannot be replayed: pgpool-II in front of a server that grants the raised version without a
 * NegotiateProtocolVersion fails on the long cancel key after pgjdbc answered a password challenge. That attempt
 * fails and the peer is remembered at once. So that it is never the first connection to a peer (a HikariCP pool
 * with its default {@code initializationFailTimeout} would not start), a raised attempt to a peer no startup of this
 * process has completed at yet is given up at the peer's first authentication challenge, before pgjdbc sees it, and
 * pgjdbc's own request is replayed on a new connection; the peer is then {@linkplain #seen(String) seen}, and later
 * connections to it answer their challenges on the raised request. Peers that authenticate without a challenge need
 * no such care: their failures are all replayable.
 */
final class ProtocolUpgrade {

    private static final Logger log = LoggerFactory.getLogger(ProtocolUpgrade.class);

    /** The first protocol minor version whose servers send GoAway. */
    static final int GOAWAY_MINOR = 3;
    /** The protocol minor versions pgjdbc 42.7 asks for (3.0, its default, and 3.2): the requests we raise. */
    private static final Set<Integer> RAISED_MINORS = Set.of(0, 2);
    /** Peers remembered as refusing 3.3; a bound so that a storm of distinct hosts cannot grow it forever. */
    static final int MAX_REMEMBERED_PEERS = 10_000;
    /** How long a refusal is remembered. */
    static final Duration REMEMBER_REFUSAL = Duration.ofHours(1);

    /**
     * First replies a peer gives whatever version it is asked for: authentication failures (class 28), an unknown
     * database, too many connections, a server starting up or shutting down. Retrying those would only repeat
     * them (or, for a server that locks accounts, count against the user).
     */
    private static final Set<String> NOT_ABOUT_THE_VERSION = Set.of("3D000", "53300", "57P03");

    /** Peer ({@code host:port}) to the {@link System#nanoTime()} its refusal expires at. */
    private final Map<String, Long> refusingPeers;
    /**
     * Peers a startup of this process completed at (any request, raised or not), least recently used first,
     * each with whether the last startup there could receive GoAway; at most {@link #MAX_REMEMBERED_PEERS}, the least
     * recent making room. Only their challenges are answered on a raised request.
     */
    private final Map<String, Boolean> seenPeers = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
            return size() > MAX_REMEMBERED_PEERS;
        }
    };

    /** The process-wide instance: what one connection learned about a peer spares the next. */
    static final ProtocolUpgrade SHARED = new ProtocolUpgrade(new HashMap<>());

    ProtocolUpgrade(Map<String, Long> refusingPeers) {
        this.refusingPeers = refusingPeers;
    }

    /**
     * Decides what to send for one StartupMessage: the protocol version, and whether to add the GoAway extension.
     *
     * @param peer           the server, as {@code host:port}
     * @param requestedMinor what pgjdbc asked for
     * @param replayable     whether the request could be replayed, should the raised one fail
     * @param request        how GoAway is asked for
     * @return the attempt, to be told the server's replies
     */
    Attempt begin(String peer, int requestedMinor, boolean replayable, GoAwayRequest request) {
        GoAwayRequest.Mode mode = request.mode();
        if (!replayable || !RAISED_MINORS.contains(requestedMinor) || mode == GoAwayRequest.Mode.OFF
                || refuses(peer)) {
            return new Attempt(peer, requestedMinor, requestedMinor, null, null, false);
        }
        int sent = mode.protocol ? GOAWAY_MINOR : Math.max(requestedMinor, GoAwayRequest.EXTENSION_MINOR);
        return new Attempt(peer, requestedMinor, sent, mode.extension ? request.extension() : null, null,
                !seen(peer));
    }

    /** {@link #begin(String, int, boolean, GoAwayRequest)} with the default request (both ways). */
    Attempt begin(String peer, int requestedMinor, boolean replayable) {
        return begin(peer, requestedMinor, replayable, GoAwayRequest.DEFAULT);
    }

    /**
     * The replay after a failed attempt: exactly what pgjdbc asked for.
     *
     * @param failed the attempt that failed
     * @return the replay's attempt
     */
    Attempt replay(Attempt failed) {
        return new Attempt(failed.peer, failed.requestedMinor, failed.requestedMinor, null, failed, false);
    }

    /** @return true if a startup of this process completed at {@code peer} (its first challenge was answered) */
    boolean seen(String peer) {
        synchronized (seenPeers) {
            return seenPeers.containsKey(peer);
        }
    }

    private void sawReady(String peer, boolean goAwayCapable) {
        synchronized (seenPeers) {
            seenPeers.put(peer, goAwayCapable);
        }
    }

    /**
     * @param peer {@code host:port}
     * @return true if the last startup of this process completed at {@code peer} can receive GoAway and the peer
     *         is not remembered as refusing: a new connection there would ask for GoAway and get it
     */
    boolean grantsGoAway(String peer) {
        synchronized (seenPeers) {
            if (!Boolean.TRUE.equals(seenPeers.get(peer))) {
                return false;
            }
        }
        return !refuses(peer);
    }

    /** @return how many peers are remembered as seen (bounded by {@link #MAX_REMEMBERED_PEERS}) */
    int seenPeers() {
        synchronized (seenPeers) {
            return seenPeers.size();
        }
    }

    /** @return true if {@code peer} was seen refusing protocol 3.3 */
    boolean refuses(String peer) {
        synchronized (refusingPeers) {
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
    }

    /**
     * @param sqlState an ErrorResponse's SQLSTATE
     * @return true if a peer answers so whatever protocol version it is asked for
     */
    static boolean notAboutTheVersion(String sqlState) {
        return sqlState.startsWith("28") || NOT_ABOUT_THE_VERSION.contains(sqlState);
    }

    /** @return how many peers are remembered as refusing 3.3 (expired ones included until the next insert) */
    int rememberedPeers() {
        synchronized (refusingPeers) {
            return refusingPeers.size();
        }
    }

    private void remember(Attempt failed) {
        long now = System.nanoTime();
        Long previous;
        synchronized (refusingPeers) {
            // Self-cleaning: expired refusals go on every insert, and at the bound the oldest makes room.
            refusingPeers.values().removeIf(until -> now - until >= 0);
            if (!refusingPeers.containsKey(failed.peer) && refusingPeers.size() >= MAX_REMEMBERED_PEERS) {
                refusingPeers.entrySet().stream().min(Map.Entry.comparingByValue())
                        .ifPresent(oldest -> refusingPeers.remove(oldest.getKey()));
            }
            previous = refusingPeers.put(failed.peer, now + REMEMBER_REFUSAL.toNanos());
        }
        if (previous == null) {
            log.warn("{} failed on protocol 3.{} ({}){}: for the next {} minutes connections to it use pgjdbc's "
                    + "request unchanged, and cannot receive GoAway there (a pooler or an old server in between? "
                    + "see pool-goaway's docs/compatibility.md)",
                    failed.peer, failed.sentMinor, failed.failure, failed.afterChallenge
                            ? " after pgjdbc answered its authentication challenge, so that connection attempt "
                                    + "failed"
                            : " but accepts pgjdbc's own 3." + failed.requestedMinor + " request",
                    REMEMBER_REFUSAL.toMinutes());
        }
    }

    /** One StartupMessage and the server's replies to it, up to the session's first ReadyForQuery. */
    final class Attempt {
        private final String peer;
        private final int requestedMinor;
        private final int sentMinor;
        /** The GoAway extension's startup parameter, if the attempt adds it; else null. */
        private final String extension;
        /** For a replay: the raised attempt that failed. */
        private final Attempt replayOf;
        /** Whether the peer is new to this process: the attempt gives up at its first challenge. */
        private final boolean firstToPeer;
        /** Set when the attempt was given up at a challenge: its replay proves nothing about the version. */
        private volatile boolean givenUp;
        private volatile boolean replySeen;
        /** What went wrong, for the log: set when the attempt fails. */
        private volatile String failure;
        /** Whether it failed after pgjdbc answered a challenge: no replay was possible. */
        private volatile boolean afterChallenge;
        private volatile boolean ready;

        private Attempt(String peer, int requestedMinor, int sentMinor, String extension, Attempt replayOf,
                boolean firstToPeer) {
            this.firstToPeer = firstToPeer;
            this.peer = peer;
            this.requestedMinor = requestedMinor;
            this.sentMinor = sentMinor;
            this.extension = extension;
            this.replayOf = replayOf;
        }

        /** @return the GoAway extension's startup parameter if the attempt adds it, else null */
        String extension() {
            return extension;
        }

        int requestedMinor() {
            return requestedMinor;
        }

        int sentMinor() {
            return sentMinor;
        }

        /** @return true if the request went out changed: the attempt may fail and be replayed */
        boolean raised() {
            return sentMinor != requestedMinor || extension != null;
        }

        /**
         * @param extensionRefused whether the server listed the extension as unsupported
         * @param serverMinor      the protocol minor version in force
         * @return how GoAway was granted on this connection
         */
        GoAwayGrant grant(int serverMinor, boolean extensionRefused) {
            if (sentMinor >= GOAWAY_MINOR && serverMinor >= GOAWAY_MINOR) {
                return GoAwayGrant.PROTOCOL_3_3;
            }
            return extension != null && !extensionRefused ? GoAwayGrant.EXTENSION : GoAwayGrant.NONE;
        }

        boolean replySeen() {
            return replySeen;
        }

        /** The server answered with something other than a negotiation or an error: all it was sent is in force. */
        void accepted(ConnectionSignals signals) {
            firstReply();
            signals.protocol(sentMinor, grant(sentMinor, false));
        }

        /**
         * The server answered with NegotiateProtocolVersion: its version is in force, and the options it lists are
         * not.
         */
        void negotiated(int serverMinor, boolean extensionRefused, ConnectionSignals signals) {
            firstReply();
            signals.protocol(serverMinor, grant(serverMinor, extensionRefused));
        }

        private void firstReply() {
            replySeen = true;
        }

        /** The session is ready (its first ReadyForQuery), and cannot receive GoAway. */
        void ready() {
            ready(false);
        }

        /** @return true if this is a replay of pgjdbc's own request after a raised attempt */
        boolean replay() {
            return replayOf != null;
        }

        /**
         * @return true if this is the replay of a raised attempt given up at its challenge (the first connection to
         *         a peer): the connection uses pgjdbc's own request although a later one may ask for GoAway
         */
        boolean deferred() {
            return replayOf != null && replayOf.givenUp;
        }

        /**
         * The session is ready (its first ReadyForQuery).
         *
         * @param goAwayCapable whether the connection can receive GoAway
         */
        void ready(boolean goAwayCapable) {
            ready = true;
            sawReady(peer, goAwayCapable);
            if (replayOf != null && !replayOf.givenUp) {
                // pgjdbc's own request got all the way where the raised one failed: the version was the cause.
                remember(replayOf);
            }
        }

        /**
         * The peer asked for authentication, before pgjdbc saw it. A raised attempt to a peer new to this process
         * is given up here: should the peer fail after pgjdbc's answer (which no replay can repeat), it would be the
         * first connection to it that fails. The owner replays pgjdbc's own request instead, unseen by pgjdbc, and
         * the replay's success marks the peer seen but not refusing.
         *
         * @return true if the owner should reconnect and replay pgjdbc's own request
         */
        boolean givesUpAtChallenge() {
            if (!firstToPeer || !raised() || replayOf != null || seen(peer)) {
                return false;
            }
            givenUp = true;
            failure = "asked for authentication on the first connection to it";
            log.debug("{} asks for authentication and no connection of this process has completed a startup at it "
                    + "yet: this connection uses pgjdbc's own request, the next ones ask for GoAway", peer);
            return true;
        }

        /**
         * An error after pgjdbc answered an authentication challenge of a raised startup, before the session was
         * ready: no replay can repeat pgjdbc's answer. Outside class 28 it is taken for the raised version's
         * failure (pgpool-II 4.3 fails so on the long cancel key of a server that granted 3.3 without
         * NegotiateProtocolVersion) and the peer is remembered at once, so that one attempt per peer fails.
         *
         * @param sqlState the error's SQLSTATE
         * @param what     what it said, for the log
         */
        void failedAfterChallenge(String sqlState, String what) {
            if (ready || !raised() || replayOf != null || sqlState == null || notAboutTheVersion(sqlState)) {
                return;
            }
            failure = LogText.sanitize(what);
            afterChallenge = true;
            remember(this);
        }

        /**
         * The server's answer ended the attempt: an ErrorResponse before the session was ready, or the end of the
         * stream.
         *
         * @param sqlState the error's SQLSTATE, or null if the peer closed the connection
         * @param what     what it said, for the log
         * @return true if the failure may be the raised version's: the owner should replay pgjdbc's own request
         */
        boolean failed(String sqlState, String what) {
            replySeen = true;
            if (!raised() || (sqlState != null && notAboutTheVersion(sqlState))) {
                return false;
            }
            failure = LogText.sanitize(what);
            return true;
        }
    }
}
