package dev.poolgoaway.wire;

/**
 * Makes server-supplied text safe for a log line.
 *
 * <p>An admin message travels from {@code pg_terminate_backend(pid, timeout, msg)} straight into our logs, so it
 * is untrusted: it may hold line breaks (forged log lines), terminal escape sequences, or be long. This keeps
 * printable characters, shows every control character as {@code \\uXXXX}, and cuts the result.
 */
public final class LogText {

    /** The longest sanitized text, in characters, before the cut mark. */
    public static final int MAX_CHARS = 200;

    private LogText() {
    }

    /**
     * Sanitizes server-supplied text for a single log line.
     *
     * @param text the text, may be null
     * @return the text with control characters escaped, cut at {@value #MAX_CHARS} characters with
     *         {@code "…"} appended when cut; {@code ""} for null
     */
    public static String sanitize(String text) {
        if (text == null) {
            return "";
        }
        StringBuilder out = new StringBuilder(Math.min(text.length(), MAX_CHARS) + 8);
        for (int i = 0; i < text.length(); i++) {
            if (out.length() >= MAX_CHARS) {
                return out.append('…').toString();
            }
            char c = text.charAt(i);
            if (Character.isISOControl(c) || c == '\u2028' || c == '\u2029') {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.toString();
    }
}
