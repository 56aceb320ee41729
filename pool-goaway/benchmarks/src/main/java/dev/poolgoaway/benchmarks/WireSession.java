package dev.poolgoaway.benchmarks;

import java.io.IOException;
import java.io.OutputStream;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Properties;

import org.postgresql.PGConnection;

import dev.poolgoaway.wire.PgGoAway;

/**
 * One connection and the three operations the wire-layer benchmarks time on it; each checks that it got every byte,
 * for a short read would make a fast, wrong number.
 *
 * <ul>
 *   <li>{@link #simpleQuery}: {@code select 1} through a server-prepared statement (extended protocol), one row
 *       read: the cost per message.</li>
 *   <li>{@link #bulkRead}: {@code bulkRows} rows of {@value #ROW_BYTES} bytes streamed with a fetch size of
 *       {@value #FETCH_SIZE}, every value read: the cost per byte.</li>
 *   <li>{@link #copyOut}: the same rows through {@code COPY ... TO STDOUT} into a counting stream (pgjdbc's
 *       {@code CopyManager}): the cost per byte on the path that bypasses result-set decoding.</li>
 * </ul>
 */
final class WireSession implements AutoCloseable {

    static final int ROW_BYTES = 8192;
    /** Rows of 1 GiB of payload. */
    static final int GIB_ROWS = 131_072;
    static final int FETCH_SIZE = 1000;

    private final Connection connection;
    private final PreparedStatement one;
    private final PreparedStatement bulk;
    private final String copy;
    private final int bulkRows;

    private WireSession(Connection connection, int bulkRows) throws SQLException {
        this.connection = connection;
        this.bulkRows = bulkRows;
        String rows = "select repeat('x', " + ROW_BYTES + ") from generate_series(1, " + bulkRows + ")";
        // A cursor, for the fetch size to stream: outside autocommit.
        connection.setAutoCommit(false);
        one = connection.prepareStatement("select 1");
        bulk = connection.prepareStatement(rows);
        bulk.setFetchSize(FETCH_SIZE);
        copy = "copy (" + rows + ") to stdout";
    }

    static WireSession open(String url, Properties props, boolean layer, int bulkRows) throws SQLException {
        Connection c = DriverManager.getConnection(url, props);
        try {
            if (PgGoAway.signals(c).isPresent() != layer) {
                throw new IllegalStateException("layer " + (layer ? "on" : "off")
                        + " asked for, but the connection says otherwise");
            }
            return new WireSession(c, bulkRows);
        } catch (SQLException | RuntimeException e) {
            c.close();
            throw e;
        }
    }

    /** @return payload bytes one {@link #bulkRead} returns */
    static long bulkReadBytes(int rows) {
        return (long) ROW_BYTES * rows;
    }

    /** @return bytes one {@link #copyOut} writes: the rows in COPY's text format, each ended by a newline */
    static long copyOutBytes(int rows) {
        return (long) (ROW_BYTES + 1) * rows;
    }

    int simpleQuery() throws SQLException {
        try (ResultSet rs = one.executeQuery()) {
            if (!rs.next()) {
                throw new IllegalStateException("select 1 returned no row");
            }
            return (int) expect(1, rs.getInt(1));
        }
    }

    long bulkRead() throws SQLException {
        long bytes = 0;
        try (ResultSet rs = bulk.executeQuery()) {
            while (rs.next()) {
                bytes += rs.getBytes(1).length;
            }
        }
        connection.commit();
        return expect(bulkReadBytes(bulkRows), bytes);
    }

    long copyOut() throws SQLException, IOException {
        CountingStream out = new CountingStream();
        long rows = connection.unwrap(PGConnection.class).getCopyAPI().copyOut(copy, out);
        connection.commit();
        expect(bulkRows, rows);
        return expect(copyOutBytes(bulkRows), out.bytes);
    }

    private static long expect(long expected, long actual) {
        if (actual != expected) {
            throw new IllegalStateException("expected " + expected + ", got " + actual);
        }
        return actual;
    }

    @Override
    public void close() throws SQLException {
        connection.close();
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
