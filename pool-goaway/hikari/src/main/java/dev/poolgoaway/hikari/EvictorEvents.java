package dev.poolgoaway.hikari;

import java.time.Duration;

/** What the evictor reports as it works; metrics listen (see {@link GoAwayMetrics}). Called on the evictor thread. */
interface EvictorEvents {

    /** Nobody listening. */
    EvictorEvents NONE = new EvictorEvents() {
    };

    /** A connection was found asked to leave, or ended. */
    default void signal(SignalKind kind) {
    }

    /** A connection asked to leave was closed. */
    default void evicted(EvictionState state) {
    }

    /** The time from the server's signal to the connection's close. */
    default void closed(Duration signalToClose) {
    }

    /**
     * A replacement for a connection the loop let go: made (HikariCP made a connection not itself asked to leave),
     * or failed (HikariCP could not connect, or the new connection was asked to leave too).
     */
    default void replacement(boolean made) {
    }

    /** A drain episode began. */
    default void episode() {
    }

    /** The evictor stopped for good (its pool shut down, or it was closed): its meters go with it. */
    default void stopped() {
    }
}
