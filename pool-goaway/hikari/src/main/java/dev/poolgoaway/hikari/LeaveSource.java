package dev.poolgoaway.hikari;

import java.time.Instant;
import java.util.Optional;
import java.util.Set;

import dev.poolgoaway.wire.PgGoAway;

/**
 * One source of "please leave" for a pool's connections. The loop ({@link DrainLoop}) asks each source about each
 * connection on every run and drains what any of them names, the same way whatever the source: same pacing, same
 * meters ({@code poolgoaway.signals{kind}}), same health and logs, under the {@link SignalKind} the source gives. A
 * new signal is a new source, not a new branch in the loop.
 *
 * <p>Sources: what the server said on the connection itself (GoAway, {@code disconnect_requested}, a termination:
 * {@link #wire}), a connection that cannot hear GoAway where its replacement would ({@link #deferredGoAway()}), the
 * connection's host name no longer resolving to its address ({@link DnsLeaveSource}), its server
 * refusing new connections because it is shutting down ({@link ShutdownRefusals}). Called on the evictor's thread.
 */
interface LeaveSource {

    /**
     * @param connection one pooled connection
     * @return why it should go, if it should, as of the last {@link #refresh}; no I/O
     */
    Optional<PoolView.Heard> heard(PoolView.Signals connection);

    /**
     * Brings the source up to date, at the start of a run of the loop: a source that looks things up does it here,
     * at its own pace.
     *
     * @param now the loop's clock ({@link System#nanoTime()})
     * @return nanoseconds until the source wants the loop to run again; {@link Long#MAX_VALUE} for never
     */
    default long refresh(long now) {
        return Long.MAX_VALUE;
    }

    /** The evictor stopped: let go of whatever the source registered. */
    default void close() {
    }

    /**
     * @param honoured the server's requests to leave that count (an end of the connection always does)
     * @return what the server said on the connection itself, as the wire layer recorded it
     */
    static LeaveSource wire(Set<LeaveSignal> honoured) {
        return connection -> connection.heard(honoured);
    }

    /**
     * The process's first connection to a server that asks for a password goes out with pgjdbc's own request (a
     * raised one could fail after pgjdbc answered the challenge, and a pool whose first connection fails does not
     * start), so it cannot hear GoAway. Once a later connection to that server can, it is replaced through the
     * usual drain: the pool then hears a switchover's GoAway on every connection. A server that cannot send GoAway
     * at all costs no replacement.
     *
     * @return the source
     */
    static LeaveSource deferredGoAway() {
        return connection -> connection.goAwayDeferred() && PgGoAway.grantsGoAway(connection.server())
                ? Optional.of(new PoolView.Heard(SignalKind.GOAWAY_DEFERRED, Instant.now(), null, null))
                : Optional.empty();
    }
}
