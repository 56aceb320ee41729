package dev.poolgoaway.wire;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.postgresql.PGConnection;
import org.postgresql.core.BaseConnection;

import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.GoAwayProxy.AdminMessageFormat;
import dev.poolgoaway.testkit.GoAwayProxy.Dialect;
import dev.poolgoaway.testkit.TestCertificates;

/**
 * Both upstream designs of GoAway end to end: the test kit's proxy plays a server of the 2025 patch (protocol 3.3),
 * of the 2026 drafts (the {@code _pq_.goaway} extension) or of neither, in front of a real PostgreSQL 18; pgjdbc with
 * the wire layer asks in each of its four modes, over plain TCP and TLS. GoAway is heard exactly when server and
 * client agree on a way, and pgjdbc's own view (its protocol version, no NegotiateProtocolVersion it did not ask
 * for, its results) is the same in every case.
 */
class UpstreamDraftsTest {

    private static final Duration WAIT = Duration.ofSeconds(10);
    private final TestPostgres pg = TestPostgres.get();

    static Stream<Arguments> combinations() {
        List<Arguments> all = new ArrayList<>();
        for (Dialect dialect : Dialect.values()) {
            for (String mode : new String[] {"both", "protocol", "extension", "off"}) {
                for (boolean tls : new boolean[] {false, true}) {
                    all.add(Arguments.of(dialect, mode, tls, expectedGrant(dialect, mode)));
                }
            }
        }
        return all.stream();
    }

    private static GoAwayGrant expectedGrant(Dialect dialect, String mode) {
        boolean protocol = mode.equals("both") || mode.equals("protocol");
        boolean extension = mode.equals("both") || mode.equals("extension");
        return switch (dialect) {
            case PROTOCOL_3_3 -> protocol ? GoAwayGrant.PROTOCOL_3_3 : GoAwayGrant.NONE;
            case EXTENSION -> extension ? GoAwayGrant.EXTENSION : GoAwayGrant.NONE;
            case NONE -> GoAwayGrant.NONE;
        };
    }

    @ParameterizedTest(name = "server {0}, client {1}, tls={2}: {3}")
    @MethodSource("combinations")
    void goAwayIsHeardExactlyWhenServerAndClientAgreeOnAWay(Dialect dialect, String mode, boolean tls,
            GoAwayGrant expected) throws Exception {
        try (GoAwayProxy proxy = proxy(dialect, AdminMessageFormat.APPENDED);
                Connection c = connect(proxy, tls, PgGoAway.GOAWAY_REQUEST, mode)) {
            ConnectionSignals signals = PgGoAway.signals(c).orElseThrow();
            assertEquals(expected, signals.goAwayGrant());
            assertEquals("3.0", protocolOf(c), "pgjdbc's session is the 3.0 one it asked for");
            assertEquals(expected != GoAwayGrant.NONE, proxy.connections().get(0).goAwayCapable(),
                    "the server agrees");
            int sent = proxy.goAway();
            assertEquals(expected != GoAwayGrant.NONE ? 1 : 0, sent);
            if (sent == 1) {
                await().atMost(WAIT).until(() -> {
                    signals.poll();
                    return signals.goAwayReceived();
                });
            }
            assertEquals(42, selectInt(c, "select 42"), "lossless, GoAway or not");
            assertEquals(sent == 1, signals.goAwayReceived());
        }
    }

    @ParameterizedTest(name = "admin messages {0}")
    @EnumSource(AdminMessageFormat.class)
    void theAdminsOwnWordsAreFoundInEitherFormatCutWhereTheServerCutsThem(AdminMessageFormat format)
            throws Exception {
        // 126 ASCII bytes, then a two-byte character across the server's 127-byte cut: it goes whole or not at all.
        String words = "blue is being retired: move to green ".repeat(4).substring(0, 126) + "é and more";
        try (GoAwayProxy proxy = proxy(Dialect.EXTENSION, format);
                Connection c = connect(proxy, false, PgGoAway.GOAWAY_REQUEST, "both")) {
            ConnectionSignals signals = PgGoAway.signals(c).orElseThrow();
            assertTrue(proxy.terminate(signals.backendPid().getAsInt(), words));
            await().atMost(WAIT).until(() -> {
                signals.poll();
                return signals.termination().isPresent();
            });
            Termination t = signals.termination().orElseThrow();
            assertTrue(t.adminTerminated());
            assertEquals(words.substring(0, 126), t.adminMessage().orElseThrow());
            if (format == AdminMessageFormat.DETAIL) {
                assertEquals("terminating connection due to administrator command", t.message());
                assertEquals(words.substring(0, 126), t.detail());
            } else {
                assertEquals("", t.detail());
            }
        }
    }

    @ParameterizedTest(name = "admin messages {0}")
    @EnumSource(AdminMessageFormat.class)
    void aCancelWithAMessageEndsTheStatementAndTheConnectionStays(AdminMessageFormat format) throws Exception {
        try (GoAwayProxy proxy = proxy(Dialect.PROTOCOL_3_3, format);
                Connection c = connect(proxy, false, PgGoAway.GOAWAY_REQUEST, "both");
                Statement s = c.createStatement()) {
            int pid = PgGoAway.signals(c).orElseThrow().backendPid().getAsInt();
            CompletableFuture<Void> sleeping = CompletableFuture.runAsync(() -> {
                try {
                    s.execute("select pg_sleep(60)");
                } catch (SQLException e) {
                    throw new CompletionException(e);
                }
            });
            await().atMost(WAIT).until(() -> proxy.cancel(pid, "stop the report") && sleeping.isDone());
            SQLException e = (SQLException) assertThrows(ExecutionException.class,
                    () -> sleeping.get(10, TimeUnit.SECONDS)).getCause();
            assertEquals("57014", e.getSQLState());
            assertTrue(e.getMessage().contains("stop the report"), e.getMessage());
            assertEquals(1, selectInt(c, "select 1"), "a cancel is no reason to leave");
            assertTrue(PgGoAway.signals(c).orElseThrow().termination().isEmpty());
        }
    }

    private GoAwayProxy proxy(Dialect dialect, AdminMessageFormat format) throws Exception {
        return GoAwayProxy.builder().upstream("localhost", pg.port()).tls(TestCertificates.get().serverContext())
                .dialect(dialect).adminMessages(format).start();
    }

    private Connection connect(GoAwayProxy proxy, boolean tls, String... keyValues) throws SQLException {
        Properties p = pg.clientProperties(tls);
        p.setProperty("socketTimeout", "30");
        for (int i = 0; i < keyValues.length; i += 2) {
            p.setProperty(keyValues[i], keyValues[i + 1]);
        }
        return DriverManager.getConnection(proxy.jdbcUrl("postgres"), PgGoAway.install(p));
    }

    private static String protocolOf(Connection c) throws SQLException {
        return ((BaseConnection) c.unwrap(PGConnection.class)).getQueryExecutor().getProtocolVersion().toString();
    }

    private static int selectInt(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            assertTrue(rs.next());
            assertFalse(rs.wasNull());
            return rs.getInt(1);
        }
    }
}
