package dev.poolgoaway.wire;

/**
 * The PostgreSQL frontend/backend protocol as far as the layer reads it, each name and number once: message types,
 * the startup-phase request codes, the framing, and the byte helpers every part of the layer uses. Names are the
 * protocol documentation's ("Message Formats"); GoAway is the GoAway patch's.
 */
final class Protocol {

    // ---- backend message types ----------------------------------------------------------------------------

    static final byte AUTHENTICATION = 'R';
    static final byte BACKEND_KEY_DATA = 'K';
    static final byte BIND_COMPLETE = '2';
    static final byte CLOSE_COMPLETE = '3';
    static final byte COMMAND_COMPLETE = 'C';
    static final byte COPY_BOTH_RESPONSE = 'W';
    static final byte COPY_DATA = 'd';
    static final byte COPY_DONE = 'c';
    static final byte COPY_IN_RESPONSE = 'G';
    static final byte COPY_OUT_RESPONSE = 'H';
    static final byte DATA_ROW = 'D';
    static final byte EMPTY_QUERY_RESPONSE = 'I';
    static final byte ERROR_RESPONSE = 'E';
    static final byte FUNCTION_CALL_RESPONSE = 'V';
    /** GoAway: "disconnect when convenient", no payload (the GoAway patch). */
    static final byte GO_AWAY = 'g';
    static final byte NEGOTIATE_PROTOCOL_VERSION = 'v';
    static final byte NO_DATA = 'n';
    static final byte NOTICE_RESPONSE = 'N';
    static final byte NOTIFICATION_RESPONSE = 'A';
    static final byte PARAMETER_DESCRIPTION = 't';
    static final byte PARAMETER_STATUS = 'S';
    static final byte PARSE_COMPLETE = '1';
    static final byte PORTAL_SUSPENDED = 's';
    static final byte READY_FOR_QUERY = 'Z';
    static final byte ROW_DESCRIPTION = 'T';

    // ---- the single unframed byte that answers SSLRequest or GSSENCRequest ----------------------------------

    static final byte ANSWER_TLS = 'S';
    static final byte ANSWER_GSS = 'G';
    static final byte ANSWER_NO = 'N';
    /** Servers before 9.x answer an encryption request they do not know with an ErrorResponse. */
    static final byte ANSWER_ERROR = ERROR_RESPONSE;

    // ---- startup-phase requests: length word, then a code ---------------------------------------------------

    static final int SSL_REQUEST_CODE = 80877103;
    static final int GSSENC_REQUEST_CODE = 80877104;
    static final int CANCEL_REQUEST_CODE = 80877102;
    static final int PROTOCOL_MAJOR = 3;
    /** Length word and code: the header of every startup-phase request. */
    static final int REQUEST_HEADER_LENGTH = 8;
    /**
     * PostgreSQL's own limit on a StartupMessage: MAX_STARTUP_PACKET_LENGTH (10,000) bytes after the length word;
     * larger ones it refuses. The largest whole message, length word included.
     */
    static final int MAX_STARTUP_LENGTH = 10_000 + 4;
    /** A TLS record's first byte: a client that starts with TLS at once ({@code sslnegotiation=direct}). */
    static final int DIRECT_TLS_FIRST_BYTE = 0x16;

    // ---- framing ----------------------------------------------------------------------------------------------

    /** The type byte and the length word, which counts itself but not the type. */
    static final int MESSAGE_HEADER_LENGTH = 5;
    static final int LENGTH_WORD = 4;
    /** The AuthenticationRequest code of AuthenticationOk. */
    static final int AUTHENTICATION_OK = 0;
    /**
     * PostgreSQL builds every message in a StringInfo, so none exceeds MaxAllocSize (1 GiB - 1) plus the length
     * word. Bodies are streamed, so this bound is about sanity, not memory: a notice or an error can be large too.
     */
    static final int MAX_LENGTH = 0x3FFF_FFFF + LENGTH_WORD;
    /** BackendKeyData: the process id and a key of at most 256 bytes (protocol 3.2). */
    static final int MAX_BACKEND_KEY_DATA_LENGTH = LENGTH_WORD + 4 + 256;

    private Protocol() {
    }

    /**
     * The largest legal length word for a backend message type, or -1 for a type PostgreSQL never sends.
     *
     * @param type a message type byte
     * @param negotiationMax the largest NegotiateProtocolVersion the caller accepts
     */
    static int maxLength(byte type, int negotiationMax) {
        return switch (type) {
            case PARSE_COMPLETE, BIND_COMPLETE, CLOSE_COMPLETE, NO_DATA, PORTAL_SUSPENDED, COPY_DONE,
                 EMPTY_QUERY_RESPONSE, GO_AWAY -> LENGTH_WORD;
            case READY_FOR_QUERY -> LENGTH_WORD + 1;
            case BACKEND_KEY_DATA -> MAX_BACKEND_KEY_DATA_LENGTH;
            case NEGOTIATE_PROTOCOL_VERSION -> negotiationMax;
            case DATA_ROW, COPY_DATA, FUNCTION_CALL_RESPONSE, AUTHENTICATION, PARAMETER_STATUS, ERROR_RESPONSE,
                 NOTICE_RESPONSE, NOTIFICATION_RESPONSE, COMMAND_COMPLETE, ROW_DESCRIPTION, PARAMETER_DESCRIPTION,
                 COPY_IN_RESPONSE, COPY_OUT_RESPONSE, COPY_BOTH_RESPONSE -> MAX_LENGTH;
            default -> -1;
        };
    }

    /** @return the smallest legal length word for a message type */
    static int minLength(byte type) {
        return type == READY_FOR_QUERY ? LENGTH_WORD + 1 : LENGTH_WORD;
    }

    // ---- bytes ------------------------------------------------------------------------------------------------

    /** @return the big-endian Int32 at {@code at} */
    static int readInt(byte[] b, int at) {
        return ((b[at] & 0xff) << 24) | ((b[at + 1] & 0xff) << 16) | ((b[at + 2] & 0xff) << 8) | (b[at + 3] & 0xff);
    }

    /** Writes {@code v} as a big-endian Int32 at {@code at}. */
    static void writeInt(byte[] b, int at, int v) {
        b[at] = (byte) (v >>> 24);
        b[at + 1] = (byte) (v >>> 16);
        b[at + 2] = (byte) (v >>> 8);
        b[at + 3] = (byte) v;
    }

    /** @return the index of the first NUL in {@code b[from, to)}, or -1 */
    static int indexOfNul(byte[] b, int from, int to) {
        for (int i = from; i < to; i++) {
            if (b[i] == 0) {
                return i;
            }
        }
        return -1;
    }

    /** @return a type byte as it reads in a message: the character, or hex for a non-printable one */
    static String printable(byte t) {
        return t >= 0x20 && t < 0x7f ? String.valueOf((char) t) : String.format("0x%02x", t & 0xff);
    }
}
