package dev.poolgoaway.benchmarks;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.SQLException;
import java.util.Map;
import java.util.Properties;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.TestCertificates;
import dev.poolgoaway.wire.PgGoAway;

/**
 * The server the wire-layer benchmarks run against: one embedded PostgreSQL 18 on loopback that offers TLS (the test
 * CA from {@link TestCertificates}), so that one server serves every case and the client chooses the transport.
 * Shared by {@link WireLayerBenchmark} (JMH) and {@link WireLayerAB} (interleaved rounds).
 *
 * @param certDir  the temporary directory of the certificates, removed on {@link #close()}
 * @param rootCert the test CA, for {@code sslrootcert}
 * @param pg       the server
 */
record WireServer(Path certDir, Path rootCert, EmbeddedUpstream pg) implements AutoCloseable {

    /** Starts the server, TLS offered. */
    static WireServer start() throws IOException {
        Path certDir = Files.createTempDirectory("pool-goaway-bench");
        Path rootCert = certDir.resolve("root.crt");
        Path serverCert = certDir.resolve("server.crt");
        Path serverKey = certDir.resolve("server.key");
        TestCertificates.get().write(rootCert, serverCert, serverKey);
        EmbeddedUpstream pg = EmbeddedUpstream.start(Map.of(
                "ssl", "on",
                "ssl_cert_file", serverCert.toString(),
                "ssl_key_file", serverKey.toString()));
        return new WireServer(certDir, rootCert, pg);
    }

    /**
     * Opens one connection.
     *
     * @param layer    true for the wire layer ({@code PgGoAway.install}), false for plain pgjdbc
     * @param tls      true for {@code sslmode=verify-full} with the test CA, false for {@code sslmode=disable}
     * @param bulkRows rows of a bulk operation ({@link WireSession#ROW_BYTES} bytes each)
     */
    WireSession connect(boolean layer, boolean tls, int bulkRows) throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", pg.user());
        props.setProperty("prepareThreshold", "1");
        if (tls) {
            props.setProperty("sslmode", "verify-full");
            props.setProperty("sslrootcert", rootCert.toString());
        } else {
            props.setProperty("sslmode", "disable");
        }
        if (layer) {
            // pgjdbc keeps its own 3.0 request either way; with the layer the server runs the connection on 3.2.
            PgGoAway.install(props);
        }
        return WireSession.open(pg.jdbcUrl(), props, layer, bulkRows);
    }

    @Override
    public void close() throws IOException {
        pg.close();
        try (var files = Files.list(certDir)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                Files.delete(f);
            }
        }
        Files.delete(certDir);
    }
}
