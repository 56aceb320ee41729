package dev.poolgoaway.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

import org.junit.jupiter.api.Test;

/**
 * Proves which pgjdbc a test run used (the CI matrix runs several: {@code -Dpgjdbc.version=...}), and that it
 * connects and works through the layer.
 */
class PgjdbcVersionTest {

    @Test
    void theClaimedPgjdbcConnectsAndQueriesThroughTheLayer() throws SQLException {
        try (Connection c = TestPostgres.get().connect();
                Statement s = c.createStatement();
                ResultSet rs = s.executeQuery("select 1")) {
            // Asked of the driver at run time (DriverInfo's constants are inlined where they are compiled).
            assertEquals(System.getProperty("expected.pgjdbc.version"), c.getMetaData().getDriverVersion());
            assertTrue(rs.next());
            assertEquals(1, rs.getInt(1));
            assertTrue(PgGoAway.signals(c).isPresent(), "the layer is under the connection");
        }
    }
}
