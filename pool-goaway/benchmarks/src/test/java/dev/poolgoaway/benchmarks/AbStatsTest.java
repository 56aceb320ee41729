package dev.poolgoaway.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class AbStatsTest {

    @Test
    void medianOfOddAndEvenCounts() {
        assertEquals(3.0, AbStats.median(new double[] {5, 1, 3}));
        assertEquals(2.5, AbStats.median(new double[] {4, 1, 3, 2}));
        assertEquals(7.0, AbStats.median(new double[] {7}));
        assertTrue(Double.isNaN(AbStats.median(new double[0])));
    }

    @Test
    void medianLeavesItsInputAlone() {
        double[] xs = {3, 1, 2};
        AbStats.median(xs);
        assertEquals(3.0, xs[0]);
    }

    @Test
    void quantileInterpolatesBetweenRanks() {
        double[] sorted = {10, 20, 30, 40, 50};
        assertEquals(10.0, AbStats.quantile(sorted, 0));
        assertEquals(50.0, AbStats.quantile(sorted, 1));
        assertEquals(30.0, AbStats.quantile(sorted, 0.5));
        assertEquals(14.0, AbStats.quantile(sorted, 0.1), 1e-12);
    }

    @Test
    void bootstrapIsDeterministicForASeed() {
        double[] xs = {0.99, 1.01, 0.97, 1.03, 1.00, 0.98, 1.02, 0.96, 1.04, 1.00};
        AbStats.Interval a = AbStats.bootstrapMedian(xs, 10_000, 42, 0.95);
        AbStats.Interval b = AbStats.bootstrapMedian(xs, 10_000, 42, 0.95);
        assertEquals(a, b);
        // Percentile bootstrap: bounded by the data, holding the median.
        assertTrue(a.low() >= 0.96 && a.high() <= 1.04, a.toString());
        assertTrue(a.low() <= AbStats.median(xs) && AbStats.median(xs) <= a.high(), a.toString());
        assertTrue(a.low() < a.high(), a.toString());
    }

    @Test
    void bootstrapOfIdenticalRoundsIsAPoint() {
        AbStats.Interval ci = AbStats.bootstrapMedian(new double[] {1.5, 1.5, 1.5, 1.5}, 1000, 1, 0.95);
        assertEquals(new AbStats.Interval(1.5, 1.5), ci);
    }

    @Test
    void bootstrapNarrowsWithMoreRounds() {
        double[] few = new double[10];
        double[] many = new double[200];
        for (int i = 0; i < many.length; i++) {
            double x = 1 + ((i * 37) % 21 - 10) / 100.0; // 0.90 .. 1.10, spread evenly
            many[i] = x;
            if (i < few.length) {
                few[i] = x;
            }
        }
        AbStats.Interval wide = AbStats.bootstrapMedian(few, 5000, 7, 0.95);
        AbStats.Interval narrow = AbStats.bootstrapMedian(many, 5000, 7, 0.95);
        assertTrue(narrow.high() - narrow.low() < wide.high() - wide.low(), wide + " vs " + narrow);
    }

    @Test
    void bootstrapRejectsBadInput() {
        assertThrows(IllegalArgumentException.class, () -> AbStats.bootstrapMedian(new double[0], 10, 1, 0.95));
        assertThrows(IllegalArgumentException.class, () -> AbStats.bootstrapMedian(new double[] {1}, 0, 1, 0.95));
        assertThrows(IllegalArgumentException.class, () -> AbStats.bootstrapMedian(new double[] {1}, 10, 1, 1.0));
    }

    @Test
    void verdictNeedsTheWholeInterval() {
        assertEquals(AbStats.Verdict.MET, AbStats.Verdict.of(new AbStats.Interval(0.98, 1.05), 0.98));
        assertEquals(AbStats.Verdict.MET, AbStats.Verdict.of(new AbStats.Interval(0.99, 1.05), 0.98));
        assertEquals(AbStats.Verdict.NOT_SETTLED, AbStats.Verdict.of(new AbStats.Interval(0.979, 1.05), 0.98));
        assertEquals(AbStats.Verdict.NOT_SETTLED, AbStats.Verdict.of(new AbStats.Interval(0.90, 0.98), 0.98));
        assertEquals(AbStats.Verdict.MISSED, AbStats.Verdict.of(new AbStats.Interval(0.90, 0.979), 0.98));
        assertEquals("met", AbStats.Verdict.MET.label());
        assertEquals("not settled", AbStats.Verdict.NOT_SETTLED.label());
    }
}
