package dev.poolgoaway.testkit;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.net.ConnectException;
import java.net.Socket;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** The draining proxy over a real PostgreSQL 18, with raw protocol clients and with plain pgjdbc. */
class DrainingProxyTest {

    private static final Duration WAIT = Duration.ofSeconds(10);
    private static final EmbeddedUpstream blue = EmbeddedUpstream.shared("blue");
    private GoAwayProxy proxy;

    @BeforeEach
    void startProxy() throws IOException {
        proxy = GoAwayProxy.builder().upstream(blue).name("test-proxy").start();
    }

    @AfterEach
    void closeProxy() {
        proxy.close();
    }

    private Connection connect(String... keyValues) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", "postgres");
        for (int i = 0; i < keyValues.length; i += 2) {
            p.setProperty(keyValues[i], keyValues[i + 1]);
        }
        return DriverManager.getConnection(proxy.jdbcUrl("postgres"), p);
    }

    private static String query(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getString(1);
        }
    }

    private static int pid(Connection c) throws SQLException {
        return Integer.parseInt(query(c, "select pg_backend_pid()"));
    }

    @Test
    void inTheExtensionDialectGoAwayReachesTheClientsThatAskedForTheExtension() throws Exception {
        try (GoAwayProxy draft = GoAwayProxy.builder().upstream(blue).name("draft-proxy")
                .dialect(GoAwayProxy.Dialect.EXTENSION).start();
                RawClient asked33 = new RawClient(draft.port(), 3, "_pq_.goaway", "true");
                RawClient asked30 = new RawClient(draft.port(), 0, "_pq_.goaway", "true");
                RawClient plain33 = new RawClient(draft.port(), 3);
                RawClient off = new RawClient(draft.port(), 2, "_pq_.goaway", "off")) {
            // A 3.2 server, as PostgreSQL 19: a 3.3 request is negotiated down, and the extension is not listed.
            RawClient.Message v = asked33.startup.stream().filter(m -> m.type() == 'v').findFirst().orElseThrow();
            assertEquals((3 << 16) | 2, Wire.readInt(v.body(), 0));
            assertEquals(0, Wire.readInt(v.body(), 4), "the extension is acknowledged: not unsupported");
            assertTrue(asked30.startup.stream().noneMatch(m -> m.type() == 'v'), "3.0 and the extension: granted");
            assertEquals(2, draft.goAway(), "to the two that asked for it");
            await().atMost(WAIT).until(() -> asked33.received('g') && asked30.received('g'));
            plain33.query("select 1");
            off.query("select 1");
            assertFalse(plain33.received('g'), "3.3 alone is not the draft's way");
            assertFalse(off.received('g'));
            assertTrue(asked30.query("select 42").stream().anyMatch(m -> m.type() == 'D' && m.text().contains("42")));
        }
    }

    @Test
    void aSmartShutdownThatDoesNotDrainSaysWhatItSaw() throws Exception {
        // Plain pgjdbc ignores GoAway: its two connections stay on blue, as a pool without pool-goaway would.
        try (Connection a = connect(); Connection b = connect()) {
            AssertionError failure = assertThrows(AssertionError.class,
                    () -> proxy.awaitSmartShutdown(blue, Duration.ofMillis(300)));
            assertEquals("2 of 2 connections still on " + blue.host() + ":" + blue.port() + " after 0 s (is "
                    + "pool-goaway installed in the pool, and does the new server accept its connections?)",
                    failure.getMessage());
            a.close();
            b.close();
            assertEquals(2, proxy.awaitSmartShutdown(blue, WAIT).connectionsAtRequest());
        }
    }

    @Test
    void goAwayReachesThreeThreeClientsAtOnceAndNobodyElse() throws Exception {
        try (RawClient v30 = new RawClient(proxy.port(), 0); RawClient v32 = new RawClient(proxy.port(), 2);
             RawClient v33 = new RawClient(proxy.port(), 3)) {
            assertTrue(v33.startup.stream().noneMatch(m -> m.type() == 'v'),
                    "a 3.3 client over PostgreSQL 18 sees a 3.3 server: " + v33.startup);
            assertEquals(1, proxy.goAway(), "sent to the 3.3 client only");

            long sent = System.nanoTime();
            await().pollDelay(Duration.ZERO).pollInterval(Duration.ofMillis(1)).atMost(Duration.ofMillis(50))
                    .until(() -> v33.received('g'));
            RawClient.Message g = v33.all().stream().filter(m -> m.type() == 'g').findFirst().orElseThrow();
            assertEquals(0, g.body().length, "GoAway has no payload");
            assertTrue(TimeUnit.NANOSECONDS.toMillis(g.receivedNanos() - sent) <= 50);

            List<RawClient.Message> after = v33.query("select 42");
            assertTrue(after.stream().anyMatch(m -> m.type() == 'D' && m.text().contains("42")),
                    "the connection still answers after GoAway");
            for (RawClient old : new RawClient[] {v30, v32}) {
                old.query("select 1");
                assertFalse(old.received('g'), "only 3.3 clients get GoAway");
            }
        }
        List<ProxiedConnection> facts = proxy.connections();
        assertEquals(List.of(0, 2, 3), facts.stream().map(ProxiedConnection::protocolMinor).toList());
        assertTrue(facts.get(2).goAwaySentAt().isPresent());
        assertTrue(facts.get(0).goAwaySentAt().isEmpty());
    }

    @Test
    void goAwayToOneBackendPidOnly() throws Exception {
        try (RawClient a = new RawClient(proxy.port(), 3); RawClient b = new RawClient(proxy.port(), 3)) {
            int pidA = proxy.openConnections().get(0).backendPid();
            assertTrue(proxy.goAway(pidA));
            await().atMost(WAIT).until(() -> a.received('g'));
            b.query("select 1");
            assertFalse(b.received('g'));
            assertFalse(proxy.goAway(-1));
        }
    }

    @Test
    void smartShutdownRefusesNewConnectionsKeepsOldOnesAndCompletesWhenTheLastLeaves() throws Exception {
        Connection old = connect();
        CompletableFuture<ShutdownCompletion> done = proxy.smartShutdown();
        assertTrue(proxy.shuttingDown());
        SQLException refused = assertThrows(SQLException.class, this::connect);
        assertEquals("57P03", refused.getSQLState());
        assertTrue(refused.getMessage().contains("the database system is shutting down"), refused.getMessage());
        assertEquals("1", query(old, "select 1"), "existing connections keep working");
        assertFalse(done.isDone());
        old.close();
        ShutdownCompletion completion = done.get(10, TimeUnit.SECONDS);
        assertEquals(1, completion.connectionsAtRequest());
        assertFalse(completion.drainTime().isNegative());
        assertTrue(proxy.timeline().stream().anyMatch(e -> e.kind() == ProxyEvent.Kind.SHUTDOWN_COMPLETE));
    }

    @Test
    void aSwitchoverIsSmartShutdownOfBluePlusRetargetToGreen() throws Exception {
        try (EmbeddedUpstream green = EmbeddedUpstream.start()) {
            Connection onBlue = connect();
            CompletableFuture<ShutdownCompletion> done = proxy.smartShutdown();
            proxy.retarget(green);
            assertFalse(proxy.shuttingDown(), "new connections are no longer refused: they go to green");
            try (Connection onGreen = connect()) {
                assertEquals(String.valueOf(green.port()), query(onGreen, "select inet_server_port()"));
                assertEquals(String.valueOf(blue.port()), query(onBlue, "select inet_server_port()"));
                assertFalse(done.isDone(), "green's connection does not hold up blue's shutdown, blue's does");
                onBlue.close();
                assertEquals(1, done.get(10, TimeUnit.SECONDS).connectionsAtRequest());
                assertEquals("1", query(onGreen, "select 1"));
            }
            await().atMost(WAIT).until(() -> proxy.openConnections().isEmpty());
            assertEquals(0, proxy.smartShutdown(green).get(10, TimeUnit.SECONDS).connectionsAtRequest(),
                    "green's shutdown is its own");
            assertTrue(proxy.shuttingDown());
        }
    }

    @Test
    void refusingConnectionsIsConnectionRefusedForNewOnesOnlyAndListeningAgainUsesTheSamePort() throws Exception {
        int port = proxy.port();
        try (Connection old = connect()) {
            proxy.refuseConnections(true);
            assertThrows(ConnectException.class, () -> new Socket("localhost", port).close());
            SQLException refused = assertThrows(SQLException.class, this::connect);
            assertEquals("08001", refused.getSQLState());
            assertTrue(refused.getMessage().contains("refused"), refused.getMessage());
            assertEquals("1", query(old, "select 1"), "open connections keep working");
            proxy.refuseConnections(false);
            assertEquals(port, proxy.port());
            try (Connection again = connect()) {
                assertEquals("1", query(again, "select 1"));
            }
        }
    }

    @Test
    void aConnectDelaySlowsNewConnectionsOnly() throws Exception {
        try (Connection old = connect()) {
            proxy.connectDelay(Duration.ofMillis(700));
            long start = System.nanoTime();
            try (Connection slow = connect()) {
                assertTrue(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start) >= 700,
                        "the new connection waited");
                assertEquals("1", query(slow, "select 1"));
            }
            // A statement on an open connection is not delayed: with a 10 s delay it would be, noticeably.
            proxy.connectDelay(Duration.ofSeconds(10));
            assertTimeoutPreemptively(Duration.ofSeconds(5), () -> assertEquals("1", query(old, "select 1")));
            proxy.connectDelay(Duration.ZERO);
            assertThrows(IllegalArgumentException.class, () -> proxy.connectDelay(Duration.ofMillis(-1)));
        }
    }

    @Test
    void goAwayOnConnectAsksEveryNewConnectionToLeaveOnceReady() throws Exception {
        try (RawClient before = new RawClient(proxy.port(), 3)) {
            proxy.goAwayOnConnect(true);
            try (RawClient fresh = new RawClient(proxy.port(), 3)) {
                await().atMost(WAIT).until(() -> fresh.received('g'));
                assertTrue(fresh.query("select 1").stream().anyMatch(m -> m.type() == 'D'),
                        "it still answers: GoAway is advisory");
            }
            proxy.goAwayOnConnect(false);
            try (RawClient later = new RawClient(proxy.port(), 3)) {
                later.query("select 1");
                before.query("select 1");
                assertFalse(later.received('g'), "off again");
                assertFalse(before.received('g'), "open connections are not told");
            }
        }
    }

    @Test
    void smartShutdownWithNobodyConnectedCompletesAtOnce() throws Exception {
        assertEquals(0, proxy.smartShutdown().get(10, TimeUnit.SECONDS).connectionsAtRequest());
    }

    @Test
    void terminateWithAMessage() throws Exception {
        try (Connection c = connect()) {
            int pid = pid(c);
            assertTrue(proxy.terminate(pid, "moving to green"));
            SQLException e = assertThrows(SQLException.class, () -> query(c, "select 1"));
            assertEquals("57P01", e.getSQLState());
            assertTrue(e.getMessage().contains("terminating connection due to administrator command: moving to green"),
                    e.getMessage());
        }
        assertFalse(proxy.terminate(123_456, "nobody"));
    }

    @Test
    void adminMessagesAreCutAt127BytesLikeTheServerDoes() {
        String cut = Wire.adminMessage("é".repeat(100));
        assertTrue(cut.getBytes(java.nio.charset.StandardCharsets.UTF_8).length <= 127);
        assertEquals("é".repeat(63), cut, "never a split character");
    }

    @Test
    void cancelWithAMessageAndAClientCancelBothReachTheRightBackend() throws Exception {
        try (Connection c = connect(); Connection other = connect()) {
            int pid = pid(c);
            Statement s = c.createStatement();
            CompletableFuture<Void> sleeping = sleep(s);
            await().atMost(WAIT).until(() -> "1".equals(query(other,
                    "select count(*) from pg_stat_activity where pid = " + pid + " and query like 'select pg_sleep%'"
                            + " and state = 'active'")));
            assertTrue(proxy.cancel(pid, "maintenance window"));
            SQLException e = cause(sleeping);
            assertEquals("57014", e.getSQLState());
            assertTrue(e.getMessage().contains("canceling statement due to user request: maintenance window"),
                    e.getMessage());

            CompletableFuture<Void> again = sleep(s);
            await().atMost(WAIT).until(() -> "1".equals(query(other,
                    "select count(*) from pg_stat_activity where pid = " + pid + " and query like 'select pg_sleep%'"
                            + " and state = 'active'")));
            s.cancel();
            SQLException plain = cause(again);
            assertEquals("57014", plain.getSQLState());
            assertFalse(plain.getMessage().contains("user request: "),
                    "a plain cancel carries no message: " + plain.getMessage());
            assertEquals("1", query(other, "select 1"), "the other backend was not touched");
        }
    }

    private static CompletableFuture<Void> sleep(Statement s) {
        return CompletableFuture.runAsync(() -> {
            try {
                s.execute("select pg_sleep(30)");
            } catch (SQLException e) {
                throw new CompletionException(e);
            }
        });
    }

    private static SQLException cause(CompletableFuture<Void> f) {
        ExecutionException e = assertThrows(ExecutionException.class, () -> f.get(20, TimeUnit.SECONDS));
        return (SQLException) e.getCause();
    }

    @Test
    void disconnectRequestedIsAParameterStatusThatChangesNothingElse() throws Exception {
        try (RawClient raw = new RawClient(proxy.port(), 2); Connection c = connect()) {
            assertEquals(2, proxy.disconnectRequested(x -> true));
            await().atMost(WAIT).until(() -> raw.all().stream().anyMatch(m -> m.type() == 'S'
                    && m.text().startsWith("disconnect_requested\0on")));
            assertEquals("1", query(c, "select 1"));
        }
    }

    @Test
    void retargetSendsNewConnectionsToTheOtherServerAndLeavesOldOnesAlone() throws Exception {
        try (EmbeddedUpstream green = EmbeddedUpstream.start(); Connection old = connect()) {
            assertEquals(String.valueOf(blue.port()), query(old, "select inet_server_port()"));
            proxy.retarget(green);
            try (Connection fresh = connect()) {
                assertEquals(String.valueOf(green.port()), query(fresh, "select inet_server_port()"));
            }
            assertEquals(String.valueOf(blue.port()), query(old, "select inet_server_port()"));
            assertTrue(proxy.timeline().stream().anyMatch(e -> e.kind() == ProxyEvent.Kind.RETARGETED));
        }
    }

    @Test
    void factsPerConnection() throws Exception {
        int pid;
        try (Connection c = connect()) {
            pid = pid(c);
            ProxiedConnection open = proxy.openConnections().get(0);
            assertEquals(pid, open.backendPid());
            assertEquals(blue.port(), open.upstream().getPort());
            assertTrue(open.bytesToServer() > 0 && open.bytesToClient() > 0);
            assertTrue(open.open());
        }
        await().atMost(WAIT).until(() -> proxy.openConnections().isEmpty());
        ProxiedConnection closed = proxy.connections().get(0);
        assertEquals(pid, closed.backendPid());
        assertTrue(closed.closedAt().isPresent());
        assertTrue(proxy.timeline().stream().anyMatch(e -> e.kind() == ProxyEvent.Kind.CONNECTED));
    }

    @Test
    void badClientsAreDroppedAloneAndEverythingEndsWithTheProxy() throws Exception {
        try (Connection survivor = connect()) {
            for (byte[] garbage : new byte[][] {
                {0, 0, 0, 3, 1, 2, 3, 4},
                {0x7f, 0, 0, 0, 0, 3, 0, 0},
                {0, 0, 0, 16, 0, 9, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8},
            }) {
                try (Socket s = new Socket("localhost", proxy.port())) {
                    OutputStream out = s.getOutputStream();
                    out.write(garbage);
                    out.flush();
                    s.setSoTimeout(10_000);
                    int type = s.getInputStream().read();
                    assertEquals('E', type, "a bad startup gets an ErrorResponse");
                    byte[] rest = s.getInputStream().readAllBytes();
                    String text = new String(rest, java.nio.charset.StandardCharsets.UTF_8);
                    assertTrue(text.contains("FATAL"), text);
                }
            }
            new Socket("localhost", proxy.port()).close();
            assertEquals("1", query(survivor, "select 1"), "everyone else is still served");
        }
        int port = proxy.port();
        proxy.close();
        assertTrue(Thread.getAllStackTraces().keySet().stream().noneMatch(t -> t.getName().startsWith("test-proxy-")),
                "no proxy thread outlives close()");
        assertThrows(ConnectException.class, () -> new Socket("localhost", port).close());
    }

    @Test
    void tlsTowardTheClient() throws Exception {
        proxy.close();
        proxy = GoAwayProxy.builder().upstream(blue).tls(TestCertificates.get().serverContext()).name("tls-proxy")
                .start();
        try (Connection c = connect("sslmode", "require")) {
            assertEquals("1", query(c, "select 1"));
            assertTrue(proxy.openConnections().get(0).tls());
        }
        try (Connection c = connect("sslmode", "disable")) {
            assertEquals("1", query(c, "select 1"));
        }
    }

    @Test
    void plainPgjdbcAskingThreeTwoKeepsWorkingAcrossAGoAway() throws Exception {
        try (Connection c = connect("protocolVersion", "3.2")) {
            assertEquals("1", query(c, "select 1"));
            assertEquals(0, proxy.goAway(), "a 3.2 client is not sent GoAway");
            assertEquals("1", query(c, "select 1"));
        }
    }
}
