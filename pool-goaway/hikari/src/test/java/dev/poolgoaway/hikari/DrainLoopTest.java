package dev.poolgoaway.hikari;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.sql.SQLException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.random.RandomGenerator;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import dev.poolgoaway.hikari.FakePool.Conn;
import dev.poolgoaway.hikari.PoolView.Slot;

/** The loop's decisions over a fake pool and a fake clock: each run is one call, no thread, no sleep. */
class DrainLoopTest {

    private static final EvictorSettings DEFAULTS = EvictorSettings.defaults();
    /** No extra connection: each connection goes before its replacement, one ahead at most. */
    private static final EvictorSettings BREAK_FIRST = EvictorSettings.builder().maxExtraConnections(0).build();

    private final List<String> events = new ArrayList<>();
    private int wakes;

    /** A loop whose random moments within the drain window are all {@code delayMillis} after the signal. */
    private DrainLoop loop(FakePool pool, EvictorSettings settings, long delayMillis) {
        return loop(pool, settings, new long[] {delayMillis});
    }

    /** A loop whose random moments within the drain window are these, in turn, after each signal. */
    private DrainLoop loop(FakePool pool, EvictorSettings settings, long[] delaysMillis) {
        RandomGenerator fixed = new RandomGenerator() {
            private int next;

            @Override
            public long nextLong() {
                return 0;
            }

            @Override
            public long nextLong(long bound) {
                long delay = delaysMillis[next++ % delaysMillis.length];
                return Math.min(TimeUnit.MILLISECONDS.toNanos(delay), bound - 1);
            }
        };
        DrainLoop loop = new DrainLoop(pool, settings, "fake", pool.clock(), fixed, () -> wakes++);
        loop.events(new EvictorEvents() {
            @Override
            public void signal(SignalKind kind) {
                events.add("signal:" + kind.tag());
            }

            @Override
            public void evicted(EvictionState state) {
                events.add("evicted:" + state.tag());
            }

            @Override
            public void replacement(boolean made) {
                events.add("replacement:" + (made ? "made" : "failed"));
            }

            @Override
            public void episode() {
                events.add("episode");
            }
        });
        return loop;
    }

    private static EvictorSettings bound(int max) {
        return EvictorSettings.builder().maxReplacementsInFlight(max).build();
    }

    private static long run(DrainLoop loop, FakePool pool) {
        return loop.cleanup(pool.nanos);
    }

    /**
     * A switchover with every connection in use, run after run, as HikariCP would do it: borrowers give their
     * connections back after each run, HikariCP closes those asked to, and refills {@code refillPerRun} a run. At no
     * moment are more connections missing or about to be (asked to close on return) than the bound; and the pool
     * drains completely.
     */
    @ParameterizedTest(name = "pool {0}, {1} in use, bound {2}, refill {3} a run")
    @CsvSource({"8, 8, 2, 1", "8, 8, 2, 2", "20, 8, 5, 1", "20, 20, 5, 3", "4, 4, 2, 1", "10, 3, 2, 0"})
    void neverMoreReplacingThanTheBound(int size, int inUse, int bound, int refillPerRun) {
        FakePool pool = new FakePool(size);
        DrainLoop loop = loop(pool, bound(bound), 0);
        for (int i = 0; i < inUse; i++) {
            pool.borrow(pool.conn(i));
        }
        pool.hear(SignalKind.GOAWAY, 0, size);
        List<Conn> old = List.copyOf(pool.conns);
        for (int runs = 0; runs < 200 && old.stream().anyMatch(pool.conns::contains); runs++) {
            run(loop, pool);
            long missing = pool.shortfall + pool.markedInUse();
            assertTrue(missing <= bound, "run " + runs + ": " + missing + " replacing, bound " + bound);
            for (Conn c : List.copyOf(pool.conns)) {
                if (c.slot == Slot.IN_USE && c.closeOnReturn) {
                    pool.giveBack(c);
                }
            }
            // With no refill at all the pool stays short by the bound: the rest must wait, still serving.
            pool.refill(refillPerRun == 0 && runs > 20 ? bound : refillPerRun);
            pool.advanceMillis(DEFAULTS.tick().toMillis());
        }
        assertTrue(old.stream().noneMatch(pool.conns::contains), "every old connection closed");
    }

    /** Every connection borrowed, then the server asks them all to leave, and the loop runs once. */
    private DrainLoop everyConnectionInUseAskedToLeave(FakePool pool, EvictorSettings settings) {
        DrainLoop loop = loop(pool, settings, 0);
        pool.conns.forEach(pool::borrow);
        pool.hear(SignalKind.GOAWAY, 0, pool.conns.size());
        run(loop, pool);
        return loop;
    }

    @Test
    void theReproducedMisuseAllMarkedAtOnceIsGone() {
        // Pool of 8, all in use: before, all 8 were marked in one run and the pool fell to 0 on return. They go one
        // at a time, each after its replacement exists: HikariCP is asked for a ninth connection first.
        FakePool pool = new FakePool(8);
        DrainLoop loop = everyConnectionInUseAskedToLeave(pool, DEFAULTS);
        assertEquals(0, pool.markedInUse(), "no replacement yet: nothing goes");
        assertEquals(9, pool.maximum, "maximumPoolSize raised by one, for the replacement");
        pool.refill(1);
        loop.connectionCreated(pool.nanos);
        run(loop, pool);
        assertEquals(1, pool.markedInUse());
        List.copyOf(pool.conns).forEach(pool::giveBack);
        assertEquals(8, pool.conns.size());
    }

    @Test
    void withoutExtraConnectionsTheyGoOneAheadOfTheirReplacements() {
        FakePool pool = new FakePool(8);
        everyConnectionInUseAskedToLeave(pool, BREAK_FIRST);
        assertEquals(1, pool.markedInUse());
        assertEquals(8, pool.maximum, "maximumPoolSize left alone");
        List.copyOf(pool.conns).forEach(pool::giveBack);
        assertEquals(7, pool.conns.size());
    }

    /** Connections borrowers can still use: open, not dead, not about to close on return. */
    private static long usable(FakePool pool) {
        return pool.conns.stream().filter(c -> !c.closeOnReturn).count();
    }

    private static long inUse(FakePool pool) {
        return pool.conns.stream().filter(c -> c.slot == Slot.IN_USE).count();
    }

    /** What HikariCP's new connections find, in the simulation. */
    enum Destination {
        /** The new server accepts: each attempt makes a connection. */
        HEALTHY,
        /** A stale balancer or DNS name: the leaving server refuses (57P03), or the new one is full (53300). */
        REFUSING,
        /** The leaving server again, which accepts and asks the new connection to leave at once. */
        GOAWAY_AGAIN,
        /** Unreachable or slow: no attempt ends within the run. */
        NEVER
    }

    /**
     * A drain as HikariCP would run it, in 10 ms steps over a fake clock: a load holding {@code load} connections
     * (borrowed and returned every step, so connections asked to close on return come back at once), HikariCP's
     * single adder making at most one connection a step while the pool is below its maximum and has fewer idle
     * connections than {@code minimumIdle} (or than waiting borrowers), as its {@code shouldContinueCreating()}
     * says, with {@code maximumPoolSize} as the loop raised it; a suspended pool makes none and its borrowers are
     * blocked. Plain HikariCP in the same scenario keeps every connection: at no step may the pool have fewer usable
     * connections than that (by default: each goes after its replacement exists, so a pool of 1 never has 0), or
     * one fewer without extra connections. Then the fault is fixed and the drain must complete, with
     * {@code maximumPoolSize} and {@code minimumIdle} as the user set them.
     */
    @ParameterizedTest(name = "size {0}, minimumIdle {1}, open {2}, load {3}, {4}, suspended {5}, extra {6}")
    @CsvSource({
        "20, 20, 20,  8, HEALTHY,      false, 1",
        "20,  5, 13, 12, HEALTHY,      false, 1",
        "20,  0,  6,  6, HEALTHY,      false, 1",
        " 1,  1,  1,  1, HEALTHY,      false, 1",
        " 1,  1,  1,  1, HEALTHY,      false, 3",
        "20, 20, 20,  4, REFUSING,     false, 1",
        "20,  5, 13, 12, REFUSING,     false, 1",
        "20,  0,  6,  6, REFUSING,     false, 1",
        " 1,  1,  1,  1, REFUSING,     false, 1",
        "20, 20, 20,  4, GOAWAY_AGAIN, false, 1",
        "20,  5, 13, 12, GOAWAY_AGAIN, false, 1",
        " 1,  1,  1,  1, GOAWAY_AGAIN, false, 1",
        "20, 20, 20,  4, NEVER,        false, 1",
        " 1,  1,  1,  0, NEVER,        false, 1",
        "20, 20, 20,  8, HEALTHY,      true,  1",
        " 1,  1,  1,  1, HEALTHY,      true,  1",
        "20, 20, 20,  8, HEALTHY,      false, 0",
        "20,  5, 13, 12, HEALTHY,      false, 0",
        "20, 20, 20,  4, REFUSING,     false, 0",
        " 1,  1,  1,  1, REFUSING,     false, 0",
        "20, 20, 20,  4, GOAWAY_AGAIN, false, 0",
        "20, 20, 20,  4, NEVER,        false, 0",
    })
    void neverFewerUsableConnectionsThanPlainHikariWhateverTheNewDestinationDoes(int size, int minIdle, int open,
            int load, Destination destination, boolean suspended, int extra) {
        FakePool pool = new FakePool(size);
        pool.conns.subList(open, size).clear();
        pool.suspended = suspended;
        DrainLoop loop = loop(pool, EvictorSettings.builder().maxExtraConnections(extra).build(), 0);
        run(loop, pool);
        pool.hear(SignalKind.GOAWAY, 0, open);
        List<Conn> old = List.copyOf(pool.conns);
        int slack = extra > 0 ? 0 : 1;
        int creations = simulate(loop, pool, minIdle, load, destination, 3000, open, slack);
        assertTrue(pool.highestMaximum <= size + extra, "maximumPoolSize raised to " + pool.highestMaximum);
        if (destination == Destination.HEALTHY && !suspended) {
            assertTrue(old.stream().noneMatch(pool.conns::contains), "drained");
            assertFalse(loop.stalled());
            assertEquals(0, loop.replacementFailures());
            assertEquals(size, pool.maximum, "maximumPoolSize as the user set it again");
            // A pool whose minimumIdle is below its size grows while its minimumIdle is raised and connections are
            // in use (idleTimeout retires the extra ones): docs/limitations.md.
            assertTrue(minIdle < size || pool.conns.size() == open, pool.conns.size() + " connections, " + open
                    + " before the drain");
            assertTrue(pool.conns.size() <= size, pool.conns.size() + " connections");
            return;
        }
        if (suspended) {
            assertTrue(pool.closed.isEmpty(), "a suspended pool opens no replacement: nothing goes");
            assertTrue(loop.stalled(), "and the drain says it is stalled, and why");
            assertTrue(loop.stallReason().orElseThrow().contains("suspended"), loop.stallReason().orElseThrow());
            assertEquals(0, loop.replacementFailures());
        } else {
            assertTrue(loop.stalled(), "stalled, and says so");
            assertEquals(destination != Destination.NEVER, loop.replacementFailures() > 0);
        }
        // 30 s at connection-setup speed would be hundreds; backing off from connectionTimeout (1 s) to a minute,
        // the pool's own growth towards minimumIdle as raised, and a handful of probes.
        assertTrue(creations <= size - open + 6, creations + " connections made: no churn at connection-setup speed");
        // The fault is fixed (the pool resumed): the drain resumes on its own and completes.
        pool.suspended = false;
        simulate(loop, pool, minIdle, load, Destination.HEALTHY, 12000, open, slack);
        assertTrue(old.stream().noneMatch(pool.conns::contains), "drained once the fault is fixed");
        assertFalse(loop.stalled());
        assertTrue(loop.stallReason().isEmpty());
        assertEquals(-1, pool.requestedSize, "minimumIdle as the user set it again");
        assertEquals(size, pool.maximum, "maximumPoolSize as the user set it again");
        assertTrue(pool.conns.size() <= size, pool.conns.size() + " connections");
    }

    /** @return connections HikariCP made */
    private static int simulate(DrainLoop loop, FakePool pool, int minIdle, int load, Destination destination,
            int steps, int plain, int slack) {
        int creations = 0;
        for (int step = 0; step < steps; step++) {
            if (!pool.suspended) {
                for (Conn c : List.copyOf(pool.conns)) {
                    if (c.slot == Slot.IN_USE) {
                        pool.giveBack(c);
                    }
                }
                int borrowed = 0;
                for (Conn c : pool.conns) {
                    if (borrowed < load && c.slot == Slot.IDLE && !c.reserved) {
                        pool.borrow(c);
                        borrowed++;
                    }
                }
                pool.waiting = load - borrowed;
            }
            long idle = pool.conns.stream().filter(c -> c.slot == Slot.IDLE).count();
            int target = Math.max(minIdle, pool.requestedSize);
            if (!pool.suspended && pool.conns.size() < pool.maximum && (idle < target || pool.waiting > idle)) {
                switch (destination) {
                    case HEALTHY, GOAWAY_AGAIN -> {
                        pool.refill(1);
                        creations++;
                        if (destination == Destination.GOAWAY_AGAIN) {
                            pool.hear(SignalKind.GOAWAY, pool.conns.size() - 1, pool.conns.size());
                        }
                        loop.connectionCreated(pool.nanos);
                    }
                    case REFUSING -> pool.creationFailure = new SQLException(
                            "FATAL: the database system is shutting down", "57P03");
                    case NEVER -> { }
                }
            }
            run(loop, pool);
            long usable = pool.conns.stream().filter(c -> !c.closeOnReturn).count();
            assertTrue(usable >= Math.min(plain, pool.size) - slack, "step " + step + ": " + usable + " usable, "
                    + "plain HikariCP keeps " + plain);
            pool.advanceMillis(10);
        }
        return creations;
    }

    @ParameterizedTest(name = "maxExtraConnections {0}: {1} closed first")
    @CsvSource({"1, 0", "0, 1"})
    void noReplacementEverArrivesAndTheDrainStallsAfterConnectionTimeout(int extra, int first) {
        FakePool pool = new FakePool(10);
        DrainLoop loop = loop(pool, EvictorSettings.builder().maxExtraConnections(extra).build(), 0);
        pool.hear(SignalKind.GOAWAY, 0, 10);
        run(loop, pool);
        // By default the replacement is asked for first and nothing goes; without extra connections one goes first,
        // to prove the new destination.
        assertEquals(first, pool.closed.size());
        assertEquals(10 + extra, pool.maximum);
        pool.advanceMillis(pool.connectionTimeoutMillis - 1);
        run(loop, pool);
        assertFalse(loop.stalled());
        pool.advanceMillis(1);
        run(loop, pool);
        assertTrue(loop.stalled());
        assertEquals(first, pool.closed.size(), "nothing more");
        assertTrue(loop.lastReplacementFailure().isEmpty());
        assertTrue(loop.stallReason().orElseThrow().startsWith("no replacement came within connectionTimeout"));
        int asked = pool.requests;
        pool.advanceMillis(pool.connectionTimeoutMillis);
        run(loop, pool);
        assertEquals(asked + 1, pool.requests, "asked again after the backoff");
    }

    @Test
    void aPoolOfOneKeepsItsConnectionWhileItsReplacementIsRefusedAndHikariStopsConnectingUntilTheRetry() {
        FakePool pool = new FakePool(1);
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        Conn old = pool.conn(0);
        pool.hear(SignalKind.GOAWAY, 0, 1);
        run(loop, pool);
        assertEquals(2, pool.maximum, "room for the replacement, beside the connection it replaces");
        pool.creationFailure = new SQLException("FATAL: the database system is shutting down", "57P03");
        run(loop, pool);
        assertTrue(loop.stalled());
        assertEquals(List.of(old), pool.conns, "the one connection stays");
        assertEquals(1, pool.maximum, "plain HikariCP would not be connecting: HikariCP stops until the retry");
        pool.advanceMillis(pool.connectionTimeoutMillis);
        run(loop, pool);
        assertEquals(2, pool.maximum, "asked again after the backoff");
        pool.creationFailure = null;
        pool.refill(1);
        loop.connectionCreated(pool.nanos);
        run(loop, pool);
        assertFalse(loop.stalled());
        assertFalse(pool.conns.contains(old), "gone once its replacement exists");
        assertEquals(1, pool.conns.size());
        assertEquals(1, pool.maximum, "maximumPoolSize as the user set it");
        assertFalse(loop.draining());
    }

    /**
     * A pool below its maximum, every connection in use, and the leaving server accepting and asking again: the
     * replacement asked to leave too puts {@code minimumIdle} back, as a refused one does, or HikariCP (idle below the
     * raised {@code minimumIdle}) would open one more on the leaving server for each connection in use.
     */
    @Test
    void aReplacementAskedToLeaveTooStopsHikariConnectingUntilTheRetry() {
        FakePool pool = new FakePool(20);
        DrainLoop loop = sixInUseAskedToLeave(pool);
        assertEquals(7, pool.requestedSize, "the replacement first, in a 7th place");
        pool.refill(1);
        pool.hear(SignalKind.GOAWAY, 6, 7);
        loop.connectionCreated(pool.nanos);
        run(loop, pool);
        assertStoppedAsking(loop, pool);
        assertEquals(20, pool.maximum);
        int asked = pool.requests;
        pool.advanceMillis(pool.connectionTimeoutMillis);
        run(loop, pool);
        assertEquals(asked + 1, pool.requests, "asked again after the backoff");
        assertEquals(7, pool.requestedSize);
    }

    /** The same when the new connection is asked to leave only after it was counted as a replacement made. */
    @Test
    void aReplacementAskedToLeaveAfterItWasCountedStopsHikariConnectingToo() {
        FakePool pool = new FakePool(20);
        DrainLoop loop = sixInUseAskedToLeave(pool);
        pool.refill(1);
        loop.connectionCreated(pool.nanos);
        run(loop, pool);
        assertFalse(loop.stalled(), "a replacement made");
        pool.hear(SignalKind.GOAWAY, 6, 7);
        run(loop, pool);
        assertStoppedAsking(loop, pool);
    }

    /** Six connections of a pool of up to 20, all in use, asked to leave, and the loop's first run. */
    private DrainLoop sixInUseAskedToLeave(FakePool pool) {
        pool.conns.subList(6, pool.conns.size()).clear();
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        pool.conns.forEach(pool::borrow);
        pool.hear(SignalKind.GOAWAY, 0, 6);
        run(loop, pool);
        return loop;
    }

    private static void assertStoppedAsking(DrainLoop loop, FakePool pool) {
        assertTrue(loop.stalled());
        assertTrue(loop.lastReplacementFailure().orElseThrow().contains("was asked to leave too"));
        assertEquals(-1, pool.requestedSize, "minimumIdle as the user set it: HikariCP stops until the retry");
        assertEquals(7, pool.conns.size(), "the six, and the new one kept: nothing closed, nothing churned");
    }

    /**
     * A pool left above its maximum by an earlier drain (the server ended connections while the size was raised,
     * and HikariCP refilled them to it) drains from its own maximum: one extra at most, never one more per drain.
     */
    @Test
    void aPoolAboveItsMaximumRaisesFromItsMaximumNotFromWhatItHas() {
        FakePool pool = new FakePool(10);
        pool.refill(1);
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        pool.hear(SignalKind.GOAWAY, 0, 11);
        run(loop, pool);
        assertEquals(11, pool.requestedSize, "its maximum and one ahead");
        assertEquals(11, pool.maximum);
    }

    @Test
    void aSuspendedPoolStallsTheDrainWithItsReasonAndResumePoolResumesIt() {
        FakePool pool = new FakePool(4);
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        pool.suspended = true;
        pool.hear(SignalKind.GOAWAY, 0, 4);
        run(loop, pool);
        assertTrue(loop.stalled());
        assertEquals("the pool is suspended (suspendPool()): it opens no replacement",
                loop.stallReason().orElseThrow());
        pool.advanceMillis(5000);
        run(loop, pool);
        assertTrue(loop.stalled(), "for as long as it is suspended: no retry, no probe");
        assertTrue(pool.closed.isEmpty());
        pool.suspended = false;
        run(loop, pool);
        assertFalse(loop.stalled());
        assertTrue(loop.stallReason().isEmpty());
        for (int i = 0; i < 4; i++) {
            pool.refill(1);
            loop.connectionCreated(pool.nanos);
            run(loop, pool);
        }
        assertEquals(4, pool.closed.size(), "drained, each after its replacement");
        assertFalse(loop.draining());
    }

    @Test
    void aFailedReplacementStallsAtOnceAndNamesTheServersAnswer() {
        FakePool pool = new FakePool(10);
        DrainLoop loop = loop(pool, bound(3), 0);
        pool.hear(SignalKind.GOAWAY, 0, 10);
        run(loop, pool);
        assertEquals(3, pool.closed.size(), "the bound");
        pool.creationFailure = new SQLException("sorry, too many clients already", "53300");
        run(loop, pool);
        assertTrue(loop.stalled());
        assertEquals(1, loop.replacementFailures());
        assertEquals("53300: sorry, too many clients already", loop.lastReplacementFailure().orElseThrow());
        assertTrue(events.contains("replacement:failed"));
        pool.refill(1);
        pool.creationFailure = null;
        run(loop, pool);
        assertFalse(loop.stalled(), "resumes with the first replacement made");
        assertEquals(4, pool.closed.size(), "and one more goes");
        assertTrue(events.contains("replacement:made"));
    }

    @ParameterizedTest(name = "maxExtraConnections {0}")
    @CsvSource({"1", "0"})
    void aPoolWithEveryConnectionInUseStillDrainsOneAtATime(int extra) {
        FakePool pool = new FakePool(4);
        DrainLoop loop = loop(pool, EvictorSettings.builder().maxExtraConnections(extra).build(), 0);
        pool.conns.forEach(pool::borrow);
        pool.hear(SignalKind.GOAWAY, 0, 4);
        List<Conn> old = List.copyOf(pool.conns);
        for (int runs = 0; runs < 20 && old.stream().anyMatch(pool.conns::contains); runs++) {
            run(loop, pool);
            assertTrue(pool.markedInUse() + pool.shortfall <= 1, "one at a time: nothing to spare");
            assertTrue(usable(pool) >= 4 - (extra > 0 ? 0 : 1), usable(pool) + " usable");
            for (Conn c : List.copyOf(pool.conns)) {
                if (c.closeOnReturn) {
                    pool.giveBack(c);
                }
            }
            run(loop, pool);
            // HikariCP fills to maximumPoolSize (raised by the loop while it asks for a replacement made first).
            pool.refill(Math.max(0, pool.maximum - pool.conns.size()));
            loop.connectionCreated(pool.nanos);
            pool.conns.stream().filter(c -> !old.contains(c)).forEach(pool::borrow);
            pool.advanceMillis(20);
        }
        assertTrue(old.stream().noneMatch(pool.conns::contains), "drained");
        run(loop, pool);
        assertEquals(4, pool.maximum, "maximumPoolSize as the user set it");
    }

    @Test
    void eachConnectionGoesAtItsOwnDueTimeAndTheLoopRunsThen() {
        FakePool pool = new FakePool(6);
        DrainLoop loop = loop(pool, BREAK_FIRST, new long[] {30, 10, 70, 50});
        pool.hear(SignalKind.GOAWAY, 0, 4);
        assertEquals(TimeUnit.MILLISECONDS.toNanos(10), run(loop, pool), "the earliest due, not a pass");
        assertEquals(0, pool.closed.size());
        for (long due : new long[] {10, 30, 50, 70}) {
            pool.nanos = TimeUnit.SECONDS.toNanos(1000) + TimeUnit.MILLISECONDS.toNanos(due);
            run(loop, pool);
            assertEquals(List.of(10L, 30L, 50L, 70L).indexOf(due) + 1, pool.closed.size(), "at " + due + " ms");
            pool.refill(1);
            run(loop, pool);
        }
    }

    @Test
    void aDrainPollsEveryIdleConnectionAtOnceThenOnPassesAndEveryConnectionWakesTheLoop() {
        FakePool pool = new FakePool(4);
        DrainLoop loop = loop(pool, EvictorSettings.builder().drainWindow(Duration.ofMillis(500)).build(), 400);
        run(loop, pool);
        assertEquals(1, pool.conn(1).polls);
        pool.borrow(pool.conn(0));
        pool.advanceMillis(5);
        // A borrower's read saw the GoAway: the wire layer tells the loop, whose next run polls everyone at once.
        pool.hear(SignalKind.GOAWAY, 0, 1);
        pool.conn(0).listener.run();
        assertEquals(1, wakes);
        run(loop, pool);
        assertEquals(2, pool.conn(1).polls, "polled at once, not at the next tick");
        pool.advanceMillis(5);
        run(loop, pool);
        assertEquals(2, pool.conn(1).polls, "a run woken between passes polls nothing");
        pool.advanceMillis(TimeUnit.NANOSECONDS.toMillis(DrainLoop.DRAINING_PASS_NANOS));
        run(loop, pool);
        assertEquals(3, pool.conn(1).polls);
    }

    @Test
    void aNewConnectionReportedBeforeItJoinsThePoolIsLookedForAgainSoon() {
        FakePool pool = new FakePool(3);
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        pool.borrow(pool.conn(0));
        pool.borrow(pool.conn(1));
        pool.hear(SignalKind.GOAWAY, 0, 3);
        run(loop, pool);
        loop.connectionCreated(pool.nanos);
        pool.advanceMillis(1);
        assertEquals(DrainLoop.CREATION_RECHECK_NANOS, run(loop, pool), "HikariCP adds it right after reporting it");
        pool.refill(1);
        pool.advanceMillis(1);
        assertTrue(run(loop, pool) > DrainLoop.CREATION_RECHECK_NANOS, "found: back to the passes");
    }

    @ParameterizedTest(name = "{0} idle, pool suspended: evicted = {1}")
    @CsvSource({"ADMIN_TERMINATED, true", "SERVER_CLOSED, true", "GOAWAY, false", "DISCONNECT_REQUESTED, false"})
    void deadConnectionsGoAtOnceEvenFromASuspendedPool(SignalKind kind, boolean evicted) {
        FakePool pool = new FakePool(4);
        pool.suspended = true;
        DrainLoop loop = loop(pool, bound(2), 0);
        Conn c = pool.conn(0);
        pool.hear(kind, 0, 1);
        run(loop, pool);
        assertEquals(evicted, !pool.conns.contains(c));
        assertEquals(List.of("episode", "signal:" + kind.tag()), events.subList(0, 2));
    }

    @Test
    void anIdleConnectionAskedToLeaveGoesWhenDueAndTheLoopWakesUpThen() {
        FakePool pool = new FakePool(4);
        DrainLoop loop = loop(pool, EvictorSettings.builder().maxExtraConnections(0)
                .drainWindow(Duration.ofMillis(200)).build(), 40);
        Conn c = pool.conn(0);
        pool.hear(SignalKind.GOAWAY, 0, 1);
        long next = run(loop, pool);
        assertTrue(pool.conns.contains(c), "not due yet");
        assertEquals(TimeUnit.MILLISECONDS.toNanos(40), next, "the next run is when it is due, not a tick later");
        assertFalse(c.reserved, "given back to borrowers meanwhile");
        pool.advanceMillis(39);
        run(loop, pool);
        assertTrue(pool.conns.contains(c));
        pool.advanceMillis(1);
        run(loop, pool);
        assertFalse(pool.conns.contains(c));
        assertEquals("(pool-goaway: goaway, server asked the connection to leave)", c.evictedFor);
        assertTrue(events.contains("evicted:idle"));
    }

    @Test
    void aDrainLastsFromItsFirstSignalToItsLastCloseNotFromPassToPass() {
        FakePool pool = new FakePool(3);
        DrainLoop loop = loop(pool, BREAK_FIRST, 0);
        java.time.Instant signal = pool.clock().instant();
        pool.hear(SignalKind.GOAWAY, 0, 1);
        pool.advanceMillis(30);   // the wire layer saw the signal 30 ms before the loop's pass
        run(loop, pool);
        assertTrue(loop.draining(), "until the pool is whole again");
        pool.refill(1);
        pool.advanceMillis(5);
        run(loop, pool);
        DrainEpisode drain = loop.lastDrain().orElseThrow();
        assertEquals(signal, drain.startedAt(), "from the server's first signal, not from the pass that found it");
        assertEquals(Duration.ofMillis(30), drain.duration(), "to the last close, not rounded to a pass");
    }

    @Test
    void aPollFailureIsAnEndAndTheConnectionGoesAtOnce() {
        FakePool pool = new FakePool(2);
        DrainLoop loop = loop(pool, DEFAULTS, 200);
        Conn c = pool.conn(1);
        c.pollFailure = new IOException("reset");
        run(loop, pool);
        assertFalse(pool.conns.contains(c));
        assertEquals("(pool-goaway: server_closed)", c.evictedFor);
        assertTrue(events.contains("signal:server_closed"));
    }

    @Test
    void anEntryHikariEvictedWhileReservedIsClosedNotGivenBack() {
        // HikariCP's softEvictConnections/max lifetime found it reserved here and left it marked, open.
        FakePool pool = new FakePool(2);
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        Conn c = pool.conn(0);
        c.evictedByHikari = true;
        run(loop, pool);
        assertFalse(pool.conns.contains(c));
        assertEquals("(connection was evicted)", c.evictedFor);
        assertTrue(events.isEmpty(), "not a drain: nothing counted");
    }

    @Test
    void anEntryHikariEvictsWhileItIsBeingPolledIsClosedNotGivenBack() {
        FakePool pool = new FakePool(2);
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        Conn c = pool.conn(0);
        c.duringPoll = () -> c.evictedByHikari = true;
        run(loop, pool);
        assertFalse(pool.conns.contains(c));
        assertEquals("(connection was evicted)", c.evictedFor);
        assertTrue(pool.conns.stream().noneMatch(other -> other.reserved), "nothing left reserved");
    }

    @Test
    void onlyConnectionsAskedToCloseOnReturnStraggleAndTheDeadlineRunsFromThat() {
        FakePool pool = new FakePool(4);
        DrainLoop loop = loop(pool, EvictorSettings.builder().maxReplacementsInFlight(1)
                .stragglerDeadline(Duration.ofMillis(300)).abortStragglers(true).build(), 0);
        Conn first = pool.conn(0);
        Conn second = pool.conn(1);
        pool.borrow(first);
        pool.borrow(second);
        pool.hear(SignalKind.GOAWAY, 0, 2);
        run(loop, pool);
        Conn marked = first.closeOnReturn ? first : second;
        Conn deferred = marked == first ? second : first;
        assertFalse(deferred.closeOnReturn, "the bound holds it back");
        // The deferred one goes back and is borrowed again by someone new, long after the signal.
        pool.giveBack(deferred);
        pool.borrow(deferred);
        pool.advanceMillis(299);
        run(loop, pool);
        assertFalse(marked.aborted);
        pool.advanceMillis(1);
        run(loop, pool);
        assertTrue(marked.aborted, "past the deadline since it was asked to close on return");
        assertFalse(pool.conns.contains(marked), "and evicted: the pool refills, even if it is never returned");
        assertFalse(deferred.aborted, "never the innocent borrower of a connection not asked yet");
    }

    @Test
    void aStragglerLeftToItsBorrowerEndsTheEpisodeSoTheNextDrainIsItsOwn() {
        FakePool pool = new FakePool(3);
        DrainLoop loop = loop(pool, EvictorSettings.builder().maxExtraConnections(0)
                .stragglerDeadline(Duration.ofMillis(500)).build(), 0);
        Conn leaked = pool.conn(0);
        pool.borrow(leaked);
        pool.hear(SignalKind.GOAWAY, 0, 1);
        run(loop, pool);
        assertTrue(loop.draining());
        pool.advanceMillis(500);
        run(loop, pool);
        assertFalse(loop.draining(), "only a straggler is left");
        assertEquals(1, loop.flaggedConnections(), "still counted as open");
        DrainEpisode first = loop.lastDrain().orElseThrow();
        assertEquals(1, first.connections());
        pool.hear(SignalKind.GOAWAY, 1, 2);
        run(loop, pool);
        pool.refill(1);
        run(loop, pool);
        DrainEpisode second = loop.lastDrain().orElseThrow();
        assertTrue(second != first && second.startedAt().isAfter(first.endedAt().minusNanos(1)), "a new drain");
        assertEquals(1, second.connections(), "not merged into the first");
        assertEquals(List.of("episode", "signal:goaway", "episode", "signal:goaway", "evicted:idle",
                "replacement:made"), events);
    }

    @Test
    void thePublicApiFallbackLeavesThePoolWholeAndReportsTheDrainStalled() {
        FakePool pool = new FakePool(3);
        pool.publicApi = true;
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        pool.borrow(pool.conn(0));
        pool.hear(SignalKind.GOAWAY, 0, 3);
        run(loop, pool);
        assertEquals(3, pool.conns.size(), "softEvictConnections would empty the pool: nothing is evicted");
        assertTrue(pool.conns.stream().noneMatch(c -> c.closeOnReturn));
        assertTrue(loop.stalled());
        assertTrue(loop.draining());
    }

    @Test
    void closingTheEvictorPutsThePoolsSizesBackAndARunStillUnderWayAsksNothingMore() {
        FakePool pool = new FakePool(2);
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        pool.hear(SignalKind.GOAWAY, 0, 2);
        run(loop, pool);
        assertEquals(3, pool.maximum);
        loop.close();
        assertEquals(2, pool.maximum, "maximumPoolSize as the user set it");
        pool.advanceMillis(100);
        run(loop, pool);
        assertEquals(2, pool.maximum, "not raised again");
    }

    @Test
    void aShutDownPoolEndsTheLoop() {
        FakePool pool = new FakePool(1);
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        pool.shutDown = true;
        assertEquals(-1, run(loop, pool));
    }

    @Test
    void aPoolWhoseConstructorNeverCompletedEndsTheLoopInsteadOfHoldingItForever() {
        FakePool pool = new FakePool(1);
        pool.started = false;
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        assertEquals(DrainLoop.START_CHECK_NANOS, run(loop, pool), "still starting: look again soon");
        pool.advanceMillis(TimeUnit.NANOSECONDS.toMillis(DrainLoop.NEVER_STARTED_NANOS) - 1);
        assertEquals(DrainLoop.START_CHECK_NANOS, run(loop, pool));
        assertEquals(0, pool.conn(0).polls, "nothing done to a pool that is not there yet");
        pool.advanceMillis(1);
        assertEquals(-1, run(loop, pool));
    }

    @Test
    void nothingHeardNothingDone() {
        FakePool pool = new FakePool(4);
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        assertEquals(DEFAULTS.tick().toNanos(), run(loop, pool));
        assertEquals(4, pool.conns.size());
        assertTrue(pool.conns.stream().noneMatch(c -> c.reserved || c.closeOnReturn));
        assertTrue(events.isEmpty());
        assertNull(loop.lastDrain().orElse(null));
    }
}
