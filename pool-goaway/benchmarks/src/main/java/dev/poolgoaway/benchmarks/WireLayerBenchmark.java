package dev.poolgoaway.benchmarks;

import java.io.IOException;
import java.sql.SQLException;
import java.util.OptionalLong;
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

/**
 * The wire layer's cost under JMH: the same pgjdbc work ({@link WireSession}) with the layer off (the baseline) and
 * on, over plain TCP and over TLS, so that {@link WireLayerReport} can print the ratio {@code on / off} of each.
 * JMH runs the cases one after the other, minutes apart, so on a shared machine the ratios' bounds are wide; the
 * interleaved {@link WireLayerAB} is the one that settles the throughput targets. This one stays for what JMH does
 * well: with {@code -prof gc}, {@code gc.alloc.rate.norm} is the allocation per operation of each case.
 *
 * <p>{@link #bulkRead} and {@link #copyOut} move 1 GiB an operation, so they are timed shot by shot.
 */
@State(Scope.Benchmark)
@Fork(1)
public class WireLayerBenchmark {

    /** Payload bytes one {@link #bulkRead} returns: 1 GiB. */
    public static final long BULK_READ_BYTES = WireSession.bulkReadBytes(WireSession.GIB_ROWS);
    /** Bytes one {@link #copyOut} writes: the rows in COPY's text format, each ended by a newline. */
    public static final long COPY_OUT_BYTES = WireSession.copyOutBytes(WireSession.GIB_ROWS);

    /** {@code off}: plain pgjdbc; {@code on}: the wire layer. */
    @Param({"off", "on"})
    public String layer;

    /** Whether the connection uses TLS ({@code verify-full}) rather than plain TCP. */
    @Param({"false", "true"})
    public boolean tls;

    private WireServer server;
    private WireSession session;

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

    /**
     * Starts the server and opens the connection of this case.
     *
     * @throws IOException  if the server cannot start
     * @throws SQLException if the connection cannot be opened
     */
    @Setup(Level.Trial)
    public void start() throws IOException, SQLException {
        server = WireServer.start();
        session = server.connect("on".equals(layer), tls, WireSession.GIB_ROWS);
    }

    /**
     * Closes the connection and stops the server.
     *
     * @throws IOException  if the server's files cannot be removed
     * @throws SQLException if the connection fails to close
     */
    @TearDown(Level.Trial)
    public void stop() throws IOException, SQLException {
        session.close();
        server.close();
    }

    /**
     * @return the value read
     * @throws SQLException if the query fails
     */
    @Benchmark
    @BenchmarkMode(Mode.Throughput)
    @OutputTimeUnit(TimeUnit.SECONDS)
    @Warmup(iterations = 3, time = 2)
    @Measurement(iterations = 8, time = 2)
    public int simpleQuery() throws SQLException {
        return session.simpleQuery();
    }

    /**
     * @return the payload bytes read
     * @throws SQLException if the query fails
     * @throws IOException  never: declared by the steps it shares with {@link #copyOut}
     */
    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    @Warmup(iterations = 1)
    @Measurement(iterations = 8)
    public long bulkRead() throws SQLException, IOException {
        return session.bulkRead();
    }

    /**
     * @return the bytes COPY wrote
     * @throws SQLException if the COPY fails
     * @throws IOException  if pgjdbc's COPY stream fails
     */
    @Benchmark
    @BenchmarkMode(Mode.SingleShotTime)
    @OutputTimeUnit(TimeUnit.MILLISECONDS)
    @Warmup(iterations = 1)
    @Measurement(iterations = 8)
    public long copyOut() throws SQLException, IOException {
        return session.copyOut();
    }
}
