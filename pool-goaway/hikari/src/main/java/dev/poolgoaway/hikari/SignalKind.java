package dev.poolgoaway.hikari;

/**
 * What the server said about one connection, as the evictor acts on it: asked to leave (the connection still
 * works and goes when due), or ended (it is dead and goes at once). The tag is the {@code kind} of the
 * {@code poolgoaway.signals} meter and the key of {@link DrainEpisode#kinds()}.
 */
enum SignalKind {
    /** The GoAway protocol message. */
    GOAWAY("goaway", false),
    /** ParameterStatus {@code disconnect_requested = on}. */
    DISCONNECT_REQUESTED("disconnect_requested", false),
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
