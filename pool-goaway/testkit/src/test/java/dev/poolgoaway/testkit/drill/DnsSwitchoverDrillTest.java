package dev.poolgoaway.testkit.drill;

import static org.awaitility.Awaitility.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.time.Duration;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.postgresql.ds.PGSimpleDataSource;

import dev.poolgoaway.testkit.DnsName;
import dev.poolgoaway.testkit.EmbeddedUpstream;

/**
 * The drill's second scenario, "DNS switchover, stock PostgreSQL": two real PostgreSQL 18 servers on one port at two
 * loopback addresses, no proxy, and the name the data source's URL uses re-pointed from one to the other (the JVM's
 * resolver reads it from a hosts file: the build's {@code dns-drill} execution starts this test's JVM so; elsewhere
 * the test is skipped). With pgjdbc's unpooled data source every request opens its own connection, so new ones
 * follow the name and the drain ends with the last request in flight on the old server, in smart shutdown. The
 * pooled drills (with and without pool-goaway) are the drill sample's DNS scenario.
 */
class DnsSwitchoverDrillTest {

    private static final String BLUE = "127.0.0.2";
    private static final String GREEN = "127.0.0.3";

    @Test
    void aDnsSwitchoverOfUnpooledConnectionsDrainsWithEveryRequestAccountedFor() throws Exception {
        assumeTrue(DnsName.available(), "needs a JVM started with -Djdk.net.hosts.file (the build's dns-drill run)");
        assumeTrue(EmbeddedUpstream.canListenOn(BLUE) && EmbeddedUpstream.canListenOn(GREEN),
                "this system does not answer on " + BLUE + " and " + GREEN);
        DnsName name = DnsName.of("db.drill.test");
        name.pointTo(BLUE);
        int port = EmbeddedUpstream.freePort(BLUE, GREEN);
        try (EmbeddedUpstream blue = EmbeddedUpstream.startOn(BLUE, port, Map.of());
                EmbeddedUpstream green = EmbeddedUpstream.startOn(GREEN, port, Map.of())) {
            await().atMost(Duration.ofSeconds(10)).until(name::addresses, List.of(BLUE)::equals);
            PGSimpleDataSource unpooled = new PGSimpleDataSource();
            unpooled.setUrl("jdbc:postgresql://" + name.name() + ":" + port + "/postgres");
            unpooled.setUser(blue.user());

            DrillResult result = SwitchoverDrill.builder(name, blue, green).label("dns").workers(2)
                    .requestsPerSecond(100).before(Duration.ofMillis(800)).after(Duration.ofMillis(800))
                    .observeAtMost(Duration.ofSeconds(10)).build().run(unpooled);

            assertTrue(result.drained(), result::report);
            // The drill re-points the name and waits for this JVM to resolve it anew before the smart shutdown:
            // no new connection reaches the old server once it refuses them.
            assertEquals(0, result.failedRequests(), result::report);
            assertEquals(0, result.stillOnOld());
            assertTrue(result.phases().get(Phase.AFTER).requests() > 0, result::report);
            assertTrue(result.peakNewConnectionsPerSecond() > 0, "the new server got the connections after the switch");
            assertTrue(result.timeline().stream().anyMatch(p -> p.onOld() > 0), "the drill saw the old server's");
            TimelinePoint last = result.timeline().get(result.timeline().size() - 1);
            assertEquals(result.requests(), last.succeeded() + last.failed());
            assertEquals(0, last.onOld());
        }
    }
}
