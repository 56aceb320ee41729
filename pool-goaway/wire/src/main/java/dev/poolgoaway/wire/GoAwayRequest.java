package dev.poolgoaway.wire;

import java.util.Locale;
import java.util.Properties;

/**
 * How the layer asks the server for GoAway, from the connection properties. Both ways at once by default, in the
 * same StartupMessage, so that no server costs a round trip: protocol 3.3 (the GoAway patch of October 2025) and the
 * {@code _pq_.goaway} protocol extension (its revisions since January 2026, v8 of March 2026). What the server
 * answers is hidden from pgjdbc either way.
 *
 * <p>The extension tracks an unmerged draft whose expected value is not in any public material: its name and value
 * are settings ({@link PgGoAway#GOAWAY_EXTENSION}, {@link PgGoAway#GOAWAY_EXTENSION_VALUE}), for a server built from
 * a later revision.
 *
 * @param mode           which ways are asked for
 * @param extension      the startup parameter that requests the extension
 * @param extensionValue its value
 */
record GoAwayRequest(Mode mode, String extension, String extensionValue) {

    static final String MODE_PROPERTY = PgGoAway.GOAWAY_REQUEST;
    static final String EXTENSION_PROPERTY = PgGoAway.GOAWAY_EXTENSION;
    static final String EXTENSION_VALUE_PROPERTY = PgGoAway.GOAWAY_EXTENSION_VALUE;
    static final String DEFAULT_EXTENSION = "_pq_.goaway";
    static final String DEFAULT_EXTENSION_VALUE = "true";

    /** The protocol version an extension-only request asks for: 3.2, libpq's {@code max_protocol_version=latest}. */
    static final int EXTENSION_MINOR = 2;

    /** Which ways to ask for GoAway. */
    enum Mode {
        /** Protocol 3.3 and the extension, in one StartupMessage. */
        BOTH(true, true),
        /** Protocol 3.3 only (the October 2025 patch). */
        PROTOCOL(true, false),
        /** The extension only, at protocol 3.2 (the 2026 revisions). */
        EXTENSION(false, true),
        /** Neither: pgjdbc's StartupMessage goes out as it wrote it, and no server sends GoAway. */
        OFF(false, false);

        final boolean protocol;
        final boolean extension;

        Mode(boolean protocol, boolean extension) {
            this.protocol = protocol;
            this.extension = extension;
        }
    }

    static final GoAwayRequest DEFAULT = new GoAwayRequest(Mode.BOTH, DEFAULT_EXTENSION, DEFAULT_EXTENSION_VALUE);

    /**
     * @param props connection properties
     * @return the request they configure
     * @throws IllegalArgumentException for a mode that is not one of the four, or an extension name that is not a
     *                                  {@code _pq_.} parameter (a server would take any other name for a setting)
     */
    static GoAwayRequest from(Properties props) {
        String mode = props.getProperty(MODE_PROPERTY, "both").trim();
        Mode m;
        try {
            m = Mode.valueOf(mode.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(MODE_PROPERTY + "=" + mode
                    + ": expected both, protocol, extension or off", e);
        }
        String extension = props.getProperty(EXTENSION_PROPERTY, DEFAULT_EXTENSION).trim();
        if (!extension.startsWith("_pq_.") || extension.length() == "_pq_.".length() || extension.indexOf('\0') >= 0) {
            throw new IllegalArgumentException(EXTENSION_PROPERTY + "=" + extension
                    + ": a protocol extension's startup parameter starts with _pq_.");
        }
        String value = props.getProperty(EXTENSION_VALUE_PROPERTY, DEFAULT_EXTENSION_VALUE);
        if (value.indexOf('\0') >= 0) {
            throw new IllegalArgumentException(EXTENSION_VALUE_PROPERTY + " holds a NUL character");
        }
        return new GoAwayRequest(m, extension, value);
    }
}
