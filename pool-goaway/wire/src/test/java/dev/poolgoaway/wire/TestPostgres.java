package dev.poolgoaway.wire;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;

/**
 * One real PostgreSQL 18 per test JVM, with TLS on (a CA and a server certificate for {@code localhost} made at
 * start) and a SCRAM-only role for channel-binding tests. Trust for everyone else on loopback.
 */
final class TestPostgres {

    static final String SCRAM_USER = "scram_user";
    static final String SCRAM_PASSWORD = "s3cret-scram";

    private static TestPostgres instance;

    final EmbeddedPostgres pg;
    final Path rootCert;

    private TestPostgres(EmbeddedPostgres pg, Path rootCert) {
        this.pg = pg;
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
        return pg.getPort();
    }

    String url(String host) {
        return "jdbc:postgresql://" + host + ":" + port() + "/postgres";
    }

    /** A connection through the wire layer, as user postgres, with extra properties. */
    Connection connect(String... keyValues) throws SQLException {
        Properties p = new Properties();
        p.setProperty("user", "postgres");
        for (int i = 0; i < keyValues.length; i += 2) {
            p.setProperty(keyValues[i], keyValues[i + 1]);
        }
        return DriverManager.getConnection(url("localhost"), PgGoAway.install(p));
    }

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
        EmbeddedPostgres pg = EmbeddedPostgres.builder()
                .setServerConfig("ssl", "on")
                .setServerConfig("ssl_cert_file", serverCert.toString())
                .setServerConfig("ssl_key_file", serverKey.toString())
                .setServerConfig("hba_file", hba.toString())
                .setServerConfig("max_connections", "200")
                .start();
        try (Connection c = pg.getPostgresDatabase().getConnection(); Statement s = c.createStatement()) {
            s.execute("create role " + SCRAM_USER + " login password '" + SCRAM_PASSWORD + "'");
        }
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                pg.close();
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }));
        return new TestPostgres(pg, rootCert);
    }
}
