package dev.poolgoaway.benchmarks;

import java.lang.management.ManagementFactory;
import java.lang.management.OperatingSystemMXBean;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.function.ToDoubleFunction;
import java.util.stream.Collectors;

import dev.poolgoaway.testkit.drill.DrillOptions;

/**
 * The wire layer's cost, interleaved: the same pgjdbc work with the layer off (plain pgjdbc, its defaults) and on
 * ({@code PgGoAway.install}), alternating in many short rounds in one JVM against one server, so that whatever else
 * the machine does at a given moment hits both sides of a round alike. JMH ({@link WireLayerBenchmark}) runs the
 * cases minutes apart instead, and on a shared machine their ratios' bounds are wider than the targets' margins.
 *
 * <p>Each case (a {@link Workload} over a {@link Transport}) has two connections, off and on, new for each round
 * (a connection's own luck would otherwise favour one side for a whole run). A round runs every case once: the
 * same work on each side (10,000 simple queries, or one bulk operation of 1 GiB), the two interleaved block by block
 * (100 queries, or one fetch of 1,000 rows, about 8 MB: a few milliseconds a block) in the order off, on, on,
 * off..., the mirror of it in every other round, so that a change of load hits both sides within milliseconds and
 * a steady drift cancels. Both bulk operations stay open meanwhile, on their own
 * connections: a cursor waits for its next fetch, a COPY for its reader. Per side it adds up the blocks' wall
 * time and the client thread's CPU time ({@link ThreadMXBean#getCurrentThreadCpuTime()}: user and system, so TLS
 * decryption and the socket reads count, the server's work and GC threads do not). Per round it forms two ratios,
 * both read the same way, higher is better and 1.00 costs nothing:
 * <ul>
 *   <li>throughput on / off (0.97 = 3% slower with the layer);</li>
 *   <li>CPU per operation off / on (0.97 = the layer costs 3% more client CPU per operation).</li>
 * </ul>
 * The report gives each ratio's median over the rounds with a bootstrap 95% interval of it ({@link AbStats}) and a
 * verdict against the target: met only if the whole interval is at or above it, missed only if all of it is below.
 *
 * <p>{@code --help} lists the options; the table goes to standard output and to {@code --out}.
 */
public final class WireLayerAB {

    private static final double CONFIDENCE = 0.95;
    private static final long MIB = 1024 * 1024;

    /** What one operation is, and the target its ratio is held to (docs/performance.md). */
    enum Workload {
        SIMPLE_QUERY(0.98),
        BULK_READ(0.97),
        COPY_OUT(0.97);

        final double target;

        Workload(double target) {
            this.target = target;
        }
    }

    /** How the client reaches the server. */
    enum Transport {
        PLAIN,
        TLS
    }

    /** @return a constant as the options and the report name it: {@code SIMPLE_QUERY} is {@code simple-query} */
    static String id(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT).replace('_', '-');
    }

    static <E extends Enum<E>> List<String> ids(Class<E> type) {
        return Arrays.stream(type.getEnumConstants()).map(WireLayerAB::id).toList();
    }

    /** @return the constants named in an option, each once, in the order given */
    static <E extends Enum<E>> List<E> listed(DrillOptions o, String option, Class<E> type) {
        return o.list(option, ids(type)).stream().distinct()
                .map(id -> Arrays.stream(type.getEnumConstants()).filter(e -> id(e).equals(id)).findFirst()
                        .orElseThrow())
                .toList();
    }

    /** One side of one round: wall and CPU time of {@code ops} operations. */
    record Side(long wallNanos, long cpuNanos, int ops) {
    }

    /** A case's settings and its rounds so far ({@code measured}: one {@code [off, on]} a round). */
    private record Case(Workload workload, Transport transport, int rounds,
            int opsPerSide, long bytesPerOp, int queryBlock, int bulkBlock, List<Side[]> measured) {

        String name() {
            return id(workload) + "/" + id(transport);
        }

        /** Operations per second, or for the bulk cases MB per second (MB = 10^6 bytes). */
        double throughput(Side s) {
            double perSecond = s.ops() * 1e9 / s.wallNanos();
            return bytesPerOp > 0 ? perSecond * bytesPerOp / 1e6 : perSecond;
        }

        double cpuPerOp(Side s) {
            return (double) s.cpuNanos() / s.ops();
        }

        /** @return one side's work of a round, in interleavable blocks */
        WireSession.Steps steps(WireSession s) {
            return switch (workload) {
                case SIMPLE_QUERY -> s.simpleQueries(opsPerSide, queryBlock);
                case BULK_READ -> s.bulkRead(bulkBlock);
                case COPY_OUT -> s.copyOut(bulkBlock);
            };
        }

        double[] each(ToDoubleFunction<Side[]> f) {
            return measured.stream().mapToDouble(f).toArray();
        }
    }

    private final ThreadMXBean threads = ManagementFactory.getThreadMXBean();

    private WireLayerAB() {
    }

    /**
     * @param args {@code --name=value} options, {@code --quick} for a first look; {@code --help} lists them
     * @throws Exception if the server cannot start, an operation fails or comes up short, or the report cannot be
     *                   written
     */
    public static void main(String[] args) throws Exception {
        boolean quick = Arrays.asList(args).contains("--quick");
        String[] rest = Arrays.stream(args).filter(a -> !a.equals("--quick")).toArray(String[]::new);
        DrillOptions options = new DrillOptions("wire-layer-ab [--quick]")
                .option("rounds", quick ? "20" : "60", "measured rounds of simple-query")
                .option("bulk-rounds", quick ? "6" : "20", "measured rounds of bulk-read and copy-out")
                .option("warmup", quick ? "3" : "10", "unmeasured rounds first (JIT, caches); the bulk cases run in "
                        + "the first only, one shot a side being long enough to compile their loops")
                .option("query-ops", quick ? "2000" : "10000", "simple-query operations per side per round")
                .option("query-block", "100", "simple queries per block: the sides alternate block by block")
                .option("bulk-block", String.valueOf(WireSession.FETCH_SIZE), "rows per block of a bulk operation "
                        + "(the default, the fetch size: one block per fetch)")
                .option("bulk-mib", quick ? "64" : "1024", "MiB of payload one bulk-read or copy-out moves")
                .option("workloads", String.join(",", ids(Workload.class)), "which workloads, of "
                        + ids(Workload.class))
                .option("transports", String.join(",", ids(Transport.class)), "which transports, of "
                        + ids(Transport.class))
                .option("resamples", "10000", "bootstrap resamples")
                .option("seed", "13", "the bootstrap's random seed")
                .option("out", Path.of(System.getProperty("bench.out", "target/bench"), "wire-layer-ab.md")
                        .toString(), "where the Markdown table is written");
        int[] status = {0};
        status[0] = options.run(rest, o -> status[0] = new WireLayerAB().run(o, args));
        if (status[0] != 0) {
            System.exit(status[0]);
        }
    }

    /** @return 0, or {@link DrillOptions#USAGE_ERROR} for an option out of range (said on standard error) */
    private int run(DrillOptions o, String[] args) throws Exception {
        try {
            run(Settings.of(o), args);
            return 0;
        } catch (BadOption e) {
            System.err.println(e.getMessage());
            System.err.println(o.usage());
            return DrillOptions.USAGE_ERROR;
        }
    }

    /** An option's value is out of range: said before anything starts. */
    private static final class BadOption extends Exception {
        private static final long serialVersionUID = 1L;

        BadOption(IllegalArgumentException e) {
            super(e.getMessage(), e);
        }
    }

    /** The options, checked. */
    private record Settings(int rounds, int bulkRounds, int warmup, int queryOps, int queryBlock, int bulkBlock,
            int bulkMib,
            List<Workload> workloads, List<Transport> transports, int resamples, long seed, Path out) {

        static Settings of(DrillOptions o) throws BadOption {
            try {
                String seed = o.value("seed").trim();
                if (!seed.matches("-?[0-9]{1,18}")) {
                    throw new IllegalArgumentException("--seed must be an integer, got " + seed);
                }
                return new Settings(o.intValue("rounds", 3, 10_000), o.intValue("bulk-rounds", 3, 10_000),
                        o.intValue("warmup", 0, 100), o.intValue("query-ops", 1, 10_000_000),
                        o.intValue("query-block", 1, 10_000_000), o.intValue("bulk-block", 1, Integer.MAX_VALUE),
                        o.intValue("bulk-mib", 1, 64 * 1024),
                        listed(o, "workloads", Workload.class), listed(o, "transports", Transport.class),
                        o.intValue("resamples", 100, 10_000_000), Long.parseLong(seed), Path.of(o.value("out")));
            } catch (IllegalArgumentException e) {
                throw new BadOption(e);
            }
        }
    }

    private void run(Settings settings, String[] args) throws Exception {
        int rounds = settings.rounds();
        int bulkRounds = settings.bulkRounds();
        int warmup = settings.warmup();
        int queryOps = settings.queryOps();
        int bulkMib = settings.bulkMib();
        List<Workload> workloads = settings.workloads();
        List<Transport> transports = settings.transports();
        int resamples = settings.resamples();
        long seed = settings.seed();
        Path out = settings.out();
        if (!threads.isCurrentThreadCpuTimeSupported()) {
            throw new IllegalStateException("this JVM cannot measure a thread's CPU time");
        }
        threads.setThreadCpuTimeEnabled(true);
        int bulkRows = Math.toIntExact(bulkMib * MIB / WireSession.ROW_BYTES);
        OperatingSystemMXBean os = ManagementFactory.getOperatingSystemMXBean();
        double loadStart = os.getSystemLoadAverage();
        double loadMin = loadStart;
        double loadMax = loadStart;
        Instant started = Instant.now();

        List<Case> cases = new ArrayList<>();
        try (WireServer server = WireServer.start()) {
            for (Workload w : workloads) {
                for (Transport t : transports) {
                    boolean bulk = w != Workload.SIMPLE_QUERY;
                    long bytes = switch (w) {
                        case SIMPLE_QUERY -> 0;
                        case BULK_READ -> WireSession.bulkReadBytes(bulkRows);
                        case COPY_OUT -> WireSession.copyOutBytes(bulkRows);
                    };
                    cases.add(new Case(w, t, bulk ? bulkRounds : rounds, bulk ? 1 : queryOps, bytes,
                            settings.queryBlock(), settings.bulkBlock(), new ArrayList<>()));
                }
            }
            int total = cases.stream().mapToInt(c -> c.rounds()).max().orElseThrow();
            System.out.printf(Locale.ROOT, "[wire-ab] %d warm-up + %d rounds of %s; %,d simple queries a side, "
                    + "%d MiB a bulk operation; load average %.2f%n", warmup, total,
                    cases.stream().map(Case::name).collect(Collectors.joining(", ")), queryOps, bulkMib,
                    loadStart);
            for (int r = 0; r < warmup + total; r++) {
                boolean measured = r >= warmup;
                int index = r - warmup;
                StringBuilder line = new StringBuilder();
                for (Case c : cases) {
                    boolean bulk = c.bytesPerOp() > 0;
                    if (measured ? index >= c.rounds() : bulk && r > 0) {
                        continue;
                    }
                    if (!bulk) {
                        // The bulk cases leave a GiB of garbage each: collected now, not in the middle of a
                        // round of simple queries (which make little), where a pause would hit one side only.
                        System.gc();
                    }
                    Side[] sides = round(server, bulkRows, c, r % 2 == 0);
                    if (measured) {
                        c.measured().add(sides);
                    }
                    line.append(String.format(Locale.ROOT, " %s %.3f", c.name(),
                            c.throughput(sides[1]) / c.throughput(sides[0])));
                }
                double load = os.getSystemLoadAverage();
                loadMin = Math.min(loadMin, load);
                loadMax = Math.max(loadMax, load);
                System.out.printf(Locale.ROOT, "[wire-ab] %s %d/%d (%s, load %.2f): throughput on/off%s%n",
                        measured ? "round" : "warm-up", measured ? index + 1 : r + 1, measured ? total : warmup,
                        elapsed(started), load, line);
            }
        }
        String command = String.join(" ", args);
        String report = String.format(Locale.ROOT, "Measured %s (%s, arguments: %s); load average %.2f at the "
                + "start, %.2f to %.2f over the rounds; %d CPUs, %s %s, Java %s.%n%n",
                started.truncatedTo(ChronoUnit.SECONDS), elapsed(started),
                command.isEmpty() ? "none, a full run" : "`" + command + "`", loadStart, loadMin, loadMax,
                os.getAvailableProcessors(), System.getProperty("os.name"), System.getProperty("os.version"),
                System.getProperty("java.version"))
                + table(cases, warmup, queryOps, bulkMib, settings.queryBlock(), settings.bulkBlock(), resamples, seed);
        Files.createDirectories(out.toAbsolutePath().getParent());
        Files.writeString(out, report);
        System.out.println();
        System.out.println(report);
        System.out.println("written to " + out.toAbsolutePath());
    }

    /**
     * One round of a case: {@code [off, on]}. The two sides' operations run interleaved block by block, in the order
     * off, on, on, off, off, on... (or its mirror when {@code offFirst} is false), each block timed on its own and
     * added to its side; a side that has finished leaves the other to run out alone.
     */
    private Side[] round(WireServer server, int bulkRows, Case c, boolean offFirst) throws Exception {
        // New connections every round: a connection's own luck (its server process, where the scheduler puts it)
        // would otherwise favour one side for the whole run, a bias no interleaving cancels; per round it is noise
        // that the interval covers.
        boolean tls = c.transport() == Transport.TLS;
        // Connected in the order the round runs them: a server process forked second may land elsewhere.
        WireSession first = server.connect(!offFirst, tls, bulkRows);
        try (WireSession second = server.connect(offFirst, tls, bulkRows)) {
            WireSession off = offFirst ? first : second;
            WireSession on = offFirst ? second : first;
            if (c.workload() == Workload.SIMPLE_QUERY) {
                // A new server process is slow at first (its caches, the statement's first parse): not measured.
                off.simpleQueries(c.queryBlock(), c.queryBlock()).finish();
                on.simpleQueries(c.queryBlock(), c.queryBlock()).finish();
            }
            return round(c, c.steps(off), c.steps(on), offFirst);
        } finally {
            first.close();
        }
    }

    private Side[] round(Case c, WireSession.Steps offSteps, WireSession.Steps onSteps, boolean offFirst)
            throws Exception {
        WireSession.Steps[] steps = {offSteps, onSteps};
        long[] wall = new long[2];
        long[] cpu = new long[2];
        boolean[] done = new boolean[2];
        for (int block = 0; !done[0] || !done[1]; block++) {
            // ABBA: the pair's first side alternates, so that a side never always follows the same neighbour.
            int first = (block % 2 == 0) == offFirst ? 0 : 1;
            for (int side : new int[] {first, 1 - first}) {
                if (done[side]) {
                    continue;
                }
                long cpu0 = threads.getCurrentThreadCpuTime();
                long wall0 = System.nanoTime();
                done[side] = !steps[side].step();
                wall[side] += System.nanoTime() - wall0;
                cpu[side] += threads.getCurrentThreadCpuTime() - cpu0;
            }
        }
        return new Side[] {new Side(wall[0], cpu[0], c.opsPerSide()), new Side(wall[1], cpu[1], c.opsPerSide())};
    }

    private static String table(List<Case> cases, int warmup, int queryOps, int bulkMib, int queryBlock, int bulkBlock,
            int resamples, long seed) {
        StringBuilder sb = new StringBuilder();
        sb.append("| workload | transport | rounds | throughput off | throughput on | on / off [95% CI] "
                + "| CPU/op off | CPU/op on | CPU off / on [95% CI] | target | verdict (throughput) "
                + "| verdict (CPU) |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (Case c : cases) {
            double[] thrOff = c.each(s -> c.throughput(s[0]));
            double[] thrOn = c.each(s -> c.throughput(s[1]));
            double[] thrRatio = c.each(s -> c.throughput(s[1]) / c.throughput(s[0]));
            double[] cpuOff = c.each(s -> c.cpuPerOp(s[0]));
            double[] cpuOn = c.each(s -> c.cpuPerOp(s[1]));
            double[] cpuRatio = c.each(s -> c.cpuPerOp(s[0]) / c.cpuPerOp(s[1]));
            AbStats.Interval thrCi = AbStats.bootstrapMedian(thrRatio, resamples, seed, CONFIDENCE);
            AbStats.Interval cpuCi = AbStats.bootstrapMedian(cpuRatio, resamples, seed, CONFIDENCE);
            boolean bulk = c.bytesPerOp() > 0;
            String unit = bulk ? "MB/s" : "ops/s";
            double cpuScale = bulk ? 1e6 : 1e3;
            String cpuUnit = bulk ? "ms" : "µs";
            sb.append(String.format(Locale.ROOT,
                    "| %s | %s | %d | %,.0f %s | %,.0f %s | %s | %,.1f %s | %,.1f %s | %s | ≥ %.2f | %s | %s |%n",
                    id(c.workload()), id(c.transport()), c.measured().size(),
                    AbStats.median(thrOff), unit, AbStats.median(thrOn), unit, ratio(thrRatio, thrCi),
                    AbStats.median(cpuOff) / cpuScale, cpuUnit, AbStats.median(cpuOn) / cpuScale, cpuUnit,
                    ratio(cpuRatio, cpuCi), c.workload().target,
                    AbStats.Verdict.of(thrCi, c.workload().target).label(),
                    AbStats.Verdict.of(cpuCi, c.workload().target).label()));
        }
        sb.append(String.format(Locale.ROOT, "%nMedians over the measured rounds (after %d warm-up); a side of a round "
                + "is %,d simple queries or one bulk operation of %d MiB, the sides interleaved in blocks of %,d "
                + "queries or %,d rows. Both ratios: higher is better, 1.00 costs nothing. CI: percentile bootstrap "
                + "of the median, %,d resamples of the rounds, seed %d. MB = 10^6 bytes; CPU = the client thread's "
                + "CPU time (user + system).%n",
                warmup, queryOps, bulkMib, queryBlock, bulkBlock, resamples, seed));
        return sb.toString();
    }

    private static String ratio(double[] ratios, AbStats.Interval ci) {
        return String.format(Locale.ROOT, "%.3f [%.3f, %.3f]", AbStats.median(ratios), ci.low(), ci.high());
    }

    private static String elapsed(Instant since) {
        Duration d = Duration.between(since, Instant.now());
        return String.format(Locale.ROOT, "%dm%02ds", d.toMinutes(), d.toSecondsPart());
    }
}
