package dev.poolgoaway.benchmarks;

import java.util.Arrays;
import java.util.SplittableRandom;

/**
 * The statistics of an interleaved A/B benchmark ({@link WireLayerAB}): each round gives one ratio, and the report
 * is the median of the rounds' ratios with a percentile-bootstrap confidence interval of that median (resampling
 * whole rounds, with a fixed seed so that a report can be recomputed), and a verdict against a target.
 *
 * <p>The median, because a round that a neighbour's build hit on one side only makes one wild ratio, which moves a
 * mean but not a median. The bootstrap, because the median's sampling distribution has no handy closed form.
 */
final class AbStats {

    private AbStats() {
    }

    /** A confidence interval. */
    record Interval(double low, double high) {
    }

    /** Where an interval stands against a target that is a lower bound (higher is better). */
    enum Verdict {
        /** The whole interval is at or above the target. */
        MET,
        /** The whole interval is below it. */
        MISSED,
        /** The interval straddles it: this run cannot tell. */
        NOT_SETTLED;

        /** @return how a report prints it (Markdown) */
        String label() {
            return switch (this) {
                case MET -> "met";
                case MISSED -> "**missed**";
                case NOT_SETTLED -> "not settled";
            };
        }

        /** @return met only if {@code low ≥ target}, missed only if {@code high < target}, else not settled */
        static Verdict of(Interval interval, double target) {
            if (interval.low() >= target) {
                return MET;
            }
            return interval.high() < target ? MISSED : NOT_SETTLED;
        }
    }

    /** @return the median of {@code xs} (the mean of the middle two for an even count); NaN if empty */
    static double median(double[] xs) {
        double[] s = xs.clone();
        Arrays.sort(s);
        return quantile(s, 0.5);
    }

    /**
     * @param sorted values in ascending order
     * @param p      a probability in [0, 1]
     * @return the {@code p} quantile, interpolated linearly between the closest ranks (Hyndman and Fan's type 7, the
     *         default of R and NumPy); NaN if empty
     */
    static double quantile(double[] sorted, double p) {
        if (sorted.length == 0) {
            return Double.NaN;
        }
        double h = (sorted.length - 1) * p;
        int lo = (int) Math.floor(h);
        int hi = Math.min(lo + 1, sorted.length - 1);
        return sorted[lo] + (h - lo) * (sorted[hi] - sorted[lo]);
    }

    /**
     * The percentile-bootstrap confidence interval of the median: {@code resamples} times, draw
     * {@code xs.length} values from {@code xs} with replacement and take their median; the interval is the
     * {@code (1 - level) / 2} and {@code (1 + level) / 2} quantiles of those medians. The same seed gives the same
     * interval.
     *
     * @param xs        one value per round, at least one
     * @param resamples how many resamples, at least one
     * @param seed      the random generator's seed
     * @param level     the confidence level, in (0, 1), e.g. 0.95
     * @return the interval
     */
    static Interval bootstrapMedian(double[] xs, int resamples, long seed, double level) {
        if (xs.length == 0 || resamples < 1 || !(level > 0 && level < 1)) {
            throw new IllegalArgumentException("need values, resamples and a level in (0, 1): " + xs.length + ", "
                    + resamples + ", " + level);
        }
        SplittableRandom random = new SplittableRandom(seed);
        double[] medians = new double[resamples];
        double[] sample = new double[xs.length];
        for (int b = 0; b < resamples; b++) {
            for (int i = 0; i < sample.length; i++) {
                sample[i] = xs[random.nextInt(xs.length)];
            }
            Arrays.sort(sample);
            medians[b] = quantile(sample, 0.5);
        }
        Arrays.sort(medians);
        return new Interval(quantile(medians, (1 - level) / 2), quantile(medians, (1 + level) / 2));
    }
}
