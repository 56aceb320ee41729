package dev.poolgoaway.wire;

import java.time.Instant;
import java.util.Objects;

/**
 * Why the server ended a connection: a FATAL (or PANIC) {@code ErrorResponse}, or the stream simply ending.
 *
 * <p>For an administrator's {@code pg_terminate_backend(pid, timeout, msg)} the server sends
 * {@code FATAL 57P01 terminating connection due to administrator command: <msg>}; {@link #message()} then holds
 * that whole text, as the server sent it (cut at {@value #MAX_MESSAGE_CHARS} characters). It is server-supplied
 * text: use {@link LogText#sanitize(String)} before writing it to a log.
 *
 * @param kind     what ended the connection
 * @param severity the error's severity ({@code FATAL}, {@code PANIC}), empty for {@link Kind#SERVER_CLOSED}
 * @param sqlState the SQLSTATE, for instance {@code 57P01}; empty for {@link Kind#SERVER_CLOSED}
 * @param message  the server's primary message; empty for {@link Kind#SERVER_CLOSED}
 * @param at       when the layer saw it
 */
public record Termination(Kind kind, String severity, String sqlState, String message, Instant at) {

    /** The longest server message kept, in characters. */
    public static final int MAX_MESSAGE_CHARS = 1024;

    /** SQLSTATE of {@code admin_shutdown}: {@code pg_terminate_backend} or a fast/immediate shutdown. */
    public static final String ADMIN_SHUTDOWN = "57P01";

    /** What ended the connection. */
    public enum Kind {
        /** The server sent a FATAL or PANIC {@code ErrorResponse}. */
        SERVER_ERROR,
        /** The server closed the stream at a message boundary without an error. */
        SERVER_CLOSED
    }

    /**
     * Checks the components.
     *
     * @throws NullPointerException if any component is null
     */
    public Termination {
        Objects.requireNonNull(kind, "kind");
        Objects.requireNonNull(severity, "severity");
        Objects.requireNonNull(sqlState, "sqlState");
        Objects.requireNonNull(message, "message");
        Objects.requireNonNull(at, "at");
    }

    /** @return true when an administrator terminated the backend (SQLSTATE 57P01) */
    public boolean adminTerminated() {
        return ADMIN_SHUTDOWN.equals(sqlState);
    }

    @Override
    public String toString() {
        return kind == Kind.SERVER_CLOSED
                ? "server closed the connection"
                : severity + " " + sqlState + " " + LogText.sanitize(message);
    }
}
