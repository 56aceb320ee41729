package dev.poolgoaway.testkit.drill;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.util.List;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.postgresql.ds.PGSimpleDataSource;

import dev.poolgoaway.testkit.EmbeddedUpstream;
import dev.poolgoaway.testkit.GoAwayProxy;

/**
 * The drill engine against two real PostgreSQL 18 servers, with pgjdbc's unpooled data source: every request opens
 * its own connection, so the drain ends with the last request in flight on the old server. The pooled drills (with
 * and without pool-goaway) are the drill sample and the drain benchmark.
 */
class SwitchoverDrillTest {

    private static final EmbeddedUpstream blue = EmbeddedUpstream.shared("blue");
    private static final EmbeddedUpstream green = EmbeddedUpstream.shared("green");
    private GoAwayProxy proxy;

    @BeforeEach
    void startProxy() throws Exception {
        proxy = GoAwayProxy.builder().upstream(blue).name("drill-proxy").start();
    }

    @AfterEach
    void stopProxy() {
        proxy.close();
    }

    private PGSimpleDataSource unpooled() {
        PGSimpleDataSource ds = new PGSimpleDataSource();
        ds.setUrl(proxy.jdbcUrl(blue.database()));
        ds.setUser(blue.user());
        return ds;
    }

    private SwitchoverDrill.Builder drill() {
        return SwitchoverDrill.builder(proxy, blue, green).workers(2).requestsPerSecond(100)
                .before(Duration.ofMillis(800)).after(Duration.ofMillis(800)).observeAtMost(Duration.ofSeconds(10));
    }

    @Test
    void aSmartSwitchoverOfUnpooledConnectionsDrainsWithEveryRequestAccountedFor() throws Exception {
        StringBuilder progress = new StringBuilder();
        DrillResult result = drill().label("unpooled").progress(line -> progress.append(line).append('\n')).build()
                .run(unpooled());

        assertTrue(result.drained(), result::report);
        assertEquals(0, result.failedRequests(), result::report);
        assertEquals(0, result.stillOnOld());
        assertTrue(result.phases().get(Phase.BEFORE).requests() > 0, result::report);
        assertTrue(result.phases().get(Phase.AFTER).requests() > 0, result::report);
        // Every request was counted once: the last sample's counters are the phases' sums.
        TimelinePoint last = result.timeline().get(result.timeline().size() - 1);
        assertEquals(result.requests(), last.succeeded() + last.failed());
        assertTrue(result.peakNewConnectionsPerSecond() > 0, "the new server got the connections after the switch");
        assertTrue(result.report().contains("drain time"), result::report);
        assertTrue(progress.toString().contains("[drill unpooled]"), progress::toString);
        assertTrue(result.timelineCsv().startsWith("millis,on_old,on_new,succeeded,failed,in_use,waiting\n"));
        String table = DrillResult.comparison(List.of(result));
        assertTrue(table.lines().anyMatch(l -> l.startsWith("| unpooled | ") && l.contains(" | 0 of ")), table);
    }

    @Test
    void aConnectionThatNeverLeavesIsReportedWithTheMaxLifetimeProjection() throws Exception {
        PGSimpleDataSource ds = unpooled();
        // pgjdbc alone speaks protocol 3.0: it never hears GoAway, like a pool without pool-goaway.
        try (Connection stuck = ds.getConnection()) {
            DrillResult result = drill().observeAtMost(Duration.ofSeconds(1)).maxLifetime(Duration.ofMinutes(30))
                    .build().run(ds);

            assertFalse(result.drained());
            assertEquals(1, result.stillOnOld());
            Duration wait = result.projectedWait().orElseThrow();
            assertTrue(wait.compareTo(Duration.ofMinutes(29)) > 0 && wait.compareTo(Duration.ofMinutes(30)) <= 0,
                    wait::toString);
            // The stuck one, plus any unpooled request in flight at the switchover.
            assertTrue(result.report().matches("(?s).*NOT drained: after 1\\.0 s, 1 of \\d+ connections still on.*"),
                    result::report);
            assertTrue(stuck.isValid(1), "the drill did not touch the old connection");
        }
    }

    @Test
    void badSettingsAreRefusedWithTheirName() {
        IllegalArgumentException same = assertThrows(IllegalArgumentException.class,
                () -> SwitchoverDrill.builder(proxy, blue, blue));
        assertTrue(same.getMessage().contains("same"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> drill().workers(0)).getMessage()
                .contains("workers"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> drill().requestsPerSecond(-1)).getMessage()
                .contains("requestsPerSecond"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> drill().before(Duration.ZERO)).getMessage()
                .contains("before"));
    }

    @Test
    void aDrillRefusesToStartWhenTheProxyIsNotOnTheOldServer() throws SQLException {
        proxy.retarget(green);
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> drill().build().run(unpooled()));
        assertTrue(e.getMessage().contains("not to the drill's old server"), e::getMessage);
    }
}
