package dev.poolgoaway.wire;

import java.io.IOException;
import java.io.OutputStream;
import java.util.Objects;

/**
 * What pgjdbc writes: the client's stream, watched until startup completes and then passed straight through.
 *
 * <p>Until then it recognizes the unframed startup-phase requests (length word, then a code): SSLRequest and
 * GSSENCRequest (an answer byte follows, see {@link BackendFilter#expectAnswer()}), CancelRequest and direct TLS
 * (a first byte of {@code 0x16}), which make the whole connection pass-through, and the StartupMessage, whose
 * protocol version {@link ProtocolUpgrade} may raise from 3.2 to 3.3. Only the 8-byte header is ever held back;
 * after the StartupMessage every write goes straight to the socket with no per-byte work.
 */
final class FrontendOutputStream extends OutputStream {

    static final int SSL_REQUEST_CODE = 80877103;
    static final int GSSENC_REQUEST_CODE = 80877104;
    private static final int PROTOCOL_MAJOR = 3;

    private enum State { HEADER, STARTUP_BODY, PASS }

    private final OutputStream out;
    private final BackendFilter backend;
    private final ProtocolUpgrade upgrade;
    private final String peer;
    private final byte[] header = new byte[8];
    private final byte[] single = new byte[1];
    private int headerBytes;
    private int bodyRemaining;
    private State state = State.HEADER;

    FrontendOutputStream(OutputStream out, BackendFilter backend, ProtocolUpgrade upgrade, String peer) {
        this.out = out;
        this.backend = backend;
        this.upgrade = upgrade;
        this.peer = peer;
    }

    @Override
    public void write(int b) throws IOException {
        if (state == State.PASS) {
            out.write(b);
        } else {
            single[0] = (byte) b;
            write(single, 0, 1);
        }
    }

    @Override
    public void write(byte[] b, int off, int len) throws IOException {
        Objects.checkFromIndexSize(off, len, b.length);
        while (len > 0) {
            if (state == State.HEADER && headerBytes == 0 && backend.passingThrough()) {
                // TLS or GSS took over after the server's answer byte: these are encrypted bytes.
                state = State.PASS;
            }
            switch (state) {
                case PASS -> {
                    out.write(b, off, len);
                    return;
                }
                case STARTUP_BODY -> {
                    int n = Math.min(len, bodyRemaining);
                    out.write(b, off, n);
                    off += n;
                    len -= n;
                    bodyRemaining -= n;
                    if (bodyRemaining == 0) {
                        state = State.PASS;
                    }
                }
                case HEADER -> {
                    if (headerBytes == 0 && b[off] != 0) {
                        // No startup-phase request begins so (lengths are small): direct TLS (0x16) or not ours.
                        state = State.PASS;
                        backend.passThrough();
                        continue;
                    }
                    int n = Math.min(len, header.length - headerBytes);
                    System.arraycopy(b, off, header, headerBytes, n);
                    headerBytes += n;
                    off += n;
                    len -= n;
                    if (headerBytes == header.length) {
                        request();
                    }
                }
                default -> throw new IllegalStateException(state.toString());
            }
        }
    }

    /** A complete request header: length word and code. */
    private void request() throws IOException {
        int length = BackendFilter.readInt(header, 0);
        int code = BackendFilter.readInt(header, 4);
        headerBytes = 0;
        if (code == SSL_REQUEST_CODE || code == GSSENC_REQUEST_CODE) {
            backend.expectAnswer();
            out.write(header);
            return;
        }
        if (code >>> 16 == PROTOCOL_MAJOR && length > header.length) {
            ProtocolUpgrade.Attempt attempt = upgrade.begin(peer, code & 0xffff);
            BackendFilter.writeInt(header, 4, (PROTOCOL_MAJOR << 16) | attempt.sentMinor());
            backend.startupSent(attempt);
            out.write(header);
            bodyRemaining = length - header.length;
            state = State.STARTUP_BODY;
            return;
        }
        // CancelRequest (any key length) or something we do not know: the rest is not ours to read.
        state = State.PASS;
        backend.passThrough();
        out.write(header);
    }

    @Override
    public void flush() throws IOException {
        out.flush();
    }

    @Override
    public void close() throws IOException {
        out.close();
    }
}
