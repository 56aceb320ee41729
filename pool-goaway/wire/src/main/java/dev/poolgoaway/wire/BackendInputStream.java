package dev.poolgoaway.wire;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.util.Objects;
import java.util.concurrent.locks.ReentrantLock;

/**
 * What pgjdbc reads: the server's stream run through a {@link BackendFilter}.
 *
 * <p>The hot path reads straight into pgjdbc's buffer and filters in place. {@link #available()} never counts
 * bytes the filter will remove: it filters what can be read without blocking first. {@link #skip(long)} goes
 * through the filter too (pgjdbc's buffered stream calls it for unwanted data). {@link #poll()} lets the exclusive
 * owner of an idle connection bring in what the server sent while nobody was reading.
 *
 * <p>A lock keeps a poll from running into a read: pgjdbc reads from one thread at a time, and a poll only takes
 * the lock if nobody holds it.
 */
final class BackendInputStream extends InputStream implements ConnectionSignals.Poller {

    /** How much output a poll reads ahead for pgjdbc, at most; the rest waits in the socket. */
    static final int POLL_MAX = 64 * 1024;

    /**
     * Reads that may block for a bounded time: over TLS, encrypted bytes waiting in the socket do not show in
     * {@code available()} of the plaintext stream, and a TLS record can arrive in parts.
     */
    interface EncryptedTransport {
        /** @return how many encrypted bytes wait in the socket under the TLS layer */
        int encryptedAvailable() throws IOException;

        /** Reads with a short timeout; @return bytes read, 0 on timeout, -1 at the end of the stream. */
        int readWithin(InputStream in, byte[] b, int off, int len) throws IOException;
    }

    /**
     * Opens a new connection to the same server and replays pgjdbc's StartupMessage as pgjdbc wrote it, for a
     * peer that failed on the raised protocol version.
     */
    interface Reconnector {
        /**
         * @param failed the attempt that failed
         * @return the new connection's input
         */
        InputStream reconnect(ProtocolUpgrade.Attempt failed) throws IOException;
    }

    private InputStream raw;
    private final Reconnector reconnector;
    private final BackendFilter filter;
    private final EncryptedTransport tls;
    private final ReentrantLock lock = new ReentrantLock();
    private final ByteQueue ready = new ByteQueue();
    private final ByteQueue carry = new ByteQueue();
    private final byte[] single = new byte[1];
    private byte[] scratch;
    private boolean eof;

    BackendInputStream(InputStream raw, BackendFilter filter, EncryptedTransport tls) {
        this(raw, filter, tls, null);
    }

    BackendInputStream(InputStream raw, BackendFilter filter, EncryptedTransport tls, Reconnector reconnector) {
        this.raw = raw;
        this.filter = filter;
        this.tls = tls;
        this.reconnector = reconnector;
    }

    /** Starts over on a new connection's stream (the owner reconnected). */
    void reset(InputStream fresh) {
        lock.lock();
        try {
            raw = fresh;
            ready.clear();
            carry.clear();
            eof = false;
            filter.reset();
        } finally {
            lock.unlock();
        }
    }

    @Override
    public int read() throws IOException {
        lock.lock();
        try {
            int n = readLocked(single, 0, 1);
            return n < 0 ? -1 : single[0] & 0xff;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public int read(byte[] b, int off, int len) throws IOException {
        Objects.checkFromIndexSize(off, len, b.length);
        if (len == 0) {
            return 0;
        }
        lock.lock();
        try {
            return readLocked(b, off, len);
        } finally {
            lock.unlock();
        }
    }

    private int readLocked(byte[] b, int off, int len) throws IOException {
        while (true) {
            if (!ready.isEmpty()) {
                return ready.take(b, off, len);
            }
            if (filter.failure() != null) {
                throw filter.failure();
            }
            if (eof) {
                return -1;
            }
            int n;
            if (!carry.isEmpty()) {
                n = carry.take(b, off, len);
            } else {
                try {
                    n = raw.read(b, off, len);
                } catch (SocketTimeoutException e) {
                    throw filter.replaying() ? filter.replayUnanswered(e) : e;
                } catch (SocketException e) {
                    // A reset before any challenge is a failed raised attempt like an end of stream (PostgreSQL
                    // resets a connection whose StartupMessage it refuses unread); otherwise it is pgjdbc's.
                    if (!filter.replayableFailure()) {
                        throw e;
                    }
                    n = -1;
                }
                if (n < 0) {
                    endOfStream();
                    if (retried()) {
                        continue;
                    }
                    return -1;
                }
            }
            int out = filter.process(b, off, n);
            afterProcess(b, off, n);
            if (out > 0) {
                return out;
            }
            // Everything read was ours (a GoAway, say): read on, as a blocking read must return data.
        }
    }

    /** Queues what the filter released and puts back what it did not consume, in stream order. */
    private void afterProcess(byte[] b, int off, int n) throws IOException {
        if (retried()) {
            return;
        }
        byte[] released = filter.takeReleased();
        if (released != null) {
            ready.append(released, 0, released.length);
        }
        int used = filter.consumed();
        carry.prepend(b, off + used, n - used);
    }

    /**
     * @return true if the filter asked for the startup to be replayed and it was: pgjdbc reads on from the new
     *         connection, and the rest of the failed one (its end) is dropped
     */
    private boolean retried() throws IOException {
        if (!filter.retryRequested()) {
            return false;
        }
        ProtocolUpgrade.Attempt failed = filter.failedAttempt();
        try {
            raw = reconnector.reconnect(failed);
        } catch (SocketTimeoutException e) {
            throw filter.replayUnanswered(e);
        }
        // The failed connection's end is not the new one's (a TLS stream's own flag included).
        eof = false;
        carry.clear();
        return true;
    }

    private void endOfStream() throws IOException {
        eof = true;
        filter.endOfStream();
    }

    @Override
    public int available() throws IOException {
        lock.lock();
        try {
            if (ready.isEmpty()) {
                pump(1, false);
            }
            return ready.size();
        } finally {
            lock.unlock();
        }
    }

    @Override
    public long skip(long n) throws IOException {
        if (n <= 0) {
            return 0;
        }
        lock.lock();
        try {
            if (!ready.isEmpty()) {
                return ready.skip(n);
            }
            int body = filter.skippableBody();
            if (body > 0 && carry.isEmpty()) {
                long s = raw.skip(Math.min(n, body));
                if (s > 0) {
                    filter.skipped((int) s);
                    return s;
                }
            }
            byte[] s = scratch();
            int r = readLocked(s, 0, (int) Math.min(n, s.length));
            if (r < 0) {
                throw new EOFException("The server closed the connection while pgjdbc was skipping " + n + " bytes");
            }
            return r;
        } finally {
            lock.unlock();
        }
    }

    @Override
    public ConnectionSignals.PollResult poll() throws IOException {
        if (!lock.tryLock()) {
            return ConnectionSignals.PollResult.BUSY;
        }
        try {
            if (filter.passingThrough()) {
                // Encrypted by something that is not ours (or a cancel connection): nothing to see, nothing to read.
                return ConnectionSignals.PollResult.BLIND;
            }
            pump(POLL_MAX, true);
            return ConnectionSignals.PollResult.POLLED;
        } finally {
            lock.unlock();
        }
    }

    /**
     * Filters what the server has sent into {@link #ready} until it holds {@code target} bytes or nothing more
     * can be had without blocking (or, with {@code timed} over TLS, within a short bounded read).
     */
    private void pump(int target, boolean timed) throws IOException {
        byte[] s = scratch();
        // Stop at a termination: what follows is the end of the stream, and over TLS reading the close_notify
        // now would make pgjdbc's next write fail before it reads the server's FATAL error.
        while (ready.size() < target && !eof && !filter.terminated()) {
            if (filter.failure() != null) {
                throw filter.failure();
            }
            int n;
            if (!carry.isEmpty()) {
                n = carry.take(s, 0, s.length);
            } else {
                int plain = raw.available();
                if (plain > 0) {
                    n = raw.read(s, 0, Math.min(plain, s.length));
                } else if (timed && tls != null && tls.encryptedAvailable() > 0) {
                    n = tls.readWithin(raw, s, 0, s.length);
                } else {
                    return;
                }
                if (n == 0) {
                    return;
                }
                if (n < 0) {
                    endOfStream();
                    if (retried()) {
                        continue;
                    }
                    return;
                }
            }
            int out = filter.process(s, 0, n);
            ready.append(s, 0, out);
            afterProcess(s, 0, n);
        }
    }

    private byte[] scratch() {
        if (scratch == null) {
            scratch = new byte[8192];
        }
        return scratch;
    }

    @Override
    public void close() throws IOException {
        raw.close();
    }
}
