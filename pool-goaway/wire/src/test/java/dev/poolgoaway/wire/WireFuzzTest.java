package dev.poolgoaway.wire;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.ByteArrayOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.lang.management.ManagementFactory;
import java.time.Clock;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Random;
import java.util.function.IntSupplier;

import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.Tuple;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.statistics.Statistics;

/**
 * Fuzzing of the wire layer's state machines with jqwik: valid backend streams, in random chunks and read through
 * random mixes of {@code read}, {@code skip}, {@code available} and {@code poll}, come out lossless minus GoAway with
 * the signals recorded; mutated streams (flipped, inserted, deleted bytes, corrupted lengths, truncations) come out as
 * the good bytes before the damage followed by a clear {@link IOException}. Never another exception, a hang, or memory
 * that grows with what a server declares.
 *
 * <p>The mutated streams are checked against a reference framer that parses the whole input at once, the
 * opposite of the filter's incremental, chunk-by-chunk work. Tries per property: {@code jqwik.tries.default} in
 * {@code junit-platform.properties}, overridden with {@code -Djqwik.tries.default=N} (see docs/reliability.md).
 */
class WireFuzzTest {

    /** Generous: a try takes milliseconds; only a hang (an endless loop in the filter) comes near it. */
    private static final Duration HANG = Duration.ofSeconds(30);
    private static final String PEER = "fuzz:5432";

    // ---- generators -------------------------------------------------------------------------------------------

    /** One element of a stream: its bytes, and what the layer must record for it. */
    record Message(byte[] bytes, boolean goAway, boolean disconnect, boolean fatal) {
        static Message of(byte[] bytes) {
            return new Message(bytes, false, false, false);
        }

        @Override
        public String toString() {
            return "'" + (char) bytes[0] + "' of " + bytes.length + " bytes";
        }
    }

    @Provide
    Arbitrary<List<Message>> messages() {
        Arbitrary<Message> random = Combinators.combine(
                Arbitraries.of(new String(Messages.BACKEND_TYPES).chars().mapToObj(c -> (char) c).toList()),
                Arbitraries.frequencyOf(
                        Tuple.of(20, Arbitraries.integers().between(0, 300)),
                        Tuple.of(1, Arbitraries.integers().between(300, 70_000))),
                Arbitraries.longs())
                .as((type, size, seed) -> {
                    byte[] body = new byte[Messages.legalBodyLength(type, size)];
                    new Random(seed).nextBytes(body);
                    return Message.of(Messages.stream().msg(type, body).bytes());
                });
        Arbitrary<Message> goAway = Arbitraries.just(new Message(Messages.stream().goAway().bytes(), true, false,
                false));
        Arbitrary<Message> disconnect = Arbitraries.just(new Message(
                Messages.stream().parameterStatus("disconnect_requested", "on").bytes(), false, true, false));
        Arbitrary<Message> fatal = Arbitraries.just(new Message(Messages.stream().error("FATAL", "57P01",
                "terminating connection due to administrator command: fuzz").bytes(), false, false, true));
        return Arbitraries.frequencyOf(
                Tuple.of(12, random),
                Tuple.of(4, goAway),
                Tuple.of(1, disconnect),
                Tuple.of(1, fatal))
                .list().ofMaxSize(40);
    }

    /** Sizes the server's bytes arrive in, used in turn: mostly small, sometimes a socket buffer's worth. */
    @Provide
    Arbitrary<List<Integer>> chunks() {
        return Arbitraries.frequencyOf(
                        Tuple.of(6, Arbitraries.integers().between(1, 16)),
                        Tuple.of(1, Arbitraries.integers().between(1, 70_000)))
                .list().ofMinSize(1).ofMaxSize(8);
    }

    /** What the reader does, in turn; the last step always reads, so that every round makes progress. */
    enum Kind { READ, READ_BYTE, SKIP, AVAILABLE, POLL }

    record Op(Kind kind, int size) {
    }

    @Provide
    Arbitrary<List<Op>> ops() {
        Arbitrary<Integer> sizes = Arbitraries.frequencyOf(
                Tuple.of(4, Arbitraries.integers().between(1, 16)),
                Tuple.of(1, Arbitraries.integers().between(1, 70_000)));
        Arbitrary<Op> op = Combinators.combine(Arbitraries.frequencyOf(
                        Tuple.of(6, Arbitraries.just(Kind.READ)),
                        Tuple.of(2, Arbitraries.just(Kind.SKIP)),
                        Tuple.of(1, Arbitraries.of(Kind.READ_BYTE, Kind.AVAILABLE, Kind.POLL))), sizes)
                .as(Op::new);
        return Combinators.combine(op.list().ofMaxSize(6), sizes)
                .as((list, last) -> {
                    List<Op> all = new ArrayList<>(list);
                    all.add(new Op(Kind.READ, last));
                    return all;
                });
    }

    /** Damage done to a valid stream. */
    interface Mutation {
        byte[] apply(byte[] in);
    }

    /** Flips one bit at a relative position. */
    record Flip(double at, int bit) implements Mutation {
        public byte[] apply(byte[] in) {
            byte[] out = in.clone();
            if (out.length > 0) {
                out[index(at, out.length)] ^= (byte) (1 << bit);
            }
            return out;
        }
    }

    record Insert(double at, byte value) implements Mutation {
        public byte[] apply(byte[] in) {
            int i = in.length == 0 ? 0 : index(at, in.length + 1);
            return Messages.concat(Arrays.copyOf(in, i), new byte[] {value}, Arrays.copyOfRange(in, i, in.length));
        }
    }

    record Delete(double at) implements Mutation {
        public byte[] apply(byte[] in) {
            if (in.length == 0) {
                return in;
            }
            int i = index(at, in.length);
            return Messages.concat(Arrays.copyOf(in, i), Arrays.copyOfRange(in, i + 1, in.length));
        }
    }

    /** Overwrites four bytes with a hostile length word: negative, too small, huge, just over the limit. */
    record Length(double at, int value) implements Mutation {
        public byte[] apply(byte[] in) {
            byte[] out = in.clone();
            if (out.length >= 5) {
                Protocol.writeInt(out, 1 + index(at, out.length - 4), value);
            }
            return out;
        }
    }

    record Truncate(double at) implements Mutation {
        public byte[] apply(byte[] in) {
            return Arrays.copyOf(in, in.length == 0 ? 0 : index(at, in.length));
        }
    }

    private static int index(double at, int length) {
        return Math.min(length - 1, (int) (at * length));
    }

    @Provide
    Arbitrary<List<Mutation>> mutations() {
        Arbitrary<Double> at = Arbitraries.doubles().between(0, 1);
        Arbitrary<Integer> lengths = Arbitraries.oneOf(
                Arbitraries.of(-1, -16, Integer.MIN_VALUE, 0, 3, 4, 5, 6, 264, 265, 8192, 8193, Integer.MAX_VALUE,
                        Protocol.MAX_LENGTH, Protocol.MAX_LENGTH + 1, 0x4000_0000),
                Arbitraries.integers());
        Arbitrary<Mutation> one = Arbitraries.oneOf(
                Combinators.combine(at, Arbitraries.integers().between(0, 7)).as(Flip::new),
                Combinators.combine(at, Arbitraries.bytes()).as(Insert::new),
                at.map(Delete::new),
                Combinators.combine(at, lengths).as(Length::new),
                at.map(Truncate::new));
        return one.list().ofMinSize(1).ofMaxSize(4);
    }

    // ---- properties -------------------------------------------------------------------------------------------

    @Property
    void validStreamsComeOutLosslessMinusGoAwayWithTheSignalsRecorded(@ForAll("messages") List<Message> messages,
            @ForAll("chunks") List<Integer> chunks, @ForAll("ops") List<Op> ops) {
        ByteArrayOutputStream in = new ByteArrayOutputStream();
        ByteArrayOutputStream expected = new ByteArrayOutputStream();
        int goAways = 0;
        int pid = 0;
        for (Message m : messages) {
            in.writeBytes(m.bytes());
            if (m.goAway()) {
                goAways++;
            } else {
                expected.writeBytes(m.bytes());
            }
            if (m.bytes()[0] == 'K') {
                pid = Protocol.readInt(m.bytes(), 5);
            }
        }
        ConnectionSignals signals = new ConnectionSignals(Clock.systemUTC());
        Outcome outcome = drive(new BackendFilter(signals, PEER), in.toByteArray(), chunks, ops,
                expected.toByteArray());
        assertNull(outcome.failure(), "a valid stream ends cleanly");
        assertEquals(expected.size(), outcome.position(), "every byte was read or skipped");
        assertEquals(goAways, signals.goAwayCount());
        assertEquals(goAways > 0, signals.goAwayReceived());
        assertEquals(messages.stream().anyMatch(Message::disconnect), signals.disconnectRequested());
        assertEquals(pid, signals.backendPid().orElse(0));
        Termination end = signals.termination().orElseThrow();
        boolean fatal = messages.stream().anyMatch(Message::fatal);
        assertEquals(fatal ? Termination.Kind.SERVER_ERROR : Termination.Kind.SERVER_CLOSED, end.kind());
    }

    @Property
    void mutatedStreamsGiveTheGoodBytesThenAClearIoException(@ForAll("messages") List<Message> messages,
            @ForAll("mutations") List<Mutation> mutations, @ForAll("chunks") List<Integer> chunks,
            @ForAll("ops") List<Op> ops, @ForAll("answers") int answer) {
        ByteArrayOutputStream valid = new ByteArrayOutputStream();
        messages.forEach(m -> valid.writeBytes(m.bytes()));
        byte[] in = valid.toByteArray();
        for (Mutation m : mutations) {
            in = m.apply(in);
        }
        BackendFilter filter = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), PEER);
        if (answer >= 0) {
            // The reply to an SSLRequest or GSSENCRequest: one unframed byte first.
            filter.expectAnswer();
            in = Messages.concat(new byte[] {(byte) answer}, in);
        }
        Reference ref = Reference.of(in, answer >= 0);
        // Not vacuous: both outcomes, and every kind of damage, come up (reported per run, checked at the end).
        Statistics.label("reference").collect(ref.failure() == null ? "clean" : ref.failure());
        Statistics.label("reference").coverage(c -> {
            c.check("clean").count(n -> n > 0);
            c.check("message with length").count(n -> n > 0);
            c.check("in the middle of a").count(n -> n > 0);
            c.check("unknown message type").count(n -> n > 0);
        });
        Outcome outcome = drive(filter, in, chunks, ops, ref.allowed());
        if (ref.failure() == null) {
            assertNull(outcome.failure(), "the reference framer found nothing wrong");
            assertEquals(ref.good().length, outcome.position());
        } else {
            IOException e = outcome.failure();
            assertTrue(e != null, () -> "expected " + ref.failure() + ", got a clean end");
            assertTrue(outcome.position() >= ref.good().length, () -> "the good bytes came first: " + outcome
                    .position() + " of " + ref.good().length + " before " + e);
            assertTrue(e.getMessage().contains(PEER), e.getMessage());
            assertTrue(e.getMessage().contains(ref.failure()), () -> "expected '" + ref.failure() + "': " + e);
        }
    }

    /** -1: no answer byte; otherwise the first byte after an SSLRequest/GSSENCRequest, valid or not. */
    @Provide
    Arbitrary<Integer> answers() {
        return Arbitraries.frequencyOf(
                Tuple.of(6, Arbitraries.just(-1)),
                Tuple.of(3, Arbitraries.of((int) 'N', (int) 'S', (int) 'G', (int) 'E')),
                Tuple.of(1, Arbitraries.integers().between(0, 255)));
    }

    @Property
    void startupRepliesAreTranslatedOrRefusedClearly(@ForAll("startupReplies") byte[] reply,
            @ForAll("messages") List<Message> rest, @ForAll("chunks") List<Integer> chunks,
            @ForAll("ops") List<Op> ops, @ForAll @IntRange(min = 0, max = 3) int pgjdbcMinor) {
        ByteArrayOutputStream after = new ByteArrayOutputStream();
        ByteArrayOutputStream afterWithoutGoAway = new ByteArrayOutputStream();
        for (Message m : rest) {
            after.writeBytes(m.bytes());
            if (!m.goAway()) {
                afterWithoutGoAway.writeBytes(m.bytes());
            }
        }
        ConnectionSignals signals = new ConnectionSignals(Clock.systemUTC());
        BackendFilter filter = new BackendFilter(signals, PEER);
        filter.startupSent(new ProtocolUpgrade(new HashMap<>()).begin(PEER, pgjdbcMinor, true));
        byte[] in = Messages.concat(reply, after.toByteArray());
        // Without skips: the whole output is compared below.
        List<Op> reads = ops.stream().filter(op -> op.kind() != Kind.SKIP).toList();
        Outcome outcome = drive(filter, in, chunks, reads, null);
        if (outcome.failure() != null) {
            assertTrue(outcome.failure().getMessage().startsWith("Protocol violation by the server " + PEER),
                    outcome.failure().getMessage());
            return;
        }
        // pgjdbc's 3.0 request goes out as 3.3: until the session is ready, a long cancel key becomes a stand-in.
        boolean standIns = pgjdbcMinor == 0;
        byte[] out = standIns ? withStandInKeys(outcome.output()) : outcome.output();
        byte[] tail = standIns ? withStandInKeys(afterWithoutGoAway.toByteArray()) : afterWithoutGoAway.toByteArray();
        assertArrayEquals(tail, Arrays.copyOfRange(out, Math.max(0, out.length - tail.length), out.length),
                "everything after the first reply reached pgjdbc unchanged");
        int firstReply = out.length - tail.length;
        int goAway = reply.length > 0 && reply[0] == 'g' ? 5 : 0;
        assertTrue(firstReply == 0 || firstReply == reply.length - goAway, "the first reply is removed or passed "
                + "whole (GoAway aside), never cut: " + firstReply + " of " + reply.length);
    }

    /**
     * A framed stream as a 3.0 session sees it, keys aside: every BackendKeyData before the first ReadyForQuery
     * with its key as a 4-byte zero (a stand-in is random; {@code BackendFilterTest} checks it maps back).
     */
    private static byte[] withStandInKeys(byte[] framed) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        boolean ready = false;
        for (int p = 0; p < framed.length; ) {
            int length = Protocol.readInt(framed, p + 1);
            if (framed[p] == 'K' && !ready && length >= 8) {
                byte[] k = Messages.stream().backendKeyData(Protocol.readInt(framed, p + 5), 4).bytes();
                out.writeBytes(k);
            } else {
                out.write(framed, p, 1 + length);
            }
            ready |= framed[p] == 'Z';
            p += 1 + length;
        }
        return out.toByteArray();
    }

    /**
     * A server's first reply to a StartupMessage: sane and insane negotiations, refusals, acceptance. (Garbage is
     * the mutated streams' business: here the rest of the stream must stay framed.)
     */
    @Provide
    Arbitrary<byte[]> startupReplies() {
        Arbitrary<byte[]> negotiate = Combinators.combine(Arbitraries.integers().between(0, 5),
                        Arbitraries.integers().between(2, 4), Arbitraries.integers().between(-2, 3),
                        Arbitraries.strings().withCharRange('_', 'z').ofMaxLength(12).list().ofMaxSize(3))
                .as((minor, major, countDelta, options) -> {
                    byte[] head = new byte[8];
                    Protocol.writeInt(head, 0, (major << 16) | minor);
                    Protocol.writeInt(head, 4, options.size() + (countDelta == 3 ? 0 : countDelta));
                    return Messages.stream().msg('v', Messages.concat(head,
                            Messages.cstrings(options.toArray(String[]::new)))).bytes();
                });
        Arbitrary<byte[]> refusal = Arbitraries.of("0A000", "08P01", "28000", "57P03")
                .map(state -> Messages.stream().error("FATAL", state, "unsupported frontend protocol 3.3").bytes());
        Arbitrary<byte[]> bigError = Arbitraries.integers().between(BackendFilter.HOLD_MAX - 20,
                BackendFilter.HOLD_MAX + 20).map(size -> Messages.stream().msg('E', new byte[size]).bytes());
        return Arbitraries.oneOf(negotiate, refusal, bigError,
                Arbitraries.just(Messages.stream().authOk().bytes()),
                Arbitraries.just(Messages.stream().goAway().authOk().bytes()));
    }

    @Property
    void memoryDoesNotGrowWithADeclaredLength(@ForAll("typesWithBodies") char type,
            @ForAll @IntRange(min = 5, max = Integer.MAX_VALUE) int declared,
            @ForAll @IntRange(min = 0, max = 4 << 20) int streamed, @ForAll boolean duringStartup) {
        com.sun.management.ThreadMXBean threads =
                (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        assertTrue(threads.isThreadAllocatedMemorySupported(), "this JVM cannot count allocations");
        byte[] header = new byte[5];
        header[0] = (byte) type;
        Protocol.writeInt(header, 1, declared);
        BackendFilter filter = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), PEER);
        if (duringStartup) {
            filter.startupSent(new ProtocolUpgrade(new HashMap<>()).begin(PEER, 2, true));
        }
        InputStream raw = new SyntheticStream(header, streamed);
        assertTimeoutPreemptively(HANG, () -> {
            BackendInputStream stream = new BackendInputStream(raw, filter, null);
            byte[] buf = new byte[8192];
            long before = threads.getCurrentThreadAllocatedBytes();
            long total = 0;
            try {
                for (int n; (n = stream.read(buf)) >= 0; ) {
                    total += n;
                }
            } catch (IOException expected) {
                // a length out of range, or the stream ended inside the message: either is fine here
            }
            long allocated = threads.getCurrentThreadAllocatedBytes() - before;
            assertTrue(allocated < 256 * 1024, "allocated " + allocated + " bytes for a '" + type
                    + "' message declaring " + declared + " bytes, " + streamed + " streamed, " + total + " read");
        });
    }

    @Provide
    Arbitrary<Character> typesWithBodies() {
        return Arbitraries.of('D', 'd', 'E', 'N', 'S', 'T', 'v', 'K', 'A', 'R');
    }

    @Property
    void theClientSideChangesNothingButTheStartupVersion(@ForAll("clientStreams") byte[][] parts,
            @ForAll("chunks") List<Integer> splits, @ForAll("answers") int answer) throws IOException {
        byte[] first = parts[0];
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        BackendFilter backend = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), PEER);
        FrontendOutputStream out = new FrontendOutputStream(sink, backend, new ProtocolUpgrade(new HashMap<>()), PEER);
        write(out, first, splits);
        boolean sslRequest = Arrays.equals(first, SSL_REQUEST);
        if (sslRequest && answer >= 0) {
            // The server's answer, whatever it is (a violation leaves the filter where it was).
            backend.process(new byte[] {(byte) answer}, 0, 1);
        }
        write(out, parts[1], splits);
        assertArrayEquals(expectedOnTheWire(first, parts[1], sslRequest, backend.passingThrough()),
                sink.toByteArray());
    }

    /**
     * The one change on the client side: pgjdbc's 3.0 or 3.2 StartupMessage goes out as 3.3 asking for the GoAway
     * extension, in one piece, when it is well formed and small enough to replay; before TLS, as the first request,
     * or after an SSLRequest the server did not answer with TLS. A request not yet complete is held back, not sent.
     */
    private static byte[] expectedOnTheWire(byte[] first, byte[] rest, boolean sslRequest, boolean passingThrough) {
        byte[] all = Messages.concat(first, rest);
        int at = sslRequest ? 8 : 0;
        if ((sslRequest && passingThrough) || all.length <= at || all[at] != 0) {
            return all;
        }
        if (all.length - at < 8) {
            return Arrays.copyOf(all, at);
        }
        int length = Protocol.readInt(all, at);
        int code = Protocol.readInt(all, at + 4);
        if (code >>> 16 == 3 && length > 8) {
            if (length > Protocol.MAX_STARTUP_LENGTH) {
                return all;
            }
            if (all.length - at < length) {
                return Arrays.copyOf(all, at);
            }
            byte[] startup = Arrays.copyOfRange(all, at, at + length);
            byte[] sent = startup;
            int minor = code & 0xffff;
            if ((minor == 0 || minor == 2) && startup[length - 1] == 0
                    && !FrontendOutputStream.names(startup, "_pq_.goaway")) {
                sent = Messages.concat(Arrays.copyOf(startup, length - 1), Messages.cstrings("_pq_.goaway", "true"),
                        new byte[] {0});
                Protocol.writeInt(sent, 0, sent.length);
                Protocol.writeInt(sent, 4, (3 << 16) | 3);
            }
            return Messages.concat(Arrays.copyOf(all, at), sent, Arrays.copyOfRange(all, at + length, all.length));
        }
        if (code == Protocol.CANCEL_REQUEST_CODE && length == 16 && all.length - at < 16) {
            return Arrays.copyOf(all, at);
        }
        return all;
    }

    private static final byte[] SSL_REQUEST = new byte[8];

    static {
        Protocol.writeInt(SSL_REQUEST, 0, 8);
        Protocol.writeInt(SSL_REQUEST, 4, Protocol.SSL_REQUEST_CODE);
    }

    /** What a client writes first (a startup-phase request, or garbage), and what follows. */
    @Provide
    Arbitrary<byte[][]> clientStreams() {
        Arbitrary<byte[]> startup = Combinators.combine(Arbitraries.of(0, 2, 3, 7), Arbitraries.of(-1, 4, 8, 9,
                        20_000, 0), Arbitraries.strings().ofMaxLength(20).list().ofMaxSize(4))
                .as((minor, lengthOverride, params) -> {
                    byte[] body = Messages.concat(Messages.cstrings(params.toArray(String[]::new)), new byte[] {0});
                    byte[] m = new byte[8 + body.length];
                    Protocol.writeInt(m, 0, lengthOverride == 0 ? m.length : lengthOverride);
                    Protocol.writeInt(m, 4, (3 << 16) | minor);
                    System.arraycopy(body, 0, m, 8, body.length);
                    return m;
                });
        Arbitrary<byte[]> garbage = Arbitraries.bytes().array(byte[].class).ofMaxSize(40);
        Arbitrary<byte[]> firsts = Arbitraries.oneOf(Arbitraries.just(SSL_REQUEST), startup, garbage);
        Arbitrary<byte[]> rests = Arbitraries.oneOf(startup, garbage,
                Combinators.combine(startup, garbage).as(Messages::concat));
        return Combinators.combine(firsts, rests).as((f, r) -> new byte[][] {f, r});
    }

    // ---- driving ----------------------------------------------------------------------------------------------

    /**
     * What reading a stream through the layer gave.
     *
     * @param output   every byte read (skipped ones excluded)
     * @param position bytes of output read or skipped
     * @param failure  the IOException that ended it, or null at a clean end
     */
    record Outcome(byte[] output, long position, IOException failure) {
    }

    /**
     * Reads {@code in} through a {@link BackendInputStream} in the given chunks with the given mix of operations,
     * until the end or an IOException. Anything else fails the property, and so does an operation that never
     * returns.
     *
     * @param allowed when not null, the bytes the output must be a prefix of (checked as they are read)
     */
    private static Outcome drive(BackendFilter filter, byte[] in, List<Integer> chunks, List<Op> ops, byte[] allowed) {
        return assertTimeoutPreemptively(HANG, () -> {
            BackendInputStream stream = new BackendInputStream(new ChunkedInputStream(in, cycle(chunks)), filter,
                    null);
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            long position = 0;
            // Every round ends with a read, which returns data or ends the stream: input.length + 1 rounds at most.
            for (long round = 0; round <= in.length + 1L; round++) {
                for (Op op : ops) {
                    try {
                        switch (op.kind()) {
                            case READ -> {
                                byte[] buf = new byte[op.size()];
                                int n = stream.read(buf, 0, buf.length);
                                if (n < 0) {
                                    return new Outcome(out.toByteArray(), position, null);
                                }
                                assertTrue(n > 0, "a blocking read returned no data");
                                expectAt(allowed, position, buf, n);
                                out.write(buf, 0, n);
                                position += n;
                            }
                            case READ_BYTE -> {
                                int b = stream.read();
                                if (b < 0) {
                                    return new Outcome(out.toByteArray(), position, null);
                                }
                                expectAt(allowed, position, new byte[] {(byte) b}, 1);
                                out.write(b);
                                position++;
                            }
                            case SKIP -> {
                                long n = stream.skip(op.size());
                                assertTrue(n > 0 && n <= op.size(), "skip(" + op.size() + ") returned " + n);
                                position += n;
                            }
                            case AVAILABLE -> {
                                int n = stream.available();
                                if (allowed != null) {
                                    assertTrue(n >= 0 && position + n <= allowed.length,
                                            "available() counted " + n + " bytes beyond the output");
                                }
                            }
                            case POLL -> {
                                try {
                                    stream.poll();
                                } catch (IOException dead) {
                                    // The evictor learns the connection is dead; pgjdbc still gets the good bytes
                                    // before the failure when it reads, which the next reads check.
                                }
                            }
                        }
                    } catch (EOFException e) {
                        if (op.kind() == Kind.SKIP && e.getMessage().contains("while pgjdbc was skipping")) {
                            // skip() at a clean end of the stream: pgjdbc asked for more than there was.
                            return new Outcome(out.toByteArray(), position, null);
                        }
                        return new Outcome(out.toByteArray(), position, e);
                    } catch (IOException e) {
                        return new Outcome(out.toByteArray(), position, e);
                    }
                }
            }
            return fail("the reads made no progress: " + in.length + " bytes in, " + position + " out");
        });
    }

    private static void expectAt(byte[] allowed, long position, byte[] got, int n) {
        if (allowed == null) {
            return;
        }
        assertTrue(position + n <= allowed.length, () -> "output beyond what the stream holds at " + position);
        assertArrayEquals(Arrays.copyOfRange(allowed, (int) position, (int) position + n), Arrays.copyOf(got, n),
                () -> "output at " + position + " differs from the input minus GoAway");
    }

    private static IntSupplier cycle(List<Integer> sizes) {
        int[] next = {0};
        return () -> sizes.get(next[0]++ % sizes.size());
    }

    private static void write(FrontendOutputStream out, byte[] bytes, List<Integer> splits) throws IOException {
        int off = 0;
        int i = 0;
        while (off < bytes.length) {
            int n = Math.min(bytes.length - off, splits.get(i++ % splits.size()));
            if (n == 1) {
                out.write(bytes[off]);
            } else {
                out.write(bytes, off, n);
            }
            off += n;
        }
    }

    /**
     * The reference framer: what the layer must make of a whole stream, parsed at once.
     *
     * @param good    the output up to the first damaged message: every message but GoAway, in order
     * @param allowed {@code good} plus the damaged message's bytes, which the layer may pass on before it
     *                finds the damage (a header before its bad length is complete, the start of a truncated body)
     * @param failure what the IOException must say, or null for a clean stream
     */
    record Reference(byte[] good, byte[] allowed, String failure) {

        static Reference of(byte[] in, boolean answerFirst) {
            ByteArrayOutputStream good = new ByteArrayOutputStream();
            int p = 0;
            if (answerFirst && in.length > 0) {
                switch (in[0]) {
                    case 'S', 'G' -> {
                        return new Reference(in, in, null);
                    }
                    case 'N' -> {
                        good.write('N');
                        p = 1;
                    }
                    case 'E' -> {
                        // an old server's ErrorResponse: framed from its first byte
                    }
                    default -> {
                        // Not a PostgreSQL answer: the layer steps aside, everything passes, pgjdbc judges.
                        return new Reference(in, in, null);
                    }
                }
            }
            // Until the first message after the answer frames as PostgreSQL's, garbage is not a broken session
            // but another kind of peer: the layer steps aside and passes the rest as it is.
            boolean first = answerFirst;
            while (p < in.length) {
                byte type = in[p];
                int max = Protocol.maxLength(type, BackendFilter.HOLD_MAX);
                byte[] g = good.toByteArray();
                byte[] asItIs = Messages.concat(g, Arrays.copyOfRange(in, p, in.length));
                if (first && (max < 0 || type == 'v')) {
                    return new Reference(asItIs, asItIs, null);
                }
                if (max < 0) {
                    return new Reference(g, g, "unknown message type");
                }
                if (type == 'v') {
                    return new Reference(g, g, "NegotiateProtocolVersion outside");
                }
                boolean withheld = type == 'g';
                byte[] damaged = withheld ? g : Messages.concat(g, Arrays.copyOfRange(in, p, in.length));
                if (in.length - p < 5) {
                    return new Reference(g, damaged, "in the middle of a");
                }
                int length = Protocol.readInt(in, p + 1);
                int min = type == 'Z' ? 5 : 4;
                boolean fixed = max == min || type == 'g';
                if (length < min || length > max || (fixed && length != max)) {
                    return first ? new Reference(asItIs, asItIs, null) : new Reference(g, damaged,
                            "message with length");
                }
                first &= type == 'g';
                if (in.length - p - 1 < length) {
                    return new Reference(g, damaged, "in the middle of a");
                }
                if (!withheld) {
                    good.write(in, p, 1 + length);
                }
                p += 1 + length;
            }
            byte[] g = good.toByteArray();
            return new Reference(g, g, null);
        }
    }

    /** A header followed by {@code body} zero bytes, made up as they are read: a huge message without the memory. */
    private static final class SyntheticStream extends InputStream {
        private final byte[] header;
        private long left;
        private int headerAt;

        SyntheticStream(byte[] header, long body) {
            this.header = header;
            this.left = body;
        }

        @Override
        public int read() {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xff;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (headerAt < header.length) {
                int n = Math.min(len, header.length - headerAt);
                System.arraycopy(header, headerAt, b, off, n);
                headerAt += n;
                return n;
            }
            if (left == 0) {
                return -1;
            }
            int n = (int) Math.min(len, left);
            Arrays.fill(b, off, off + n, (byte) 0);
            left -= n;
            return n;
        }

        @Override
        public int available() {
            return (int) Math.min(Integer.MAX_VALUE, header.length - headerAt + left);
        }
    }

    /** A stream that is all GoAway must read as empty, and poll must never see past the end. */
    @Property
    void aStreamOfOnlyGoAwayIsEmptyToPgjdbc(@ForAll @IntRange(min = 0, max = 200) int count,
            @ForAll("chunks") List<Integer> chunks, @ForAll("ops") List<Op> ops) {
        Messages m = Messages.stream();
        for (int i = 0; i < count; i++) {
            m.goAway();
        }
        ConnectionSignals signals = new ConnectionSignals(Clock.systemUTC());
        Outcome outcome = drive(new BackendFilter(signals, PEER), m.bytes(), chunks, ops, new byte[0]);
        assertNull(outcome.failure());
        assertEquals(0, outcome.output().length);
        assertEquals(count, signals.goAwayCount());
        assertFalse(count == 0 && signals.goAwayReceived());
    }
}
