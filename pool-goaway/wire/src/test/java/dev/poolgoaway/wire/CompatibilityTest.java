package dev.poolgoaway.wire;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import dev.poolgoaway.testkit.ContainerPgBouncer;
import dev.poolgoaway.testkit.ContainerUpstream;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.Pooler;
import dev.poolgoaway.testkit.PostgresUpstream;
import dev.poolgoaway.testkit.TestCertificates;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;
import org.postgresql.core.BaseConnection;

/**
 * Do no harm: wherever plain pgjdbc connects, pgjdbc with pool-goaway connects, to the same session, and a peer
 * that accepts the raised request costs no extra connection. Real peers only: PgBouncer and pgpool-II from the
 * machine's packages (skipped with the install command where they are missing), PostgreSQL 13 and 17 from zonky's
 * binaries, PostgreSQL 18. docs/compatibility.md is the table of what these tests show.
 */
class CompatibilityTest {

    private static final Duration WAIT = Duration.ofSeconds(20);
    private final TestPostgres pg = TestPostgres.get();

    /** What one connection looked like to pgjdbc: compared between plain pgjdbc and pool-goaway. */
    private record Session(String protocolVersion, int cancelKeyLength, String serverVersion) {
    }

    @ParameterizedTest(name = "{0}, sslmode={1}")
    @CsvSource({"PGBOUNCER, disable", "PGBOUNCER, prefer", "PGBOUNCER, require", "PGPOOL, disable", "PGPOOL, prefer",
        "PGPOOL, require"})
    void aPoolerThatFailsOnTheRaisedRequestCostsNoConnection(Pooler.Kind kind, String sslmode) throws Exception {
        Optional<String> missing = Pooler.missing(kind);
        assumeTrue(missing.isEmpty(), () -> "skipped: " + missing.orElseThrow());
        try (Pooler pooler = Pooler.start(kind, pg.upstream, !"disable".equals(sslmode))) {
            Session plain;
            try (Connection c = plainPgjdbc(pooler, sslmode)) {
                plain = session(c);
                work(c);
            }
            String counter = UUID.randomUUID().toString();
            try (Connection c = withPoolGoAway(pooler, counter, "sslmode", sslmode)) {
                assertEquals(2, CountingSocketFactory.count(counter), pooler.version()
                        + " failed on 3.3 once, pgjdbc's own request was replayed on a new connection");
                assertEquals(plain, session(c), "pgjdbc's session is the one it has without pool-goaway");
                ConnectionSignals signals = PgGoAway.signals(c).orElseThrow();
                assertEquals(0, signals.protocolMinor());
                assertFalse(signals.goAwayCapable(), "no GoAway through " + pooler.version());
                work(c);
                cancel(c, pg.upstream);
            } catch (SQLException | AssertionError e) {
                throw new AssertionError(e.getMessage() + "\n--- " + pooler.version() + " log:\n" + pooler.logText(),
                        e);
            }
            int before = CountingSocketFactory.count(counter);
            try (Connection again = withPoolGoAway(pooler, counter, "sslmode", sslmode)) {
                assertEquals(before + 1, CountingSocketFactory.count(counter),
                        "the failure is remembered: the next connection asks for pgjdbc's version at once");
                assertEquals(plain, session(again));
            }
        }
    }

    /**
     * The test kit's proxy speaks 3.3 like a server with the GoAway patch and, asked for 3.3 alone
     * ({@code goAwayRequest=protocol}), grants it without NegotiateProtocolVersion, as such a server does; pgpool-II
     * then cannot parse the 32-byte cancel key the server sends after authenticating ("invalid messages length(40)
     * for BackendKeyData"). Under trust pgjdbc answered no challenge, so the failure is replayed unseen. Compared
     * with plain pgjdbc.
     */
    @Test
    void pgpoolInFrontOfAServerThatGrantsThreeThreeFailsAfterAuthenticationAndIsReplayed() throws Exception {
        Optional<String> missing = Pooler.missing(Pooler.Kind.PGPOOL);
        assumeTrue(missing.isEmpty(), () -> "skipped: " + missing.orElseThrow());
        try (GoAwayProxy server = GoAwayProxy.builder().upstream(pg.upstream).start();
                Pooler pooler = Pooler.start(Pooler.Kind.PGPOOL, upstreamAt(server), false)) {
            Session plain;
            try (Connection c = plainPgjdbc(pooler, "disable")) {
                plain = session(c);
            }
            String counter = UUID.randomUUID().toString();
            try (Connection c = withPoolGoAway(pooler, counter, "sslmode", "disable", PgGoAway.GOAWAY_REQUEST,
                    "protocol")) {
                assertEquals(2, CountingSocketFactory.count(counter), "failed after authenticating, replayed");
                assertEquals(plain, session(c));
                work(c);
            } catch (SQLException | AssertionError e) {
                throw new AssertionError(e.getMessage() + "\n--- pgpool log:\n" + pooler.logText(), e);
            }
            assertTrue(ProtocolUpgrade.SHARED.refuses(pooler.host() + ":" + pooler.port()), "remembered");
            assertTrue(pooler.logText().contains("BackendKeyData"), "pgpool-II failed on the long cancel key:\n"
                    + pooler.logText());
        }
    }

    /**
     * pgpool-II asking for a password, in front of a server that grants 3.3 without NegotiateProtocolVersion (the
     * test kit's proxy, a stand-in for a PostgreSQL with the GoAway patch, which real 18 is not): pgpool fails on the
     * server's 32-byte cancel key after pgjdbc answered the challenge, which no replay can repeat. The first
     * connection to the peer never asks for 3.3 past the challenge: it works as plain pgjdbc's does, at the cost of
     * one aborted startup. The second asks, fails once, and the peer is remembered: one failed attempt per peer,
     * never the first; all later connections work. With {@code goAwayRequest=protocol} the server grants exactly
     * what is asked (pgpool-II: "invalid messages length(40) for BackendKeyData"); with {@code both} it lists the
     * extension it does not know in a NegotiateProtocolVersion, on which pgpool-II fails after the challenge too.
     */
    @ParameterizedTest(name = "pgpool-II, {0} authentication, goAwayRequest={1}")
    @CsvSource({"password, protocol", "md5, protocol", "md5, both"})
    void pgpoolAskingForAPasswordInFrontOfAServerGrantingThreeThreeFailsOnceNeverFirst(String method, String request)
            throws Exception {
        Optional<String> missing = Pooler.missing(Pooler.Kind.PGPOOL);
        assumeTrue(missing.isEmpty(), () -> "skipped: " + missing.orElseThrow());
        Pooler.ClientAuth auth = new Pooler.ClientAuth(method, "pgpool-" + method + "-secret");
        try (GoAwayProxy server = GoAwayProxy.builder().upstream(pg.upstream).start();
                Pooler pooler = Pooler.start(Pooler.Kind.PGPOOL, upstreamAt(server), false, auth)) {
            String peer = pooler.host() + ":" + pooler.port();
            Session plain;
            try (Connection c = plainPgjdbc(pooler, "disable")) {
                plain = session(c);
                work(c);
            }
            // pgpool-II checks the password itself (and reports a wrong one as XX000, not class 28).
            PostgresUpstream wrong = PostgresUpstream.at(pooler.host(), pooler.port(), pooler.user(), "wrong",
                    pooler.database());
            SQLException plainWrong = assertThrows(SQLException.class, () -> plainPgjdbc(wrong, "disable"));
            SQLException oursWrong = assertThrows(SQLException.class, () -> DriverManager.getConnection(
                    wrong.jdbcUrl(), PgGoAway.install(props(wrong, "sslmode", "disable",
                            PgGoAway.GOAWAY_REQUEST, request))));
            assertEquals(plainWrong.getSQLState() + " " + plainWrong.getMessage(),
                    oursWrong.getSQLState() + " " + oursWrong.getMessage(), "a wrong password, as plain pgjdbc");
            assertFalse(ProtocolUpgrade.SHARED.seen(peer), "a failed login completes no startup");
            assertFalse(ProtocolUpgrade.SHARED.refuses(peer), "nothing learned from a wrong password");
            String counter = UUID.randomUUID().toString();
            String[] ours = {"sslmode", "disable", PgGoAway.GOAWAY_REQUEST, request};
            try (Connection first = withPoolGoAway(pooler, counter, ours)) {
                assertEquals(2, CountingSocketFactory.count(counter),
                        "the raised attempt ended at the challenge, pgjdbc answered its own request's");
                assertEquals(plain, session(first), "pgjdbc's session is the one it has without pool-goaway");
                assertFalse(PgGoAway.signals(first).orElseThrow().goAwayCapable());
                assertFalse(ProtocolUpgrade.SHARED.refuses(peer), "a precaution, nothing learned about 3.3");
                work(first);
            } catch (SQLException | AssertionError e) {
                throw new AssertionError(e.getMessage() + "\n--- pgpool log:\n" + pooler.logText(), e);
            }
            int refusing = PgGoAway.serversRefusingGoAway();
            SQLException once = assertThrows(SQLException.class,
                    () -> withPoolGoAway(pooler, counter, ours).close(),
                    "the second connection asks for 3.3 past the challenge, and pgpool-II fails");
            assertFalse(once.getSQLState().startsWith("28"), once.toString());
            assertEquals(3, CountingSocketFactory.count(counter), "no replay after a challenge");
            assertTrue(ProtocolUpgrade.SHARED.refuses(peer), "remembered at once, with a WARN");
            assertEquals(refusing + 1, PgGoAway.serversRefusingGoAway());
            for (int i = 0; i < 3; i++) {
                try (Connection c = withPoolGoAway(pooler, counter, ours)) {
                    assertEquals(4 + i, CountingSocketFactory.count(counter), "pgjdbc's own request at once");
                    assertEquals(plain, session(c));
                    work(c);
                }
            }
        }
    }

    /**
     * What the precaution above costs where nothing fails: a GoAway server (the test kit's proxy) that asks for a
     * password (SCRAM, from the real PostgreSQL behind it). The first connection of the process to it gives up the
     * raised request at the challenge: one extra TCP connection, and that connection cannot hear GoAway. Every later
     * one asks for GoAway at no extra cost. Compared with plain pgjdbc: same sessions, same number of logins.
     */
    @Test
    void theFirstConnectionToAPeerThatAsksForAPasswordIsTheOneWithoutGoAway() throws Exception {
        int n = 4;
        try (GoAwayProxy server = GoAwayProxy.builder().upstream(pg.upstream).start()) {
            PostgresUpstream scram = PostgresUpstream.at(server.host(), server.port(), TestPostgres.SCRAM_USER,
                    TestPostgres.SCRAM_PASSWORD, pg.upstream.database());
            String counter = UUID.randomUUID().toString();
            List<Connection> ours = new ArrayList<>();
            try {
                for (int i = 0; i < n; i++) {
                    try (Connection plain = plainPgjdbc(scram, "disable")) {
                        assertEquals(TestPostgres.SCRAM_USER, plain.getMetaData().getUserName());
                    }
                    ours.add(withPoolGoAway(scram, counter, "sslmode", "disable"));
                    assertEquals(i == 0 ? 2 : i + 2, CountingSocketFactory.count(counter),
                            "TCP connections after " + (i + 1) + " connections (plain pgjdbc: " + (i + 1) + ")");
                    assertEquals(i > 0, PgGoAway.signals(ours.get(i)).orElseThrow().goAwayCapable(),
                            "connection " + (i + 1));
                }
                assertEquals(n - 1, server.goAway(), "GoAway reaches all but the first");
                for (int i = 0; i < n; i++) {
                    Connection c = ours.get(i);
                    work(c);
                    assertEquals(i > 0, PgGoAway.goAwayReceived(c), "connection " + (i + 1));
                }
            } finally {
                for (Connection c : ours) {
                    c.close();
                }
            }
        }
    }

    @ParameterizedTest(name = "PostgreSQL {0}")
    @ValueSource(strings = {"13", "17"})
    void anOlderServerNegotiatesThreeZeroAtNoCost(String release) throws Exception {
        Path binaries = Path.of(System.getProperty("poolgoaway.test.postgres-releases", "target/postgres-releases"),
                "postgres-" + release + ".jar");
        assumeTrue(Files.isRegularFile(binaries), () -> "skipped: no PostgreSQL " + release + " binaries at "
                + binaries + " (the build copies the linux-amd64 ones)");
        Path dir = Files.createTempDirectory("pool-goaway-pg" + release);
        TestCertificates.get().write(dir.resolve("root.crt"), dir.resolve("server.crt"), dir.resolve("server.key"));
        try (EmbeddedUpstream server = EmbeddedUpstream.start(binaries, Map.of("ssl", "on",
                "ssl_cert_file", dir.resolve("server.crt").toString(),
                "ssl_key_file", dir.resolve("server.key").toString()))) {
            // A 9,995-byte StartupMessage: the GoAway option would take it past the server's 10,004-byte limit.
            String longName = LongStartup.applicationNameFor(9_995, server.database());
            for (String sslmode : new String[] {"disable", "require"}) {
                Session plain;
                try (Connection c = plainPgjdbc(server, sslmode)) {
                    plain = session(c);
                }
                assertTrue(plain.serverVersion().startsWith(release + "."), plain.serverVersion());
                String counter = UUID.randomUUID().toString();
                try (Connection c = withPoolGoAway(server, counter, "sslmode", sslmode)) {
                    assertEquals(1, CountingSocketFactory.count(counter), "NegotiateProtocolVersion, no retry");
                    assertEquals(plain, session(c));
                    assertEquals(0, PgGoAway.signals(c).orElseThrow().protocolMinor());
                    work(c);
                    cancel(c, server);
                }
                try (Connection c = DriverManager.getConnection(server.jdbcUrl(),
                        LongStartup.properties(props(server, "sslmode", sslmode), longName))) {
                    assertEquals(plain, session(c), "plain pgjdbc, 9,995 bytes");
                }
                String longCounter = UUID.randomUUID().toString();
                try (Connection c = withPoolGoAway(server, longCounter, "sslmode", sslmode,
                        "assumeMinServerVersion", "9.0", "ApplicationName", longName)) {
                    assertEquals(1, CountingSocketFactory.count(longCounter), "pgjdbc's message, unchanged, at once");
                    assertEquals(plain, session(c), "9,995 bytes through pool-goaway, sslmode=" + sslmode);
                    assertEquals(0, PgGoAway.signals(c).orElseThrow().protocolMinor());
                }
                assertFalse(ProtocolUpgrade.SHARED.refuses(server.host() + ":" + server.port()),
                        "nothing remembered about the server");
            }
        }
    }

    @Test
    void postgres18GrantsThreeTwoAtNoCostAndPgjdbcKeepsItsThreeZeroSession() throws Exception {
        Session plain;
        try (Connection c = plainPgjdbc(pg.upstream, "require")) {
            plain = session(c);
        }
        String counter = UUID.randomUUID().toString();
        try (Connection c = withPoolGoAway(pg.upstream, counter, "sslmode", "require")) {
            assertEquals(1, CountingSocketFactory.count(counter), "a peer that negotiates costs no extra attempt");
            assertEquals(plain, session(c));
            assertEquals(2, PgGoAway.signals(c).orElseThrow().protocolMinor());
            work(c);
            cancel(c, pg.upstream);
        }
    }

    @Test
    void aCurrentPgBouncerInDockerConnectsAsPlainPgjdbcDoes() throws Exception {
        assumeTrue(ContainerUpstream.dockerAvailable(),
                "skipped: no Docker engine here (Testcontainers); the packaged PgBouncer is tested above");
        try (ContainerPgBouncer pooler = ContainerPgBouncer.start()) {
            Session plain;
            try (Connection c = plainPgjdbc(pooler, "disable")) {
                plain = session(c);
            }
            String counter = UUID.randomUUID().toString();
            try (Connection c = withPoolGoAway(pooler, counter, "sslmode", "disable")) {
                // 1.23 and later negotiate (one connection); an older image fails and is replayed (two).
                assertTrue(CountingSocketFactory.count(counter) <= 2, "connections: " + CountingSocketFactory
                        .count(counter));
                assertEquals(plain, session(c));
                work(c);
                cancel(c, pooler.server());
            }
        }
    }

    @Test
    void aSocketFactoryInADriverManagerUrlIsWrappedNotLetThroughToBypassTheLayer() throws Exception {
        String counter = UUID.randomUUID().toString();
        String url = pg.upstream.jdbcUrl() + "?socketFactory=" + CountingSocketFactory.class.getName()
                + "&socketFactoryArg=" + counter + "&sslmode=disable";
        Properties props = props(pg.upstream);
        String cleaned = PgGoAway.install(url, props);
        assertEquals(pg.upstream.jdbcUrl() + "?socketFactoryArg=" + counter + "&sslmode=disable", cleaned);
        try (Connection c = DriverManager.getConnection(cleaned, props)) {
            assertTrue(PgGoAway.signals(c).isPresent(), "made through the wire layer");
            assertEquals(1, CountingSocketFactory.count(counter), "over the user's own factory");
        }
        assertThrows(IllegalArgumentException.class, () -> PgGoAway.install("jdbc:mysql://h/db", new Properties()));
    }

    /**
     * A connector-style factory (connected sockets, the URL's address never dialled) in front of real PgBouncer
     * 1.18, which fails on the raised request: the replay takes a new connected socket from the factory as pgjdbc
     * would, instead of connecting it again ("already connected"). Compared with plain pgjdbc over the same factory.
     */
    @Test
    void aConnectorStyleFactoryWhoseSocketsComeConnectedIsReplayedAsPgjdbcUsesIt() throws Exception {
        Optional<String> missing = Pooler.missing(Pooler.Kind.PGBOUNCER);
        assumeTrue(missing.isEmpty(), () -> "skipped: " + missing.orElseThrow());
        try (Pooler pooler = Pooler.start(Pooler.Kind.PGBOUNCER, pg.upstream, false)) {
            // The URL names a port nothing listens on: only the factory's sockets can reach the pooler.
            PostgresUpstream unreachable = PostgresUpstream.at("127.0.0.1", 1, pooler.user(), pooler.password(),
                    pooler.database());
            String target = pooler.host() + ":" + pooler.port();
            Properties plainProps = props(unreachable, "sslmode", "disable", "socketFactory",
                    ConnectorSocketFactory.class.getName(), "socketFactoryArg", target);
            Session plain;
            try (Connection c = DriverManager.getConnection(unreachable.jdbcUrl(), plainProps)) {
                plain = session(c);
                work(c);
            }
            Properties ours = props(unreachable, "sslmode", "disable", "socketFactory",
                    ConnectorSocketFactory.class.getName(), "socketFactoryArg", target);
            try (Connection c = DriverManager.getConnection(unreachable.jdbcUrl(), PgGoAway.install(ours))) {
                assertEquals(plain, session(c), "pgjdbc's session is the one it has without pool-goaway");
                work(c);
            } catch (SQLException | AssertionError e) {
                throw new AssertionError(e.getMessage() + "\n--- " + pooler.version() + " log:\n" + pooler.logText(),
                        e);
            }
        }
    }

    // ---- helpers ----------------------------------------------------------------------------------------------

    private static PostgresUpstream upstreamAt(GoAwayProxy proxy) {
        return PostgresUpstream.at(proxy.host(), proxy.port(), "postgres", "", "postgres");
    }

    private static Properties props(PostgresUpstream peer, String... keyValues) {
        Properties p = new Properties();
        p.setProperty("user", peer.user());
        if (!peer.password().isEmpty()) {
            p.setProperty("password", peer.password());
        }
        p.setProperty("socketTimeout", "30");
        for (int i = 0; i < keyValues.length; i += 2) {
            p.setProperty(keyValues[i], keyValues[i + 1]);
        }
        return p;
    }

    private static Connection plainPgjdbc(PostgresUpstream peer, String sslmode) throws SQLException {
        return DriverManager.getConnection(peer.jdbcUrl(), props(peer, "sslmode", sslmode));
    }

    /** pool-goaway over a counting socket factory of the user's, as a user with one would have it. */
    private static Connection withPoolGoAway(PostgresUpstream peer, String counter, String... keyValues)
            throws SQLException {
        Properties p = props(peer, keyValues);
        p.setProperty("socketFactory", CountingSocketFactory.class.getName());
        p.setProperty("socketFactoryArg", counter);
        return DriverManager.getConnection(peer.jdbcUrl(), PgGoAway.install(p));
    }

    private static Session session(Connection c) throws Exception {
        BaseConnection base = (BaseConnection) c.unwrap(PGConnection.class);
        java.lang.reflect.Field key = org.postgresql.core.QueryExecutorBase.class.getDeclaredField("cancelKey");
        key.setAccessible(true);
        byte[] cancelKey = (byte[]) key.get(base.getQueryExecutor());
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("show server_version")) {
            rs.next();
            return new Session(base.getQueryExecutor().getProtocolVersion().toString(), cancelKey.length,
                    rs.getString(1));
        }
    }

    /** Simple and extended queries (server-prepared), COPY out and in. */
    private static void work(Connection c) throws SQLException, IOException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select 1, 'one'")) {
            assertTrue(rs.next());
            assertEquals("one", rs.getString(2));
        }
        c.unwrap(PGConnection.class).setPrepareThreshold(1);
        try (PreparedStatement ps = c.prepareStatement("select ?::int + 1")) {
            for (int i = 0; i < 3; i++) {
                ps.setInt(1, i);
                try (ResultSet rs = ps.executeQuery()) {
                    assertTrue(rs.next());
                    assertEquals(i + 1, rs.getInt(1));
                }
            }
        }
        CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        assertEquals(1000, copy.copyOut("copy (select generate_series(1, 1000)) to stdout", out));
        assertEquals(1000, out.toString(StandardCharsets.UTF_8).lines().count());
        try (Statement s = c.createStatement()) {
            s.execute("create temporary table copied (n int)");
        }
        assertEquals(3, copy.copyIn("copy copied from stdin", new StringReader("1\n2\n3\n")));
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select sum(n) from copied")) {
            assertTrue(rs.next());
            assertEquals(6, rs.getInt(1));
        }
    }

    /**
     * {@code Statement.cancel()} ends a running statement: the cancel key reached the server.
     *
     * @param server the PostgreSQL server behind the peer, watched for the statement to run
     */
    private static void cancel(Connection c, PostgresUpstream server) throws Exception {
        String sleep = "select pg_sleep(60) -- " + UUID.randomUUID();
        try (Statement s = c.createStatement()) {
            CompletableFuture<Void> sleeping = CompletableFuture.runAsync(() -> {
                try {
                    s.execute(sleep);
                } catch (SQLException e) {
                    throw new CompletionException(e);
                }
            });
            // A cancel sent before the statement runs would be lost: wait until the server runs it.
            try (Connection watch = DriverManager.getConnection(server.jdbcUrl(), server.user(), server.password());
                    PreparedStatement running = watch.prepareStatement(
                            "select count(*) from pg_stat_activity where query = ? and state = 'active'")) {
                running.setString(1, sleep);
                await().atMost(WAIT).until(() -> {
                    try (ResultSet rs = running.executeQuery()) {
                        return rs.next() && rs.getInt(1) == 1;
                    }
                });
            }
            s.cancel();
            Throwable cause = assertThrows(ExecutionException.class, () -> sleeping.get(10, TimeUnit.SECONDS))
                    .getCause();
            assertEquals("57014", ((SQLException) cause).getSQLState(), cause.toString());
        }
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select 1")) {
            assertTrue(rs.next(), "the connection works after the cancel");
        }
    }
}
