package dev.poolgoaway.wire;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.time.Clock;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.IntSupplier;

import org.junit.jupiter.api.Test;

/** The server-side state machine, fed byte by byte and split at every point. */
class BackendFilterTest {

    private final ConnectionSignals signals = new ConnectionSignals(Clock.systemUTC());
    private final BackendFilter filter = new BackendFilter(signals, "test:5432");

    private static final byte[] ROW = Messages.stream().msg('D', new byte[] {0, 1, 0, 0, 0, 2, 'h', 'i'}).bytes();

    @Test
    void goAwayIsRemovedAndRecordedWhereverItIsSplit() throws IOException {
        byte[] in = Messages.stream().readyForQuery().goAway().raw(ROW).goAway()
                .msg('C', Messages.cstrings("SELECT 1")).readyForQuery().bytes();
        byte[] expected = Messages.stream().readyForQuery().raw(ROW)
                .msg('C', Messages.cstrings("SELECT 1")).readyForQuery().bytes();
        for (int split = 0; split <= in.length; split++) {
            ConnectionSignals s = new ConnectionSignals(Clock.systemUTC());
            byte[] out = readAll(new BackendFilter(s, "p"), in, splitAt(in, split), 8192);
            assertArrayEquals(expected, out, "split at " + split);
            assertEquals(2, s.goAwayCount(), "split at " + split);
        }
        ConnectionSignals s = new ConnectionSignals(Clock.systemUTC());
        assertArrayEquals(expected, readAll(new BackendFilter(s, "p"), in, () -> 1, 1), "byte by byte");
        assertTrue(s.goAwayReceived());
        assertTrue(s.goAwayReceivedAt().isPresent());
    }

    @Test
    void recordsDisconnectRequestedBackendPidAndFatalErrorsButPassesThemThrough() throws IOException {
        byte[] in = Messages.stream().parameterStatus("application_name", "x").backendKeyData(4242, 32)
                .parameterStatus("disconnect_requested", "off").readyForQuery()
                .error("ERROR", "42P01", "no such table").readyForQuery()
                .parameterStatus("disconnect_requested", "on")
                .error("FATAL", "57P01", "terminating connection due to administrator command: blue\nretired")
                .bytes();
        for (int split = 0; split <= in.length; split++) {
            ConnectionSignals s = new ConnectionSignals(Clock.systemUTC());
            assertArrayEquals(in, readAll(new BackendFilter(s, "p"), in, splitAt(in, split), 8192));
            assertEquals(4242, s.backendPid().getAsInt());
            assertTrue(s.disconnectRequested());
            assertTrue(s.leaveRequested());
            assertFalse(s.goAwayReceived());
            Termination t = s.termination().orElseThrow();
            assertEquals(Termination.Kind.SERVER_ERROR, t.kind());
            assertEquals("57P01", t.sqlState());
            assertTrue(t.adminTerminated());
            assertEquals("terminating connection due to administrator command: blue\nretired", t.message());
            assertFalse(t.toString().contains("\n"), "log form is sanitized: " + t);
        }
    }

    @Test
    void disconnectRequestedOffIsNotALeaveRequest() throws IOException {
        readAll(filter, Messages.stream().parameterStatus("disconnect_requested", "off").bytes());
        assertFalse(signals.leaveRequested());
    }

    @Test
    void cleanEndOfStreamIsRecordedAsServerClosed() throws IOException {
        readAll(filter, Messages.stream().readyForQuery().bytes());
        assertEquals(Termination.Kind.SERVER_CLOSED, signals.termination().orElseThrow().kind());
    }

    @Test
    void negotiationForOurRaisedVersionIsRemovedWhenTheServerGivesWhatPgjdbcAskedFor() throws IOException {
        ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
        // PostgreSQL 18 knows 3.2 at most and no GoAway extension: it says so, and pgjdbc (3.2) needs to hear neither.
        byte[] in = Messages.stream().negotiate(2, "_pq_.goaway").authOk().backendKeyData(7, 32).readyForQuery()
                .bytes();
        byte[] expected = Messages.stream().authOk().backendKeyData(7, 32).readyForQuery().bytes();
        for (int split = 0; split <= in.length; split++) {
            ConnectionSignals s = new ConnectionSignals(Clock.systemUTC());
            BackendFilter f = new BackendFilter(s, "p");
            f.startupSent(upgrade.begin("p", 2, true));
            assertArrayEquals(expected, readAll(f, in, splitAt(in, split), 8192), "split at " + split);
            assertEquals(2, s.protocolMinor());
            assertFalse(s.goAwayCapable());
        }
    }

    @Test
    void negotiationDownToThreeZeroReachesPgjdbcUnchanged() throws IOException {
        ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
        byte[] in = Messages.stream().negotiate(0).authOk().readyForQuery().bytes();
        for (int split = 0; split <= in.length; split++) {
            ConnectionSignals s = new ConnectionSignals(Clock.systemUTC());
            BackendFilter f = new BackendFilter(s, "p");
            f.startupSent(upgrade.begin("p", 2, true));
            assertArrayEquals(in, readAll(f, in, splitAt(in, split), 8192), "split at " + split);
            assertEquals(0, s.protocolMinor());
        }
    }

    @Test
    void negotiationListingUnsupportedOptionsReachesPgjdbcWithItsOwnVersion() throws IOException {
        ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
        BackendFilter f = new BackendFilter(signals, "p");
        f.startupSent(upgrade.begin("p", 2, true));
        byte[] in = Messages.stream().negotiate(3, "_pq_.compression").bytes();
        byte[] expected = Messages.stream().negotiate(2, "_pq_.compression").bytes();
        assertArrayEquals(expected, readAll(f, in));
    }

    @Test
    void goAwayIsGrantedByProtocolOrByExtensionAndPgjdbcHearsOfNeither() throws IOException {
        byte[] session = Messages.stream().authOk().backendKeyData(7, 4).readyForQuery().bytes();
        Object[][] cases = {
            // mode, the server's first reply (none: it accepts all it was sent), the grant
            {"both", new byte[0], GoAwayGrant.PROTOCOL_3_3},
            // the 2025 patch, then the 2026 draft
            {"both", Messages.stream().negotiate(3, "_pq_.goaway").bytes(), GoAwayGrant.PROTOCOL_3_3},
            {"both", Messages.stream().negotiate(2).bytes(), GoAwayGrant.EXTENSION},
            {"both", Messages.stream().negotiate(2, "_pq_.goaway").bytes(), GoAwayGrant.NONE},          // PostgreSQL 18
            {"both", Messages.stream().negotiate(0, "_pq_.goaway").bytes(), GoAwayGrant.NONE},          // PostgreSQL 17
            {"protocol", new byte[0], GoAwayGrant.PROTOCOL_3_3},
            {"protocol", Messages.stream().negotiate(2).bytes(), GoAwayGrant.NONE},
            {"extension", new byte[0], GoAwayGrant.EXTENSION},
            {"extension", Messages.stream().negotiate(2, "_pq_.goaway").bytes(), GoAwayGrant.NONE},
            {"extension", Messages.stream().negotiate(0).bytes(), GoAwayGrant.EXTENSION},
            {"off", new byte[0], GoAwayGrant.NONE},
        };
        for (Object[] c : cases) {
            java.util.Properties props = new java.util.Properties();
            props.setProperty(PgGoAway.GOAWAY_REQUEST, (String) c[0]);
            ProtocolUpgrade.Attempt attempt = new ProtocolUpgrade(new HashMap<>()).begin("p", 0, true,
                    GoAwayRequest.from(props));
            ConnectionSignals s = new ConnectionSignals(Clock.systemUTC());
            BackendFilter f = new BackendFilter(s, "p");
            f.startupSent(attempt);
            byte[] out = readAll(f, Messages.concat((byte[]) c[1], session));
            String what = c[0] + " / " + ((byte[]) c[1]).length + "-byte reply";
            assertArrayEquals(session, out, what + ": pgjdbc asked for 3.0 and nothing else, and hears just that");
            assertEquals(c[2], s.goAwayGrant(), what);
            assertEquals(c[2] != GoAwayGrant.NONE, s.goAwayCapable(), what);
        }
        // Options pgjdbc asked for itself still reach it, without ours.
        ProtocolUpgrade.Attempt attempt = new ProtocolUpgrade(new HashMap<>()).begin("p", 2, true);
        BackendFilter f = new BackendFilter(signals, "p");
        f.startupSent(attempt);
        assertArrayEquals(Messages.stream().negotiate(2, "_pq_.compression").bytes(),
                readAll(f, Messages.stream().negotiate(2, "_pq_.goaway", "_pq_.compression").bytes()));
    }

    @Test
    void aThreeThreeServerSaysNothingAndGoAwayBecomesPossible() throws IOException {
        ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
        filter.startupSent(upgrade.begin("p", 2, true));
        byte[] in = Messages.stream().authOk().readyForQuery().bytes();
        assertArrayEquals(in, readAll(filter, in));
        assertEquals(3, signals.protocolMinor());
        assertTrue(signals.goAwayCapable());
    }

    @Test
    void pgjdbcsThreeZeroSessionGetsAShortStandInForTheServersLongCancelKey() throws IOException {
        ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
        byte[] in = Messages.stream().negotiate(2).authOk().parameterStatus("server_version", "18.6")
                .backendKeyData(4242, 32).readyForQuery().bytes();
        for (int split = 0; split <= in.length; split++) {
            ConnectionSignals s = new ConnectionSignals(Clock.systemUTC());
            BackendFilter f = new BackendFilter(s, "p", true);
            ProtocolUpgrade.Attempt attempt = upgrade.begin("p", 0, true);
            assertTrue(attempt.raised());
            f.startupSent(attempt);
            byte[] out = readAll(f, in, splitAt(in, split), 8192);
            // No NegotiateProtocolVersion (pgjdbc asked for 3.0 and got it), and a 3.0-sized BackendKeyData.
            int k = out.length - 6 - 13;
            byte[] before = Messages.stream().authOk().parameterStatus("server_version", "18.6").bytes();
            assertArrayEquals(before, Arrays.copyOf(out, k), "split at " + split);
            assertEquals('K', out[k]);
            assertEquals(12, readInt(out, k + 1));
            assertEquals(4242, readInt(out, k + 5));
            assertArrayEquals(new byte[32], CancelKeys.realKey(4242, readInt(out, k + 9)),
                    "the real key (zeros here) is kept for pgjdbc's cancel requests");
            assertEquals(2, s.protocolMinor());
            s.socketClosed();
            assertNull(CancelKeys.realKey(4242, readInt(out, k + 9)));
        }
        // A server on 3.0 sends a 4-byte key: it passes as it is.
        byte[] old = Messages.stream().negotiate(0).authOk().backendKeyData(7, 4).readyForQuery().bytes();
        BackendFilter f = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p", true);
        f.startupSent(upgrade.begin("p", 0, true));
        assertArrayEquals(Messages.stream().authOk().backendKeyData(7, 4).readyForQuery().bytes(), readAll(f, old));
    }

    @Test
    void aRaisedStartupThatFailsIsReplayedAsPgjdbcWroteItAndPgjdbcSeesOnlyTheReplay() throws IOException {
        byte[] replayReply = Messages.stream().authOk().parameterStatus("server_version", "15")
                .backendKeyData(99, 4).readyForQuery().bytes();
        Map<String, byte[]> failures = new LinkedHashMap<>();
        // Each is a real peer's answer to protocol 3.3, as docs/compatibility.md records them.
        failures.put("PgBouncer 1.18", Messages.stream()
                .error("FATAL", "08P01", "bad packet header: '0000005d00030003'").bytes());
        failures.put("pgpool-II 4.3", Messages.stream().error("ERROR", "XX000",
                "backend authentication failed").bytes());
        failures.put("PostgreSQL 10.0", Messages.stream().error("FATAL", "0A000",
                "unsupported frontend protocol 3.3: server supports 1.0 to 3.0").bytes());
        failures.put("a refusal in German", Messages.stream().error("FATAL", "0A000",
                "nicht unterst\u00fctztes Frontend-Protokoll 3.3: Server unterst\u00fctzt 1.0 bis 3.0").bytes());
        failures.put("a close without a reply", new byte[0]);
        failures.put("pgpool-II in front of a 3.3 server, after a challenge-free authentication", Messages.stream()
                .authOk().parameterStatus("application_name", "").backendKeyData(12, 32)
                .error("ERROR", "XX000", "authentication failed").bytes());
        failures.put("a close after a challenge-free authentication", Messages.stream().authOk()
                .parameterStatus("application_name", "").bytes());
        for (Map.Entry<String, byte[]> failure : failures.entrySet()) {
            byte[] in = failure.getValue();
            for (int split = 0; split <= in.length; split++) {
                ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
                ReplayingPeer peer = new ReplayingPeer(upgrade, in, replayReply, split);
                assertArrayEquals(replayReply, peer.readAll(), failure.getKey() + ", split at " + split);
                assertEquals(1, peer.replays, failure.getKey());
                assertTrue(upgrade.refuses("old:6432"), failure.getKey() + ": remembered once the replay worked");
                assertFalse(upgrade.begin("old:6432", 0, true).raised());
                assertTrue(upgrade.begin("other:5432", 0, true).raised());
                assertEquals(99, peer.signals.backendPid().getAsInt());
                assertEquals(Termination.Kind.SERVER_CLOSED, peer.signals.termination().orElseThrow().kind(),
                        "the failed attempt's error is no termination; the replay's clean end is");
            }
        }
    }

    @Test
    void answersThatDoNotDependOnTheVersionAreNotReplayed() throws IOException {
        for (String sqlState : new String[] {"28000", "28P01", "3D000", "53300", "57P03"}) {
            byte[] in = Messages.stream().error("FATAL", sqlState, "no").bytes();
            ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
            ReplayingPeer peer = new ReplayingPeer(upgrade, in, new byte[0], in.length);
            assertArrayEquals(in, peer.readAll(), sqlState);
            assertEquals(0, peer.replays, sqlState);
            assertFalse(upgrade.refuses("old:6432"));
            assertEquals(sqlState, peer.signals.termination().orElseThrow().sqlState());
        }
    }

    private static final byte[] MD5_CHALLENGE = Messages.stream().msg('R', new byte[] {0, 0, 0, 5, 1, 2, 3, 4})
            .bytes();
    /** A challenge with no payload: AuthenticationCleartextPassword. */
    private static final byte[] CLEARTEXT_CHALLENGE = Messages.stream().msg('R', new byte[] {0, 0, 0, 3}).bytes();

    /** @return an upgrade that has completed a startup at the peer: its challenges are answered on 3.3 */
    private static ProtocolUpgrade knowing(String peer) {
        ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
        upgrade.begin(peer, 0, false).ready();
        return upgrade;
    }

    @Test
    void onceAChallengeReachedPgjdbcNothingIsReplayed() throws IOException {
        byte[] in = Messages.concat(MD5_CHALLENGE, Messages.stream().error("FATAL", "XX000", "backend failed")
                .bytes());
        for (int split = 0; split <= in.length; split++) {
            ReplayingPeer peer = new ReplayingPeer(knowing("old:6432"), in, new byte[0], split);
            assertArrayEquals(in, peer.readAll(), "split at " + split);
            assertEquals(0, peer.replays);
        }
        // A challenge with no payload (cleartext password) counts too; the session is then not held.
        byte[] after = Messages.concat(CLEARTEXT_CHALLENGE, Messages.stream().authOk().backendKeyData(5, 4)
                .readyForQuery().error("FATAL", "XX000", "later").bytes());
        for (int split = 0; split <= after.length; split++) {
            ReplayingPeer peer = new ReplayingPeer(knowing("old:6432"), after, new byte[0], split);
            assertArrayEquals(after, peer.readAll(), "split at " + split);
            assertEquals(0, peer.replays);
        }
    }

    /**
     * The first connection to a peer that asks for a password must not be the one to fail after pgjdbc answered
     * (pgpool-II in front of a server granting 3.3): the raised attempt ends at the challenge, unseen, and pgjdbc
     * gets the challenge of its own request on a new connection. The peer is then known, not refusing.
     */
    @Test
    void theFirstAttemptToANewPeerEndsAtItsChallengeAndPgjdbcAnswersTheReplaysOwn() throws IOException {
        byte[] replayReply = Messages.concat(MD5_CHALLENGE, Messages.stream().authOk().backendKeyData(42, 4)
                .readyForQuery().bytes());
        for (byte[] challenge : new byte[][] {MD5_CHALLENGE, CLEARTEXT_CHALLENGE}) {
            for (int split = 0; split <= challenge.length; split++) {
                ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
                ReplayingPeer peer = new ReplayingPeer(upgrade, challenge, replayReply, split);
                assertArrayEquals(replayReply, peer.readAll(), "split at " + split);
                assertEquals(1, peer.replays);
                assertFalse(upgrade.refuses("old:6432"), "a precaution, not a refusal");
                assertTrue(upgrade.seen("old:6432"));
                assertTrue(upgrade.begin("old:6432", 0, true).raised(), "the next connection asks for GoAway");
                assertEquals(42, peer.signals.backendPid().getAsInt());
            }
        }
    }

    /**
     * pgjdbc asked for 3.2 and a PostgreSQL 13 to 17 answers 3.0: pgjdbc is handed a NegotiateProtocolVersion before
     * the challenge. The attempt is then not given up there, or pgjdbc would read a second one from the replay; a
     * peer that negotiates is not the kind that fails after the challenge.
     */
    @Test
    void aFirstAttemptWhoseNegotiationReachedPgjdbcIsNotGivenUpAtTheChallenge() throws IOException {
        byte[] in = Messages.concat(Messages.stream().negotiate(0, "_pq_.goaway").bytes(), MD5_CHALLENGE,
                Messages.stream().authOk().backendKeyData(42, 4).readyForQuery().bytes());
        byte[] forPgjdbc = Messages.concat(Messages.stream().negotiate(0).bytes(), MD5_CHALLENGE,
                Messages.stream().authOk().backendKeyData(42, 4).readyForQuery().bytes());
        for (int split = 0; split <= in.length; split++) {
            ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
            ReplayingPeer peer = new ReplayingPeer(upgrade, 2, in, in, split);
            assertArrayEquals(forPgjdbc, peer.readAll(), "split at " + split);
            assertEquals(0, peer.replays, "split at " + split);
            assertTrue(upgrade.seen("old:6432"));
        }
    }

    @Test
    void aReplayThatFailsTooGivesPgjdbcTheReplaysAnswerAndThePeerIsAskedAgainNextTime() throws IOException {
        byte[] first = Messages.stream().error("FATAL", "08P01", "no such database: x").bytes();
        byte[] second = Messages.stream().error("FATAL", "08P01", "no such database: x").bytes();
        ProtocolUpgrade upgrade = new ProtocolUpgrade(new HashMap<>());
        ReplayingPeer peer = new ReplayingPeer(upgrade, first, second, first.length);
        assertArrayEquals(second, peer.readAll());
        assertEquals(1, peer.replays);
        assertFalse(upgrade.refuses("old:6432"), "the failure was not the version's");
    }

    /**
     * A peer seen through the filter as {@link FilteringSocket} wires it: the first connection answers the raised
     * startup with {@code first}, and the replay (pgjdbc's own request on a new connection) gets {@code second}.
     */
    private static final class ReplayingPeer {
        final ConnectionSignals signals = new ConnectionSignals(Clock.systemUTC());
        final BackendFilter filter = new BackendFilter(signals, "old:6432", true);
        final BackendInputStream in;
        int replays;

        ReplayingPeer(ProtocolUpgrade upgrade, byte[] first, byte[] second, int split) {
            this(upgrade, 0, first, second, split);
        }

        /** @param pgjdbcMinor the minor version pgjdbc asked for (0: its default 3.0; 2: protocolVersion=3.2) */
        ReplayingPeer(ProtocolUpgrade upgrade, int pgjdbcMinor, byte[] first, byte[] second, int split) {
            BackendInputStream[] self = new BackendInputStream[1];
            in = new BackendInputStream(new ChunkedInputStream(first, splitAt(first, split)), filter, null, failed -> {
                replays++;
                InputStream fresh = new ChunkedInputStream(second, () -> 3);
                self[0].reset(fresh);
                filter.startupSent(upgrade.replay(failed));
                return fresh;
            });
            self[0] = in;
            filter.startupSent(upgrade.begin("old:6432", pgjdbcMinor, true));
        }

        byte[] readAll() throws IOException {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            byte[] buf = new byte[8192];
            for (int n; (n = in.read(buf)) >= 0; ) {
                out.write(buf, 0, n);
            }
            return out.toByteArray();
        }
    }

    private static int readInt(byte[] b, int at) {
        return Protocol.readInt(b, at);
    }

    @Test
    void aRememberedRefusalExpires() {
        HashMap<String, Long> refusing = new HashMap<>();
        refusing.put("old:6432", System.nanoTime() - 1);
        ProtocolUpgrade upgrade = new ProtocolUpgrade(refusing);
        assertFalse(upgrade.refuses("old:6432"));
        assertTrue(upgrade.begin("old:6432", 2, true).raised());
        assertTrue(refusing.isEmpty());
    }

    @Test
    void answerBytesToSslAndGssRequests() throws IOException {
        filter.expectAnswer();
        assertArrayEquals(new byte[] {'N'}, readAll(filter, new byte[] {'N'}));
        assertFalse(filter.passingThrough());

        BackendFilter tls = new BackendFilter(signals, "p");
        tls.expectAnswer();
        byte[] encrypted = {'S', 0x16, 0x03, 0x03, 'g', 0, 0, 0, 4};
        assertArrayEquals(encrypted, readAll(tls, encrypted), "after 'S' the bytes are TLS, not ours");
        assertTrue(tls.passingThrough());
        assertFalse(signals.goAwayReceived());
        BackendInputStream underTls = stream(tls, new byte[] {0x17, 0x03, 0x03}, () -> 3);
        assertEquals(ConnectionSignals.PollResult.BLIND, underTls.poll(), "ciphertext is not read ahead");
        assertEquals(0x17, underTls.read());

        ConnectionSignals gss = new ConnectionSignals(Clock.systemUTC());
        BackendFilter g = new BackendFilter(gss, "p");
        g.expectAnswer();
        readAll(g, new byte[] {'G', 1, 2, 3});
        assertEquals(ConnectionSignals.PollResult.BLIND, gss.poll());

        BackendFilter old = new BackendFilter(signals, "p");
        old.expectAnswer();
        byte[] error = Messages.stream().error("FATAL", "08P01", "unsupported frontend protocol").bytes();
        assertArrayEquals(error, readAll(old, error), "an old server's ErrorResponse is framed");
    }

    /**
     * A first answer that does not frame as PostgreSQL's (an HTTP server, a TLS server, any other service on the
     * port) passes whole, split anywhere, and nothing is recorded: pgjdbc reads it and reports its own error.
     */
    @Test
    void aFirstAnswerThatIsNotPostgresPassesWholeAndIsNotRecorded() throws IOException {
        byte[] http = "HTTP/1.1 400 Bad Request\r\n\r\n".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        byte[] html = "<html><body>Sign in</body></html>".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        byte[] tlsAlert = {0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32};
        byte[] goAwayThenBadLength = Messages.concat(Messages.stream().msg('g', new byte[] {1}).bytes(), html);
        byte[] negotiation = Messages.stream().negotiate(7).bytes();
        for (byte[] answer : new byte[][] {http, html, tlsAlert, goAwayThenBadLength, negotiation}) {
            for (boolean sslRequest : new boolean[] {true, false}) {
                for (int at = 1; at <= answer.length; at++) {
                    int split = at;
                    ConnectionSignals s = new ConnectionSignals(Clock.systemUTC());
                    BackendFilter f = new BackendFilter(s, "p", true);
                    if (sslRequest) {
                        f.expectAnswer();
                    } else {
                        f.startupSent(new ProtocolUpgrade(new HashMap<>()).begin("p", 0, true));
                    }
                    String what = new String(answer, java.nio.charset.StandardCharsets.ISO_8859_1) + ", split at "
                            + split + (sslRequest ? ", to SSLRequest" : ", to the StartupMessage");
                    if (sslRequest || answer != negotiation) {
                        assertArrayEquals(answer, readAll(f, answer, splitAt(answer, split), 8192), what);
                    } else {
                        // 'v' is the one answer a PostgreSQL server gives a StartupMessage first: framed, and refused.
                        assertThrows(IOException.class, () -> readAll(f, answer, splitAt(answer, split), 8192));
                        continue;
                    }
                    assertTrue(f.passingThrough(), what);
                    assertTrue(s.termination().isEmpty(), "nothing recorded: " + what);
                    assertEquals(-1, s.protocolMinor(), "nothing recorded: " + what);
                    assertFalse(f.retryRequested(), "nothing replayed: " + what);
                }
            }
        }
    }

    @Test
    void anUnknownTypeLaterInTheStartupReachesPgjdbcWhichRefusesItItself() {
        byte[] good = Messages.stream().authOk().bytes();
        byte[] in = Messages.concat(good, new byte[] {'q', 0, 0, 0, 4});
        for (int split = 1; split <= in.length; split++) {
            BackendFilter f = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p");
            f.startupSent(new ProtocolUpgrade(new HashMap<>()).begin("p", 2, false));
            BackendInputStream s = stream(f, in, splitAt(in, split));
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            IOException e = assertThrows(IOException.class, () -> {
                byte[] buf = new byte[8192];
                for (int n; (n = s.read(buf)) >= 0; ) {
                    got.write(buf, 0, n);
                }
            });
            assertArrayEquals(Messages.concat(good, new byte[] {'q'}), got.toByteArray(), "split at " + split);
            assertTrue(e.getMessage().contains("unknown message type 0x71"), e.getMessage());
        }
    }

    @Test
    void badInputIsAClearIOExceptionAfterTheGoodBytesBeforeIt() {
        byte[] good = Messages.stream().readyForQuery().bytes();
        assertViolation(Messages.concat(good, new byte[] {'D', (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xf0}),
                good, "length -16");
        assertViolation(Messages.concat(good, new byte[] {'D', 0x7f, 0, 0, 0}), good, "length 2130706432");
        assertViolation(Messages.concat(good, new byte[] {'C', 0, 0, 0, 3}), good, "length 3");
        assertViolation(Messages.concat(good, Messages.stream().msg('g', new byte[] {1}).bytes()), good,
                "'g' message with length 5 (must be 4)");
        assertViolation(Messages.concat(good, Messages.stream().msg('Z', new byte[] {'I', 'I'}).bytes()), good,
                "'Z' message with length 6");
        assertViolation(Messages.concat(good, new byte[] {0, 0, 0, 0, 4}), good, "unknown message type 0x00");
        assertViolation(Messages.concat(good, Messages.stream().negotiate(2).bytes()), good,
                "NegotiateProtocolVersion outside");
    }

    @Test
    void bogusNegotiationIsRejected() {
        for (byte[] bogus : new byte[][] {
            Messages.stream().negotiate(7).bytes(),
            Messages.stream().msg('v', new byte[] {0, 0, 0, 2}).bytes(),
            Messages.stream().msg('v', new byte[] {0, 0, 0, 2, 0, 0, 0, 2, 'x', 0}).bytes(),
            Messages.stream().msg('v', new byte[] {0, 0, 0, 2, (byte) 0xff, 0, 0, 0}).bytes(),
        }) {
            BackendFilter f = new BackendFilter(signals, "p");
            f.startupSent(new ProtocolUpgrade(new HashMap<>()).begin("p", 2, true));
            IOException e = assertThrows(IOException.class, () -> readAll(f, bogus));
            assertTrue(e.getMessage().contains("NegotiateProtocolVersion"), e.getMessage());
        }
    }

    @Test
    void truncatedFrameIsAClearIOException() {
        byte[] in = Messages.stream().readyForQuery().raw(ROW).bytes();
        for (int cut = 1; cut < ROW.length; cut++) {
            byte[] truncated = java.util.Arrays.copyOf(in, in.length - cut);
            BackendFilter f = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p");
            IOException e = assertThrows(IOException.class, () -> readAll(f, truncated));
            assertTrue(e.getMessage().contains("closed the connection in the middle of a 'D' message"),
                    e.getMessage());
        }
    }

    @Test
    void availableNeverCountsBytesThatWillBeRemoved() throws IOException {
        BackendInputStream only = stream(filter, Messages.stream().goAway().bytes(), () -> 100);
        assertEquals(0, only.available());
        assertTrue(signals.goAwayReceived(), "available() filtered what it could read without blocking");

        byte[] z = Messages.stream().readyForQuery().bytes();
        BackendInputStream mixed = stream(new BackendFilter(signals, "p"),
                Messages.stream().goAway().readyForQuery().goAway().bytes(), () -> 100);
        assertEquals(z.length, mixed.available());
        assertArrayEquals(z, mixed.readNBytes(z.length));
    }

    @Test
    void skipGoesThroughTheFilter() throws IOException {
        byte[] body = new byte[1000];
        byte[] in = Messages.stream().msg('D', body).goAway().readyForQuery().bytes();
        BackendInputStream s = stream(filter, in, () -> 7);
        assertArrayEquals(new byte[] {'D', 0, 0, 0x03, (byte) 0xec}, s.readNBytes(5));
        long skipped = 0;
        while (skipped < body.length) {
            skipped += s.skip(body.length - skipped);
        }
        assertArrayEquals(Messages.stream().readyForQuery().bytes(), s.readAllBytes());
        assertTrue(signals.goAwayReceived());
    }

    @Test
    void pollRecordsAGoAwayWaitingInTheSocketAndKeepsEverythingElseForPgjdbc() throws IOException {
        byte[] notify = Messages.stream().msg('A', Messages.concat(new byte[] {0, 0, 0, 9},
                Messages.cstrings("chan", "payload"))).bytes();
        byte[] in = Messages.concat(notify, Messages.stream().goAway().bytes());
        BackendInputStream s = stream(filter, in, () -> 3);
        signals.poller(s);
        assertEquals(ConnectionSignals.PollResult.POLLED, signals.poll());
        assertTrue(signals.goAwayReceived());
        assertArrayEquals(notify, s.readAllBytes());
    }

    @Test
    void randomStreamsInRandomChunksComeOutWhole() throws IOException {
        // A fixed seed keeps the run deterministic; -Dwire.seed=N explores other streams.
        long seed = Long.getLong("wire.seed", 20_261_121L);
        java.util.Random random = new java.util.Random(seed);
        for (int round = 0; round < 60; round++) {
            ByteArrayOutputStream input = new ByteArrayOutputStream();
            ByteArrayOutputStream expected = new ByteArrayOutputStream();
            int goAways = 0;
            int messages = 1 + random.nextInt(40);
            for (int m = 0; m < messages; m++) {
                if (random.nextInt(4) == 0) {
                    input.writeBytes(Messages.stream().goAway().bytes());
                    goAways++;
                }
                boolean large = round % 10 == 0 && random.nextInt(8) == 0;
                byte[] msg = Messages.randomMessage(random, large ? random.nextInt(1 << 20) + 1 : random.nextInt(300));
                input.writeBytes(msg);
                expected.writeBytes(msg);
            }
            ConnectionSignals s = new ConnectionSignals(Clock.systemUTC());
            int maxChunk = 1 + random.nextInt(random.nextBoolean() ? 16 : 70_000);
            int maxRead = 1 + random.nextInt(random.nextBoolean() ? 16 : 70_000);
            byte[] out = readAll(new BackendFilter(s, "p"), input.toByteArray(),
                    () -> 1 + random.nextInt(maxChunk), maxRead);
            assertArrayEquals(expected.toByteArray(), out, "seed " + seed + " round " + round);
            assertEquals(goAways, s.goAwayCount(), "seed " + seed + " round " + round);
        }
    }

    // ---- helpers ------------------------------------------------------------------------------------------

    private static void assertViolation(byte[] in, byte[] goodPrefix, String expected) {
        // Whole (a header in one chunk is framed at once) and byte by byte (through the LENGTH state): the same
        // output and the same failure.
        String[] messages = new String[2];
        byte[][] outputs = new byte[2][];
        for (int way = 0; way < 2; way++) {
            BackendFilter f = new BackendFilter(new ConnectionSignals(Clock.systemUTC()), "p");
            BackendInputStream s = stream(f, in, way == 0 ? () -> in.length : () -> 1);
            ByteArrayOutputStream got = new ByteArrayOutputStream();
            IOException e = assertThrows(IOException.class, () -> {
                byte[] buf = new byte[8192];
                for (int n; (n = s.read(buf)) >= 0; ) {
                    got.write(buf, 0, n);
                }
            });
            assertTrue(e.getMessage().contains(expected), e.getMessage());
            assertTrue(e.getMessage().startsWith("Protocol violation by the server p"), e.getMessage());
            byte[] prefix = java.util.Arrays.copyOf(got.toByteArray(), goodPrefix.length);
            assertArrayEquals(goodPrefix, prefix, "the good bytes came first");
            messages[way] = e.getMessage();
            outputs[way] = got.toByteArray();
        }
        assertEquals(messages[0], messages[1], "whole and byte by byte");
        assertArrayEquals(outputs[0], outputs[1], "whole and byte by byte");
    }

    private static IntSupplier splitAt(byte[] in, int split) {
        int[] calls = {0};
        return () -> calls[0]++ == 0 ? Math.max(1, split) : Integer.MAX_VALUE;
    }

    private static BackendInputStream stream(BackendFilter f, byte[] in, IntSupplier chunks) {
        return new BackendInputStream(new ChunkedInputStream(in, chunks), f, null);
    }

    static byte[] readAll(BackendFilter f, byte[] in) throws IOException {
        return readAll(f, in, () -> in.length, 8192);
    }

    private static byte[] readAll(BackendFilter f, byte[] in, IntSupplier chunks, int readSize) throws IOException {
        InputStream s = stream(f, in, chunks);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[readSize];
        for (int n; (n = s.read(buf)) >= 0; ) {
            out.write(buf, 0, n);
        }
        return out.toByteArray();
    }
}
