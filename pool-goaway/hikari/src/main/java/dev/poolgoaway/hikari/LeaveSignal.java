package dev.poolgoaway.hikari;

/**
 * The ways a server can ask a connection to leave that the evictor honours. Both are recorded by the wire layer;
 * which ones count is a setting ({@link EvictorSettings.Builder#signals}), so that a deployment can follow whichever
 * proposal its PostgreSQL implements. An end of the connection (FATAL error, server gone) is always honoured.
 */
public enum LeaveSignal {
    /** The GoAway protocol message ({@code 'g'}, protocol 3.3). */
    GOAWAY,
    /** ParameterStatus {@code disconnect_requested = on}, the competing upstream proposal. */
    DISCONNECT_REQUESTED
}
