package dev.poolgoaway.hikari;

import java.time.Duration;

/** What the evictor reports as it works; metrics listen (see {@link GoAwayMetrics}). Called on the evictor thread. */
interface EvictorEvents {

    /** Nobody listening. */
    EvictorEvents NONE = new EvictorEvents() {
    };

    /** A connection was found asked to leave, or ended; {@code kind} as in {@link DrainEpisode#kinds()}. */
    default void signal(String kind) {
    }

    /** A flagged connection was closed; {@code state} is {@code idle} or {@code in_use}. */
    default void evicted(String state) {
    }

    /** The time from the server's signal to the connection's close. */
    default void closed(Duration signalToClose) {
    }

    /** A drain episode began. */
    default void episode() {
    }
}
