package dev.poolgoaway.wire;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;

import org.junit.jupiter.api.AfterEach;

import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.TestCertificates;

/**
 * End to end: real pgjdbc with the wire layer, the test kit's GoAway-speaking proxy, a real PostgreSQL 18. The
 * GoAway is real protocol, not a scripted stream.
 */
class ThroughGoAwayProxyTest {

    private static final Duration WAIT = Duration.ofSeconds(10);
    private final TestPostgres pg = TestPostgres.get();
    private GoAwayProxy proxy;

    @AfterEach
    void close() {
        if (proxy != null) {
            proxy.close();
        }
    }

    private Connection connect(boolean tls) throws Exception {
        proxy = proxy != null ? proxy : GoAwayProxy.builder().upstream("localhost", pg.port())
                .tls(TestCertificates.get().serverContext()).start();
        return DriverManager.getConnection(proxy.jdbcUrl("postgres"), PgGoAway.install(pg.clientProperties(tls)));
    }

    private static int selectOne(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select 1")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    @PlainAndTls
    void goAwayIsSeenOnTheNextQueryOfAConnectionInUse(boolean tls) throws Exception {
        try (Connection c = connect(tls)) {
            ConnectionSignals signals = PgGoAway.signals(c).orElseThrow();
            assertTrue(signals.goAwayCapable(), "the proxy speaks 3.3");
            assertFalse(PgGoAway.goAwayReceived(c));
            assertEquals(1, proxy.goAway());
            assertEquals(1, selectOne(c));
            assertTrue(PgGoAway.goAwayReceived(c));
            assertEquals(1, selectOne(c), "advisory: the connection keeps working");
        }
    }

    @PlainAndTls
    void aListenerHearsTheFirstGoAwayOnTheReadingThreadAndTheSocketsClose(boolean tls) throws Exception {
        java.util.List<String> heard = new java.util.concurrent.CopyOnWriteArrayList<>();
        Connection c = connect(tls);
        ConnectionSignals signals = PgGoAway.signals(c).orElseThrow();
        signals.listen(() -> heard.add(Thread.currentThread().getName() + ":" + signals.goAwayReceived()));
        assertEquals(1, selectOne(c));
        assertTrue(heard.isEmpty(), "nothing new, nothing told");
        assertEquals(1, proxy.goAway());
        assertEquals(1, selectOne(c));
        assertEquals(java.util.List.of(Thread.currentThread().getName() + ":true"), heard,
                "told once, by the thread whose read brought it, after it was recorded");
        assertEquals(1, proxy.goAway());
        assertEquals(1, selectOne(c));
        assertEquals(1, heard.size(), "a repeated GoAway tells nothing new");
        signals.listen(() -> {
            heard.add("closed");
            throw new IllegalStateException("a broken listener");
        });
        c.close();
        assertTrue(c.isClosed(), "a listener that throws breaks nothing");
        assertEquals("closed", heard.get(heard.size() - 1), "the socket's close is told too");
    }

    @PlainAndTls
    void goAwayToAnIdleConnectionIsSeenByThePoll(boolean tls) throws Exception {
        try (Connection c = connect(tls)) {
            ConnectionSignals signals = PgGoAway.signals(c).orElseThrow();
            assertTrue(proxy.goAway(signals.backendPid().getAsInt()));
            await().atMost(WAIT).until(() -> {
                signals.poll();
                return signals.goAwayReceived();
            });
            assertEquals(1, selectOne(c));
        }
    }

    @PlainAndTls
    void terminateWithAMessageIsTheRecordedReason(boolean tls) throws Exception {
        try (Connection c = connect(tls)) {
            ConnectionSignals signals = PgGoAway.signals(c).orElseThrow();
            assertTrue(proxy.terminate(signals.backendPid().getAsInt(), "blue is being retired"));
            await().atMost(WAIT).until(() -> {
                signals.poll();
                return signals.termination().isPresent();
            });
            Termination t = signals.termination().orElseThrow();
            assertTrue(t.adminTerminated());
            assertEquals("terminating connection due to administrator command: blue is being retired", t.message());
        }
    }
}
