package dev.poolgoaway.benchmarks;

import java.io.IOException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.util.Properties;

import org.postgresql.PGConnection;
import org.postgresql.copy.CopyOut;

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
 *   <li>{@link #copyOut}: the same rows through {@code COPY ... TO STDOUT} (pgjdbc's {@code CopyManager}), each
 *       row counted and dropped: the cost per byte on the path that bypasses result-set decoding.</li>
 * </ul>
 * Each also comes in {@link Steps}, for {@link WireLayerAB} to interleave two connections block by block.
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

    /**
     * An operation run in steps, so that two of them (off and on) can be interleaved block by block: each
     * {@link #step()} does one block of it.
     */
    interface Steps {
        /** @return true while more steps remain; false once the operation completed and was checked */
        boolean step() throws SQLException, IOException;

        /** Runs what remains, in one go. */
        default void finish() throws SQLException, IOException {
            while (step()) {
                // every step checks its own work
            }
        }
    }

    int simpleQuery() throws SQLException {
        try (ResultSet rs = one.executeQuery()) {
            if (!rs.next()) {
                throw new IllegalStateException("select 1 returned no row");
            }
            return (int) expect(1, rs.getInt(1));
        }
    }

    /** @return {@code ops} simple queries, {@code block} a step */
    Steps simpleQueries(int ops, int block) {
        return new Steps() {
            private int done;

            @Override
            public boolean step() throws SQLException {
                for (int end = Math.min(ops, done + block); done < end; done++) {
                    simpleQuery();
                }
                return done < ops;
            }
        };
    }

    long bulkRead() throws SQLException, IOException {
        bulkRead(Integer.MAX_VALUE).finish();
        return bulkReadBytes(bulkRows);
    }

    /** @return one bulk read, {@code blockRows} rows a step (the first step runs the query) */
    Steps bulkRead(int blockRows) {
        return new RowSteps(blockRows, bulkReadBytes(bulkRows), () -> {
            ResultSet rs = bulk.executeQuery();
            return new Rows(() -> rs.next() ? rs.getBytes(1).length : -1, () -> {
                rs.close();
                return null;
            });
        });
    }

    long copyOut() throws SQLException, IOException {
        copyOut(Integer.MAX_VALUE).finish();
        return copyOutBytes(bulkRows);
    }

    /**
     * @return one COPY OUT, {@code blockRows} rows a step (the first step starts it), read as pgjdbc's
     *         {@code CopyManager.copyOut(sql, stream)} reads them: {@code readFromCopy} a row at a time
     */
    Steps copyOut(int blockRows) {
        return new RowSteps(blockRows, copyOutBytes(bulkRows), () -> {
            CopyOut op = connection.unwrap(PGConnection.class).getCopyAPI().copyOut(copy);
            return new Rows(() -> {
                byte[] row = op.readFromCopy();
                return row == null ? -1 : row.length;
            }, () -> expect(bulkRows, op.getHandledRowCount()));
        });
    }

    /** Something JDBC does that may fail. */
    @FunctionalInterface
    private interface Sql<T> {
        T run() throws SQLException;
    }

    /** Reads the next row. */
    @FunctionalInterface
    private interface RowReader {
        /** @return the row's length in bytes, or -1 after the last */
        int next() throws SQLException;
    }

    /**
     * A bulk operation under way.
     *
     * @param next the next row's length in bytes, or -1 after the last
     * @param end  what follows the last row: close, or check what the driver counted
     */
    private record Rows(RowReader next, Sql<?> end) {
    }

    /** A bulk operation read row by row, {@code blockRows} a step; at its end, every byte is checked. */
    private final class RowSteps implements Steps {
        private final int blockRows;
        private final long expectedBytes;
        private final Sql<Rows> start;
        private Rows rows;
        private long bytes;

        RowSteps(int blockRows, long expectedBytes, Sql<Rows> start) {
            this.blockRows = blockRows;
            this.expectedBytes = expectedBytes;
            this.start = start;
        }

        @Override
        public boolean step() throws SQLException {
            if (rows == null) {
                rows = start.run();
            }
            for (int i = 0; i < blockRows; i++) {
                int n = rows.next().next();
                if (n < 0) {
                    rows.end().run();
                    connection.commit();
                    expect(expectedBytes, bytes);
                    return false;
                }
                bytes += n;
            }
            return true;
        }
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
}
