package dev.poolgoaway.wire;

/**
 * A small first-in first-out byte buffer for the rare bytes that cannot be handed out in place: output a poll
 * read ahead for pgjdbc, a released startup message, input left unprocessed after one. It allocates only when
 * first used and grows only as far as its users' own bounds take it.
 */
final class ByteQueue {

    /** The largest array kept once the queue is empty. */
    static final int KEEP_MAX = 8192;

    private byte[] buf;
    private int start;
    private int end;

    boolean isEmpty() {
        return start == end;
    }

    int size() {
        return end - start;
    }

    /** Adds bytes at the back. */
    void append(byte[] b, int off, int len) {
        if (len == 0) {
            return;
        }
        ensureRoom(len);
        System.arraycopy(b, off, buf, end, len);
        end += len;
    }

    /** Puts bytes back at the front, before everything queued. */
    void prepend(byte[] b, int off, int len) {
        if (len == 0) {
            return;
        }
        if (start >= len) {
            start -= len;
        } else {
            ensureRoom(len);
            System.arraycopy(buf, start, buf, start + len, end - start);
            end += len;
        }
        System.arraycopy(b, off, buf, start, len);
    }

    /** Moves up to {@code len} bytes from the front into {@code b}; returns how many. */
    int take(byte[] b, int off, int len) {
        int n = Math.min(len, end - start);
        System.arraycopy(buf, start, b, off, n);
        drop(n);
        return n;
    }

    /** Discards everything. */
    void clear() {
        drop(end - start);
    }

    /** Discards up to {@code n} bytes from the front; returns how many. */
    int skip(long n) {
        int k = (int) Math.min(n, end - start);
        drop(k);
        return k;
    }

    private void drop(int n) {
        start += n;
        if (start == end) {
            start = 0;
            end = 0;
            if (buf != null && buf.length > KEEP_MAX) {
                // A one-off burst (a poll that read ahead) should not stay attached to the connection for its life.
                buf = null;
            }
        }
    }

    /** Makes room for {@code len} more bytes, compacting to the front of the array. */
    private void ensureRoom(int len) {
        int size = end - start;
        if (buf == null || buf.length < size + len) {
            byte[] grown = new byte[Math.max(size + len, buf == null ? 256 : buf.length * 2)];
            if (buf != null) {
                System.arraycopy(buf, start, grown, 0, size);
            }
            buf = grown;
        } else if (start > 0) {
            System.arraycopy(buf, start, buf, 0, size);
        }
        start = 0;
        end = size;
    }
}
