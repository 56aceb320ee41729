package dev.poolgoaway.wire;

import java.time.Instant;
import java.util.Objects;
import java.util.Optional;

/**
 * Why the server ended a connection: a FATAL (or PANIC) {@code ErrorResponse}, or the stream simply ending.
 *
 * <p>An administrator's {@code pg_terminate_backend(pid, timeout, msg)} ends the backend with {@code FATAL 57P01};
 * where the admin's own words travel depends on the patch the server is built from: appended to the primary text
 * ({@code terminating connection due to administrator command: <msg>}, the patch of 2025) or as the error's DETAIL
 * (v7 of June 2026). {@link #adminMessage()} finds them either way; {@link #message()} and {@link #detail()} hold
 * the fields as the server sent them (cut at {@value #MAX_MESSAGE_CHARS} characters). It is server-supplied text:
 * use {@link LogText#sanitize(String)} before writing it to a log.
 *
 * @param kind     what ended the connection
 * @param severity the error's severity ({@code FATAL}, {@code PANIC}), empty for {@link Kind#SERVER_CLOSED}
 * @param sqlState the SQLSTATE, for instance {@code 57P01}; empty for {@link Kind#SERVER_CLOSED}
 * @param message  the server's primary message; empty for {@link Kind#SERVER_CLOSED}
 * @param detail   the error's DETAIL, empty if it had none
 * @param at       when the layer saw it
 */
public record Termination(Kind kind, String severity, String sqlState, String message, String detail, Instant at) {

    /** The longest server message kept, in characters. */
    public static final int MAX_MESSAGE_CHARS = 1024;

    /** SQLSTATE of {@code admin_shutdown}: {@code pg_terminate_backend} or a fast/immediate shutdown. */
    public static final String ADMIN_SHUTDOWN = "57P01";

    /** SQLSTATE of {@code query_canceled}: {@code pg_cancel_backend}, a statement timeout, a client's cancel. */
    public static final String QUERY_CANCELED = "57014";

    /** The server's own text for 57P01, before an appended admin message (PostgreSQL's {@code ProcessInterrupts}). */
    private static final String TERMINATED_TEXT = "terminating connection due to administrator command";
    /** The server's own text for a cancel by {@code pg_cancel_backend}, likewise. */
    private static final String CANCELED_TEXT = "canceling statement due to user request";

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
        Objects.requireNonNull(detail, "detail");
        Objects.requireNonNull(at, "at");
    }

    /**
     * @return the administrator's own words, if an administrator ended the backend with a message: from the DETAIL
     *         field, or from the primary text after the server's fixed English text (a server with translated
     *         messages is read from DETAIL only). Unsanitized.
     */
    public Optional<String> adminMessage() {
        return adminTerminated() ? adminMessage(sqlState, message, detail) : Optional.empty();
    }

    /**
     * The admin's words in a 57P01 termination or a 57014 cancel, in either format.
     *
     * @return the message, or empty for another SQLSTATE or none given
     */
    static Optional<String> adminMessage(String sqlState, String message, String detail) {
        String fixed = ADMIN_SHUTDOWN.equals(sqlState) ? TERMINATED_TEXT
                : QUERY_CANCELED.equals(sqlState) ? CANCELED_TEXT : null;
        if (fixed == null) {
            return Optional.empty();
        }
        if (message.startsWith(fixed + ": ") && message.length() > fixed.length() + 2) {
            return Optional.of(message.substring(fixed.length() + 2));
        }
        return detail.isEmpty() ? Optional.empty() : Optional.of(detail);
    }

    /** @return true when an administrator terminated the backend (SQLSTATE 57P01) */
    public boolean adminTerminated() {
        return ADMIN_SHUTDOWN.equals(sqlState);
    }

    @Override
    public String toString() {
        return kind == Kind.SERVER_CLOSED
                ? "server closed the connection"
                : severity + " " + sqlState + " " + LogText.sanitize(message)
                        + (detail.isEmpty() ? "" : " (" + LogText.sanitize(detail) + ")");
    }
}
