package dev.poolgoaway.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;

import org.junit.jupiter.api.Test;

/** pgjdbc through a proxy the extension started, to the upstream it started. */
@GoAwayProxyTest
class ExtensionSmokeTest {

    @Test
    void selectOneThroughTheProxy(GoAwayProxy proxy, PostgresUpstream upstream) throws SQLException {
        try (Connection c = DriverManager.getConnection(proxy.jdbcUrl("postgres"), "postgres", upstream.password());
                Statement s = c.createStatement();
                ResultSet rs = s.executeQuery("select 1")) {
            assertTrue(rs.next());
            assertEquals(1, rs.getInt(1));
        }
    }
}
