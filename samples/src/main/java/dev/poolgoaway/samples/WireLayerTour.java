package dev.poolgoaway.samples;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Properties;

import dev.poolgoaway.wire.ConnectionSignals;
import dev.poolgoaway.wire.PgGoAway;
import io.zonky.test.db.postgres.embedded.EmbeddedPostgres;

/**
 * A tour of the wire layer against a real PostgreSQL 18: connect through it over TLS, see what was negotiated,
 * then have an administrator terminate the idle connection and watch the layer's idle poll report why, before
 * pgjdbc has read a byte.
 *
 * <p>PostgreSQL 18 speaks protocol 3.2, so it never sends GoAway: the test kit's draining proxy does (see
 * {@code docs/}). Everything else shown here is the real server.
 */
public final class WireLayerTour {

    private WireLayerTour() {
    }

    public static void main(String[] args) throws Exception {
        step("starting an embedded PostgreSQL 18");
        try (EmbeddedPostgres pg = EmbeddedPostgres.builder().start()) {
            String url = "jdbc:postgresql://localhost:" + pg.getPort() + "/postgres";
            Properties props = new Properties();
            props.setProperty("user", "postgres");
            PgGoAway.install(props);
            step("connecting through the wire layer: " + props);

            try (Connection app = DriverManager.getConnection(url, props);
                 Connection admin = DriverManager.getConnection(url, props)) {
                ConnectionSignals signals = PgGoAway.signals(app).orElseThrow();
                step("connected: " + query(app, "select version()"));
                step("protocol in force: 3." + signals.protocolMinor() + " (asked for 3.3; pgjdbc sees the 3.2 it "
                        + "asked for), backend pid " + signals.backendPid().orElse(-1)
                        + ", GoAway possible: " + signals.goAwayCapable());

                String pid = String.valueOf(signals.backendPid().orElseThrow());
                step("an administrator terminates backend " + pid + " while the connection sits idle");
                query(admin, "select pg_terminate_backend(" + pid + ")");

                long deadline = System.nanoTime() + Duration.ofSeconds(10).toNanos();
                while (signals.termination().isEmpty() && System.nanoTime() < deadline) {
                    signals.poll();
                    Thread.sleep(10);
                }
                step("idle poll saw: " + signals.termination().map(Object::toString).orElse("nothing (timed out)"));
                try {
                    query(app, "select 1");
                    step("unexpected: the terminated connection still answered");
                } catch (SQLException e) {
                    step("pgjdbc, on its next use, gets the same news: " + e.getSQLState() + " " + e.getMessage());
                }
            }
        }
        step("done");
    }

    private static String query(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getString(1);
        }
    }

    private static void step(String line) {
        System.out.println("[pool-goaway tour] " + line);
    }
}
