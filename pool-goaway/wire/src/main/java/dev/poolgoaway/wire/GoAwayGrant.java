package dev.poolgoaway.wire;

/**
 * How the server agreed to send GoAway on a connection, if it did. Two upstream designs exist (neither is in a
 * PostgreSQL release yet): the GoAway patch of October 2025 sends it to clients of protocol 3.3; its later
 * revisions (v8, March 2026, pgsql-hackers thread "Add GoAway protocol message for graceful but fast server
 * shutdown/switchover") send it to clients that request the {@code _pq_.goaway} protocol extension.
 */
public enum GoAwayGrant {
    /** The server runs the connection on protocol 3.3 or later. */
    PROTOCOL_3_3("protocol 3.3"),
    /** The server accepted the {@code _pq_.goaway} protocol extension (it did not list it as unsupported). */
    EXTENSION("protocol extension"),
    /** Neither: this server will not send GoAway on this connection. */
    NONE("not granted");

    private final String description;

    GoAwayGrant(String description) {
        this.description = description;
    }

    /** @return how a log line or a health detail says it: {@code protocol 3.3}, {@code protocol extension}... */
    public String description() {
        return description;
    }
}
