package dev.poolgoaway.wire;

import java.io.IOException;
import java.net.InetAddress;
import java.time.Clock;
import java.time.Instant;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * What the server has told one connection about leaving: the Java counterpart of libpq's
 * {@code PQgoAwayReceived()}, plus the other ways a server says "go".
 *
 * <p>One instance lives with each socket the wire layer creates and is garbage along with it: there is no
 * global registry to leak from. Get it from a {@link java.sql.Connection} with {@link PgGoAway#signals}.
 * Recording happens on whatever thread reads the socket; reading the state is safe from any thread.
 *
 * <p>Like {@code PQgoAwayReceived()}, the getters do not read from the server: they report what the layer has
 * already seen. pgjdbc does not read while a connection sits idle in a pool, so the exclusive owner of an idle
 * connection calls {@link #poll()} first.
 */
public final class ConnectionSignals {

    /** What {@link #poll()} found. */
    public enum PollResult {
        /** The poll read what the server had sent (possibly nothing); bytes for pgjdbc are kept for it. */
        POLLED,
        /** Someone is reading the connection right now (it is in use): nothing was read. */
        BUSY,
        /** The layer cannot see into this connection (GSS encryption, or not filtered): nothing to poll. */
        BLIND
    }

    /** Polls one connection layer; installed by the layer that frames the server's messages. */
    interface Poller {
        PollResult poll() throws IOException;
    }

    private final Clock clock;
    private volatile Instant goAwayAt;
    private volatile int goAwayCount;
    private volatile Instant disconnectRequestedAt;
    private volatile Termination termination;
    private volatile int backendPid;
    private volatile int protocolMinor = -1;
    private volatile GoAwayGrant goAwayGrant = GoAwayGrant.NONE;
    private volatile Poller poller;
    private volatile boolean blind;
    private volatile String server = "";
    private volatile boolean goAwayDeferred;
    /** The address the socket is connected to, when it is an IP socket the layer saw connected. */
    private volatile InetAddress peerAddress;
    /** The session reached its first ReadyForQuery: an error after it is not a refused startup. */
    private volatile boolean sessionReady;
    /** Runs once, if the server ends the connection during its startup (a pool's evictor hears of it). */
    private volatile Runnable onRefused;
    /** Runs once, when the session is ready (joins a pool's group, for one). */
    private volatile Runnable onReady;
    /** The 4-byte cancel key pgjdbc was given in place of the server's long one, if it was (see CancelKeys). */
    private volatile Integer cancelStandIn;
    /** Told when something new is recorded (a pool's evictor); see {@link #listen}. */
    private volatile Runnable listener;

    ConnectionSignals(Clock clock) {
        this.clock = clock;
    }

    /**
     * @return true once the server has sent a GoAway message on this connection (libpq's
     *         {@code PQgoAwayReceived()})
     */
    public boolean goAwayReceived() {
        return goAwayAt != null;
    }

    /** @return when the first GoAway arrived, if one did */
    public Optional<Instant> goAwayReceivedAt() {
        return Optional.ofNullable(goAwayAt);
    }

    /** @return how many GoAway messages arrived (the protocol allows repeats; only the first matters) */
    public int goAwayCount() {
        return goAwayCount;
    }

    /**
     * @return true once the server reported {@code disconnect_requested = on} through ParameterStatus (the
     *         competing upstream proposal for the same signal)
     */
    public boolean disconnectRequested() {
        return disconnectRequestedAt != null;
    }

    /** @return when {@code disconnect_requested = on} was first reported, if it was */
    public Optional<Instant> disconnectRequestedAt() {
        return Optional.ofNullable(disconnectRequestedAt);
    }

    /** @return true when the server asked this connection to leave, by GoAway or by ParameterStatus */
    public boolean leaveRequested() {
        return goAwayAt != null || disconnectRequestedAt != null;
    }

    /** @return why the server ended this connection, if it did: a FATAL error or the stream's end */
    public Optional<Termination> termination() {
        return Optional.ofNullable(termination);
    }

    /** @return the server this connection talks to, as {@code host:port} the way pgjdbc named it */
    public String server() {
        return server;
    }

    /**
     * @return the IP address the connection's socket is connected to (what {@link #server()}'s host resolved to
     *         when pgjdbc connected); empty for a socket that is not an IP socket (a unix socket) or not connected
     *         by its own address (a SOCKS proxy resolves the name itself)
     */
    public Optional<InetAddress> peerAddress() {
        return Optional.ofNullable(peerAddress);
    }

    /** @return the backend process id from BackendKeyData, once startup got that far */
    public OptionalInt backendPid() {
        int pid = backendPid;
        return pid == 0 ? OptionalInt.empty() : OptionalInt.of(pid);
    }

    /**
     * @return the protocol minor version in force on the connection (3 for 3.3, 2 for 3.2, 0 for 3.0), or -1
     *         before the server has answered the startup
     */
    public int protocolMinor() {
        return protocolMinor;
    }

    /**
     * @return how the server agreed to send GoAway on this connection: protocol 3.3, the {@code _pq_.goaway}
     *         extension, or not at all ({@link GoAwayGrant#NONE} also before the server has answered the startup)
     */
    public GoAwayGrant goAwayGrant() {
        return goAwayGrant;
    }

    /**
     * @return true when this connection can receive GoAway: the server granted it ({@link #goAwayGrant()}) and the
     *         layer sees the server's messages (not hidden by GSS encryption)
     */
    public boolean goAwayCapable() {
        return goAwayGrant != GoAwayGrant.NONE && !blind;
    }

    /**
     * @return true when this connection cannot receive GoAway only because it was this process's first to its
     *         server, which asked for a password: it went out with pgjdbc's own request, as a precaution (see
     *         {@code docs/wire-layer.md}), and a new connection to the server may receive GoAway
     *         ({@link PgGoAway#grantsGoAway(String)}). A pool replaces such a connection once that is so.
     */
    public boolean goAwayDeferred() {
        return goAwayDeferred;
    }

    /**
     * Reads, without blocking and without taking them from pgjdbc, whatever the server has sent to an idle
     * connection, so that a GoAway, a {@code disconnect_requested} report or a FATAL error waiting in the socket
     * is recorded. Bytes meant for pgjdbc (notifications, notices) are kept for it, in order.
     *
     * <p>Only the exclusive owner of an idle connection may call this (a pool that has reserved the connection):
     * it must not race with a statement on the same connection. On a plain socket it reads only what
     * {@code available()} reports; over TLS it does one bounded short read (a few milliseconds at most) when
     * encrypted bytes are waiting, then restores pgjdbc's socket timeout.
     *
     * @return what the poll did
     * @throws IOException if the connection failed; the failure is also visible to pgjdbc on its next read
     */
    public PollResult poll() throws IOException {
        Poller p = poller;
        if (p == null || blind) {
            return PollResult.BLIND;
        }
        return p.poll();
    }

    /**
     * Sets who is told, at once, when the server asks this connection to leave or ends it, and when its socket
     * closes: a pool's evictor, so that it acts on a signal a borrower's read just saw instead of finding it at its
     * next pass. The listener runs on the thread that read the signal (a borrower's, in the middle of pgjdbc's
     * read) or closed the socket: it must be quick, must not block, and must not touch the connection; an exception
     * it throws is ignored. One listener per connection: a later call replaces it.
     *
     * @param onChange the listener, or null for none
     */
    public void listen(Runnable onChange) {
        listener = onChange;
    }

    private void changed() {
        Runnable l = listener;
        if (l != null) {
            try {
                l.run();
            } catch (RuntimeException e) {
                // A listener must never break pgjdbc's read; the evictor finds the signal at its next pass anyway.
            }
        }
    }

    // ---- recording, called by the layer -------------------------------------------------------------------

    void goAway() {
        boolean first = goAwayAt == null;
        if (first) {
            goAwayAt = clock.instant();
        }
        goAwayCount++;
        if (first) {
            changed();
        }
    }

    void disconnectRequested(boolean on) {
        if (on && disconnectRequestedAt == null) {
            disconnectRequestedAt = clock.instant();
            changed();
        }
    }

    void terminated(String severity, String sqlState, String message, String detail) {
        if (termination == null) {
            termination = new Termination(Termination.Kind.SERVER_ERROR, severity, sqlState, kept(message),
                    kept(detail), clock.instant());
            changed();
            Runnable refused = onRefused;
            if (!sessionReady && refused != null) {
                // The server refused a new connection (57P03 "shutting down", 53300 "too many clients", ...):
                // what it says about its other connections is for the pool to judge.
                refused.run();
            }
        }
    }

    private static String kept(String text) {
        return text.length() > Termination.MAX_MESSAGE_CHARS ? text.substring(0, Termination.MAX_MESSAGE_CHARS) : text;
    }

    void serverClosed() {
        if (termination == null) {
            termination = new Termination(Termination.Kind.SERVER_CLOSED, "", "", "", "", clock.instant());
            changed();
        }
    }

    void backendPid(int pid) {
        backendPid = pid;
    }

    void protocol(int minor, GoAwayGrant grant) {
        protocolMinor = minor;
        goAwayGrant = grant;
    }

    /** The session's first ReadyForQuery: the connection is one pgjdbc can use. */
    void ready() {
        sessionReady = true;
        Runnable r = onReady;
        if (r != null) {
            r.run();
        }
    }

    void onReady(Runnable r) {
        onReady = r;
    }

    void onRefused(Runnable r) {
        onRefused = r;
    }

    void cancelStandIn(int key) {
        cancelStandIn = key;
    }

    /** The socket closed: a cancel key stand-in given out for it is no longer valid. */
    void socketClosed() {
        Integer key = cancelStandIn;
        if (key != null) {
            cancelStandIn = null;
            CancelKeys.forget(backendPid, key);
        }
        changed();
    }

    void poller(Poller p) {
        poller = p;
    }

    void server(String hostAndPort) {
        server = hostAndPort;
    }

    /** The first address recorded stays: a replayed startup reconnects to the same one. */
    void peerAddress(InetAddress address) {
        if (peerAddress == null && address != null) {
            peerAddress = address;
        }
    }

    void deferGoAway() {
        goAwayDeferred = true;
    }

    void blind() {
        blind = true;
    }

    @Override
    public String toString() {
        return "ConnectionSignals{pid=" + backendPid + ", protocol=3." + protocolMinor + ", goAway " + goAwayGrant
                .description()
                + ", goAway=" + goAwayAt + ", disconnectRequested=" + disconnectRequestedAt
                + ", termination=" + termination + (blind ? ", blind" : "") + '}';
    }
}
