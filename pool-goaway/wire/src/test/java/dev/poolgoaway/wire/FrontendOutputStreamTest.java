package dev.poolgoaway.wire;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.time.Clock;
import java.util.HashMap;

import org.junit.jupiter.api.Test;

/** The client-side startup watcher, written in every split. */
class FrontendOutputStreamTest {

    private static byte[] request(int code, byte[] body) {
        byte[] b = new byte[8 + body.length];
        Protocol.writeInt(b, 0, b.length);
        Protocol.writeInt(b, 4, code);
        System.arraycopy(body, 0, b, 8, body.length);
        return b;
    }

    private static byte[] startup(int minor) {
        return Messages.concat(request((3 << 16) | minor, Messages.cstrings("user", "app", "database", "db", "")));
    }

    /** pgjdbc's StartupMessage as the layer sends it by default: at 3.{@code minor}, asking for the extension. */
    private static byte[] asSent(int minor) {
        return request((3 << 16) | minor, Messages.cstrings("user", "app", "database", "db", "_pq_.goaway", "true",
                ""));
    }

    private static final byte[] SSL_REQUEST = request(Protocol.SSL_REQUEST_CODE, new byte[0]);
    private static final byte[] QUERY = Messages.stream().msg('Q', Messages.cstrings("select 1")).bytes();

    /** A client stream to peer {@code p} that has never seen it. */
    private static FrontendOutputStream fresh(ByteArrayOutputStream sink, BackendFilter backend) {
        return new FrontendOutputStream(sink, backend, new ProtocolUpgrade(new HashMap<>()), "p");
    }

    /** Writes {@code in} split at {@code split}; returns what reached the socket. */
    private static byte[] write(FrontendOutputStream out, ByteArrayOutputStream sink, byte[] in, int split)
            throws IOException {
        out.write(in, 0, split);
        out.write(in, split, in.length - split);
        return sink.toByteArray();
    }

    @Test
    void startupAskingForThreeTwoGoesOutAsThreeThreeWhereverItIsSplit() throws IOException {
        byte[] in = Messages.concat(startup(2), QUERY);
        byte[] expected = Messages.concat(asSent(3), QUERY);
        for (int split = 0; split <= in.length; split++) {
            ByteArrayOutputStream sink = new ByteArrayOutputStream();
            BackendFilter backend = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p");
            FrontendOutputStream out = fresh(sink, backend);
            assertArrayEquals(expected, write(out, sink, in, split), "split at " + split);
        }
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        FrontendOutputStream out = new FrontendOutputStream(sink,
                new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p"), new ProtocolUpgrade(new HashMap<>()),
                "p");
        for (byte b : in) {
            out.write(b);
        }
        assertArrayEquals(expected, sink.toByteArray(), "byte by byte");
    }

    @Test
    void pgjdbcsDefaultThreeZeroIsRaisedToo() throws IOException {
        for (int split = 0; split <= startup(0).length; split++) {
            ByteArrayOutputStream sink = new ByteArrayOutputStream();
            FrontendOutputStream out = fresh(sink, new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p"));
            assertArrayEquals(asSent(3), write(out, sink, startup(0), split), "split at " + split);
        }
    }

    @Test
    void refusingPeersGetPgjdbcsOwnRequest() throws IOException {
        HashMap<String, Long> refusing = new HashMap<>();
        refusing.put("old:6432", System.nanoTime() + 60_000_000_000L);
        ByteArrayOutputStream sink2 = new ByteArrayOutputStream();
        new FrontendOutputStream(sink2, new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "old:6432"),
                new ProtocolUpgrade(refusing), "old:6432").write(startup(2));
        assertArrayEquals(startup(2), sink2.toByteArray());
    }

    @Test
    void sslRequestAnsweredNoThenStartupIsRaised() throws IOException {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        BackendFilter backend = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p");
        FrontendOutputStream out = new FrontendOutputStream(sink, backend, new ProtocolUpgrade(new HashMap<>()), "p");
        out.write(SSL_REQUEST);
        assertArrayEquals(new byte[] {'N'}, BackendFilterTest.readAll(backend, new byte[] {'N'}));
        out.write(startup(2));
        assertArrayEquals(Messages.concat(SSL_REQUEST, asSent(3)), sink.toByteArray());
    }

    @Test
    void afterTlsIsAcceptedTheEncryptedBytesAreNotTouched() throws IOException {
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        BackendFilter backend = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p");
        FrontendOutputStream out = new FrontendOutputStream(sink, backend, new ProtocolUpgrade(new HashMap<>()), "p");
        out.write(SSL_REQUEST);
        BackendFilterTest.readAll(backend, new byte[] {'S'});
        // Bytes that happen to look like a 3.2 startup must pass as they are once TLS has taken over.
        out.write(startup(2));
        assertArrayEquals(Messages.concat(SSL_REQUEST, startup(2)), sink.toByteArray());
        assertTrue(backend.passingThrough());
    }

    @Test
    void aCancelRequestWithAStandInKeyGoesOutWithTheServersRealKey() throws IOException {
        byte[] realKey = new byte[32];
        for (int i = 0; i < realKey.length; i++) {
            realKey[i] = (byte) (i * 7 + 1);
        }
        int pid = 31337;
        int standIn = CancelKeys.standIn(pid, realKey);
        try {
            byte[] body = new byte[8];
            Protocol.writeInt(body, 0, pid);
            Protocol.writeInt(body, 4, standIn);
            byte[] in = request(Protocol.CANCEL_REQUEST_CODE, body);
            byte[] pidBytes = new byte[4];
            Protocol.writeInt(pidBytes, 0, pid);
            byte[] expected = request(Protocol.CANCEL_REQUEST_CODE, Messages.concat(pidBytes, realKey));
            for (int split = 0; split <= in.length; split++) {
                ByteArrayOutputStream sink = new ByteArrayOutputStream();
                BackendFilter backend = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p");
                FrontendOutputStream out = fresh(sink, backend);
                assertArrayEquals(expected, write(out, sink, in, split), "split at " + split);
                assertTrue(backend.passingThrough());
            }
        } finally {
            CancelKeys.forget(pid, standIn);
        }
        assertNull(CancelKeys.realKey(pid, standIn), "a closed connection's stand-in is forgotten");
    }

    @Test
    void cancelRequestsAndDirectTlsPassThroughWhole() throws IOException {
        byte[] key32 = new byte[32];
        for (byte[] first : new byte[][] {
            request(80877102, new byte[8]),
            request(80877102, Messages.concat(new byte[4], key32)),
            {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, (byte) 0xfc, 0x03, 0x03},
        }) {
            ByteArrayOutputStream sink = new ByteArrayOutputStream();
            BackendFilter backend = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p");
            FrontendOutputStream out = new FrontendOutputStream(sink, backend,
                    new ProtocolUpgrade(new HashMap<>()), "p");
            assertFalse(backend.passingThrough());
            out.write(Messages.concat(first, startup(2)));
            assertArrayEquals(Messages.concat(first, startup(2)), sink.toByteArray());
            assertTrue(backend.passingThrough());
        }
    }

    /** A StartupMessage of {@code total} bytes, a long {@code options} filling it as pgjdbc would. */
    private static byte[] startupOf(int total) {
        byte[] fixed = startup(2);
        String options = "x".repeat(total - fixed.length - "options".length() - 2);
        return request((3 << 16) | 2, Messages.cstrings("user", "app", "database", "db", "options", options, ""));
    }

    @Test
    void aStartupTheAddedOptionWouldPushPastPostgresLimitGoesOutUnchanged() throws IOException {
        for (int total : new int[] {9_988, 9_995, 10_004}) {
            byte[] in = startupOf(total);
            assertEquals(total, in.length);
            ByteArrayOutputStream sink = new ByteArrayOutputStream();
            BackendFilter backend = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p");
            assertArrayEquals(in, write(fresh(sink, backend), sink, in, 3), total + " bytes");
        }
        byte[] fits = startupOf(9_900);
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        byte[] sent = write(fresh(sink, new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p")), sink, fits,
                3);
        assertTrue(sent.length > fits.length && sent.length - 4 <= 10_000, "raised within the limit");
    }
}
