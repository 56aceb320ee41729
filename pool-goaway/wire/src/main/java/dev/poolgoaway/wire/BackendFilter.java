package dev.poolgoaway.wire;

import static dev.poolgoaway.wire.Protocol.ANSWER_ERROR;
import static dev.poolgoaway.wire.Protocol.ANSWER_GSS;
import static dev.poolgoaway.wire.Protocol.ANSWER_NO;
import static dev.poolgoaway.wire.Protocol.ANSWER_TLS;
import static dev.poolgoaway.wire.Protocol.AUTHENTICATION;
import static dev.poolgoaway.wire.Protocol.AUTHENTICATION_OK;
import static dev.poolgoaway.wire.Protocol.BACKEND_KEY_DATA;
import static dev.poolgoaway.wire.Protocol.ERROR_RESPONSE;
import static dev.poolgoaway.wire.Protocol.GO_AWAY;
import static dev.poolgoaway.wire.Protocol.LENGTH_WORD;
import static dev.poolgoaway.wire.Protocol.MESSAGE_HEADER_LENGTH;
import static dev.poolgoaway.wire.Protocol.NEGOTIATE_PROTOCOL_VERSION;
import static dev.poolgoaway.wire.Protocol.PARAMETER_STATUS;
import static dev.poolgoaway.wire.Protocol.PROTOCOL_MAJOR;
import static dev.poolgoaway.wire.Protocol.READY_FOR_QUERY;
import static dev.poolgoaway.wire.Protocol.indexOfNul;
import static dev.poolgoaway.wire.Protocol.maxLength;
import static dev.poolgoaway.wire.Protocol.minLength;
import static dev.poolgoaway.wire.Protocol.printable;
import static dev.poolgoaway.wire.Protocol.readInt;
import static dev.poolgoaway.wire.Protocol.writeInt;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The server-to-client half of the wire layer: an explicit, incremental state machine that frames every backend
 * message, removes GoAway ({@code 'g'}) wherever it appears, translates the server's NegotiateProtocolVersion so
 * pgjdbc sees the answer to its own request, and records what the server says about leaving.
 *
 * <p>Bytes are processed in place in the reader's buffer: a message body is never copied, buffered whole or
 * allocated for. The only state kept between chunks is a header in progress, a fixed
 * {@value #CAPTURE_MAX}-byte window on the messages we inspect (ParameterStatus, BackendKeyData, ErrorResponse)
 * and, during startup only, held messages (at most {@value #HOLD_MAX} bytes). Memory per connection is therefore
 * bounded and independent of message size.
 *
 * <p>During the startup of a raised attempt ({@link ProtocolUpgrade}) the filter holds what would let the attempt
 * be replayed invisibly: a first reply that is an ErrorResponse, and, when the server authenticated pgjdbc without
 * a challenge, everything from AuthenticationOk to the first ReadyForQuery. A failure there is swallowed and
 * {@link #retryRequested()} asks the owner to reconnect and replay pgjdbc's own StartupMessage. Once pgjdbc has
 * answered an authentication challenge nothing is held: a replay could not repeat pgjdbc's answer. So a first
 * attempt to a peer new to the process is given up at the challenge itself, which pgjdbc then gets from the replay
 * ({@link ProtocolUpgrade.Attempt#givesUpAtChallenge()}). In a 3.0
 * session over a connection the server runs on 3.2 or later, BackendKeyData's long key is replaced by a 4-byte
 * stand-in ({@link CancelKeys}).
 *
 * <p>Every byte that is not ours comes out unchanged and in order. When a withheld message has to be let through
 * after all (a NegotiateProtocolVersion pgjdbc must see, say), processing stops at that point and the bytes wait
 * in {@link #takeReleased}; the caller hands them out before the rest of the chunk ({@link #consumed()}).
 * A protocol violation is reported after the good bytes before it: {@link #process} returns those, and the
 * {@link IOException} waits in {@link #failure()}; pgjdbc wraps it as it wraps its own I/O errors (08001 while
 * connecting, 08006 after). An unknown message type during the startup reaches pgjdbc first, so that its session
 * setup refuses it with its own 08P01, as it would without the layer.
 *
 * <p>Until the peer's first answer frames as PostgreSQL's, there is no session to protect: bytes the filter cannot
 * recognise there come from another kind of server (an HTTP proxy, a captive portal, a TLS endpoint, a wrong port),
 * and the filter steps aside for the connection. Everything passes unchanged, nothing is recorded or raised, and
 * pgjdbc fails with the error it reports without the layer.
 *
 * <p>Not thread-safe: one reader at a time (the stream that owns it holds a lock).
 */
final class BackendFilter {

    private static final Logger log = LoggerFactory.getLogger(BackendFilter.class);

    /** Bytes of an inspected message kept for parsing; enough for an admin message (the server cuts it at 127). */
    static final int CAPTURE_MAX = 1024;
    /** The largest startup reply we hold back while deciding what pgjdbc should see. */
    static final int HOLD_MAX = 8192;
    /** The length word of the authentication messages that carry nothing but their code (AuthenticationOk...). */
    private static final int AUTHENTICATION_CODE_ONLY_LENGTH = LENGTH_WORD + 4;
    static final String DISCONNECT_REQUESTED = "disconnect_requested";

    private enum State {
        /** Expecting a message type byte. */
        TYPE,
        /** Collecting the four bytes of the length word. */
        LENGTH,
        /** Inside a message body; {@link #remaining} bytes to go. */
        BODY,
        /** Expecting the single unframed byte that answers SSLRequest or GSSENCRequest. */
        ANSWER,
        /** Not ours to frame (encrypted, or a cancel connection): every byte passes. */
        PASS_THROUGH,
        /**
         * The peer's first answer was not PostgreSQL's (an HTTP proxy, a captive portal, a TLS endpoint, a wrong
         * port): every byte passes and nothing is recorded, so that pgjdbc fails as it would without the layer.
         */
        STEPPED_ASIDE
    }

    /** How the current message's body is treated. */
    private enum Body {
        PASS,
        /** Passed, and its first {@value #CAPTURE_MAX} bytes copied for {@link #messageEnd()}. */
        CAPTURE,
        /** Withheld whole (bounded by {@link #HOLD_MAX}) until {@link #messageEnd()} decides. */
        HOLD
    }

    private final ConnectionSignals signals;
    private final String peer;
    /** Whether the owner can reconnect and replay the startup when a peer refuses the raised version. */
    private final boolean canRetry;

    // Written by the client side during startup (pgjdbc's thread), read by whoever reads: hence volatile.
    private volatile State state = State.TYPE;
    private byte type;
    private int lengthBytes;
    private int length;
    private int remaining;
    private boolean withheld;
    private Body body = Body.PASS;
    private long offset;

    private final byte[] capture = new byte[CAPTURE_MAX];
    private int captured;
    private byte[] hold;
    private int held;

    private byte[] released;
    /**
     * pgjdbc was given bytes of this attempt (a NegotiateProtocolVersion rewritten for it): the attempt is not
     * given up at a challenge then, or pgjdbc would read the replay's answers after them (a second
     * NegotiateProtocolVersion). A peer that negotiates is not the kind that fails after the challenge anyway.
     */
    private boolean spoke;
    private int consumed;
    private IOException failure;
    private boolean retry;
    /**
     * Until the peer's first answer (to SSLRequest, GSSENCRequest or the StartupMessage) framed as PostgreSQL's:
     * what the layer cannot recognise there is not a broken session but another kind of server, pgjdbc's to judge.
     */
    private boolean firstAnswer;
    /** The violation is a message type pgjdbc's session setup does not know either: pgjdbc gets the byte. */
    private boolean unknownTypeInStartup;

    /** The startup this layer sent, until the session's first ReadyForQuery. */
    private volatile ProtocolUpgrade.Attempt startup;
    /**
     * pgjdbc was given what a replay could not repeat (an authentication challenge it answers, an error, a message
     * too large to hold): from here on, a failed attempt is pgjdbc's failure.
     */
    private boolean committed;
    /** The challenge being held is the end of a first attempt to a new peer: swallowed, then replayed. */
    private boolean givingUp;
    /** Between a challenge-free AuthenticationOk and the first ReadyForQuery: every message waits in pending. */
    private boolean holdingSession;
    private byte[] pending;
    private int pendingLength;

    BackendFilter(ConnectionSignals signals, String peer) {
        this(signals, peer, false);
    }

    BackendFilter(ConnectionSignals signals, String peer, boolean canRetry) {
        this.signals = signals;
        this.peer = peer;
        this.canRetry = canRetry;
    }

    // ---- what the client side tells us --------------------------------------------------------------------

    /** The client sent SSLRequest or GSSENCRequest: one unframed answer byte comes next. */
    void expectAnswer() {
        // Before the volatile write of state, which publishes it to the reading thread.
        firstAnswer = true;
        state = State.ANSWER;
    }

    /** The client sent a StartupMessage; its first reply may be a NegotiateProtocolVersion to translate. */
    void startupSent(ProtocolUpgrade.Attempt attempt) {
        startup = attempt;
        retry = false;
        spoke = false;
        committed = false;
        givingUp = false;
        holdingSession = false;
        pendingLength = 0;
        firstAnswer = true;
        state = State.TYPE;
    }

    /** Back to the first byte of a new connection: the owner reconnected. */
    void reset() {
        state = State.TYPE;
        firstAnswer = false;
        startup = null;
        retry = false;
        withheld = false;
        released = null;
        spoke = false;
        committed = false;
        givingUp = false;
        holdingSession = false;
        pendingLength = 0;
        offset = 0;
    }

    /** @return true while the startup under way is a replay of pgjdbc's own request on a connection of ours */
    boolean replaying() {
        ProtocolUpgrade.Attempt attempt = startup;
        return attempt != null && attempt.replay();
    }

    /**
     * The reconnection for a replay, or the replay's startup, got no answer in time. pgjdbc gets a plain
     * {@link IOException}, not the timeout: it would take a timeout for its own connection's and, under
     * {@code sslmode=prefer}, open yet another connection without TLS because of a connection it never made.
     *
     * @param timeout what the socket said
     * @return the exception for pgjdbc
     */
    IOException replayUnanswered(IOException timeout) {
        return new IOException("pool-goaway reconnected to " + peer + " for pgjdbc's own startup request (the peer "
                + "had refused the raised one, or asked a first connection for a password), and got no answer in "
                + "time: " + timeout.getMessage(), timeout);
    }

    /** @return the startup attempt that failed and must be replayed, once {@link #retryRequested()} */
    ProtocolUpgrade.Attempt failedAttempt() {
        return retry ? startup : null;
    }

    /**
     * @return true when the peer refused our raised protocol version and the owner should reconnect and replay
     *         pgjdbc's own StartupMessage; the refusal itself is swallowed, pgjdbc never sees it
     */
    boolean retryRequested() {
        return retry;
    }

    /** The connection is not ours to frame (CancelRequest, direct TLS): pass everything. */
    void passThrough() {
        state = State.PASS_THROUGH;
    }

    /** @return true once this layer passes everything through (TLS or GSS took over, or never framed) */
    boolean passingThrough() {
        return state == State.PASS_THROUGH || state == State.STEPPED_ASIDE;
    }

    // ---- the state machine --------------------------------------------------------------------------------

    /**
     * Processes raw server bytes in place.
     *
     * @param buf the bytes, overwritten with the output
     * @param off where they start
     * @param len how many
     * @return how many output bytes now start at {@code off}; see {@link #consumed()} for how much input was used
     */
    int process(byte[] buf, int off, int len) {
        int r = off;
        int w = off;
        int end = off + len;
        if (failure != null) {
            consumed = len;
            return 0;
        }
        try {
            while (r < end && released == null && !retry) {
                switch (state) {
                    case PASS_THROUGH, STEPPED_ASIDE -> {
                        int n = end - r;
                        move(buf, r, w, n);
                        r += n;
                        w += n;
                    }
                    case BODY -> {
                        int n = Math.min(remaining, end - r);
                        if (body == Body.HOLD) {
                            System.arraycopy(buf, r, hold, held, n);
                            held += n;
                        } else {
                            if (body == Body.CAPTURE) {
                                keep(buf, r, n);
                            }
                            move(buf, r, w, n);
                            w += n;
                        }
                        r += n;
                        remaining -= n;
                        if (remaining == 0) {
                            messageEnd();
                        }
                    }
                    case TYPE -> {
                        if (end - r >= MESSAGE_HEADER_LENGTH) {
                            // The whole header is here (nearly always): frame it at once rather than byte by byte
                            // through LENGTH; the same steps in the same order, so the output is the same.
                            if (!startMessage(buf[r], offset + (r - off))) {
                                continue;
                            }
                            length = readInt(buf, r + 1);
                            lengthBytes = 4;
                            if (!withheld) {
                                move(buf, r, w, MESSAGE_HEADER_LENGTH);
                                w += MESSAGE_HEADER_LENGTH;
                            }
                            r += MESSAGE_HEADER_LENGTH;
                            headerComplete();
                            continue;
                        }
                        byte b = buf[r];
                        if (!startMessage(b, offset + (r - off))) {
                            continue;
                        }
                        r++;
                        if (!withheld) {
                            buf[w++] = b;
                        }
                    }
                    case LENGTH -> {
                        byte b = buf[r++];
                        length = (length << 8) | (b & 0xff);
                        if (!withheld) {
                            buf[w++] = b;
                        }
                        if (++lengthBytes == 4) {
                            headerComplete();
                        }
                    }
                    case ANSWER -> {
                        byte b = buf[r];
                        if (answer(b)) {
                            r++;
                            buf[w++] = b;
                        }
                    }
                    default -> throw new IllegalStateException(state.toString());
                }
            }
        } catch (IOException e) {
            if (unknownTypeInStartup) {
                // pgjdbc's session setup refuses this byte itself, with its own "Protocol error.  Session setup
                // failed." (08P01); the layer's exception waits for a read pgjdbc will not make.
                buf[w++] = buf[r];
            }
            failure = e;
            r = end;
        }
        offset += r - off;
        consumed = r - off;
        return w - off;
    }

    /** @return how many input bytes the last {@link #process} call used; the rest must be given again */
    int consumed() {
        return consumed;
    }

    /** @return bytes to hand out right after the last call's output, or null; clears them */
    byte[] takeReleased() {
        byte[] r = released;
        released = null;
        return r;
    }

    /** @return the protocol violation found so far, if any: the stream is dead after it */
    IOException failure() {
        return failure;
    }

    /** @return true once the server sent a FATAL error or ended the stream: nothing useful follows */
    boolean terminated() {
        return signals.termination().isPresent();
    }

    /** @return true between messages, where the server may end the stream cleanly */
    boolean atMessageBoundary() {
        return state == State.TYPE || state == State.PASS_THROUGH || state == State.ANSWER
                || state == State.STEPPED_ASIDE;
    }

    /**
     * The input ended.
     *
     * @throws IOException if it ended inside a message: a truncated frame
     */
    void endOfStream() throws IOException {
        if (failure != null) {
            throw failure;
        }
        if (state == State.STEPPED_ASIDE) {
            return;
        }
        if (atMessageBoundary() && replayable() && startup.failed(null, "closed the connection "
                + (holdingSession ? "after a challenge-free authentication" : "without a reply"))) {
            retry = true;
            return;
        }
        if (!atMessageBoundary()) {
            // An EOFException, as pgjdbc's own read of a truncated message gives: the same cause for the same fault.
            failure = new EOFException(String.format(
                    "The server %s closed the connection in the middle of a '%s' message (%s); the stream is truncated",
                    peer, printable(type), state == State.LENGTH
                            ? "after " + lengthBytes + " of 4 length bytes"
                            : remaining + " of " + (length - 4) + " body bytes missing"));
            throw failure;
        }
        signals.serverClosed();
    }

    /** Bytes of the current message body that can be skipped without inspection, or 0. */
    int skippableBody() {
        return state == State.BODY && body == Body.PASS ? remaining : 0;
    }

    /** {@code n} bytes of a {@link #skippableBody()} were skipped by the caller. */
    void skipped(int n) {
        remaining -= n;
        offset += n;
        if (remaining == 0) {
            state = State.TYPE;
        }
    }

    // ---- message handling ---------------------------------------------------------------------------------

    private boolean answer(byte b) throws IOException {
        switch (b) {
            case ANSWER_TLS -> {
                state = State.PASS_THROUGH;
                return true;
            }
            case ANSWER_GSS -> {
                state = State.PASS_THROUGH;
                signals.blind();
                log.warn("GSS encryption on the connection to {}: pool-goaway cannot see GoAway through it, "
                        + "so this connection will not be drained early", peer);
                return true;
            }
            case ANSWER_NO -> {
                state = State.TYPE;
                return true;
            }
            case ANSWER_ERROR -> {
                // An old server answers SSLRequest with an ErrorResponse: frame it as a message.
                state = State.TYPE;
                return false;
            }
            default -> {
                // Not PostgreSQL: pgjdbc reads this byte itself and reports its own error.
                stepAside(String.format("answered SSLRequest/GSSENCRequest with 0x%02x", b & 0xff));
                return true;
            }
        }
    }

    /**
     * The peer's first answer is not PostgreSQL's: from here on every byte passes unchanged, nothing is recorded,
     * nothing is raised, and pgjdbc reports what it reports without the layer.
     */
    private void stepAside(String what) {
        state = State.STEPPED_ASIDE;
        firstAnswer = false;
        log.debug("{} {}: not a PostgreSQL answer, pool-goaway steps aside for this connection", peer, what);
    }

    /** @return false if the layer stepped aside at this byte: it has not been consumed and passes as it is */
    private boolean startMessage(byte t, long at) throws IOException {
        if (maxLength(t, HOLD_MAX) < 0 && firstAnswer) {
            stepAside(String.format("answered with a first byte 0x%02x", t & 0xff));
            return false;
        }
        if (maxLength(t, HOLD_MAX) < 0) {
            unknownTypeInStartup = startup != null;
            throw violation(String.format("sent an unknown message type 0x%02x at stream offset %d: "
                    + "not a PostgreSQL protocol stream, or a corrupt one", t & 0xff, at));
        }
        if (t == NEGOTIATE_PROTOCOL_VERSION && (startup == null || startup.replySeen())) {
            if (firstAnswer) {
                stepAside("answered with a first byte 'v'");
                return false;
            }
            throw violation("sent NegotiateProtocolVersion outside the reply to a StartupMessage");
        }
        type = t;
        state = State.LENGTH;
        lengthBytes = 0;
        length = 0;
        withheld = t == GO_AWAY || t == NEGOTIATE_PROTOCOL_VERSION || holdingSession
                // Until pgjdbc is committed, an error may be the raised version's failure, to be replayed.
                || (t == ERROR_RESPONSE && replayable())
                // AuthenticationOk opens the session hold; a challenge ends the chance of a replay.
                || (t == AUTHENTICATION && replayable())
                || (t == BACKEND_KEY_DATA && needsStandInKey());
        return true;
    }

    /** @return true if the connection ending now would be a raised attempt's failure, to be replayed */
    boolean replayableFailure() {
        return atMessageBoundary() && replayable();
    }

    /** @return true while a failure of the startup could still be replayed unseen by pgjdbc */
    private boolean replayable() {
        return startup != null && startup.raised() && canRetry && !committed;
    }

    /** @return true if pgjdbc asked for 3.0 and the server may run this connection on 3.2 or later */
    private boolean needsStandInKey() {
        return startup != null && startup.raised() && startup.requestedMinor() == 0;
    }

    private void headerComplete() throws IOException {
        int max = maxLength(type, HOLD_MAX);
        int min = minLength(type);
        boolean fixed = max == min || type == GO_AWAY;
        if (length < min || length > max || (fixed && length != max)) {
            if (firstAnswer) {
                // What the layer held of it goes out as it came (the rest follows unchanged): pgjdbc judges.
                if (withheld) {
                    released = header();
                }
                stepAside(String.format("answered with '%s' and a length word of %d", printable(type), length));
                return;
            }
            throw violation(String.format("sent a '%s' message with length %d (%s)", printable(type),
                    length, fixed ? "must be " + max : "allowed " + min + ".." + max));
        }
        if (type != GO_AWAY) {
            // A PostgreSQL message: from here on a broken stream is a broken session, the layer's to refuse.
            firstAnswer = false;
        }
        if (startup != null && !startup.replySeen() && type != NEGOTIATE_PROTOCOL_VERSION && type != GO_AWAY
                && type != ERROR_RESPONSE) {
            startup.accepted(signals);
        }
        remaining = length - 4;
        captured = 0;
        if (withheld && type == AUTHENTICATION && length != AUTHENTICATION_CODE_ONLY_LENGTH) {
            // MD5 salt, SASL mechanisms or data: a challenge pgjdbc answers. Nothing after it can be replayed, so
            // a first attempt to a new peer is given up here instead (held whole, then swallowed).
            givingUp = length + 1 <= HOLD_MAX && !spoke && startup.givesUpAtChallenge();
            if (!givingUp) {
                committed = true;
                if (!holdingSession) {
                    withheld = false;
                    released = header();
                }
            }
        }
        if (withheld && type != GO_AWAY && type != NEGOTIATE_PROTOCOL_VERSION
                && pendingLength + length + 1 > HOLD_MAX) {
            // Too large to hold (a huge notice, say): let it and what waits before it through, replay or not.
            withheld = false;
            holdingSession = false;
            committed = true;
            released = withPending(header());
        }
        if (withheld && type != GO_AWAY) {
            body = Body.HOLD;
            hold = hold == null || hold.length < length + 1 ? new byte[Math.max(length + 1, 64)] : hold;
            byte[] h = header();
            System.arraycopy(h, 0, hold, 0, h.length);
            held = h.length;
        } else {
            body = type == PARAMETER_STATUS || type == BACKEND_KEY_DATA || type == ERROR_RESPONSE
                    ? Body.CAPTURE : Body.PASS;
        }
        if (remaining == 0) {
            messageEnd();
        } else {
            state = State.BODY;
        }
    }

    private void messageEnd() throws IOException {
        state = State.TYPE;
        switch (type) {
            case GO_AWAY -> {
                signals.goAway();
                log.debug("GoAway from {}", peer);
            }
            case PARAMETER_STATUS -> {
                parameterStatus();
                emitHeld();
            }
            case BACKEND_KEY_DATA -> backendKeyData();
            case ERROR_RESPONSE -> errorResponse();
            case NEGOTIATE_PROTOCOL_VERSION -> negotiateProtocolVersion();
            case AUTHENTICATION -> authentication();
            case READY_FOR_QUERY -> readyForQuery();
            default -> emitHeld();
        }
    }

    /** A held message goes out as it came (or waits in the session hold). */
    private void emitHeld() {
        if (withheld) {
            emit(copyOf(hold, held));
        }
    }

    /** Bytes for pgjdbc in place of a held message: into the session hold while it lasts, else released. */
    private void emit(byte[] out) {
        if (holdingSession) {
            if (pending == null || pending.length < pendingLength + out.length) {
                byte[] grown = new byte[Math.max(HOLD_MAX, pendingLength + out.length)];
                if (pending != null) {
                    System.arraycopy(pending, 0, grown, 0, pendingLength);
                }
                pending = grown;
            }
            System.arraycopy(out, 0, pending, pendingLength, out.length);
            pendingLength += out.length;
        } else {
            released = withPending(out);
            spoke = true;
        }
    }

    /** @return what waits in the session hold followed by {@code out}; empties the hold */
    private byte[] withPending(byte[] out) {
        if (pendingLength == 0) {
            return out;
        }
        byte[] all = new byte[pendingLength + out.length];
        System.arraycopy(pending, 0, all, 0, pendingLength);
        System.arraycopy(out, 0, all, pendingLength, out.length);
        pendingLength = 0;
        return all;
    }

    private void authentication() {
        if (!withheld) {
            return;
        }
        int code = readInt(hold, MESSAGE_HEADER_LENGTH);
        if (code == AUTHENTICATION_OK && !committed) {
            // Authenticated without a word from pgjdbc: until the session is ready, a failure can still be
            // replayed (pgpool-II, say, fails here on a long cancel key), so the session waits here.
            holdingSession = true;
        } else if (code != AUTHENTICATION_OK) {
            if (givingUp || (!spoke && startup.givesUpAtChallenge())) {
                // The first connection to this peer: pgjdbc's own request gets the challenge instead.
                retry = true;
                pendingLength = 0;
                return;
            }
            committed = true;
        }
        emit(copyOf(hold, held));
    }

    private void readyForQuery() {
        ProtocolUpgrade.Attempt attempt = startup;
        if (attempt != null) {
            startup = null;
            holdingSession = false;
            if (attempt.deferred()) {
                signals.deferGoAway();
            }
            attempt.ready(signals.goAwayCapable());
            signals.ready();
        }
        emitHeld();
    }

    private void backendKeyData() {
        byte[] key = withheld ? hold : capture;
        int at = withheld ? MESSAGE_HEADER_LENGTH : 0;
        int available = withheld ? held : captured;
        if (available - at < 4) {
            emitHeld();
            return;
        }
        int pid = readInt(key, at);
        signals.backendPid(pid);
        int keyLength = length - 8;
        if (!withheld || !needsStandInKey() || keyLength == CancelKeys.SHORT_KEY_LENGTH || keyLength < 0) {
            emitHeld();
            return;
        }
        // pgjdbc runs a 3.0 session and takes only a 4-byte key; its cancel requests get the real one back.
        byte[] realKey = new byte[keyLength];
        System.arraycopy(hold, MESSAGE_HEADER_LENGTH + 4, realKey, 0, keyLength);
        int standIn = CancelKeys.standIn(pid, realKey);
        signals.cancelStandIn(standIn);
        byte[] out = new byte[MESSAGE_HEADER_LENGTH + 4 + CancelKeys.SHORT_KEY_LENGTH];
        out[0] = BACKEND_KEY_DATA;
        writeInt(out, 1, out.length - 1);
        writeInt(out, MESSAGE_HEADER_LENGTH, pid);
        writeInt(out, MESSAGE_HEADER_LENGTH + 4, standIn);
        emit(out);
    }

    private void parameterStatus() {
        byte[] b = withheld ? hold : capture;
        int from = withheld ? MESSAGE_HEADER_LENGTH : 0;
        int to = withheld ? held : captured;
        int nameEnd = indexOfNul(b, from, to);
        if (nameEnd < 0) {
            return;
        }
        String name = new String(b, from, nameEnd - from, StandardCharsets.UTF_8);
        if (DISCONNECT_REQUESTED.equals(name)) {
            int valueEnd = indexOfNul(b, nameEnd + 1, to);
            String value = valueEnd < 0 ? "" : new String(b, nameEnd + 1, valueEnd - nameEnd - 1,
                    StandardCharsets.UTF_8);
            signals.disconnectRequested("on".equalsIgnoreCase(value) || "true".equalsIgnoreCase(value));
        }
    }

    private void errorResponse() throws IOException {
        byte[] fields = body == Body.HOLD ? hold : capture;
        int from = body == Body.HOLD ? MESSAGE_HEADER_LENGTH : 0;
        int to = body == Body.HOLD ? held : captured;
        ErrorFields error = ErrorFields.parse(fields, from, to);
        if (body == Body.HOLD) {
            ProtocolUpgrade.Attempt attempt = startup;
            if (attempt != null && replayable() && attempt.failed(error.sqlState(),
                    error + (holdingSession ? ", after a challenge-free authentication" : ""))) {
                retry = true;
                pendingLength = 0;
                return;
            }
            holdingSession = false;
            committed = true;
            emit(copyOf(hold, held));
        } else if (startup != null && committed) {
            startup.failedAfterChallenge(error.sqlState(), error.toString());
        }
        if ("FATAL".equals(error.severity()) || "PANIC".equals(error.severity())) {
            signals.terminated(error.severity(), error.sqlState(), error.message(), error.detail());
        } else if (Termination.QUERY_CANCELED.equals(error.sqlState())) {
            // pg_cancel_backend(pid, msg): worth a line where it happened, no reason to leave the server.
            Termination.adminMessage(error.sqlState(), error.message(), error.detail()).ifPresent(m -> log.info(
                    "statement on backend {} of {} canceled by an administrator: {}",
                    signals.backendPid().orElse(0), peer, LogText.sanitize(m)));
        }
    }

    private void negotiateProtocolVersion() throws IOException {
        int bodyLength = held - MESSAGE_HEADER_LENGTH;
        if (bodyLength < 8) {
            throw violation("sent a NegotiateProtocolVersion of " + bodyLength + " body bytes (at least 8 needed)");
        }
        // The version word is the whole version, major << 16 | minor, as in the StartupMessage.
        int version = readInt(hold, MESSAGE_HEADER_LENGTH);
        int serverMinor = version & 0xffff;
        int unsupported = readInt(hold, MESSAGE_HEADER_LENGTH + 4);
        if (version >>> 16 != PROTOCOL_MAJOR || serverMinor > startup.sentMinor()) {
            throw violation("sent a NegotiateProtocolVersion offering " + (version >>> 16) + "." + serverMinor
                    + " to a client that asked for 3." + startup.sentMinor());
        }
        // The options the server does not support: ours (the GoAway extension) is for us only, pgjdbc's (none so
        // far, but a later pgjdbc may ask for some) are its business.
        String ours = startup.extension();
        boolean extensionRefused = false;
        ByteArrayOutputStream theirs = new ByteArrayOutputStream();
        int theirCount = 0;
        int p = MESSAGE_HEADER_LENGTH + 8;
        for (int i = 0; i < unsupported; i++) {
            int nul = indexOfNul(hold, p, held);
            if (nul < 0) {
                throw violation("sent a NegotiateProtocolVersion whose option list is malformed");
            }
            if (ours != null && ours.equals(new String(hold, p, nul - p, StandardCharsets.UTF_8))) {
                extensionRefused = true;
            } else {
                theirs.write(hold, p, nul + 1 - p);
                theirCount++;
            }
            p = nul + 1;
        }
        if (unsupported < 0 || p != held) {
            throw violation("sent a NegotiateProtocolVersion whose option list is malformed");
        }
        int seen = Math.min(serverMinor, startup.requestedMinor());
        startup.negotiated(serverMinor, extensionRefused, signals);
        if (startup.raised() && theirCount == 0 && serverMinor >= startup.requestedMinor()) {
            // pgjdbc asked for less than we did and the server gives at least that: it expects no reply here.
            return;
        }
        byte[] options = theirs.toByteArray();
        // Version, option count, options: the body of NegotiateProtocolVersion.
        byte[] out = new byte[MESSAGE_HEADER_LENGTH + 8 + options.length];
        out[0] = NEGOTIATE_PROTOCOL_VERSION;
        writeInt(out, 1, out.length - 1);
        writeInt(out, MESSAGE_HEADER_LENGTH, (PROTOCOL_MAJOR << 16) | seen);
        writeInt(out, MESSAGE_HEADER_LENGTH + 4, theirCount);
        System.arraycopy(options, 0, out, MESSAGE_HEADER_LENGTH + 8, options.length);
        emit(out);
    }

    // ---- helpers ------------------------------------------------------------------------------------------

    private IOException violation(String what) {
        return new IOException("Protocol violation by the server " + peer + ": it " + what);
    }

    private void keep(byte[] buf, int from, int n) {
        int k = Math.min(n, CAPTURE_MAX - captured);
        if (k > 0) {
            System.arraycopy(buf, from, capture, captured, k);
            captured += k;
        }
    }

    private byte[] header() {
        byte[] h = new byte[MESSAGE_HEADER_LENGTH];
        h[0] = type;
        writeInt(h, 1, length);
        return h;
    }

    private static void move(byte[] buf, int from, int to, int n) {
        if (from != to) {
            System.arraycopy(buf, from, buf, to, n);
        }
    }

    private static byte[] copyOf(byte[] b, int n) {
        byte[] c = new byte[n];
        System.arraycopy(b, 0, c, 0, n);
        return c;
    }

}
