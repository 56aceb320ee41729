package dev.poolgoaway.hikari;

import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.stream.Stream;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import dev.poolgoaway.hikari.FaultDrill.Fault;
import dev.poolgoaway.hikari.FaultDrill.Load;
import dev.poolgoaway.hikari.FaultDrill.Run;
import dev.poolgoaway.hikari.FaultDrill.Scenario;
import dev.poolgoaway.hikari.FaultDrill.Shape;

/**
 * A switchover gone wrong, on real PostgreSQL 18, run with and without pool-goaway in the same test
 * ({@link FaultDrill}): the run with pool-goaway must fail no more requests than plain HikariCP, never have fewer
 * connections than plain (counted from where each run's pool was when the fault began, since a pool below its maximum
 * grows with its load at its own pace: each connection goes only once its replacement exists, in a place beyond
 * {@code maximumPoolSize}, so a pool of 1 keeps its one connection), say that the drain is stalled while
 * replacements fail or the pool is suspended (evictor, meter, WARN), not churn when the leaving server asks every
 * replacement to leave, and drain once the fault is fixed, with {@code maximumPoolSize} and {@code minimumIdle} put
 * back.
 *
 * <p>The default build runs one row per fault and per pool shape; {@code -Dpoolgoaway.drill=true} (the {@code drill}
 * profile) runs every fault with every shape and every load.
 */
class StalledDrainTest {

    /** System property: run the whole matrix. */
    static final String FULL_MATRIX = "poolgoaway.drill";

    static Stream<Scenario> scenarios() {
        if (Boolean.getBoolean(FULL_MATRIX)) {
            return Arrays.stream(Fault.values()).flatMap(f -> Arrays.stream(Shape.values())
                    .flatMap(s -> Arrays.stream(Load.values()).map(l -> new Scenario(f, s, l))));
        }
        return Stream.of(
                new Scenario(Fault.STALE, Shape.FIXED, Load.STEADY),
                new Scenario(Fault.UNREACHABLE, Shape.FIXED, Load.BURST_AFTER_LULL),
                new Scenario(Fault.FULL, Shape.MINIMUM_IDLE_5, Load.STEADY),
                new Scenario(Fault.SLOW, Shape.MINIMUM_IDLE_0, Load.STEADY),
                new Scenario(Fault.GOAWAY_AGAIN, Shape.FIXED, Load.STEADY),
                new Scenario(Fault.STALE, Shape.ONE, Load.STEADY),
                new Scenario(Fault.HEALTHY, Shape.SUSPENDED, Load.STEADY),
                new Scenario(Fault.STALE, Shape.PUBLIC_API, Load.STEADY));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("scenarios")
    void noWorseThanPlainHikariCPAndDrainedOnceFixed(Scenario scenario) throws Exception {
        Run plain = FaultDrill.run(scenario, false);
        Run withPoolGoAway = FaultDrill.run(scenario, true);
        // The figures of docs/reliability.md's fault table.
        System.out.println("fault drill " + scenario + ": pool-goaway " + withPoolGoAway + "; plain HikariCP "
                + plain);
        String both = withPoolGoAway + " against plain " + plain;
        assertTrue(withPoolGoAway.failed() <= plain.failed(), both);
        // Make before break (maxExtraConnections, 1 by default): no connection goes before its replacement exists,
        // so not one fewer than plain, maximumPoolSize=1 included.
        assertTrue(withPoolGoAway.lost() <= plain.lost(), both);
        if (scenario.fault() == Fault.GOAWAY_AGAIN) {
            // Back off, not churn: the replacement opened ahead (maxExtraConnections, 1), asked to leave too, then
            // one probe per backoff (connectionTimeout, doubling), never connection-setup speed; one more for the
            // probe that the fault's end, counted in whole connectionTimeouts, cuts short. Each failed replacement
            // puts minimumIdle back (nothing was let go), so between probes a pool below its maximum grows only as
            // HikariCP grows it for its own minimumIdle, as plain's does; the two runs may start apart, so up to
            // its maximum.
            int growth = scenario.shape().size - withPoolGoAway.atStart();
            assertTrue(withPoolGoAway.opened() <= plain.opened() + growth + 2 + withPoolGoAway.faultMillis()
                    / FaultDrill.CONNECTION_TIMEOUT_MILLIS, both);
        }
    }
}
