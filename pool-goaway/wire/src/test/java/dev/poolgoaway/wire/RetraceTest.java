package dev.poolgoaway.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.atomic.AtomicInteger;

import dev.poolgoaway.testkit.Pooler;
import dev.poolgoaway.testkit.PostgresUpstream;
import dev.poolgoaway.testkit.Socks5Proxy;
import dev.poolgoaway.testkit.TcpBalancer;
import dev.poolgoaway.testkit.TestCertificates;
import org.junit.jupiter.api.Test;

/**
 * The fallback connection (after a peer failed on the raised startup) is made the way pgjdbc made the first one,
 * on the socket paths where "plain TCP to a resolved address" does not hold. Each case runs against real PgBouncer
 * 1.18 (which rejects the raised request: "bad packet header") and is compared with plain pgjdbc in the same run.
 */
class RetraceTest {

    private final TestPostgres pg = TestPostgres.get();

    /**
     * With {@code socksProxyHost} pgjdbc leaves the host name unresolved for the proxy to resolve. The fallback
     * must go through the proxy to the same name, never to the address the first socket reports (a SOCKS socket
     * reports the proxy's bound address, 0.0.0.0, which is this machine): a decoy listening on the URL's port on
     * every local address must receive nothing.
     */
    @Test
    void behindASocksProxyTheFallbackGoesThroughTheProxyToTheSameName() throws Exception {
        assumePgBouncer();
        String[] keys = {"socksProxyHost", "socksProxyPort", "socksNonProxyHosts"};
        Map<String, String> saved = new java.util.HashMap<>();
        for (String k : keys) {
            saved.put(k, System.getProperty(k));
        }
        try (Pooler pooler = Pooler.start(Pooler.Kind.PGBOUNCER, pg.upstream, false);
                ServerSocket decoy = new ServerSocket(0, 50, InetAddress.getByName("0.0.0.0"))) {
            AtomicInteger decoyConnections = new AtomicInteger();
            Thread accept = new Thread(() -> {
                while (!decoy.isClosed()) {
                    try {
                        decoy.accept().close();
                        decoyConnections.incrementAndGet();
                    } catch (IOException closed) {
                        return;
                    }
                }
            }, "decoy-accept");
            accept.setDaemon(true);
            accept.start();
            // A name this machine cannot resolve: only the proxy knows it (RFC 6761 reserves .invalid).
            String name = "pgbouncer.invalid";
            String destination = name + ":" + decoy.getLocalPort();
            try (Socks5Proxy proxy = Socks5Proxy.start(Map.of(destination,
                    new InetSocketAddress(InetAddress.getLoopbackAddress(), pooler.port())))) {
                System.setProperty("socksProxyHost", "127.0.0.1");
                System.setProperty("socksProxyPort", String.valueOf(proxy.port()));
                System.clearProperty("socksNonProxyHosts");
                String url = "jdbc:postgresql://" + destination + "/" + pooler.database();
                try (Connection plain = DriverManager.getConnection(url, props(pooler))) {
                    assertEquals(1, selectOne(plain));
                }
                assertEquals(List.of(destination), proxy.requests(), "plain pgjdbc went through the proxy");
                String counter = UUID.randomUUID().toString();
                Properties p = props(pooler);
                p.setProperty("socketFactory", CountingSocketFactory.class.getName());
                p.setProperty("socketFactoryArg", counter);
                try (Connection layered = DriverManager.getConnection(url, PgGoAway.install(p))) {
                    assertEquals(1, selectOne(layered));
                }
                assertEquals(2, CountingSocketFactory.count(counter), "PgBouncer failed on 3.3, then the fallback");
                assertEquals(List.of(destination, destination, destination), proxy.requests(),
                        "both of pool-goaway's connections went through the proxy, to the name pgjdbc gave");
            }
            assertEquals(0, decoyConnections.get(), "nothing reached this machine's own port");
        } finally {
            for (String k : keys) {
                if (saved.get(k) == null) {
                    System.clearProperty(k);
                } else {
                    System.setProperty(k, saved.get(k));
                }
            }
        }
    }

    /**
     * The fallback socket gets the options pgjdbc set and no others: no copy of the first socket's buffer sizes,
     * which would turn the kernel's buffer autotuning off for the connection's life.
     */
    @Test
    void theFallbackSocketGetsTheOptionsPgjdbcSetAndNoOthers() throws Exception {
        assumePgBouncer();
        for (Optional<String> receiveBuffer : List.of(Optional.<String>empty(), Optional.of("65536"))) {
            // A new PgBouncer (a new port) each time: a peer that refused once is remembered, and not raised again.
            try (Pooler pooler = Pooler.start(Pooler.Kind.PGBOUNCER, pg.upstream, false)) {
                Properties base = props(pooler);
                receiveBuffer.ifPresent(size -> base.setProperty("receiveBufferSize", size));
                String plainName = UUID.randomUUID().toString();
                Properties plainProps = withFactory((Properties) base.clone(), plainName);
                try (Connection plain = DriverManager.getConnection(pooler.jdbcUrl(), plainProps)) {
                    assertEquals(1, selectOne(plain));
                }
                String layeredName = UUID.randomUUID().toString();
                Properties layeredProps = withFactory((Properties) base.clone(), layeredName);
                try (Connection layered = DriverManager.getConnection(pooler.jdbcUrl(),
                        PgGoAway.install(layeredProps))) {
                    assertEquals(1, selectOne(layered));
                }
                List<String> pgjdbcSet = RecordingSocketFactory.sockets(plainName).get(0);
                List<List<String>> ours = RecordingSocketFactory.sockets(layeredName);
                assertEquals(2, ours.size());
                assertEquals(sorted(pgjdbcSet), sorted(ours.get(0)), "pgjdbc set these on the first socket");
                assertEquals(sorted(pgjdbcSet), sorted(ours.get(1)), "and exactly these on the fallback");
                assertTrue(receiveBuffer.isPresent() == pgjdbcSet.contains("receiveBufferSize=65536"), pgjdbcSet
                        .toString());
            }
        }
    }

    /**
     * Over TLS the fallback's TLS answer and handshake are bounded as pgjdbc bounds its own (sslResponseTimeout, or
     * the socket timeout where shorter), not by the socket timeout alone: the fallback socket sees the
     * sslResponseTimeout, and no timeout plain pgjdbc's socket does not see.
     */
    @Test
    void overTlsTheFallbackWaitsForTheTlsAnswerAsLongAsPgjdbcWould() throws Exception {
        assumePgBouncer();
        try (Pooler pooler = Pooler.start(Pooler.Kind.PGBOUNCER, pg.upstream, true)) {
            Properties base = props(pooler);
            base.setProperty("sslmode", "require");
            base.setProperty("sslResponseTimeout", "4321");
            base.setProperty("connectTimeout", "20");
            String plainName = UUID.randomUUID().toString();
            try (Connection plain = DriverManager.getConnection(pooler.jdbcUrl(),
                    withFactory((Properties) base.clone(), plainName))) {
                assertEquals(1, selectOne(plain));
            }
            String layeredName = UUID.randomUUID().toString();
            try (Connection layered = DriverManager.getConnection(pooler.jdbcUrl(),
                    PgGoAway.install(withFactory((Properties) base.clone(), layeredName)))) {
                assertEquals(1, selectOne(layered));
            }
            List<String> pgjdbcTimeouts = soTimeouts(RecordingSocketFactory.sockets(plainName).get(0));
            assertTrue(pgjdbcTimeouts.contains("soTimeout=4321"), pgjdbcTimeouts.toString());
            List<List<String>> ours = RecordingSocketFactory.sockets(layeredName);
            assertEquals(2, ours.size(), "PgBouncer failed on 3.3 over TLS, then the fallback");
            List<String> fallback = soTimeouts(ours.get(1));
            assertTrue(fallback.contains("soTimeout=4321"), "the TLS answer bounded by sslResponseTimeout: " + fallback);
            assertTrue(pgjdbcTimeouts.contains("soTimeout=20000") && fallback.contains("soTimeout=20000"),
                    "the handshake bounded by connectTimeout, as pgjdbc's MakeSSL does: " + fallback);
            assertTrue(pgjdbcTimeouts.containsAll(fallback), "no timeout pgjdbc does not use: " + fallback + " against "
                    + pgjdbcTimeouts);
        }
    }

    /**
     * Two nodes behind one TCP balancer, each with its own certificate for the URL's host from the same CA (pods
     * with cert-manager certificates, a rotation in progress), under {@code verify-full}: the raised attempt lands
     * on one node, PgBouncer 1.18 refuses it, the fallback lands on the other, which presents a different
     * certificate. pgjdbc verifies whichever certificate it gets, and so does the fallback: it connects, as plain
     * pgjdbc does through the same balancer.
     */
    @Test
    void underVerifyFullTheFallbackAcceptsAnotherNodesValidCertificate() throws Exception {
        assumePgBouncer();
        TestCertificates first = TestCertificates.get();
        TestCertificates second = first.anotherServer();
        assertFalse(first.serverCertificate().equals(second.serverCertificate()), "two certificates");
        Path dir = Files.createTempDirectory("pool-goaway-nodes");
        Path rootCert = dir.resolve("root.crt");
        first.write(rootCert, dir.resolve("server.crt"), dir.resolve("server.key"));
        try (Pooler a = Pooler.start(Pooler.Kind.PGBOUNCER, pg.upstream, first, Pooler.ClientAuth.TRUST);
                Pooler b = Pooler.start(Pooler.Kind.PGBOUNCER, pg.upstream, second, Pooler.ClientAuth.TRUST);
                TcpBalancer balancer = TcpBalancer.start(List.of(
                        new InetSocketAddress(InetAddress.getLoopbackAddress(), a.port()),
                        new InetSocketAddress(InetAddress.getLoopbackAddress(), b.port())))) {
            String url = "jdbc:postgresql://localhost:" + balancer.port() + "/" + a.database();
            Properties base = props(a);
            base.setProperty("sslmode", "verify-full");
            base.setProperty("sslrootcert", rootCert.toString());
            for (int i = 0; i < 2; i++) {
                try (Connection plain = DriverManager.getConnection(url, (Properties) base.clone())) {
                    assertEquals(1, selectOne(plain), "plain pgjdbc, node " + (i + 1));
                }
            }
            assertEquals(List.of(1, 1), List.of(balancer.connections(0), balancer.connections(1)));
            String layeredName = UUID.randomUUID().toString();
            try (Connection layered = DriverManager.getConnection(url,
                    PgGoAway.install(withFactory((Properties) base.clone(), layeredName)))) {
                assertEquals(1, selectOne(layered));
            } catch (SQLException e) {
                throw new AssertionError(e + "\n--- " + a.version() + " logs:\n" + a.logText() + b.logText(), e);
            }
            assertEquals(2, RecordingSocketFactory.sockets(layeredName).size(), "the raised attempt and the fallback");
            assertEquals(List.of(2, 2), List.of(balancer.connections(0), balancer.connections(1)),
                    "the raised attempt on the first node, the fallback on the second");
        }
    }

    /** The options set, each once, without the socket timeout (pgjdbc changes it during the startup). */
    private static List<String> sorted(List<String> options) {
        return options.stream().filter(o -> !o.startsWith("soTimeout=")).distinct().sorted().toList();
    }

    private static List<String> soTimeouts(List<String> options) {
        return options.stream().filter(o -> o.startsWith("soTimeout=")).distinct().sorted().toList();
    }

    private static void assumePgBouncer() {
        Optional<String> missing = Pooler.missing(Pooler.Kind.PGBOUNCER);
        assumeTrue(missing.isEmpty(), () -> "skipped: " + missing.orElseThrow());
    }

    private static Properties withFactory(Properties p, String arg) {
        p.setProperty("socketFactory", RecordingSocketFactory.class.getName());
        p.setProperty("socketFactoryArg", arg);
        return p;
    }

    private static Properties props(PostgresUpstream peer) {
        Properties p = new Properties();
        p.setProperty("user", peer.user());
        if (!peer.password().isEmpty()) {
            p.setProperty("password", peer.password());
        }
        p.setProperty("socketTimeout", "30");
        p.setProperty("sslmode", "disable");
        return p;
    }

    private static int selectOne(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select 1")) {
            rs.next();
            return rs.getInt(1);
        }
    }
}
