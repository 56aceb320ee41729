package dev.poolgoaway.benchmarks;

import java.lang.management.ManagementFactory;
import java.lang.management.ThreadInfo;
import java.lang.management.ThreadMXBean;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;
import java.util.function.Predicate;

import com.sun.management.OperatingSystemMXBean;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;

import dev.poolgoaway.hikari.EvictorSettings;
import dev.poolgoaway.hikari.GoAwayEvictor;
import dev.poolgoaway.hikari.GoAwayMetrics;
import dev.poolgoaway.hikari.PoolGoAway;
import dev.poolgoaway.testkit.EmbeddedUpstream;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;

/**
 * What the evictor costs a pool whose server never asks anyone to leave (the steady state): the CPU time of its
 * thread over a fixed window, per tick and per second, for pools of 20 and 200 connections, idle and under a light
 * load. The same pool without pool-goaway runs in the same process just before, as the baseline: its HikariCP
 * threads' CPU and the whole process's CPU over the same window. A real PostgreSQL 18 on loopback, plain TCP.
 *
 * <p>Arguments ({@code key=value}, all optional): {@code window} seconds measured per case (default 10),
 * {@code sizes} (default {@code 20,200}), {@code ticks} in milliseconds (default {@code 250,100}), {@code rate} light
 * load in queries per second (default 200). The table goes to standard output and to {@code evictor-cost.md} in the
 * directory named by the system property {@code bench.out} (default {@code target/bench}).
 *
 * <p>With {@code rounds=N} it measures the DNS leave-signal's cost instead, as an interleaved A/B: two pools of the
 * largest size at the first tick, {@code dnsLeave} on and off, open side by side; each round measures each of them
 * for a window, idle and then under the light load, the order swapped every round so that a drift of the machine
 * falls on both. Each round gives the ratio of the evictor thread's CPU, on / off; the report is the median ratio
 * with a 95% bootstrap interval, and the lookups per second of each pool (the {@code poolgoaway.dns.lookups}
 * meter). It goes to {@code evictor-dns-ab.md}.
 */
public final class EvictorCost {

    private static final String EVICTOR_THREAD = "poolgoaway-evictor-";
    private static final String LOAD_THREAD = "bench-load";
    /** A newly started pool is left alone this long before measuring: the last connections' handshakes, JIT. */
    private static final Duration SETTLE = Duration.ofSeconds(3);
    /** The JVM's warm-up: both kinds of pool, loaded, unmeasured, so that the first measured case is not the JIT's. */
    private static final Duration WARM_UP = Duration.ofSeconds(3);

    private final ThreadMXBean threads = ManagementFactory.getThreadMXBean();
    private final OperatingSystemMXBean os = ManagementFactory.getPlatformMXBean(OperatingSystemMXBean.class);
    private final EmbeddedUpstream pg;
    private final int rate;

    private EvictorCost(EmbeddedUpstream pg, int rate) {
        this.pg = pg;
        this.rate = rate;
    }

    /** One measured window. {@code tick} is null for the pool without pool-goaway. */
    private record Row(int size, String load, Duration tick, boolean dns, long evictorNanos, long hikariNanos,
            long processNanos, long queries, long lookups, Duration window) {

        double evictorMillisPerSecond() {
            return evictorNanos / 1e6 / (window.toNanos() / 1e9);
        }

        double lookupsPerSecond() {
            return lookups / (window.toNanos() / 1e9);
        }
    }

    /**
     * @param args {@code key=value} pairs, see the class comment
     * @throws Exception if the server or a pool cannot start, or the report cannot be written
     */
    public static void main(String[] args) throws Exception {
        Map<String, String> opts = new HashMap<>();
        for (String a : args) {
            int eq = a.indexOf('=');
            if (eq < 0) {
                throw new IllegalArgumentException("expected key=value, got " + a);
            }
            opts.put(a.substring(0, eq), a.substring(eq + 1));
        }
        Duration window = Duration.ofSeconds(Long.parseLong(opts.getOrDefault("window", "10")));
        int[] sizes = ints(opts.getOrDefault("sizes", "20,200"));
        int[] ticks = ints(opts.getOrDefault("ticks", "250,100"));
        int rate = Integer.parseInt(opts.getOrDefault("rate", "200"));
        int rounds = Integer.parseInt(opts.getOrDefault("rounds", "0"));
        int maxSize = Arrays.stream(sizes).max().orElse(0);
        ThreadMXBean threads = ManagementFactory.getThreadMXBean();
        if (!threads.isThreadCpuTimeSupported()) {
            throw new IllegalStateException("this JVM cannot measure thread CPU time");
        }
        threads.setThreadCpuTimeEnabled(true);

        List<Row> rows = new ArrayList<>();
        Path out = Path.of(System.getProperty("bench.out", "target/bench"));
        Files.createDirectories(out);
        if (rounds > 0) {
            // Two pools side by side, and head room for the server's own connections.
            try (EmbeddedUpstream pg = EmbeddedUpstream.start(Map.of("max_connections",
                    String.valueOf(2 * maxSize + 20)))) {
                String table = new EvictorCost(pg, rate).dnsAb(maxSize, Duration.ofMillis(ticks[0]), window, rounds);
                Files.writeString(out.resolve("evictor-dns-ab.md"), table);
                System.out.println();
                System.out.println(table);
                System.out.println("written to " + out.toAbsolutePath());
            }
            return;
        }
        // Pools run one at a time, each closed before the next: head room for the server's own connections.
        try (EmbeddedUpstream pg = EmbeddedUpstream.start(Map.of("max_connections", String.valueOf(maxSize + 20)))) {
            EvictorCost bench = new EvictorCost(pg, rate);
            bench.measure("warm-up", sizes[0], null, WARM_UP);
            bench.measure("warm-up", sizes[0], Duration.ofMillis(ticks[0]), WARM_UP);
            for (int size : sizes) {
                rows.addAll(bench.measure("bench", size, null, window));
                for (int tick : ticks) {
                    // The default (the DNS leave-signal on: the server is named localhost) beside it turned off.
                    rows.addAll(bench.measure("bench", size, Duration.ofMillis(tick), window));
                    rows.addAll(bench.measure("bench-nodns", size, Duration.ofMillis(tick), window));
                }
            }
        }
        String table = table(rows, rate);
        Files.writeString(out.resolve("evictor-cost.md"), table);
        System.out.println();
        System.out.println(table);
        System.out.println("written to " + out.toAbsolutePath());
    }

    /** Starts one pool, lets it settle, measures it idle and then under the light load. */
    private List<Row> measure(String label, int size, Duration tick, Duration window) throws Exception {
        String name = label + "-" + size + "-" + (tick == null ? "without" : "tick" + tick.toMillis());
        HikariConfig config = config(name, size);
        boolean dns = !label.endsWith("-nodns");
        GoAwayEvictor evictor = tick == null ? null
                : PoolGoAway.install(config, EvictorSettings.builder().tick(tick).dnsLeave(dns).build());
        try (HikariDataSource ds = new HikariDataSource(config)) {
            waitForFullPool(ds, size);
            if (evictor != null && !evictor.running()) {
                throw new IllegalStateException(name + ": the evictor is not running");
            }
            Thread.sleep(SETTLE.toMillis());
            return List.of(window(size, "idle", tick, dns, name, window, 0, () -> 0L, () -> 0L),
                    loaded(ds, size, tick, dns, window, () -> 0L));
        }
    }

    private HikariConfig config(String name, int size) {
        HikariConfig config = new HikariConfig();
        config.setPoolName(name);
        config.setJdbcUrl(pg.jdbcUrl());
        config.setUsername(pg.user());
        config.setPassword(pg.password());
        config.setMaximumPoolSize(size);
        config.setMinimumIdle(size);
        return config;
    }

    /** One window under the light load, on one thread of its own. */
    private Row loaded(HikariDataSource ds, int size, Duration tick, boolean dns, Duration window,
            LongSupplier lookups) throws InterruptedException {
        AtomicLong queries = new AtomicLong();
        ScheduledExecutorService load = Executors.newSingleThreadScheduledExecutor(r -> new Thread(r, LOAD_THREAD));
        try {
            load.scheduleAtFixedRate(() -> query(ds, queries), 0, 1_000_000 / rate, TimeUnit.MICROSECONDS);
            return window(size, "light", tick, dns, ds.getPoolName(), window, rate, queries::get, lookups);
        } finally {
            load.shutdownNow();
            load.awaitTermination(10, TimeUnit.SECONDS);
        }
    }

    /**
     * The DNS leave-signal's A/B: two pools side by side, on and off, measured in turn, the order swapped every
     * round.
     */
    private String dnsAb(int size, Duration tick, Duration window, int rounds) throws Exception {
        SimpleMeterRegistry meters = new SimpleMeterRegistry();
        Map<Boolean, HikariDataSource> pools = new HashMap<>();
        try {
            for (boolean dns : new boolean[] {true, false}) {
                HikariConfig config = config("ab-dns-" + (dns ? "on" : "off") + "-" + size, size);
                GoAwayMetrics.bind(PoolGoAway.install(config,
                        EvictorSettings.builder().tick(tick).dnsLeave(dns).build()), meters);
                pools.put(dns, new HikariDataSource(config));
            }
            for (HikariDataSource ds : pools.values()) {
                waitForFullPool(ds, size);
            }
            Thread.sleep(SETTLE.toMillis());
            List<Row[]> measured = new ArrayList<>();
            for (int round = 0; round < rounds; round++) {
                boolean[] order = round % 2 == 0 ? new boolean[] {true, false} : new boolean[] {false, true};
                for (String load : List.of("idle", "light")) {
                    Row[] pair = new Row[2];
                    for (boolean dns : order) {
                        HikariDataSource ds = pools.get(dns);
                        LongSupplier lookups = () -> (long) meters.find(GoAwayMetrics.DNS_LOOKUPS)
                                .tag("pool", ds.getPoolName()).functionCounters().stream()
                                .mapToDouble(FunctionCounter::count).sum();
                        pair[dns ? 0 : 1] = load.equals("idle")
                                ? window(size, load, tick, dns, ds.getPoolName(), window, 0, () -> 0L, lookups)
                                : loaded(ds, size, tick, dns, window, lookups);
                    }
                    measured.add(pair);
                }
                System.out.printf(Locale.ROOT, "round %d of %d done%n", round + 1, rounds);
            }
            return abTable(measured, size, tick, window, rounds);
        } finally {
            pools.values().forEach(HikariDataSource::close);
        }
    }

    private String abTable(List<Row[]> measured, int size, Duration tick, Duration window, int rounds) {
        StringBuilder sb = new StringBuilder(String.format(Locale.ROOT, "%d connections per pool, tick %d ms, %d "
                + "rounds of %d s windows, each pool measured in turn (on first in odd rounds, off first in even "
                + "ones)%n%n", size, tick.toMillis(), rounds, window.toSeconds()));
        sb.append("| load | evictor CPU, dnsLeave on (median, ms/s) | off (median, ms/s) | ratio on/off, median "
                + "[95% CI] | rounds' ratios | lookups/s per pool, on | off |\n|---|---|---|---|---|---|---|\n");
        for (String load : List.of("idle", "light")) {
            List<Row[]> pairs = measured.stream().filter(p -> p[0].load().equals(load)).toList();
            double[] on = pairs.stream().mapToDouble(p -> p[0].evictorMillisPerSecond()).toArray();
            double[] off = pairs.stream().mapToDouble(p -> p[1].evictorMillisPerSecond()).toArray();
            double[] ratios = pairs.stream()
                    .mapToDouble(p -> p[0].evictorMillisPerSecond() / p[1].evictorMillisPerSecond()).toArray();
            AbStats.Interval ci = AbStats.bootstrapMedian(ratios, 10_000, 1, 0.95);
            sb.append(String.format(Locale.ROOT, "| %s | %.3f (%.2f%% of a core) | %.3f | %.2f [%.2f, %.2f] | %s | "
                    + "%.2f | %.2f |%n", load.equals("idle") ? "idle" : "light (" + rate + " q/s)", AbStats.median(on),
                    AbStats.median(on) / 10, AbStats.median(off), AbStats.median(ratios), ci.low(), ci.high(),
                    Arrays.stream(ratios).mapToObj(r -> String.format(Locale.ROOT, "%.2f", r))
                            .reduce((a, b) -> a + ", " + b).orElse(""),
                    AbStats.median(pairs.stream().mapToDouble(p -> p[0].lookupsPerSecond()).toArray()),
                    AbStats.median(pairs.stream().mapToDouble(p -> p[1].lookupsPerSecond()).toArray())));
        }
        sb.append(String.format(Locale.ROOT, "%nThe server is named localhost: each pool has one host, looked up "
                + "once per dnsLeaveInterval (1 s) through the JVM's DNS cache. Light load: one thread per measured "
                + "pool, %d queries/s.%n", rate));
        return sb.toString();
    }

    private static void query(HikariDataSource ds, AtomicLong queries) {
        try (Connection c = ds.getConnection(); Statement s = c.createStatement();
                ResultSet rs = s.executeQuery("select 1")) {
            rs.next();
            queries.incrementAndGet();
        } catch (SQLException e) {
            // The executor stops the load here; the window's query count then falls short and fails the run.
            System.err.println("load query failed: " + e);
            throw new IllegalStateException("load query failed", e);
        }
    }

    /** The window: CPU of every thread of interest and of the process, before and after. */
    private Row window(int size, String load, Duration tick, boolean dns, String pool, Duration window,
            int expectedRate, LongSupplier queries, LongSupplier lookups) throws InterruptedException {
        Map<Long, ThreadInfo> before = threadsNamed(pool);
        Map<Long, Long> cpuBefore = cpu(before.keySet());
        long processBefore = os.getProcessCpuTime();
        long queriesBefore = queries.getAsLong();
        long lookupsBefore = lookups.getAsLong();
        long start = System.nanoTime();
        Thread.sleep(window.toMillis());
        long elapsed = System.nanoTime() - start;
        long processNanos = os.getProcessCpuTime() - processBefore;
        long done = queries.getAsLong() - queriesBefore;
        long looked = lookups.getAsLong() - lookupsBefore;
        Map<Long, Long> cpuAfter = cpu(before.keySet());
        String hikariPrefix = pool + ":";
        long evictor = delta(before, cpuBefore, cpuAfter, n -> n.startsWith(EVICTOR_THREAD));
        long hikari = delta(before, cpuBefore, cpuAfter, n -> n.startsWith(hikariPrefix));
        if (expectedRate > 0 && done < expectedRate * window.toSeconds() / 2) {
            throw new IllegalStateException(pool + ": the load ran " + done + " queries, not about "
                    + expectedRate * window.toSeconds());
        }
        Row row = new Row(size, load, tick, dns, evictor, hikari, processNanos, done, looked,
                Duration.ofNanos(elapsed));
        System.out.printf(Locale.ROOT, "%s %s: evictor %.1f ms, hikari %.1f ms, process %.1f ms CPU in %.1f s%n",
                pool, load, evictor / 1e6, hikari / 1e6, processNanos / 1e6, elapsed / 1e9);
        return row;
    }

    /**
     * The threads to watch, by id: the evictor's and the pool's own (named after it). Hikari's adder and closer
     * threads come and go; one that starts inside a window is not counted (a full, quiet pool starts none).
     */
    private Map<Long, ThreadInfo> threadsNamed(String pool) {
        Map<Long, ThreadInfo> found = new HashMap<>();
        for (ThreadInfo info : threads.getThreadInfo(threads.getAllThreadIds())) {
            if (info != null) {
                String n = info.getThreadName();
                if (n.equals(EVICTOR_THREAD + pool) || n.startsWith(pool + ":")) {
                    found.put(info.getThreadId(), info);
                }
            }
        }
        return found;
    }

    private Map<Long, Long> cpu(Iterable<Long> ids) {
        Map<Long, Long> cpu = new HashMap<>();
        for (long id : ids) {
            cpu.put(id, threads.getThreadCpuTime(id));
        }
        return cpu;
    }

    /** A thread that ended inside the window reports -1 at the end: its CPU up to then is lost, counted as none. */
    private static long delta(Map<Long, ThreadInfo> infos, Map<Long, Long> before, Map<Long, Long> after,
            Predicate<String> name) {
        long sum = 0;
        for (Map.Entry<Long, ThreadInfo> e : infos.entrySet()) {
            long b = before.get(e.getKey());
            long a = after.get(e.getKey());
            if (name.test(e.getValue().getThreadName()) && b >= 0 && a >= 0) {
                sum += a - b;
            }
        }
        return sum;
    }

    private static void waitForFullPool(HikariDataSource ds, int size) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (ds.getHikariPoolMXBean().getTotalConnections() < size) {
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(ds.getPoolName() + " did not reach " + size + " connections: "
                        + ds.getHikariPoolMXBean().getTotalConnections());
            }
            Thread.sleep(50);
        }
    }

    private static String table(List<Row> rows, int rate) {
        StringBuilder sb = new StringBuilder();
        sb.append("| connections | load | pool | evictor CPU, µs/tick | evictor CPU, ms/s (% of a core) | "
                + "HikariCP threads, ms/s | process CPU, ms/s | process Δ vs without, ms/s |\n");
        sb.append("|---|---|---|---|---|---|---|---|\n");
        Map<String, Row> baselines = new HashMap<>();
        for (Row r : rows) {
            double seconds = r.window.toNanos() / 1e9;
            double processPerSecond = r.processNanos / 1e6 / seconds;
            String key = r.size + r.load;
            if (r.tick == null) {
                baselines.put(key, r);
            }
            Row base = baselines.get(key);
            String evictorPerTick = "-";
            String evictorPerSecond = "-";
            String delta = "-";
            if (r.tick != null) {
                double ticks = r.window.toNanos() / (double) r.tick.toNanos();
                evictorPerTick = String.format(Locale.ROOT, "%.1f", r.evictorNanos / 1e3 / ticks);
                double ms = r.evictorNanos / 1e6 / seconds;
                evictorPerSecond = String.format(Locale.ROOT, "%.3f (%.2f%%)", ms, ms / 10);
                if (base != null) {
                    delta = String.format(Locale.ROOT, "%+.1f",
                            processPerSecond - base.processNanos / 1e6 / (base.window.toNanos() / 1e9));
                }
            }
            sb.append(String.format(Locale.ROOT, "| %d | %s | %s | %s | %s | %.3f | %.1f | %s |%n", r.size,
                    "idle".equals(r.load) ? "idle" : r.load + " (" + Math.round(r.queries / seconds) + " q/s)",
                    r.tick == null ? "without pool-goaway" : "pool-goaway, tick " + r.tick.toMillis() + " ms"
                            + (r.dns ? "" : ", dnsLeave off"),
                    evictorPerTick, evictorPerSecond, r.hikariNanos / 1e6 / seconds, processPerSecond, delta));
        }
        sb.append(String.format(Locale.ROOT, "%nLight load: one thread, %d queries/s (`select 1`, borrow and "
                + "return). Ticks are nominal (window / tick). With dnsLeave on (the default), one lookup of the "
                + "pool's one host a second (dnsLeaveInterval), answered by the JVM's DNS cache.%n", rate));
        return sb.toString();
    }

    private static int[] ints(String csv) {
        return Arrays.stream(csv.split(",")).map(String::trim).mapToInt(Integer::parseInt).toArray();
    }
}
