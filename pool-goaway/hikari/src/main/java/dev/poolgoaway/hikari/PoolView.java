package dev.poolgoaway.hikari;

import java.io.IOException;
import java.net.InetAddress;
import java.time.Instant;
import java.util.List;
import java.util.Optional;
import java.util.Set;

import dev.poolgoaway.wire.ConnectionSignals;
import dev.poolgoaway.wire.GoAwayGrant;
import dev.poolgoaway.wire.Termination;

/**
 * The few things of one pool that the evictor's loop ({@link DrainLoop}) decides over: its entries and how each is
 * held, reserving and giving back, asking HikariCP to close a connection on return, evicting. {@link HikariAccess}
 * is the view of a running pool through HikariCP's internals, {@link PublicApiView} the view through its public API
 * alone; the loop's unit tests use a fake. Entries are opaque: each is the same object for as long as its connection
 * is pooled.
 */
interface PoolView {

    /** How an entry is held at this moment. */
    enum Slot {
        /** In the pool, free for borrowers. */
        IDLE,
        /** Borrowed. */
        IN_USE,
        /** Reserved by HikariCP itself (keepalive, eviction), being removed, or not known (public API). */
        OTHER
    }

    /** @return the pool's entries now, in every state */
    List<?> entries();

    /** @return what the wire layer records for the entry's connection, or null for one it does not see */
    Signals signals(Object entry);

    Slot slot(Object entry);

    /** Takes an idle entry away from borrowers, as HikariCP's keepalive task does; false if it is not idle now. */
    boolean reserve(Object entry);

    /** Gives a reserved entry back to borrowers. */
    void unreserve(Object entry);

    /** Asks HikariCP to close the entry's connection when its borrower returns it (never interrupting it). */
    void closeOnReturn(Object entry);

    /**
     * @return true if HikariCP marked the entry evicted itself (max lifetime, {@code softEvictConnections}): while
     *         the evictor held it reserved, HikariCP could not close it and left that to the next borrow
     */
    boolean evictedByHikari(Object entry);

    /** Closes a reserved entry (or one in use the evictor aborted) through HikariCP's eviction; the pool refills. */
    void evict(Object entry, String reason);

    /** Aborts the connection of an entry in use ({@link java.sql.Connection#abort}), then evicts the entry. */
    void abort(Object entry);

    /**
     * Has HikariCP fill the pool towards {@code size} while a drain needs replacements, even where it would not on
     * its own (it fills only towards {@code minimumIdle}, and never beyond {@code maximumPoolSize}): both are
     * raised at run time as far as {@code size} needs, never lowered below the user's values. The loop keeps
     * {@code size} within the pool's size at the drain's start plus {@code maxExtraConnections}, and lowers it as
     * the connections asked to leave go. Idempotent; cheap.
     *
     * @param size the pool's size to fill to
     */
    void requestReplacements(int size);

    /**
     * Ends what {@link #requestReplacements} changed: the pool fills as its configuration says again (a value the
     * user changed meanwhile is left as the user set it).
     */
    void endReplacements();

    /** @return the pool's connections now, in every state */
    int totalConnections();

    /** @return the pool's {@code maximumPoolSize} now (raised while {@link #requestReplacements} has it raised) */
    int maximumPoolSize();

    /**
     * @return the last failure of HikariCP to open a connection, the same object until the next failure; null if
     *         none is known (the last attempt succeeded, or this view cannot tell)
     */
    Throwable lastCreationFailure();

    /** @return true while the pool is suspended ({@code suspendPool()}): it opens no connection meanwhile */
    boolean suspended();

    /** @return the pool's {@code connectionTimeout}, in milliseconds */
    long connectionTimeoutMillis();

    /** @return true once the pool is shut down */
    boolean shutDown();

    /**
     * @return true once the pool's constructor has completed; false while it runs, and for good if it threw after
     *         HikariCP created its metrics tracker (the evictor's start): then no shutdown will ever come
     */
    boolean started();

    /** @return false for the public API: entries can be neither reserved nor evicted one by one */
    boolean canReserve();

    /** What the wire layer recorded for one connection, as the loop reads it. */
    interface Signals {

        /**
         * @param honoured the requests to leave that count; an end of the connection always does
         * @return what the server said, if anything (no I/O): an end outranks a request to leave
         */
        Optional<Heard> heard(Set<LeaveSignal> honoured);

        /** Reads what the server sent meanwhile; only for a reserved idle connection. */
        void poll() throws IOException;

        /** @return the server, {@code host:port} */
        String server();

        /** @return true if the connection went out without GoAway as a precaution ({@link ConnectionSignals}) */
        default boolean goAwayDeferred() {
            return false;
        }

        /** @return the backend pid, 0 if unknown */
        int backendPid();

        /**
         * @return the IP address the connection is connected to; empty for a unix socket or one through a SOCKS
         *         proxy, which no DNS watch can judge
         */
        default Optional<InetAddress> peerAddress() {
            return Optional.empty();
        }

        /**
         * Has {@code onChange} run as soon as the server asks the connection to leave or ends it, or its socket
         * closes, on whatever thread saw it; it must be quick.
         */
        void listen(Runnable onChange);

        /** @return the loop's reading of the wire layer's signals */
        static Signals of(ConnectionSignals s) {
            return new Signals() {
                @Override
                public Optional<Heard> heard(Set<LeaveSignal> honoured) {
                    Optional<Termination> end = s.termination();
                    if (end.isPresent()) {
                        Termination why = end.get();
                        return Optional.of(why.adminTerminated()
                                ? new Heard(SignalKind.ADMIN_TERMINATED, why.at(), why.adminMessage().orElse(null),
                                        null)
                                : new Heard(SignalKind.SERVER_CLOSED, why.at(), null, null));
                    }
                    if (honoured.contains(LeaveSignal.GOAWAY) && s.goAwayReceived()) {
                        return Optional.of(new Heard(SignalKind.GOAWAY, s.goAwayReceivedAt().orElseGet(Instant::now),
                                null, s.goAwayGrant()));
                    }
                    if (honoured.contains(LeaveSignal.DISCONNECT_REQUESTED) && s.disconnectRequested()) {
                        return Optional.of(new Heard(SignalKind.DISCONNECT_REQUESTED,
                                s.disconnectRequestedAt().orElseGet(Instant::now), null, null));
                    }
                    return Optional.empty();
                }

                @Override
                public void poll() throws IOException {
                    s.poll();
                }

                @Override
                public String server() {
                    return s.server();
                }

                @Override
                public int backendPid() {
                    return s.backendPid().orElse(0);
                }

                @Override
                public boolean goAwayDeferred() {
                    return s.goAwayDeferred();
                }

                @Override
                public Optional<InetAddress> peerAddress() {
                    return s.peerAddress();
                }

                @Override
                public void listen(Runnable onChange) {
                    s.listen(onChange);
                }
            };
        }
    }

    /**
     * One signal.
     *
     * @param kind         what it was
     * @param at           when the wire layer saw it
     * @param adminMessage the administrator's own words in a termination (either format), or null
     * @param grant        for a GoAway, how the server had agreed to send it; else null
     */
    record Heard(SignalKind kind, Instant at, String adminMessage, GoAwayGrant grant) {
    }
}
