package dev.poolgoaway.hikari;

/**
 * Why one connection is to go, as the evictor acts on it: asked to leave (the connection still works and goes when
 * due), or ended (it is dead and goes at once). The server says most of them on the connection itself; the others
 * come from a {@link LeaveSource} that watches the deployment (DNS, the server's refusals). The tag is the
 * {@code kind} of the {@code poolgoaway.signals} meter, the key of {@link DrainEpisode#kinds()} and the name in logs.
 */
enum SignalKind {
    /** The GoAway protocol message. */
    GOAWAY("goaway", false),
    /** ParameterStatus {@code disconnect_requested = on}. */
    DISCONNECT_REQUESTED("disconnect_requested", false),
    /** The connection's host name no longer resolves to the connection's address (see {@link DnsLeaveSource}). */
    DNS_MOVED("dns_moved", false),
    /**
     * The connection's server refused a new connection with 57P03 ("the database system is shutting down"): it is
     * in smart shutdown, which tells its open connections nothing (see {@link ShutdownRefusals}).
     */
    SERVER_SHUTTING_DOWN("server_shutting_down", false),
    /**
     * The connection cannot hear GoAway only because it was the process's first to its server, which asked for a
     * password (the wire layer's precaution), and a later connection to that server can: it is replaced so that
     * the whole pool hears the server's GoAway (see {@link LeaveSource#deferredGoAway()}).
     */
    GOAWAY_DEFERRED("goaway_deferred", false),
    /** A FATAL admin shutdown (57P01), with the administrator's message if any. */
    ADMIN_TERMINATED("admin_terminated", true),
    /** Any other end: another FATAL, the server closed the socket, or a poll failed. */
    SERVER_CLOSED("server_closed", true);

    private final String tag;
    private final boolean ended;

    SignalKind(String tag, boolean ended) {
        this.tag = tag;
        this.ended = ended;
    }

    /** @return the metric tag and log name */
    String tag() {
        return tag;
    }

    /** @return true if the connection is dead, not merely asked to leave */
    boolean ended() {
        return ended;
    }
}
