package dev.poolgoaway.wire;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import org.junit.jupiter.api.Test;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;
import dev.poolgoaway.testkit.GoAwayProxyTest;
import dev.poolgoaway.testkit.PostgresUpstream;
import dev.poolgoaway.testkit.ShutdownCompletion;

/** The complete example of docs/testkit.md (DocSnippetsTest keeps the two equal). */
// tag::example[]
@GoAwayProxyTest
class SwitchoverDrillExampleTest {

    @Test
    void theAppMovesToGreenWhenBlueSaysGoAway(GoAwayProxy proxy, PostgresUpstream blue) throws Exception {
        try (EmbeddedUpstream green = EmbeddedUpstream.start()) {
            // The application connects through the proxy, which plays the load balancer and the old server.
            Properties props = PgGoAway.install(new Properties());
            props.setProperty("user", blue.user());
            props.setProperty("password", blue.password());
            Connection app = DriverManager.getConnection(proxy.jdbcUrl(blue.database()), props);
            assertEquals(blue.port(), serverPort(app));

            // Switchover: new connections go to green, blue enters smart shutdown and sends GoAway.
            proxy.retarget(green);
            CompletableFuture<ShutdownCompletion> drained = proxy.smartShutdown(blue);

            // The application (here by hand; the Hikari evictor does this for a pool) notices and moves.
            ConnectionSignals signals = PgGoAway.signals(app).orElseThrow();
            await().atMost(Duration.ofSeconds(5)).until(() -> {
                signals.poll();
                return signals.goAwayReceived();
            });
            app.close();
            try (Connection moved = DriverManager.getConnection(proxy.jdbcUrl(blue.database()), props)) {
                assertEquals(green.port(), serverPort(moved));
            }

            ShutdownCompletion done = drained.get(5, TimeUnit.SECONDS);
            assertEquals(1, done.connectionsAtRequest());
            assertTrue(done.drainTime().compareTo(Duration.ofSeconds(5)) < 0);
        }
    }

    private static int serverPort(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("select inet_server_port()")) {
            rs.next();
            return rs.getInt(1);
        }
    }
}
// end::example[]
