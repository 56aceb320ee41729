package dev.poolgoaway.benchmarks;

import java.util.Arrays;

/**
 * The arrival statistics of a burst of new connections at one server, the same for the fleet drill (times the proxy
 * saw) and the fleet simulation (times the model produced), so the two are compared on one definition.
 *
 * <p>The peak is over a <em>sliding</em> bucket: the most arrivals in any interval [t, t + bucket), not in fixed
 * clock-aligned buckets, which would split a burst and under-report it. The mean is over the burst's own span (first
 * to last arrival), so a burst shorter than a bucket shows a mean above its bucket peak, not below.
 *
 * @param arrivals arrival times in seconds, sorted
 */
record ConnectionRate(double[] arrivals) {

    /**
     * @param times arrival times in seconds, any order
     * @return the statistics of those arrivals
     */
    static ConnectionRate of(double[] times) {
        double[] sorted = times.clone();
        Arrays.sort(sorted);
        return new ConnectionRate(sorted);
    }

    /** @return how many arrivals */
    int count() {
        return arrivals.length;
    }

    /**
     * @param bucketSeconds the bucket's width
     * @return the most arrivals in any interval of that width, divided by the width: a rate per second
     */
    double peakPerSecond(double bucketSeconds) {
        int most = 0;
        int first = 0;
        for (int last = 0; last < arrivals.length; last++) {
            while (arrivals[last] - arrivals[first] >= bucketSeconds) {
                first++;
            }
            most = Math.max(most, last - first + 1);
        }
        return most / bucketSeconds;
    }

    /** @return arrivals per second over the span from the first to the last; 0 for fewer than two */
    double meanPerSecond() {
        double span = span();
        return span > 0 ? (arrivals.length - 1) / span : 0;
    }

    /** @return seconds from the first arrival to the last */
    double span() {
        return arrivals.length < 2 ? 0 : arrivals[arrivals.length - 1] - arrivals[0];
    }

    /**
     * The nearest-rank percentile.
     *
     * @param values   any values
     * @param fraction 0.5 for the median, 0.99 for p99
     * @return that percentile, or NaN for no values
     */
    static double percentile(double[] values, double fraction) {
        if (values.length == 0) {
            return Double.NaN;
        }
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        int rank = (int) Math.ceil(fraction * sorted.length);
        return sorted[Math.max(0, Math.min(sorted.length - 1, rank - 1))];
    }
}
