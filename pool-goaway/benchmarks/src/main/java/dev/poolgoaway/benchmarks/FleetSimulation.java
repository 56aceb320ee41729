package dev.poolgoaway.benchmarks;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.PriorityQueue;
import java.util.SplittableRandom;

import dev.poolgoaway.testkit.drill.DrillOptions;

/**
 * A fleet's switchover, simulated: N instances, each a pool of P connections to the old server, are told to leave
 * at once; how fast do their replacements arrive at the new server? Deterministic for a seed, and fast (20,000
 * connections in milliseconds), so it can explore what the machine cannot run.
 *
 * <p>The model is the evictor's pacing, event by event:
 * <ul>
 *   <li>GoAway reaches instance i at a moment uniform in [0, spread] (an evictor finds it on an idle connection at
 *       its next poll, so one tick is the spread of a fleet that got it at once);</li>
 *   <li>each of its P connections is due uniform in [signal, signal + W];</li>
 *   <li>a due connection closes if fewer than H of the pool's connections are missing (closed and not yet replaced:
 *       the headroom); otherwise it waits for a replacement. The evictor's H is what the pool can spare beyond its
 *       load: P − D − max(1, ⌈D/4⌉) for a load that uses D connections, at least 1 (a pool with nothing to spare
 *       still gives up one at a time); a fixed {@code maxReplacementsInFlight} lowers it further;</li>
 *   <li>the pool opens replacements one at a time, as HikariCP does (a single "connection adder" thread per pool),
 *       each taking a setup time s drawn from a log-normal distribution fitted to a measured median and p90;</li>
 *   <li>optionally the new server admits at most R connections per second, first come first served, one every 1/R:
 *       PostgreSQL's postmaster accepts and forks every backend itself, one after the other, so the fork is the
 *       serial part of a connection's setup; what follows (authentication, the backend's start) runs in the
 *       children, in parallel, and is inside s. A connection that finds the server busy waits, and so does its
 *       pool's adder.</li>
 * </ul>
 * A load is modelled by the connections it uses (D), through the headroom: a connection in use waits for its due
 * time like an idle one and then closes on return; the transaction's own length is left out (milliseconds).
 *
 * <pre>
 * ./mvnw -B -q -DskipTests -Pfleet-sim verify -pl pool-goaway/benchmarks -am -Dsim.args="--fleets=1000x20"
 * </pre>
 */
public final class FleetSimulation {

    /** What is simulated. */
    record Fleet(int instances, int poolSize, int headroom, double window, double spread, SetupTime setup,
            double serverRate) {

        Fleet {
            if (instances < 1 || poolSize < 1 || headroom < 1) {
                throw new IllegalArgumentException("instances, pool size and headroom must be at least 1: "
                        + instances + ", " + poolSize + ", " + headroom);
            }
            if (window < 0 || spread < 0 || serverRate < 0) {
                throw new IllegalArgumentException("window, spread and server rate must not be negative");
            }
        }

        /**
         * The evictor's headroom (its {@code DrainLoop}): what a pool of P can spare beyond a load that uses D of
         * its connections and a quarter of that (at least one), but at least one connection.
         *
         * @param poolSize P
         * @param demand   D, the most connections the load used (in use plus waiting) in the last seconds
         * @return the connections that may be missing at once
         */
        static int evictorHeadroom(int poolSize, int demand) {
            return Math.max(1, poolSize - demand - Math.max(1, (demand + 3) / 4));
        }

        /**
         * The mean rate the window predicts. One pool's replacements take at least P × s (its single adder) and
         * at least W (its due times), so its burst lasts max(W, P × s); the fleet's bursts start over the spread.
         * With no spread that is min(N / s, N × P / W): the adders' limit below W = P × s, the window's above.
         *
         * @return N × P / (spread + max(W, P × s)), connections per second, s the setup time's mean
         */
        double predictedRate() {
            double burst = spread + Math.max(window, poolSize * setup.mean());
            double rate = instances * (double) poolSize / burst;
            return serverRate > 0 ? Math.min(serverRate, rate) : rate;
        }

    }

    /**
     * One turn of a pool's adder: a connection's setup, log-normal (a handful take much longer than the median: a
     * fork behind others, a page fault, the scheduler, which a constant would hide), plus a fixed pause. HikariCP's
     * adder sleeps 30 ms after every connection it adds ({@code PoolEntryCreator.call}, {@code quietlySleep(30L)}),
     * so a pool replaces at most one connection per s + 30 ms.
     *
     * @param median seconds, of the setup
     * @param p90    seconds, of the setup; equal to the median for a constant
     * @param pause  seconds added to every turn
     */
    record SetupTime(double median, double p90, double pause) {

        /** z of the 90th percentile of the standard normal. */
        private static final double Z90 = 1.2815515655446004;
        /** HikariCP's sleep after each connection its adder adds. */
        static final double HIKARI_ADDER_PAUSE = 0.030;

        SetupTime {
            if (!(median > 0) || p90 < median || pause < 0) {
                throw new IllegalArgumentException("setup time needs median > 0, p90 >= median and pause >= 0, got "
                        + median + " s, " + p90 + " s and " + pause + " s");
            }
        }

        /** A turn measured whole (the pause inside it). */
        SetupTime(double median, double p90) {
            this(median, p90, 0);
        }

        double sigma() {
            return Math.log(p90 / median) / Z90;
        }

        double sample(SplittableRandom random) {
            double sigma = sigma();
            return pause + (sigma == 0 ? median : median * Math.exp(sigma * gaussian(random)));
        }

        double mean() {
            double sigma = sigma();
            return pause + median * Math.exp(sigma * sigma / 2);
        }

        private static double gaussian(SplittableRandom random) {
            // Box-Muller; SplittableRandom has no nextGaussian on Java 17.
            double u = 1 - random.nextDouble();
            return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random.nextDouble());
        }
    }

    /**
     * One run's outcome.
     *
     * @param arrivals      when each replacement reached the new server (seconds from the first signal)
     * @param drains        per instance: its signal to its last old connection closed, seconds
     * @param maxServerWait the longest a connection waited for the server's admission, seconds
     */
    record Outcome(ConnectionRate arrivals, double[] drains, double maxServerWait) {
    }

    private static final int SIGNAL = 0;
    private static final int DUE = 1;
    private static final int ADDED = 2;

    private record Event(double at, long order, int kind, int instance, int connection) {
    }

    /** One instance's pool, as the model sees it. */
    private static final class Pool {
        /** Per old connection: open and not yet due, due and held back (waiting), or closed. */
        final byte[] state;
        int open;
        double signalAt;
        double lastClose;
        int missing;
        int waiting;
        boolean adding;

        Pool(int size) {
            state = new byte[size];
            open = size;
        }
    }

    private static final byte OPEN = 0;
    private static final byte WAITING = 1;
    private static final byte CLOSED = 2;

    private FleetSimulation() {
    }

    /**
     * @param fleet what to simulate
     * @param seed  the random seed: the same seed, the same outcome
     * @return the outcome
     */
    static Outcome run(Fleet fleet, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        PriorityQueue<Event> events = new PriorityQueue<>((a, b) -> a.at != b.at ? Double.compare(a.at, b.at)
                : Long.compare(a.order, b.order));
        long[] order = {0};
        Pool[] pools = new Pool[fleet.instances];
        for (int i = 0; i < pools.length; i++) {
            pools[i] = new Pool(fleet.poolSize);
            events.add(new Event(random.nextDouble() * fleet.spread, order[0]++, SIGNAL, i, -1));
        }
        double[] arrivals = new double[fleet.instances * fleet.poolSize];
        int arrived = 0;
        double serverFreeAt = 0;
        double maxWait = 0;
        double admitEvery = fleet.serverRate > 0 ? 1 / fleet.serverRate : 0;
        while (!events.isEmpty()) {
            Event e = events.poll();
            Pool pool = pools[e.instance];
            double now = e.at;
            switch (e.kind) {
                case SIGNAL -> {
                    pool.signalAt = now;
                    for (int c = 0; c < fleet.poolSize; c++) {
                        events.add(new Event(now + random.nextDouble() * fleet.window, order[0]++, DUE, e.instance,
                                c));
                    }
                }
                case DUE -> {
                    if (pool.state[e.connection] == OPEN) {
                        pool.state[e.connection] = WAITING;
                        pool.open--;
                        pool.waiting++;
                    }
                }
                case ADDED -> {
                    pool.missing--;
                    pool.adding = false;
                }
                default -> throw new IllegalStateException("event kind " + e.kind);
            }
            // Close what the headroom allows, then keep the single adder busy while anything is missing.
            while (pool.waiting > 0 && pool.missing < fleet.headroom) {
                pool.waiting--;
                pool.missing++;
                pool.lastClose = now;
            }
            if (pool.missing > 0 && !pool.adding) {
                pool.adding = true;
                arrivals[arrived++] = now;
                double admitted = Math.max(now, serverFreeAt);
                serverFreeAt = admitted + admitEvery;
                maxWait = Math.max(maxWait, admitted - now);
                events.add(new Event(admitted + fleet.setup.sample(random), order[0]++, ADDED, e.instance, -1));
            }
        }
        double[] drains = Arrays.stream(pools).mapToDouble(p -> p.lastClose - p.signalAt).toArray();
        return new Outcome(ConnectionRate.of(Arrays.copyOf(arrivals, arrived)), drains, maxWait);
    }

    /** Several seeds of one fleet, summarised: peaks are random, so one run's peak says little. */
    record Summary(Fleet fleet, double meanRate, double peak1s, double peak1sMax, double peak100ms,
            double peak100msMax, double drainP50, double drainP99, double maxServerWait) {

        /** @return the mean of the runs' 1 s peaks over the predicted rate (capped at the burst's size per second) */
        double peakOverMean1s() {
            return peak1s / Math.min(meanRate, fleet.instances * (double) fleet.poolSize);
        }

        double peakOverMean100ms() {
            return peak100ms / meanRate;
        }
    }

    /**
     * @param fleet what to simulate
     * @param runs  how many seeds, from {@code seed}
     * @param seed  the first seed
     * @return the runs' means (and the largest peaks); drain percentiles over every instance of every run
     */
    static Summary summarise(Fleet fleet, int runs, long seed) {
        double mean = 0;
        double p1 = 0;
        double p1Max = 0;
        double p01 = 0;
        double p01Max = 0;
        double wait = 0;
        List<double[]> drains = new ArrayList<>();
        for (int r = 0; r < runs; r++) {
            Outcome o = run(fleet, seed + r);
            mean += o.arrivals.meanPerSecond() / runs;
            double one = o.arrivals.peakPerSecond(1.0);
            double tenth = o.arrivals.peakPerSecond(0.1);
            p1 += one / runs;
            p01 += tenth / runs;
            p1Max = Math.max(p1Max, one);
            p01Max = Math.max(p01Max, tenth);
            wait = Math.max(wait, o.maxServerWait);
            drains.add(o.drains);
        }
        double[] all = drains.stream().flatMapToDouble(Arrays::stream).toArray();
        return new Summary(fleet, mean, p1, p1Max, p01, p01Max, ConnectionRate.percentile(all, 0.5),
                ConnectionRate.percentile(all, 0.99), wait);
    }

    /** The markdown table's header. */
    static final String HEADER = "| fleet | W | predicted N·P/(spread+max(W, P·s)) | mean rate | peak / 1 s (max) "
            + "| peak / 100 ms (max) | peak÷mean 1 s | peak÷mean 100 ms | drain p50 | drain p99 | server wait max |\n"
            + "|---|---|---|---|---|---|---|---|---|---|---|\n";

    /** @return one row of {@link #HEADER}; rates in connections per second */
    static String row(Summary s) {
        Fleet f = s.fleet;
        return String.format(Locale.ROOT,
                "| %d × %d | %s | %,.0f/s | %,.0f/s | %,.0f/s (%,.0f) | %,.0f/s (%,.0f) | %.2f | %.2f | %s | %s | %s |%n",
                f.instances, f.poolSize, seconds(f.window), f.predictedRate(), s.meanRate, s.peak1s, s.peak1sMax,
                s.peak100ms, s.peak100msMax, s.peakOverMean1s(), s.peakOverMean100ms(), seconds(s.drainP50),
                seconds(s.drainP99), f.serverRate > 0 ? seconds(s.maxServerWait) : "-");
    }

    static String seconds(double s) {
        return s < 1 ? String.format(Locale.ROOT, "%.0f ms", s * 1000) : String.format(Locale.ROOT, "%.2f s", s);
    }

    /**
     * @param args {@code --name=value} options; {@code --help} lists them
     * @throws Exception if the table cannot be written
     */
    public static void main(String[] args) throws Exception {
        DrillOptions options = new DrillOptions("fleet-simulation")
                .option("fleets", "100x20,1000x20,1000x50", "instances x pool size, comma-separated")
                .option("windows", "0,1,2,5,10,20,40,60", "drain windows W in seconds, comma-separated")
                .option("setup-median", "20", "connection setup time s, median, ms (measure it: -Pbench-fleet)")
                .option("setup-p90", "40", "connection setup time s, p90, ms")
                .option("adder-pause", "30", "ms the pool's adder waits after each connection (HikariCP: 30)")
                .option("spread", "0.25", "seconds over which GoAway reaches the instances (one evictor tick)")
                .option("demand", "0", "connections each instance's load uses (in use plus waiting); 0 = idle")
                .option("headroom", "0", "a fixed bound (maxReplacementsInFlight) on the connections a pool may be "
                        + "missing at once; 0 = none, the evictor's P - D - max(1, D/4)")
                .option("server-rate", "0", "new connections/s the new server admits at most; 0 = no limit")
                .option("runs", "20", "seeds per row")
                .option("seed", "1", "first seed")
                .option("out", "target/bench/fleet-simulation.md", "where the table is written");
        runMain(options, args, FleetSimulation::simulate);
    }

    /**
     * Runs a fleet program's {@code main}: an option out of range, found once the program reads it, is a usage
     * error with its message (exit status 2), not a stack trace.
     */
    static void runMain(DrillOptions options, String[] args, DrillOptions.Program program) throws Exception {
        int status;
        try {
            status = options.run(args, program);
        } catch (IllegalArgumentException e) {
            System.err.println(e.getMessage());
            status = DrillOptions.USAGE_ERROR;
        }
        if (status != 0) {
            System.exit(status);
        }
    }

    private static void simulate(DrillOptions options) throws Exception {
        SetupTime setup = new SetupTime(number(options, "setup-median", 0.001, 60_000) / 1000,
                number(options, "setup-p90", 0.001, 60_000) / 1000, number(options, "adder-pause", 0, 60_000) / 1000);
        double spread = number(options, "spread", 0, 3600);
        int headroomOption = options.intValue("headroom", 0, 100_000);
        double serverRate = number(options, "server-rate", 0, 1e9);
        int demand = options.intValue("demand", 0, 100_000);
        int runs = options.intValue("runs", 1, 10_000);
        long seed = options.intValue("seed", 0, Integer.MAX_VALUE);
        double[] windows = numbers(options, "windows", 0, 3600);
        StringBuilder out = new StringBuilder(String.format(Locale.ROOT,
                "Fleet simulation: setup time s median %s, p90 %s, plus the adder's pause %s (a turn's mean %s); GoAway spread over %s; "
                        + "load %s; headroom %s; server admits %s; %d seeds per row from %d. Rates in new connections/s at the new "
                        + "server; peaks over sliding buckets, the mean of the runs' peaks (their max in brackets).%n%n",
                seconds(setup.median), seconds(setup.p90), seconds(setup.pause), seconds(setup.mean()), seconds(spread),
                demand > 0 ? demand + " connections per instance" : "none (idle pools)",
                "P − D − max(1, ⌈D/4⌉), at least 1" + (headroomOption == 0 ? "" : ", at most " + headroomOption),
                serverRate > 0 ? String.format(Locale.ROOT, "at most %,.0f/s", serverRate) : "any rate",
                runs,
                seed));
        out.append(HEADER);
        for (String fleetText : options.value("fleets").split(",")) {
            String[] np = fleetText.trim().split("x");
            if (np.length != 2) {
                throw new IllegalArgumentException("--fleets: expected instances x pool size such as 1000x20, got "
                        + fleetText);
            }
            int n = parseInt("--fleets instances", np[0], 1, 1_000_000);
            int p = parseInt("--fleets pool size", np[1], 1, 10_000);
            int headroom = Fleet.evictorHeadroom(p, demand);
            if (headroomOption > 0) {
                headroom = Math.min(headroom, headroomOption);
            }
            for (double w : windows) {
                Fleet fleet = new Fleet(n, p, headroom, w, spread, setup, serverRate);
                long started = System.nanoTime();
                String row = row(summarise(fleet, runs, seed));
                System.out.printf(Locale.ROOT, "[fleet-simulation] %d x %d, W %s: %d ms%n", n, p, seconds(w),
                        (System.nanoTime() - started) / 1_000_000);
                out.append(row);
            }
        }
        Path file = Path.of(options.value("out"));
        Files.createDirectories(file.toAbsolutePath().getParent());
        Files.writeString(file, out);
        System.out.println();
        System.out.println(out);
        System.out.println("[fleet-simulation] table written to " + file.toAbsolutePath());
    }

    /** @return the option as a number within the bounds, or an error that names it */
    static double number(DrillOptions options, String name, double min, double max) {
        return parseNumber("--" + name, options.value(name), min, max);
    }

    /** @return the option as a comma-separated list of numbers within the bounds */
    static double[] numbers(DrillOptions options, String name, double min, double max) {
        double[] values = Arrays.stream(options.value(name).split(",")).map(String::trim).filter(s -> !s.isEmpty())
                .mapToDouble(v -> parseNumber("--" + name, v, min, max)).toArray();
        if (values.length == 0) {
            throw new IllegalArgumentException("--" + name + " needs at least one number");
        }
        return values;
    }

    private static double parseNumber(String what, String text, double min, double max) {
        double v;
        try {
            v = Double.parseDouble(text.trim());
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException(what + " must be a number, got " + text, e);
        }
        if (!(v >= min && v <= max)) {
            throw new IllegalArgumentException(what + " must be between " + plain(min) + " and " + plain(max)
                    + ", got " + text);
        }
        return v;
    }

    private static String plain(double bound) {
        return java.math.BigDecimal.valueOf(bound).stripTrailingZeros().toPlainString();
    }

    private static int parseInt(String what, String text, int min, int max) {
        double v = parseNumber(what, text, min, max);
        if (v != Math.rint(v)) {
            throw new IllegalArgumentException(what + " must be an integer, got " + text);
        }
        return (int) v;
    }
}
