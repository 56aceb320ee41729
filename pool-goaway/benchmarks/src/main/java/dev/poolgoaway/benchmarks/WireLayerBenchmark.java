package dev.poolgoaway.benchmarks;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;
import org.postgresql.PGConnection;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.TestCertificates;
import dev.poolgoaway.wire.PgGoAway;

/**
 * The wire layer's cost: the same pgjdbc work with the layer off (the baseline) and on, over plain TCP and over TLS,
 * in one run, so that {@link WireLayerReport} can print the ratio {@code on / off} of each from one set of results.
 * A real PostgreSQL 18 on loopback; the server is the same for every case (TLS offered), the client chooses.
 *
 * <ul>
 *   <li>{@link #simpleQuery}: one row through the extended protocol, a server-prepared statement: the cost per
 *       message.</li>
 *   <li>{@link #bulkRead}: {@value #BULK_ROWS} rows of {@value #ROW_BYTES} bytes (1 GiB of payload) streamed with a
 *       fetch size: the cost per byte. One operation is long, so it is timed shot by shot.</li>
 *   <li>{@link #copyOut}: the same rows through {@code COPY ... TO STDOUT} into a counting stream (pgjdbc's
 *       {@code CopyManager}): the cost per byte on the path that bypasses result-set decoding.</li>
 * </ul>
 * With {@code -prof gc}, {@code gc.alloc.rate.norm} is the allocation per operation of each.
 */
@State(Scope.Benchmark)
@Fork(1)
public class WireLayerBenchmark {

    static final int ROW_BYTES = 8192;
    static final int BULK_ROWS = 131_072;
    /** Payload bytes one {@link #bulkRead} returns: 1 GiB. */
    public static final long BULK_READ_BYTES = (long) ROW_BYTES * BULK_ROWS;
    /** Bytes one {@link #copyOut} writes: the rows in COPY's text format, each ended by a newline. */
    public static final long COPY_OUT_BYTES = (long) (ROW_BYTES + 1) * BULK_ROWS;

    private static final String ROWS = "select repeat('x', " + ROW_BYTES + ") from generate_series(1, " + BULK_ROWS
            + ")";

    @Param({"off", "on"})
    public String layer;

    @Param({"false", "true"})
    public boolean tls;

    private Path certDir;
    private EmbeddedUpstream pg;
    private Connection connection;
    private PreparedStatement one;
    private PreparedStatement bulk;

    /**
     * @param benchmark a benchmark method's name
     * @return the bytes one operation of it moves, for those measured in MB/s
     */
    public static OptionalLong bytesPerOperation(String benchmark) {
        return switch (benchmark) {
            case "bulkRead" -> OptionalLong.of(BULK_READ_BYTES);
            case "copyOut" -> OptionalLong.of(COPY_OUT_BYTES);
            default -> OptionalLong.empty();
        };
    }

    @Setup(Level.Trial)
    public void start() throws IOException, SQLException {
        certDir = Files.createTempDirectory("pool-goaway-bench");
        Path rootCert = certDir.resolve("root.crt");
        Path serverCert = certDir.resolve("server.crt");
        Path serverKey = certDir.resolve("server.key");
        TestCertificates.get().write(rootCert, serverCert, serverKey);
        pg = EmbeddedUpstream.start(Map.of(
                "ssl", "on",
                "ssl_cert_file", serverCert.toString(),
                "ssl_key_file", serverKey.toString()));

        Properties props = new Properties();
        props.setProperty("user", pg.user());
        props.setProperty("prepareThreshold", "1");
        if (tls) {
            props.setProperty("sslmode", "verify-full");
            props.setProperty("sslrootcert", rootCert.toString());
        } else {
            props.setProperty("sslmode", "disable");
        }
        if ("on".equals(layer)) {
            // pgjdbc keeps its own 3.0 request either way; with the layer the server runs the connection on 3.2.
            PgGoAway.install(props);
        }
        connection = DriverManager.getConnection(pg.jdbcUrl(), props);
        connection.setAutoCommit(false);
        if (PgGoAway.signals(connection).isPresent() != "on".equals(layer)) {
            throw new IllegalStateException("layer=" + layer + " but the connection says otherwise");
        }
        one = connection.prepareStatement("select 1");
        bulk = connection.prepareStatement(ROWS);
        bulk.setFetchSize(1000);
    }

    @TearDown(Level.Trial)
    public void stop() throws IOException, SQLException {
        connection.close();
        pg.close();
        try (var files = Files.list(certDir)) {
            for (Path f : (Iterable<Path>) files::iterator) {
                Files.delete(f);
            }
        }
        Files.delete(certDir);
    }

    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    @Warmup(iterations = 3, time = 2)
    @Measurement(iterations = 8, time = 2)
    public int simpleQuery() throws SQLException {
        try (ResultSet rs = one.executeQuery()) {
            rs.next();
            return rs.getInt(1);
        }
    }

    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    @Warmup(iterations = 1)
    @Measurement(iterations = 8)
    public long bulkRead() throws SQLException {
        long bytes = 0;
        try (ResultSet rs = bulk.executeQuery()) {
            while (rs.next()) {
                bytes += rs.getBytes(1).length;
            }
        }
        connection.commit();
        return expect(BULK_READ_BYTES, bytes);
    }

    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    @Warmup(iterations = 1)
    @Measurement(iterations = 8)
    public long copyOut() throws SQLException, IOException {
        CountingStream out = new CountingStream();
        long rows = connection.unwrap(PGConnection.class).getCopyAPI().copyOut("copy (" + ROWS + ") to stdout", out);
        connection.commit();
        expect(BULK_ROWS, rows);
        return expect(COPY_OUT_BYTES, out.bytes);
    }

    /** A short read would make a fast, wrong number: fail the run instead. */
    private static long expect(long expected, long actual) {
        if (actual != expected) {
            throw new IllegalStateException("expected " + expected + ", got " + actual);
        }
        return actual;
    }

    /** Counts what COPY writes and keeps none of it. */
    private static final class CountingStream extends OutputStream {
        long bytes;

        @Override
        public void write(int b) {
            bytes++;
        }

        @Override
        public void write(byte[] b, int off, int len) {
            bytes += len;
        }
    }
}
