package dev.poolgoaway.hikari;

import static dev.poolgoaway.hikari.PoolFixture.WAIT;
import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.testkit.ScriptedServer;
import dev.poolgoaway.testkit.TestCertificates;
import dev.poolgoaway.wire.PgGoAway;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;

/**
 * A hostile server under a real pool: HikariCP with pool-goaway and real pgjdbc over the test kit's scripted
 * server, which sends negative and huge lengths, truncated frames, GoAway with a payload, a bogus
 * NegotiateProtocolVersion and TLS garbage. Whether the damage hits a statement, an idle connection or a new
 * connection's startup, the application sees at most a clear SQLException, the broken connection leaves the pool,
 * and once the server behaves again the pool serves as before.
 */
class HostileServerTest {

    private static final String POOL = "hostile";
    private static final int SIZE = 2;
    private ScriptedServer server;
    private HikariDataSource pool;
    private final SimpleMeterRegistry meters = new SimpleMeterRegistry();

    @AfterEach
    void close() throws IOException {
        if (pool != null) {
            pool.close();
        }
        if (server != null) {
            server.close();
        }
        await().atMost(WAIT).until(() -> PoolFixture.liveThreads(PoolFixture.EVICTOR_THREAD, POOL + " ").isEmpty());
    }

    private void start(boolean tls) throws Exception {
        server = ScriptedServer.start(ScriptedServer.Startup.SPEAKS_3_3,
                tls ? TestCertificates.get().serverContext() : null);
        HikariConfig config = PoolFixture.config(server.jdbcUrl(), POOL, SIZE);
        config.setUsername("app");
        // The scripted server answers simple queries only.
        config.addDataSourceProperty("preferQueryMode", "simple");
        config.addDataSourceProperty("sslmode", tls ? "require" : "disable");
        // A safety net: a hang shows as a SocketTimeoutException, not a stuck build.
        config.addDataSourceProperty("socketTimeout", "20");
        config.setConnectionTimeout(3_000);
        GoAwayMetrics.bind(PoolGoAway.install(config), meters);
        pool = new HikariDataSource(config);
        await().atMost(WAIT).until(() -> pool.getHikariPoolMXBean().getTotalConnections() == SIZE);
    }

    // ---- what a hostile server sends ----------------------------------------------------------------------

    private static final int ROW_DESCRIPTION = 27;
    private static final byte[] TERMINATED = message('E', concat(field('S', "FATAL"), field('C', "57P01"),
            field('M', "terminating connection due to administrator command"), new byte[] {0}));

    private static byte[] field(char code, String value) {
        return concat(new byte[] {(byte) code}, value.getBytes(StandardCharsets.UTF_8),
                new byte[] {0});
    }

    private static byte[] message(char type, byte[] body) {
        return ByteBuffer.allocate(5 + body.length).put((byte) type).putInt(4 + body.length).put(body).array();
    }

    private static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream b = new ByteArrayOutputStream();
        for (byte[] p : parts) {
            b.writeBytes(p);
        }
        return b.toByteArray();
    }

    /** A select's reply broken after its RowDescription: what follows it, and what the error must say. */
    static Stream<Arguments> brokenReplies() {
        return Stream.of(
                Arguments.of("negative length", new byte[] {'D', (byte) 0xff, (byte) 0xff, 0, 0}, "length -65536"),
                Arguments.of("huge length", new byte[] {'D', 0x7f, (byte) 0xff, (byte) 0xff, (byte) 0xff},
                        "length 2147483647"),
                Arguments.of("GoAway with a payload", message('g', new byte[] {1, 2, 3, 4}),
                        "'g' message with length 8 (must be 4)"),
                Arguments.of("unknown message type", new byte[] {'q', 0, 0, 0, 4}, "unknown message type 0x71"),
                Arguments.of("NegotiateProtocolVersion mid-stream", message('v', new byte[8]),
                        "NegotiateProtocolVersion outside"),
                Arguments.of("truncated frame", new byte[] {'D', 0, 0, 0, 11, 0, 1},
                        "closed the connection in the middle of a 'D' message"));
    }

    // ---- a statement meets the damage ---------------------------------------------------------------------

    @ParameterizedTest(name = "{0}")
    @MethodSource("brokenReplies")
    void aBrokenReplyIsAClearSqlExceptionAndThePoolRecovers(String what, byte[] damage, String expected)
            throws Exception {
        start(false);
        int broken;
        try (Connection c = pool.getConnection()) {
            broken = pidOf(c);
            // Only now: Hikari's own validation of a borrowed connection must not be what meets the damage.
            server.queryReply(concat(Arrays.copyOf(ScriptedServer.selectOneReply(), ROW_DESCRIPTION), damage));
            server.closeAfterReply(what.equals("truncated frame"));
            SQLException e = assertThrows(SQLException.class, () -> selectOne(c));
            assertConnectionFailure(e, expected);
        }
        server.behave();
        assertRecovers(Set.of(broken));
    }

    /**
     * Under the TLS layer: a record of no TLS content type, a forged application-data record, a fatal alert. (Each is
     * a whole record: a TLS client waits for as many bytes as a record header declares, so garbage declaring more
     * than it sends is bounded only by pgjdbc's socketTimeout, with or without pool-goaway.)
     */
    static Stream<Arguments> tlsGarbage() {
        return Stream.of(
                Arguments.of("unknown record type", new byte[] {'E', 3, 3, 0, 2, 'h', 'i'}),
                Arguments.of("forged record", new byte[] {0x17, 0x03, 0x03, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}),
                Arguments.of("fatal alert", new byte[] {0x15, 0x03, 0x03, 0, 2, 2, 40}));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("tlsGarbage")
    void tlsGarbageMidStatementIsAClearSqlException(String what, byte[] garbage) throws Exception {
        start(true);
        int broken;
        try (Connection c = pool.getConnection()) {
            broken = pidOf(c);
            session(broken).sendRaw(garbage);
            SQLException e = assertThrows(SQLException.class, () -> selectOne(c));
            assertConnectionFailure(e, null);
        }
        assertRecovers(Set.of(broken));
    }

    // ---- an idle connection meets it: the evictor's poll finds it first ------------------------------------

    /**
     * The broken replies an idle connection can be seen to receive. (Not a truncated frame: a poll cannot tell a
     * plain socket's end from silence without blocking; Hikari's validation finds that one when it is borrowed.)
     */
    static Stream<Arguments> idleDamage() {
        return brokenReplies().filter(a -> !a.get()[0].equals("truncated frame"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("idleDamage")
    void damageToIdleConnectionsIsFoundAndEvictedBeforeAnyBorrow(String what, byte[] damage, String expected)
            throws Exception {
        start(false);
        Set<Integer> before = pids();
        for (ScriptedServer.Session s : server.sessions()) {
            s.send(damage);
        }
        // Nothing borrows until the replacements are there: the evictor's poll found the damage, not a borrower.
        assertRecovers(before);
        assertEvictedByThePoll();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("tlsGarbage")
    void tlsGarbageToIdleConnectionsIsFoundAndEvictedBeforeAnyBorrow(String what, byte[] garbage) throws Exception {
        start(true);
        Set<Integer> before = pids();
        for (ScriptedServer.Session s : server.sessions()) {
            s.sendRaw(garbage);
        }
        assertRecovers(before);
        assertEvictedByThePoll();
    }

    // ---- a new connection meets it in its startup ---------------------------------------------------------

    static Stream<Arguments> brokenStartups() {
        return Stream.of(
                Arguments.of("bogus NegotiateProtocolVersion", false,
                        message('v', new byte[] {0, 3, 0, 7, 0, 0, 0, 0}), "NegotiateProtocolVersion offering 3.7"),
                Arguments.of("NegotiateProtocolVersion with a malformed option list", false,
                        message('v', new byte[] {0, 3, 0, 2, 0, 0, 0, 3, 'x', 0}), "option list is malformed"),
                // The first answer does not frame as PostgreSQL's: the layer steps aside and pgjdbc refuses it.
                Arguments.of("GoAway with a payload as the first answer", false, message('g', new byte[] {0}),
                        "Protocol error.  Session setup failed."),
                Arguments.of("TLS garbage instead of a handshake", true, new byte[] {'H', 'T', 'T', 'P', '/', '1'},
                        null));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("brokenStartups")
    void aBrokenStartupIsAClearSqlExceptionAndThePoolRecovers(String what, boolean tls, byte[] damage,
            String expected) throws Exception {
        start(tls);
        if (what.startsWith("TLS")) {
            server.garbageInsteadOfHandshake(damage);
        } else {
            server.beforeAuth(damage);
        }
        Set<Integer> before = pids();
        // The server ends every connection as PostgreSQL does, with a FATAL error: the evictor finds them dead and
        // evicts them, and every replacement meets the damage.
        for (ScriptedServer.Session s : server.sessions()) {
            s.send(TERMINATED);
            s.close();
        }
        await().atMost(WAIT).until(() -> pool.getHikariPoolMXBean().getTotalConnections() == 0);
        SQLException e = assertThrows(SQLException.class, () -> {
            try (Connection c = pool.getConnection()) {
                selectOne(c);
            }
        });
        assertTrue(e.getSQLState() != null && e.getSQLState().startsWith("08"), () -> "SQLState of " + chain(e));
        if (expected != null) {
            assertTrue(chain(e).contains(expected), () -> "expected '" + expected + "' in " + chain(e));
        }
        server.behave();
        assertRecovers(before);
    }

    // ---- helpers ------------------------------------------------------------------------------------------

    private void assertEvictedByThePoll() {
        var found = meters.find(GoAwayMetrics.SIGNALS).tag("kind", SignalKind.SERVER_CLOSED.tag()).counter();
        assertTrue(found != null && found.count() == SIZE, () -> "connections the poll found broken: "
                + (found == null ? 0 : found.count()));
    }

    private static void selectOne(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select 1")) {
            assertTrue(rs.next());
            assertEquals(1, rs.getInt(1));
        }
    }

    private static int pidOf(Connection c) throws SQLException {
        return PgGoAway.signals(c).orElseThrow().backendPid().getAsInt();
    }

    private ScriptedServer.Session session(int pid) {
        return server.sessions().stream().filter(s -> s.pid() == pid).findFirst().orElseThrow();
    }

    private Set<Integer> pids() {
        return server.sessions().stream().filter(s -> !s.isClosed()).map(ScriptedServer.Session::pid)
                .collect(Collectors.toSet());
    }

    /** The failure of a broken connection: SQLState class 08, and (when given) our layer's words in the chain. */
    private static void assertConnectionFailure(SQLException e, String expected) {
        assertTrue(e.getSQLState() != null && e.getSQLState().startsWith("08"), () -> "SQLState of " + chain(e));
        if (expected != null) {
            assertTrue(chain(e).contains(expected), () -> "expected '" + expected + "' in " + chain(e));
            assertTrue(chain(e).contains("server localhost:"), () -> "names the server: " + chain(e));
        }
    }

    private static String chain(Throwable e) {
        StringBuilder s = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause()) {
            s.append(t).append(" / ");
        }
        return s.toString();
    }

    /**
     * The broken connections leave the pool (their server side closes), the pool is full again with new ones, and
     * every one of them serves.
     */
    private void assertRecovers(Set<Integer> broken) throws SQLException {
        await().atMost(WAIT).until(() -> {
            Set<Integer> open = pids();
            return open.size() == SIZE && open.stream().noneMatch(broken::contains)
                    && pool.getHikariPoolMXBean().getTotalConnections() == SIZE;
        });
        List<Connection> all = new ArrayList<>();
        try {
            for (int i = 0; i < SIZE; i++) {
                Connection c = pool.getConnection();
                all.add(c);
                selectOne(c);
                int pid = pidOf(c);
                assertTrue(!broken.contains(pid), "a broken connection was handed out again: pid " + pid);
            }
        } finally {
            for (Connection c : all) {
                c.close();
            }
        }
    }
}
