package dev.poolgoaway.wire;

import java.security.SecureRandom;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Cancel keys for pgjdbc sessions that run on protocol 3.0 over a connection the server runs on 3.2 or later.
 *
 * <p>The wire layer raises pgjdbc's 3.0 request to 3.3. A server that grants 3.2 or later sends a long cancel key
 * (PostgreSQL 18 sends 32 bytes), which pgjdbc in a 3.0 session rejects ("Cancel Key should be 4 bytes"). So
 * pgjdbc is given a 4-byte stand-in, and the CancelRequest pgjdbc later sends with it (through the same socket
 * factory, on a new connection) goes out with the server's real key. The server never sees the stand-in and
 * pgjdbc never sees the real key: each side gets what its own protocol version promises.
 *
 * <p>Entries live as long as the connection's socket: the owner removes them on close. A stand-in is random, so
 * a CancelRequest that does not name one passes unchanged.
 */
final class CancelKeys {

    /** The cancel key length of protocol 3.0. */
    static final int SHORT_KEY_LENGTH = 4;

    private static final SecureRandom RANDOM = new SecureRandom();
    private static final Map<Long, byte[]> REAL_KEYS = new ConcurrentHashMap<>();

    private CancelKeys() {
    }

    /**
     * @param pid     the backend's process id
     * @param realKey the key the server sent
     * @return the 4-byte stand-in to give pgjdbc instead
     */
    static int standIn(int pid, byte[] realKey) {
        while (true) {
            int standIn = RANDOM.nextInt();
            if (REAL_KEYS.putIfAbsent(entry(pid, standIn), realKey.clone()) == null) {
                return standIn;
            }
        }
    }

    /**
     * @return the server's key for a stand-in given out by {@link #standIn}, or null if {@code key} is not one
     */
    static byte[] realKey(int pid, int key) {
        return REAL_KEYS.get(entry(pid, key));
    }

    /** The connection that was given the stand-in closed. */
    static void forget(int pid, int standIn) {
        REAL_KEYS.remove(entry(pid, standIn));
    }

    private static long entry(int pid, int key) {
        return ((long) pid << 32) | (key & 0xffff_ffffL);
    }
}
