package dev.poolgoaway.testkit.drill;

import java.time.Duration;
import java.util.Arrays;

/**
 * A latency distribution: exact percentiles of the recorded values (a drill records tens of thousands at most, so
 * sorting them is cheaper than being approximately right).
 *
 * @param count how many values
 * @param p50   the median
 * @param p99   the 99th percentile
 * @param max   the largest
 */
public record Latency(int count, Duration p50, Duration p99, Duration max) {

    static final Latency NONE = new Latency(0, Duration.ZERO, Duration.ZERO, Duration.ZERO);

    static Latency of(long[] nanos) {
        if (nanos.length == 0) {
            return NONE;
        }
        long[] sorted = nanos.clone();
        Arrays.sort(sorted);
        return new Latency(sorted.length, Duration.ofNanos(rank(sorted, 0.50)), Duration.ofNanos(rank(sorted, 0.99)),
                Duration.ofNanos(sorted[sorted.length - 1]));
    }

    /** Nearest-rank percentile. */
    private static long rank(long[] sorted, double p) {
        int index = (int) Math.ceil(p * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, index))];
    }
}
