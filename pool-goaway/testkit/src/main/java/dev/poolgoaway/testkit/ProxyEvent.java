package dev.poolgoaway.testkit;

import java.time.Instant;

/**
 * One line of a {@link GoAwayProxy}'s timeline.
 *
 * @param at           when
 * @param kind         what happened
 * @param connectionId the connection it concerns, or 0 for proxy-wide events
 * @param detail       a human-readable detail (upstream address, message, ...)
 */
public record ProxyEvent(Instant at, Kind kind, long connectionId, String detail) {

    /** What happened. */
    public enum Kind {
        /** A client finished startup through the proxy. */
        CONNECTED,
        /** A client was refused (shutting down, bad startup). */
        REFUSED,
        /** GoAway was sent to a client. */
        GOAWAY_SENT,
        /** ParameterStatus {@code disconnect_requested=on} was sent to a client. */
        DISCONNECT_REQUESTED_SENT,
        /** A backend was terminated with a message (FATAL 57P01). */
        TERMINATED,
        /** A backend's running statement was canceled with a message (ERROR 57014). */
        CANCELED,
        /** A client's connection ended. */
        CLOSED,
        /** New connections now go to another upstream. */
        RETARGETED,
        /** Smart shutdown began. */
        SMART_SHUTDOWN,
        /** Smart shutdown completed: the last client left. */
        SHUTDOWN_COMPLETE
    }
}
