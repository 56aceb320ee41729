package dev.poolgoaway.wire;

import static dev.poolgoaway.wire.Protocol.CANCEL_REQUEST_CODE;
import static dev.poolgoaway.wire.Protocol.DIRECT_TLS_FIRST_BYTE;
import static dev.poolgoaway.wire.Protocol.GSSENC_REQUEST_CODE;
import static dev.poolgoaway.wire.Protocol.MAX_STARTUP_LENGTH;
import static dev.poolgoaway.wire.Protocol.PROTOCOL_MAJOR;
import static dev.poolgoaway.wire.Protocol.REQUEST_HEADER_LENGTH;
import static dev.poolgoaway.wire.Protocol.SSL_REQUEST_CODE;
import static dev.poolgoaway.wire.Protocol.indexOfNul;
import static dev.poolgoaway.wire.Protocol.readInt;
import static dev.poolgoaway.wire.Protocol.writeInt;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Objects;

/**
 * What pgjdbc writes: the client's stream, watched until startup completes and then passed straight through.
 *
 * <p>Until then it recognizes the unframed startup-phase requests (length word, then a code): SSLRequest and
 * GSSENCRequest (an answer byte follows, see {@link BackendFilter#expectAnswer()}), direct TLS (a first byte of
 * {@code 0x16}), which makes the whole connection pass-through, CancelRequest, whose 4-byte key may be a stand-in
 * for the server's long one ({@link CancelKeys}), and the StartupMessage, whose protocol version
 * {@link ProtocolUpgrade} may raise to 3.3. Only the header (and a cancel key) is ever held back; after the
 * StartupMessage every write goes straight to the socket with no per-byte work.
 */
final class FrontendOutputStream extends OutputStream {

    /** A CancelRequest with a 4-byte key: length, code, process id, key. */
    private static final int SHORT_CANCEL_LENGTH = REQUEST_HEADER_LENGTH + 4 + CancelKeys.SHORT_KEY_LENGTH;

    private enum State { HEADER, STARTUP_BODY, CANCEL_BODY, PASS }

    private OutputStream out;
    private final BackendFilter backend;
    private final ProtocolUpgrade upgrade;
    private final String peer;
    private final byte[] header = new byte[REQUEST_HEADER_LENGTH];
    private final byte[] cancel = new byte[SHORT_CANCEL_LENGTH - REQUEST_HEADER_LENGTH];
    private int cancelBytes;
    private final byte[] single = new byte[1];
    private int headerBytes;
    private int bodyRemaining;
    private State state = State.HEADER;
    private boolean directTls;
    /** pgjdbc's StartupMessage as it wrote it, kept to replay it should the peer refuse the raised version. */
    private byte[] startupCopy;
    private int startupCopied;
    /** How GoAway is asked for. */
    private final GoAwayRequest request;

    FrontendOutputStream(OutputStream out, BackendFilter backend, ProtocolUpgrade upgrade, String peer) {
        this(out, backend, upgrade, peer, GoAwayRequest.DEFAULT);
    }

    FrontendOutputStream(OutputStream out, BackendFilter backend, ProtocolUpgrade upgrade, String peer,
            GoAwayRequest request) {
        this.out = out;
        this.backend = backend;
        this.upgrade = upgrade;
        this.peer = peer;
        this.request = request;
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
                case CANCEL_BODY -> {
                    int n = Math.min(len, cancel.length - cancelBytes);
                    System.arraycopy(b, off, cancel, cancelBytes, n);
                    cancelBytes += n;
                    off += n;
                    len -= n;
                    if (cancelBytes == cancel.length) {
                        cancelRequest();
                    }
                }
                case STARTUP_BODY -> {
                    int n = Math.min(len, bodyRemaining);
                    if (startupCopy == null) {
                        out.write(b, off, n);
                    } else {
                        keepStartup(b, off, n);
                    }
                    off += n;
                    len -= n;
                    bodyRemaining -= n;
                    if (bodyRemaining == 0) {
                        state = State.PASS;
                        if (startupCopy != null) {
                            sendStartup();
                        }
                    }
                }
                case HEADER -> {
                    if (headerBytes == 0 && b[off] != 0) {
                        // No startup-phase request begins so (lengths are small): direct TLS (0x16) or not ours.
                        directTls = b[off] == DIRECT_TLS_FIRST_BYTE;
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
        int length = readInt(header, 0);
        int code = readInt(header, 4);
        headerBytes = 0;
        if (code == SSL_REQUEST_CODE || code == GSSENC_REQUEST_CODE) {
            backend.expectAnswer();
            out.write(header);
            return;
        }
        if (code >>> 16 == PROTOCOL_MAJOR && length > header.length) {
            startupCopy = length <= MAX_STARTUP_LENGTH ? new byte[length] : null;
            startupCopied = 0;
            keepStartup(header, 0, header.length);
            if (startupCopy == null) {
                // Too large to keep: sent as it is, for it could not be replayed should a changed one fail.
                backend.startupSent(upgrade.begin(peer, code & 0xffff, false, request));
                out.write(header);
            }
            bodyRemaining = length - header.length;
            state = State.STARTUP_BODY;
            return;
        }
        state = State.PASS;
        backend.passThrough();
        if (code == CANCEL_REQUEST_CODE && length == SHORT_CANCEL_LENGTH) {
            state = State.CANCEL_BODY;
            cancelBytes = 0;
            return;
        }
        // A CancelRequest with a long key, or something we do not know: the rest is not ours to read.
        out.write(header);
    }

    /**
     * pgjdbc's complete StartupMessage as the attempt sends it (the protocol version, the GoAway extension), in one
     * write as pgjdbc wrote it: some middleboxes (PgBouncer 1.18) treat a startup packet that arrives in parts as
     * broken.
     */
    private void sendStartup() throws IOException {
        // pgjdbc's parameters end with an extra NUL; one that lacks it, or names the extension itself, is not ours
        // to add to.
        boolean wellFormed = startupCopy[startupCopy.length - 1] == 0;
        ProtocolUpgrade.Attempt attempt = upgrade.begin(peer, readInt(startupCopy, 4) & 0xffff,
                wellFormed && !names(startupCopy, request.extension()), request);
        byte[] sent = startupCopy;
        String extension = attempt.extension();
        byte[] parameter = extension == null ? new byte[0]
                : (extension + '\0' + request.extensionValue() + '\0').getBytes(StandardCharsets.UTF_8);
        if (startupCopy.length + parameter.length > MAX_STARTUP_LENGTH) {
            // The added option would push the message past the server's limit: pgjdbc's own, for this connection
            // only; nothing is learned about the peer.
            attempt = upgrade.begin(peer, readInt(startupCopy, 4) & 0xffff, false, request);
            extension = null;
        }
        if (extension != null) {
            sent = new byte[startupCopy.length + parameter.length];
            System.arraycopy(startupCopy, 0, sent, 0, startupCopy.length - 1);
            System.arraycopy(parameter, 0, sent, startupCopy.length - 1, parameter.length);
            writeInt(sent, 0, sent.length);
        } else {
            sent = startupCopy.clone();
        }
        writeInt(sent, 4, (PROTOCOL_MAJOR << 16) | attempt.sentMinor());
        backend.startupSent(attempt);
        out.write(sent);
    }

    /** @return true if a StartupMessage's parameters name {@code parameter} */
    static boolean names(byte[] startup, String parameter) {
        byte[] name = parameter.getBytes(StandardCharsets.UTF_8);
        for (int p = REQUEST_HEADER_LENGTH; p < startup.length && startup[p] != 0; ) {
            int end = indexOfNul(startup, p, startup.length);
            if (end < 0) {
                return false;
            }
            if (Arrays.equals(startup, p, end, name, 0, name.length)) {
                return true;
            }
            int valueEnd = indexOfNul(startup, end + 1, startup.length);
            if (valueEnd < 0) {
                return false;
            }
            p = valueEnd + 1;
        }
        return false;
    }

    /**
     * A complete CancelRequest with a 4-byte key: the server gets its own key back for a stand-in. One write, as
     * pgjdbc's: PgBouncer 1.18 closes a cancel connection whose packet arrives in parts.
     */
    private void cancelRequest() throws IOException {
        state = State.PASS;
        byte[] realKey = CancelKeys.realKey(readInt(cancel, 0), readInt(cancel, 4));
        if (realKey == null) {
            byte[] request = new byte[header.length + cancel.length];
            System.arraycopy(header, 0, request, 0, header.length);
            System.arraycopy(cancel, 0, request, header.length, cancel.length);
            out.write(request);
            return;
        }
        byte[] request = new byte[REQUEST_HEADER_LENGTH + 4 + realKey.length];
        writeInt(request, 0, request.length);
        writeInt(request, 4, CANCEL_REQUEST_CODE);
        System.arraycopy(cancel, 0, request, REQUEST_HEADER_LENGTH, 4);
        System.arraycopy(realKey, 0, request, REQUEST_HEADER_LENGTH + 4, realKey.length);
        out.write(request);
    }

    private void keepStartup(byte[] b, int off, int n) {
        if (startupCopy != null) {
            System.arraycopy(b, off, startupCopy, startupCopied, n);
            startupCopied += n;
        }
    }

    /** @return true if the client started with a TLS handshake (sslnegotiation=direct) */
    boolean directTls() {
        return directTls;
    }

    /** Starts over on a new connection's stream: the next bytes are a new startup-phase request. */
    void reset(OutputStream fresh) {
        out = fresh;
        state = State.HEADER;
        headerBytes = 0;
        bodyRemaining = 0;
    }

    /**
     * Sends pgjdbc's StartupMessage again, exactly as pgjdbc wrote it, on a new connection to a peer that failed
     * on the raised version.
     *
     * @param fresh  the new connection's stream
     * @param failed the attempt that failed
     * @throws IOException if there is no complete StartupMessage to replay, or the write fails
     */
    void replayStartup(OutputStream fresh, ProtocolUpgrade.Attempt failed) throws IOException {
        if (startupCopy == null || startupCopied != startupCopy.length) {
            throw new IOException("pool-goaway cannot replay the StartupMessage to " + peer);
        }
        reset(fresh);
        state = State.PASS;
        backend.startupSent(upgrade.replay(failed));
        out.write(startupCopy);
        out.flush();
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
