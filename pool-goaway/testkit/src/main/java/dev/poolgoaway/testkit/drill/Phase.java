package dev.poolgoaway.testkit.drill;

/** The parts of a drill, by when a request started. */
public enum Phase {

    /** Steady load on the old server, before the switchover. */
    BEFORE,

    /** From the switchover until the last connection to the old server closed (or the observation window ended). */
    DURING,

    /** After the drain, everything on the new server. */
    AFTER
}
