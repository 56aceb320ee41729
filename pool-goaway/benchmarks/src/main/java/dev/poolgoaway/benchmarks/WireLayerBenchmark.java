package dev.poolgoaway.benchmarks;

import java.io.IOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
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

import dev.poolgoaway.wire.PgGoAway;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;

/**
 * The wire layer's cost: the same pgjdbc work with the layer off (the baseline) and on, in one run, so the
 * ratio {@code on / off} is read from one report. A real PostgreSQL 18 on loopback, plain TCP.
 *
 * <ul>
 *   <li>{@link #simpleQuery}: one row through the extended protocol, a server-prepared statement: per-message
 *       overhead.</li>
 *   <li>{@link #bulkRead}: a 64 MiB result streamed with a fetch size: per-byte overhead ({@link #BULK_BYTES} bytes an
 *       operation, so MB/s = ops/s × 64).</li>
 * </ul>
 * With {@code -prof gc}, {@code gc.alloc.rate.norm} gives the allocation per operation of each.
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Fork(1)
@Warmup(iterations = 3, time = 3)
@Measurement(iterations = 5, time = 3)
public class WireLayerBenchmark {

    /** Bytes of payload one {@link #bulkRead} streams. */
    public static final int BULK_BYTES = 64 * 1024 * 1024;
    private static final int ROW_BYTES = 8192;

    @Param({"off", "on"})
    public String layer;

    private EmbeddedPostgres pg;
    private Connection connection;
    private PreparedStatement one;
    private PreparedStatement bulk;

    @Setup(Level.Trial)
    public void start() throws IOException, SQLException {
        pg = EmbeddedPostgres.builder().start();
        Properties props = new Properties();
        props.setProperty("user", "postgres");
        props.setProperty("sslmode", "disable");
        props.setProperty("prepareThreshold", "1");
        if ("on".equals(layer)) {
            PgGoAway.install(props);
        } else {
            props.setProperty("protocolVersion", "3.2");
        }
        connection = DriverManager.getConnection("jdbc:postgresql://localhost:" + pg.getPort() + "/postgres", props);
        connection.setAutoCommit(false);
        one = connection.prepareStatement("select 1");
        bulk = connection.prepareStatement("select repeat('x', " + ROW_BYTES + ") from generate_series(1, "
                + BULK_BYTES / ROW_BYTES + ")");
        bulk.setFetchSize(1000);
    }

    @TearDown(Level.Trial)
    public void stop() throws Exception {
        connection.close();
        pg.close();
    }

    @Benchmark
    public int simpleQuery() throws SQLException {
        try (ResultSet rs = one.executeQuery()) {
            rs.next();
            return rs.getInt(1);
        }
    }

    @Benchmark
    @Warmup(iterations = 2, time = 5)
    @Measurement(iterations = 3, time = 8)
    public long bulkRead() throws SQLException {
        long bytes = 0;
        try (ResultSet rs = bulk.executeQuery()) {
            while (rs.next()) {
                bytes += rs.getBytes(1).length;
            }
        }
        connection.commit();
        return bytes;
    }
}
