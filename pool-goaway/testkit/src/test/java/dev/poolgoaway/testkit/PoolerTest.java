package dev.poolgoaway.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.List;
import java.util.Optional;
import java.util.Properties;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** The real poolers asking for passwords, and the TCP balancer in front of nodes, against a real PostgreSQL. */
class PoolerTest {

    private static final EmbeddedUpstream blue = EmbeddedUpstream.shared("blue");
    private static final EmbeddedUpstream green = EmbeddedUpstream.shared("green");

    @ParameterizedTest(name = "{0}, {1}")
    @CsvSource({"PGBOUNCER, md5", "PGPOOL, password", "PGPOOL, md5"})
    void aPoolerAsksForThePasswordItWasGiven(Pooler.Kind kind, String method) throws Exception {
        Optional<String> missing = Pooler.missing(kind);
        assumeTrue(missing.isEmpty(), () -> "skipped: " + missing.orElseThrow());
        try (Pooler pooler = Pooler.start(kind, blue, false, new Pooler.ClientAuth(method, "s3cret"))) {
            assertEquals("s3cret", pooler.password());
            assertEquals(1, selectOne(pooler, "s3cret"));
            assertThrows(SQLException.class, () -> selectOne(pooler, "wrong"), pooler.logText());
            assertThrows(SQLException.class, () -> selectOne(pooler, ""), "no password, no session");
        }
    }

    @Test
    void clientAuthIsValidatedAndPgBouncerHasNoClearTextMethod() {
        assertThrows(IllegalArgumentException.class, () -> new Pooler.ClientAuth("scram", "x"));
        assertThrows(IllegalArgumentException.class, () -> new Pooler.ClientAuth("md5", ""));
        assertThrows(IllegalArgumentException.class, () -> new Pooler.ClientAuth("trust", "x"));
        assertThrows(IllegalArgumentException.class, () -> Pooler.ClientAuth.md5("a:b"));
        assertThrows(IllegalArgumentException.class, () -> Pooler.start(Pooler.Kind.PGBOUNCER,
                PostgresUpstream.at("127.0.0.1", 1, "u", "", "d"), false, Pooler.ClientAuth.password("x")));
    }

    @Test
    void theBalancerSendsEachConnectionToTheNextNode() throws Exception {
        try (TcpBalancer balancer = TcpBalancer.start(List.of(loopback(blue.port()), loopback(green.port())))) {
            PostgresUpstream front = PostgresUpstream.at("127.0.0.1", balancer.port(), blue.user(), "",
                    blue.database());
            for (int i = 0; i < 4; i++) {
                try (Connection c = connect(front, "")) {
                    assertEquals(i % 2 == 0 ? blue.port() : green.port(),
                            selectInt(c, "select inet_server_port()"));
                }
            }
            assertEquals(List.of(2, 2), List.of(balancer.connections(0), balancer.connections(1)));
        }
        assertThrows(IllegalArgumentException.class, () -> TcpBalancer.start(List.of()));
        assertThrows(IllegalArgumentException.class, () -> TcpBalancer.start(List.of(
                new InetSocketAddress(InetAddress.getByName("192.0.2.1"), 5432))));
    }

    @Test
    void anotherServerCertificateIsForTheSameNamesFromTheSameCa(@TempDir Path dir) throws Exception {
        TestCertificates first = TestCertificates.get();
        TestCertificates second = first.anotherServer();
        assertNotEquals(first.serverCertificate(), second.serverCertificate());
        assertNotEquals(first.serverCertificate().getPublicKey(), second.serverCertificate().getPublicKey());
        assertEquals(List.copyOf(first.serverCertificate().getSubjectAlternativeNames()),
                List.copyOf(second.serverCertificate().getSubjectAlternativeNames()));
        second.write(dir.resolve("root.crt"), dir.resolve("server.crt"), dir.resolve("server.key"));
        try (InputStream in = Files.newInputStream(dir.resolve("root.crt"))) {
            X509Certificate ca = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
            second.serverCertificate().verify(ca.getPublicKey());
            first.serverCertificate().verify(ca.getPublicKey());
        }
        assertEquals(first.serverCertificate().getIssuerX500Principal(),
                second.serverCertificate().getIssuerX500Principal());
    }

    private static InetSocketAddress loopback(int port) {
        return new InetSocketAddress(InetAddress.getLoopbackAddress(), port);
    }

    private static Connection connect(PostgresUpstream peer, String password) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", peer.user());
        p.setProperty("password", password);
        p.setProperty("sslmode", "disable");
        return DriverManager.getConnection(peer.jdbcUrl(), p);
    }

    private static int selectOne(Pooler pooler, String password) throws SQLException {
        try (Connection c = connect(pooler, password)) {
            return selectInt(c, "select 1");
        }
    }

    private static int selectInt(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getInt(1);
        }
    }
}
