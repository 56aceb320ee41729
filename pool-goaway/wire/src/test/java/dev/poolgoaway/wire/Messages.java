package dev.poolgoaway.wire;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/** Builds backend protocol bytes for tests, and random valid ones for the randomized and property tests. */
final class Messages {

    /** Every message type a PostgreSQL backend sends, GoAway and NegotiateProtocolVersion aside. */
    static final char[] BACKEND_TYPES = {'1', '2', '3', 'n', 's', 'c', 'I', 'Z', 'K', 'D', 'd', 'V', 'R', 'S', 'E',
        'N', 'A', 'C', 'T', 't', 'G', 'H', 'W'};

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();

    static Messages stream() {
        return new Messages();
    }

    Messages msg(char type, byte[] body) {
        out.write(type);
        writeInt(4 + body.length);
        out.writeBytes(body);
        return this;
    }

    Messages goAway() {
        return msg('g', new byte[0]);
    }

    Messages readyForQuery() {
        return msg('Z', new byte[] {'I'});
    }

    Messages parameterStatus(String name, String value) {
        return msg('S', cstrings(name, value));
    }

    Messages backendKeyData(int pid, int keyLength) {
        byte[] body = new byte[4 + keyLength];
        Protocol.writeInt(body, 0, pid);
        return msg('K', body);
    }

    Messages error(String severity, String sqlState, String message) {
        byte[] fields = concat(field('S', severity), field('V', severity), field('C', sqlState),
                field('M', message), new byte[] {0});
        return msg('E', fields);
    }

    Messages negotiate(int minor, String... unsupported) {
        byte[] head = new byte[8];
        Protocol.writeInt(head, 0, (3 << 16) | minor);
        Protocol.writeInt(head, 4, unsupported.length);
        return msg('v', concat(head, cstrings(unsupported)));
    }

    Messages raw(byte... bytes) {
        out.writeBytes(bytes);
        return this;
    }

    Messages authOk() {
        return msg('R', new byte[4]);
    }

    byte[] bytes() {
        return out.toByteArray();
    }

    private void writeInt(int v) {
        byte[] b = new byte[4];
        Protocol.writeInt(b, 0, v);
        out.writeBytes(b);
    }

    /**
     * A body length the filter accepts for {@code type}, as close to {@code wanted} as the type allows: the fixed-size
     * messages get theirs, BackendKeyData a pid and a 4 to 248 byte key.
     */
    static int legalBodyLength(char type, int wanted) {
        return switch (type) {
            case '1', '2', '3', 'n', 's', 'c', 'I' -> 0;
            case 'Z' -> 1;
            case 'K' -> 8 + Math.floorMod(wanted, 245);
            default -> wanted;
        };
    }

    /** A valid message of a random type whose body (random bytes) is about {@code wantedBody} long. */
    static byte[] randomMessage(java.util.Random random, int wantedBody) {
        char type = BACKEND_TYPES[random.nextInt(BACKEND_TYPES.length)];
        byte[] body = new byte[legalBodyLength(type, wantedBody)];
        random.nextBytes(body);
        return stream().msg(type, body).bytes();
    }

    static byte[] cstrings(String... values) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (String v : values) {
            b.writeBytes(v.getBytes(StandardCharsets.UTF_8));
            b.write(0);
        }
        return b.toByteArray();
    }

    private static byte[] field(char code, String value) {
        return concat(new byte[] {(byte) code}, cstrings(value));
    }

    static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            b.writeBytes(p);
        }
        return b.toByteArray();
    }
}
