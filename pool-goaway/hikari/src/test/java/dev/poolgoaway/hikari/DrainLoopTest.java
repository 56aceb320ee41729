package dev.poolgoaway.hikari;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
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

    @Test
    void theReproducedMisuseAllMarkedAtOnceIsGone() {
        // Pool of 8, all in use: before, all 8 were marked in one run and the pool fell to 0 on return. A pool with
        // no spare connection gives them up one at a time, whatever the bound allows.
        FakePool pool = new FakePool(8);
        DrainLoop loop = loop(pool, bound(2), 0);
        pool.conns.forEach(pool::borrow);
        pool.hear(SignalKind.GOAWAY, 0, 8);
        run(loop, pool);
        assertEquals(1, pool.markedInUse());
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

    @Test
    void theSurplusGoesAtOnceAndTheRestAsReplacementsArrive() {
        FakePool pool = new FakePool(20);
        DrainLoop loop = loop(pool, EvictorSettings.builder().drainWindow(Duration.ZERO).build(), 0);
        pool.borrow(pool.conn(0));
        pool.borrow(pool.conn(1));
        pool.hear(SignalKind.GOAWAY, 0, 20);
        List<Conn> old = List.copyOf(pool.conns);
        run(loop, pool);
        // The 2 in use are asked to close on return and 15 of the 18 idle ones are gone already: 3 are kept for
        // the load (2 in use) and one spare.
        assertEquals(2, pool.markedInUse());
        assertEquals(3, usable(pool));
        assertEquals(15, pool.closed.size());
        int runs = 0;
        pool.giveBack(pool.conn(0));
        pool.giveBack(pool.conn(0));
        while (old.stream().anyMatch(pool.conns::contains) && runs++ < 50) {
            // HikariCP's adder: one replacement at a time; each lets one more old connection go.
            pool.refill(1);
            loop.connectionCreated(pool.nanos);
            pool.advanceMillis(20);
            run(loop, pool);
            assertTrue(usable(pool) >= inUse(pool) + DrainLoop.spare(2) - 1, "never below the load");
        }
        assertTrue(old.stream().noneMatch(pool.conns::contains), "drained");
        assertEquals(3, runs, "each of the last 3 went as a replacement arrived");
    }

    @Test
    void aPoolWithEveryConnectionInUseStillDrainsOneAtATime() {
        FakePool pool = new FakePool(4);
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        pool.conns.forEach(pool::borrow);
        pool.hear(SignalKind.GOAWAY, 0, 4);
        List<Conn> old = List.copyOf(pool.conns);
        for (int runs = 0; runs < 20 && old.stream().anyMatch(pool.conns::contains); runs++) {
            run(loop, pool);
            assertTrue(pool.markedInUse() + pool.shortfall <= 1, "one at a time: nothing to spare");
            for (Conn c : List.copyOf(pool.conns)) {
                if (c.closeOnReturn) {
                    pool.giveBack(c);
                }
            }
            run(loop, pool);
            pool.refill(pool.shortfall);
            pool.conns.stream().filter(c -> !old.contains(c)).forEach(pool::borrow);
            pool.advanceMillis(20);
        }
        assertTrue(old.stream().noneMatch(pool.conns::contains), "drained");
    }

    @Test
    void theLoadOfTheLastSecondIsKeptNotJustWhatIsInUseAtThisInstant() {
        FakePool pool = new FakePool(10);
        DrainLoop loop = loop(pool, EvictorSettings.builder().drainWindow(Duration.ZERO).build(), 0);
        pool.conns.subList(0, 6).forEach(pool::borrow);
        run(loop, pool);
        pool.conns.subList(0, 6).forEach(pool::giveBack);
        pool.advanceMillis(100);
        pool.waiting = 1;
        pool.hear(SignalKind.GOAWAY, 0, 10);
        run(loop, pool);
        assertEquals(2, DrainLoop.spare(6));
        assertEquals(10 - 6 - 2, pool.closed.size(), "6 used a moment ago (1 waiting now), 2 spare");
        pool.waiting = 0;
        pool.advanceMillis(TimeUnit.NANOSECONDS.toMillis(2 * DrainLoop.DEMAND_NANOS));
        run(loop, pool);
        assertEquals(10 - DrainLoop.spare(0), pool.closed.size(), "the burst is forgotten after two seconds");
    }

    @Test
    void borrowersWaitingAreDemandToo() {
        FakePool pool = new FakePool(10);
        DrainLoop loop = loop(pool, EvictorSettings.builder().drainWindow(Duration.ZERO).build(), 0);
        pool.conns.subList(0, 3).forEach(pool::borrow);
        pool.waiting = 4;
        pool.hear(SignalKind.GOAWAY, 0, 10);
        run(loop, pool);
        assertEquals(10 - (3 + 4) - 2, pool.closed.size() + pool.markedInUse(),
                "3 in use and 4 waiting: 7 needed, 2 spare");
    }

    @Test
    void eachConnectionGoesAtItsOwnDueTimeAndTheLoopRunsThen() {
        FakePool pool = new FakePool(6);
        DrainLoop loop = loop(pool, DEFAULTS, new long[] {30, 10, 70, 50});
        pool.hear(SignalKind.GOAWAY, 0, 4);
        assertEquals(TimeUnit.MILLISECONDS.toNanos(10), run(loop, pool), "the earliest due, not a pass");
        assertEquals(0, pool.closed.size());
        for (long due : new long[] {10, 30, 50, 70}) {
            pool.nanos = TimeUnit.SECONDS.toNanos(1000) + TimeUnit.MILLISECONDS.toNanos(due);
            run(loop, pool);
            assertEquals(List.of(10L, 30L, 50L, 70L).indexOf(due) + 1, pool.closed.size(), "at " + due + " ms");
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

    @ParameterizedTest(name = "{0} idle, shortfall at the bound: evicted = {1}")
    @CsvSource({"ADMIN_TERMINATED, true", "SERVER_CLOSED, true", "GOAWAY, false", "DISCONNECT_REQUESTED, false"})
    void deadConnectionsGoAtOnceWhateverTheBound(SignalKind kind, boolean evicted) {
        FakePool pool = new FakePool(4);
        pool.shortfall = 2;
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
        DrainLoop loop = loop(pool, EvictorSettings.builder().drainWindow(Duration.ofMillis(200)).build(), 40);
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
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        java.time.Instant signal = pool.clock().instant();
        pool.hear(SignalKind.GOAWAY, 0, 2);
        pool.advanceMillis(30);   // the wire layer saw the signal 30 ms before the loop's pass
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
        DrainLoop loop = loop(pool, EvictorSettings.builder().stragglerDeadline(Duration.ofMillis(500)).build(), 0);
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
        DrainEpisode second = loop.lastDrain().orElseThrow();
        assertTrue(second != first && second.startedAt().isAfter(first.endedAt().minusNanos(1)), "a new drain");
        assertEquals(1, second.connections(), "not merged into the first");
        assertEquals(List.of("episode", "signal:goaway", "episode", "signal:goaway", "evicted:idle"), events);
    }

    @Test
    void publicApiSoftEvictsAgainForEveryConnectionAskedToLeaveThatTheLastOneDidNotCover() {
        FakePool pool = new FakePool(3);
        pool.publicApi = true;
        DrainLoop loop = loop(pool, DEFAULTS, 0);
        Conn held = pool.conn(0);
        pool.borrow(held);
        pool.hear(SignalKind.GOAWAY, 0, 3);
        run(loop, pool);
        assertEquals(1, pool.softEvicts);
        pool.refill(2);
        run(loop, pool);
        assertEquals(1, pool.softEvicts, "the replacements are not evicted again");
        // A replacement is asked to leave while the old connection is still in use: before, it was never evicted.
        Conn replacement = pool.conns.get(1);
        replacement.heard = new PoolView.Heard(SignalKind.GOAWAY, pool.clock().instant(), null, null);
        run(loop, pool);
        assertEquals(2, pool.softEvicts);
        assertFalse(pool.conns.contains(replacement));
        pool.giveBack(held);
        run(loop, pool);
        assertFalse(loop.draining(), "the episode ends");
        pool.refill(3);
        pool.hear(SignalKind.GOAWAY, 0, 1);
        run(loop, pool);
        assertEquals(3, pool.softEvicts, "a later drain is not ignored");
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
