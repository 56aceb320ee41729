package dev.poolgoaway.benchmarks;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;

import org.junit.jupiter.api.Test;

import dev.poolgoaway.benchmarks.FleetSimulation.Fleet;
import dev.poolgoaway.benchmarks.FleetSimulation.Outcome;
import dev.poolgoaway.benchmarks.FleetSimulation.SetupTime;

class FleetSimulationTest {

    private static final SetupTime TWENTY_MS = new SetupTime(0.020, 0.020);

    private static Fleet fleet(int n, int p, double window, double serverRate) {
        return new Fleet(n, p, Fleet.evictorHeadroom(p, 0), window, 0, TWENTY_MS, serverRate);
    }

    @Test
    void theSameSeedGivesTheSameRunAndAnotherSeedAnother() {
        Fleet f = new Fleet(50, 20, 5, 2, 0.25, new SetupTime(0.014, 0.025), 0);
        Outcome a = FleetSimulation.run(f, 7);
        Outcome b = FleetSimulation.run(f, 7);
        assertArrayEquals(a.arrivals().arrivals(), b.arrivals().arrivals());
        assertArrayEquals(a.drains(), b.drains());
        assertFalse(Arrays.equals(a.arrivals().arrivals(), FleetSimulation.run(f, 8).arrivals().arrivals()));
        assertEquals(50 * 20, a.arrivals().count(), "every connection is replaced once");
    }

    @Test
    void withNoWindowEachPoolsSingleAdderIsTheLimit() {
        Fleet f = fleet(10, 20, 0, 0);
        Outcome o = FleetSimulation.run(f, 1);
        double adders = 10 / 0.020;
        assertEquals(adders, f.predictedRate(), 1e-9); // N × P / (P × s)
        assertEquals(adders, o.arrivals().meanPerSecond(), adders * 0.05);
        assertTrue(o.arrivals().peakPerSecond(0.1) <= adders * 1.2, "peak " + o.arrivals().peakPerSecond(0.1));
        // An idle pool spares all but one (H = 19): they close at once, the last waits for the first replacement.
        for (double drain : o.drains()) {
            assertEquals(0.020, drain, 1e-9);
        }
    }

    @Test
    void aLongWindowSpreadsTheFleetOverIt() {
        Fleet f = fleet(100, 20, 100, 0);
        assertEquals(20.0, f.predictedRate(), 1e-9); // N × P / W
        FleetSimulation.Summary s = FleetSimulation.summarise(f, 5, 1);
        assertEquals(20.0, s.meanRate(), 2.0);
        // 20 connections/s on average: a 1 s bucket's count is roughly Poisson(20), so its peak over 100 s sits
        // a few standard deviations above.
        assertTrue(s.peak1s() > 20 && s.peak1s() < 45, "peak " + s.peak1s());
        assertTrue(s.drainP99() <= 100, "drain p99 " + s.drainP99());
    }

    @Test
    void theEvictorsHeadroomIsWhatThePoolCanSpareBeyondItsLoad() {
        assertEquals(19, Fleet.evictorHeadroom(20, 0), "idle: all but the spare");
        assertEquals(17, Fleet.evictorHeadroom(20, 2), "2 used, 1 spare");
        assertEquals(10, Fleet.evictorHeadroom(20, 8), "8 used, 2 spare");
        assertEquals(1, Fleet.evictorHeadroom(20, 20), "nothing to spare: still one at a time");
    }

    @Test
    void aBusyPoolDrainsSlowerThanAnIdleOneButStillWithinItsWindow() {
        // In use or idle, a connection goes at its due time: the window paces a busy fleet too.
        Fleet idle = fleet(10, 20, 0, 0);
        Fleet busy = new Fleet(10, 20, Fleet.evictorHeadroom(20, 15), 0, 0, TWENTY_MS, 0);
        double idleDrain = ConnectionRate.percentile(FleetSimulation.run(idle, 1).drains(), 0.5);
        double busyDrain = ConnectionRate.percentile(FleetSimulation.run(busy, 1).drains(), 0.5);
        assertEquals(0.020, idleDrain, 1e-9);
        // H = 1: one at a time, 19 waits of one setup each.
        assertEquals(19 * 0.020, busyDrain, 1e-9);
        Outcome windowed = FleetSimulation.run(new Fleet(10, 20, Fleet.evictorHeadroom(20, 2), 10, 0, TWENTY_MS, 0),
                1);
        assertTrue(windowed.arrivals().peakPerSecond(1.0) < 10 * 20 / 10.0 * 2,
                "a busy fleet (2 in use per pool) is paced by W = 10 s: " + windowed.arrivals().peakPerSecond(1.0));
    }

    @Test
    void aServerThatAdmitsRPerSecondHoldsTheFleetToR() {
        Outcome o = FleetSimulation.run(fleet(10, 20, 0, 100), 1);
        assertEquals(100, o.arrivals().meanPerSecond(), 5);
        assertTrue(o.maxServerWait() > 0.05, "connections queued at the server: " + o.maxServerWait());
    }

    @Test
    void theSetupTimeIsLogNormalThroughItsMedianAndP90() {
        SetupTime s = new SetupTime(0.010, 0.030);
        java.util.SplittableRandom random = new java.util.SplittableRandom(3);
        double[] draws = new double[20_000];
        for (int i = 0; i < draws.length; i++) {
            draws[i] = s.sample(random);
        }
        assertEquals(0.010, ConnectionRate.percentile(draws, 0.5), 0.0005);
        assertEquals(0.030, ConnectionRate.percentile(draws, 0.9), 0.0015);
        assertEquals(s.mean(), Arrays.stream(draws).average().orElseThrow(), s.mean() * 0.05);
        SetupTime hikari = new SetupTime(0.010, 0.010, SetupTime.HIKARI_ADDER_PAUSE);
        assertEquals(0.040, hikari.sample(random), 1e-12);
        assertEquals(0.040, hikari.mean(), 1e-12);
    }

    @Test
    void thePeakIsOverASlidingBucket() {
        // Fixed 1 s buckets would see 2 and 2; the burst around 1 s holds 4 within 0.2 s.
        ConnectionRate r = ConnectionRate.of(new double[] {1.15, 0.9, 0.95, 1.1, 3.0});
        assertEquals(4, r.peakPerSecond(1.0), 1e-9);
        assertEquals(4 / 0.3, r.peakPerSecond(0.3), 1e-9);
        assertEquals(4 / 2.1, r.meanPerSecond(), 1e-9);
    }

    @Test
    void badParametersAreRefusedWithWhatIsWrong() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new SetupTime(0.02, 0.01));
        assertTrue(e.getMessage().contains("p90 >= median"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new SetupTime(0.01, 0.01, -0.03));
        assertThrows(IllegalArgumentException.class, () -> new Fleet(0, 20, 5, 1, 0, TWENTY_MS, 0));
        assertThrows(IllegalArgumentException.class, () -> new Fleet(1, 20, 5, -1, 0, TWENTY_MS, 0));
    }
}
