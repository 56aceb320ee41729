package dev.poolgoaway.wire;

import java.nio.charset.StandardCharsets;

/**
 * The fields of an ErrorResponse body that the wire layer records: severity, SQLSTATE, primary message and
 * detail.
 *
 * <p>The body is a list of {@code Byte1(code) String} fields ended by a zero byte. We may only have its first
 * {@value BackendFilter#CAPTURE_MAX} bytes, so a field cut short is read as far as it goes.
 */
record ErrorFields(String severity, String sqlState, String message, String detail) {

    static ErrorFields parse(byte[] b, int from, int to) {
        String localizedSeverity = "";
        String severity = "";
        String sqlState = "";
        String message = "";
        String detail = "";
        int p = from;
        while (p < to && b[p] != 0) {
            byte code = b[p++];
            int nul = Protocol.indexOfNul(b, p, to);
            int end = nul < 0 ? to : nul;
            String value = new String(b, p, end - p, StandardCharsets.UTF_8);
            switch (code) {
                case 'S' -> localizedSeverity = value;
                case 'V' -> severity = value;
                case 'C' -> sqlState = value;
                case 'M' -> message = value;
                case 'D' -> detail = value;
                default -> {
                    // hint, position, context...: not needed here
                }
            }
            p = end + 1;
        }
        // 'V' (never localized) exists since 9.6; older servers only send the localized 'S'.
        return new ErrorFields(severity.isEmpty() ? localizedSeverity : severity, sqlState, message, detail);
    }

    /** @return the error as a log would show it: severity, SQLSTATE, message and detail */
    @Override
    public String toString() {
        return severity + " " + sqlState + " " + message + (detail.isEmpty() ? "" : " (" + detail + ")");
    }
}
