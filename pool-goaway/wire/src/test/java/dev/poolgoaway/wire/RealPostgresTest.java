package dev.poolgoaway.wire;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.StringReader;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.copy.CopyManager;
import org.postgresql.core.BaseConnection;
import org.postgresql.core.ProtocolVersion;

/** pgjdbc over the wire layer against a real PostgreSQL 18.6: everything keeps working, nothing is lost. */
class RealPostgresTest {

    private final TestPostgres pg = TestPostgres.get();

    private static ConnectionSignals signalsOf(Connection c) throws SQLException {
        return PgGoAway.signals(c).orElseThrow(() -> new AssertionError("not made through the wire layer"));
    }

    private static int backendPid(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select pg_backend_pid()")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    @Test
    void simpleAndExtendedQueriesOverNegotiatedThreeTwo() throws SQLException {
        try (Connection c = pg.connect("prepareThreshold", "1")) {
            ConnectionSignals signals = signalsOf(c);
            // We asked PostgreSQL 18 for 3.3 where pgjdbc asked for 3.0; the server negotiated 3.2, and pgjdbc saw
            // neither: its session is the 3.0 one it asked for.
            assertEquals(2, signals.protocolMinor());
            assertFalse(signals.goAwayCapable());
            assertEquals(ProtocolVersion.v3_0, ((BaseConnection) c.unwrap(PGConnection.class)).getQueryExecutor()
                    .getProtocolVersion());
            assertEquals(backendPid(c), signals.backendPid().getAsInt());
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select 1 as one, 'two' as two")) {
                assertTrue(rs.next());
                assertEquals(1, rs.getInt(1));
                assertEquals("two", rs.getString(2));
            }
            try (PreparedStatement ps = c.prepareStatement("select ?::int + x from generate_series(1, 3) x")) {
                for (int round = 0; round < 3; round++) {
                    ps.setInt(1, round);
                    try (ResultSet rs = ps.executeQuery()) {
                        int sum = 0;
                        while (rs.next()) {
                            sum += rs.getInt(1);
                        }
                        assertEquals(6 + 3 * round, sum);
                    }
                }
            }
            assertFalse(signals.goAwayReceived());
            assertTrue(signals.termination().isEmpty());
        }
    }

    /**
     * PostgreSQL refuses a StartupMessage longer than 10,004 bytes (its length word and MAX_STARTUP_PACKET_LENGTH)
     * by closing the connection. Where adding the GoAway option would pass that, pgjdbc's message goes out
     * unchanged (and the server is not remembered as refusing); one that still fits is raised as usual. Each
     * size is compared with plain pgjdbc.
     */
    @ParameterizedTest(name = "pgjdbc StartupMessage of {0} bytes, tls={1}")
    @CsvSource({"9987, false", "9988, false", "9995, false", "10004, false", "9995, true"})
    void aStartupMessageNearTheServersLimitIsRaisedOnlyIfItStillFits(int size, boolean tls) throws Exception {
        String name = LongStartup.applicationNameFor(size, pg.upstream.database());
        Properties plainProps = LongStartup.properties(pg.clientProperties(tls), name);
        try (Connection plain = DriverManager.getConnection(pg.url("localhost"), plainProps);
                Statement s = plain.createStatement(); ResultSet rs = s.executeQuery("select 1")) {
            assertTrue(rs.next(), "plain pgjdbc connects with a " + size + "-byte StartupMessage");
        }
        Properties layeredProps = LongStartup.properties(pg.clientProperties(tls), name);
        try (Connection layered = DriverManager.getConnection(pg.url("localhost"), PgGoAway.install(layeredProps));
                Statement s = layered.createStatement(); ResultSet rs = s.executeQuery("select 1")) {
            assertTrue(rs.next());
            boolean fits = size + "_pq_.goaway\0true\0".length() <= 10_004;
            assertEquals(fits ? 2 : 0, signalsOf(layered).protocolMinor(),
                    fits ? "raised: PostgreSQL 18 negotiated 3.2" : "pgjdbc's own 3.0 request, unchanged");
        }
        assertFalse(ProtocolUpgrade.SHARED.refuses("localhost:" + pg.port()), "nothing remembered about the server");
        try (Connection usual = pg.connect()) {
            assertEquals(2, signalsOf(usual).protocolMinor(), "the next usual connection is raised again");
        }
    }

    @Test
    void aHundredMegabyteResultStreamsThrough() throws SQLException {
        try (Connection c = pg.connect()) {
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.setFetchSize(1000);
                long bytes = 0;
                long rows = 0;
                try (ResultSet rs = s.executeQuery(
                        "select i, repeat(md5(i::text), 32) from generate_series(1, 100000) i")) {
                    while (rs.next()) {
                        rows++;
                        assertEquals(rows, rs.getLong(1));
                        String v = rs.getString(2);
                        assertEquals(1024, v.length());
                        bytes += v.length();
                    }
                }
                assertEquals(100_000, rows);
                assertTrue(bytes >= 100_000_000L, "streamed " + bytes);
            }
            c.commit();
        }
    }

    @Test
    void copyInAndOut() throws Exception {
        try (Connection c = pg.connect()) {
            try (Statement s = c.createStatement()) {
                s.execute("create temp table t (id int, v text)");
            }
            StringBuilder data = new StringBuilder();
            for (int i = 0; i < 20_000; i++) {
                data.append(i).append('\t').append("value-").append(i).append('\n');
            }
            CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
            assertEquals(20_000, copy.copyIn("copy t from stdin", new StringReader(data.toString())));
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            assertEquals(20_000, copy.copyOut("copy (select * from t order by id) to stdout", out));
            assertEquals(data.toString(), out.toString(java.nio.charset.StandardCharsets.UTF_8));
        }
    }

    @Test
    void listenNotifyReachesPgjdbcThroughAvailableAndThroughAnIdlePoll() throws Exception {
        try (Connection listener = pg.connect(); Connection notifier = pg.connect()) {
            try (Statement s = listener.createStatement()) {
                s.execute("listen pool_goaway_test");
            }
            PGConnection pgListener = listener.unwrap(PGConnection.class);
            notify(notifier, "first");
            // getNotifications(0) never blocks: pgjdbc asks available(), which must filter what waits.
            PGNotification[][] got = new PGNotification[1][];
            await().atMost(Duration.ofSeconds(10)).until(() -> (got[0] = pgListener.getNotifications(0)).length > 0);
            assertEquals("first", got[0][0].getParameter());

            // An idle poll reads the next notification ahead of pgjdbc, which must still get it whole.
            notify(notifier, "second");
            ConnectionSignals signals = signalsOf(listener);
            await().atMost(Duration.ofSeconds(10)).until(() -> {
                signals.poll();
                return (got[0] = pgListener.getNotifications(0)).length > 0;
            });
            assertEquals("pool_goaway_test", got[0][0].getName());
            assertEquals("second", got[0][0].getParameter());
            assertEquals(backendPid(notifier), got[0][0].getPID());
        }
    }

    private static void notify(Connection c, String payload) throws SQLException {
        try (PreparedStatement ps = c.prepareStatement("select pg_notify('pool_goaway_test', ?)")) {
            ps.setString(1, payload);
            ps.execute();
        }
    }

    /**
     * pgjdbc's default 3.0 session holds a 4-byte stand-in for the server's 32-byte key, which the layer swaps back
     * into the CancelRequest; a 3.2 session holds the real key.
     */
    @ParameterizedTest(name = "protocolVersion={0}")
    @ValueSource(strings = {"3.0", "3.2"})
    void statementCancelReachesTheServerWithItsLongKey(String protocolVersion) throws Exception {
        int pid;
        byte[] pgjdbcKey;
        try (Connection c = pg.connect("protocolVersion", protocolVersion); Statement s = c.createStatement()) {
            assertEquals(2, signalsOf(c).protocolMinor(), "the server runs the connection on 3.2: 32-byte keys");
            pid = backendPid(c);
            pgjdbcKey = cancelKeyOf(c);
            assertEquals("3.0".equals(protocolVersion) ? 4 : 32, pgjdbcKey.length, "the key pgjdbc holds");
            CompletableFuture<Void> sleeping = CompletableFuture.runAsync(() -> {
                try {
                    s.execute("select pg_sleep(60)");
                } catch (SQLException e) {
                    throw new java.util.concurrent.CompletionException(e);
                }
            });
            await().atMost(Duration.ofSeconds(10)).until(() -> sleeping(pg));
            s.cancel();
            Throwable cause = assertThrows(java.util.concurrent.ExecutionException.class,
                    () -> sleeping.get(10, TimeUnit.SECONDS)).getCause();
            assertEquals("57014", ((SQLException) cause).getSQLState(), cause.toString());
            assertEquals(1, queryInt(c, "select 1"), "the connection still works after the cancel");
        }
        if (pgjdbcKey.length == 4) {
            assertNull(CancelKeys.realKey(pid, Protocol.readInt(pgjdbcKey, 0)),
                    "a closed connection's stand-in is forgotten");
        }
    }

    /** The cancel key pgjdbc keeps for a connection (no public getter). */
    private static byte[] cancelKeyOf(Connection c) throws Exception {
        java.lang.reflect.Field key = org.postgresql.core.QueryExecutorBase.class.getDeclaredField("cancelKey");
        key.setAccessible(true);
        return (byte[]) key.get(((BaseConnection) c.unwrap(PGConnection.class)).getQueryExecutor());
    }

    private static boolean sleeping(TestPostgres pg) throws SQLException {
        try (Connection c = pg.connect()) {
            return queryInt(c, "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)' "
                    + "and state = 'active'") == 1;
        }
    }

    private static int queryInt(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getInt(1);
        }
    }

    @Test
    void socketTimeoutStillFires() throws SQLException {
        try (Connection c = pg.connect("socketTimeout", "1"); Statement s = c.createStatement()) {
            SQLException e = assertThrows(SQLException.class, () -> s.execute("select pg_sleep(5)"));
            Throwable root = e;
            while (root.getCause() != null) {
                root = root.getCause();
            }
            assertInstanceOf(SocketTimeoutException.class, root, e.toString());
            assertTrue(c.isClosed() || !c.isValid(1));
        }
    }

    @Test
    void tlsRequireAndVerifyFullKeepWorking() throws SQLException {
        for (String mode : new String[] {"require", "verify-full"}) {
            try (Connection c = pg.connect("sslmode", mode, "sslrootcert", pg.rootCert.toString())) {
                assertEquals(1, queryInt(c, "select count(*) from pg_stat_ssl where pid = pg_backend_pid() and ssl"));
                ConnectionSignals signals = signalsOf(c);
                assertEquals(2, signals.protocolMinor(), "negotiation is seen through TLS too");
                assertEquals(backendPid(c), signals.backendPid().getAsInt());
                Socket socket = socketOf(c);
                assertInstanceOf(FilteringSslSocket.class, socket);
            }
        }
    }

    @Test
    void tlsIsTheDefaultWithSslmodePrefer() throws SQLException {
        try (Connection c = pg.connect()) {
            assertEquals(1, queryInt(c, "select count(*) from pg_stat_ssl where pid = pg_backend_pid() and ssl"));
            assertInstanceOf(FilteringSslSocket.class, socketOf(c));
        }
    }

    @Test
    void plainWhenTlsIsDisabled() throws SQLException {
        try (Connection c = pg.connect("sslmode", "disable")) {
            assertEquals(0, queryInt(c, "select count(*) from pg_stat_ssl where pid = pg_backend_pid() and ssl"));
            assertInstanceOf(FilteringSocket.class, socketOf(c));
            assertEquals(2, signalsOf(c).protocolMinor());
        }
    }

    @Test
    void verifyFullStillRejectsTheWrongHostName() {
        SQLException e = assertThrows(SQLException.class,
                () -> java.sql.DriverManager.getConnection(pg.url("127.0.0.2"), PgGoAway.install(props(
                        "user", "postgres", "sslmode", "verify-full", "sslrootcert", pg.rootCert.toString()))));
        assertTrue(String.valueOf(e.getMessage()).contains("hostname") || String.valueOf(e.getMessage())
                .contains("127.0.0.2"), e.getMessage());
    }

    @Test
    void scramWithChannelBindingOverTls() throws SQLException {
        try (Connection c = pg.connect("user", TestPostgres.SCRAM_USER, "password", TestPostgres.SCRAM_PASSWORD,
                "sslmode", "verify-full", "sslrootcert", pg.rootCert.toString(), "channelBinding", "require")) {
            assertEquals(TestPostgres.SCRAM_USER, queryString(c, "select current_user"));
            assertEquals(1, queryInt(c, "select count(*) from pg_stat_ssl where pid = pg_backend_pid() and ssl"));
        }
        SQLException wrong = assertThrows(SQLException.class, () -> pg.connect("user", TestPostgres.SCRAM_USER,
                "password", "wrong", "sslmode", "require", "channelBinding", "require"));
        assertEquals("28P01", wrong.getSQLState());
    }

    /**
     * The first connection of the process to a server that asks for a password gives the raised request up at the
     * challenge and replays pgjdbc's own on a new TLS connection: SCRAM-SHA-256-PLUS then binds to the new session's
     * certificate, as pgjdbc's own connection would. The URL names the server by its address, which no other test
     * uses, so that this is the first connection to it.
     */
    @Test
    void theFirstConnectionToAPasswordServerKeepsChannelBindingOverTheReplay() throws SQLException {
        String peer = "127.0.0.1:" + pg.port();
        assertFalse(ProtocolUpgrade.SHARED.seen(peer), "no connection of this JVM to " + peer + " yet");
        String counter = UUID.randomUUID().toString();
        Properties p = props("user", TestPostgres.SCRAM_USER, "password", TestPostgres.SCRAM_PASSWORD,
                "sslmode", "verify-full", "sslrootcert", pg.rootCert.toString(), "channelBinding", "require",
                "socketFactory", CountingSocketFactory.class.getName(), "socketFactoryArg", counter);
        try (Connection c = DriverManager.getConnection(pg.url("127.0.0.1"), PgGoAway.install(p))) {
            assertEquals(TestPostgres.SCRAM_USER, queryString(c, "select current_user"));
            assertEquals(2, CountingSocketFactory.count(counter), "given up at the SCRAM challenge, then replayed");
            assertFalse(signalsOf(c).goAwayCapable());
        }
        assertTrue(ProtocolUpgrade.SHARED.seen(peer));
        assertFalse(ProtocolUpgrade.SHARED.refuses(peer));
    }

    @Test
    void pgjdbcAsksForTheVersionItWouldAskForWithoutUs() throws SQLException {
        for (String pinned : new String[] {"3.0", "3.2"}) {
            try (Connection c = pg.connect("protocolVersion", pinned)) {
                assertEquals(2, signalsOf(c).protocolMinor(), "raised to 3.3 on the wire, 3.2 granted");
                assertEquals(pinned, ((BaseConnection) c.unwrap(PGConnection.class)).getQueryExecutor()
                        .getProtocolVersion().toString());
                assertEquals(1, queryInt(c, "select 1"));
            }
        }
    }

    @Test
    void signalsOfAConnectionWithoutTheLayerAreEmpty() throws SQLException {
        try (Connection c = java.sql.DriverManager.getConnection(pg.url("localhost"), props("user", "postgres"))) {
            assertTrue(PgGoAway.signals(c).isEmpty());
            assertFalse(PgGoAway.goAwayReceived(c));
        }
    }

    private static String queryString(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getString(1);
        }
    }

    private static java.util.Properties props(String... kv) {
        java.util.Properties p = new java.util.Properties();
        for (int i = 0; i < kv.length; i += 2) {
            p.setProperty(kv[i], kv[i + 1]);
        }
        return p;
    }

    private static Socket socketOf(Connection c) throws SQLException {
        try {
            java.lang.reflect.Field f = org.postgresql.core.QueryExecutorBase.class.getDeclaredField("pgStream");
            f.setAccessible(true);
            return ((org.postgresql.core.PGStream) f.get(((BaseConnection) c.unwrap(PGConnection.class))
                    .getQueryExecutor())).getSocket();
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }
}
