package dev.poolgoaway.benchmarks;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.OptionalLong;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.infra.BenchmarkParams;
import org.openjdk.jmh.results.Result;
import org.openjdk.jmh.results.RunResult;
import org.openjdk.jmh.results.format.ResultFormatType;
import org.openjdk.jmh.runner.Runner;
import org.openjdk.jmh.runner.options.CommandLineOptionException;
import org.openjdk.jmh.runner.options.CommandLineOptions;
import org.openjdk.jmh.runner.options.Options;
import org.openjdk.jmh.runner.options.OptionsBuilder;

/**
 * Runs JMH (same arguments as {@code org.openjdk.jmh.Main}) and prints, for every benchmark measured with the
 * {@code layer} parameter both {@code off} and {@code on}, the ratio of their throughputs with bounds, so that the
 * figures in {@code docs/performance.md} come from one run. It writes JMH's JSON and the table as Markdown into the
 * directory named by the system property {@code bench.out} (default {@code target/bench}).
 *
 * <p>The ratio is always "throughput on / throughput off": 1.00 costs nothing, 0.97 is 3% slower. For the
 * benchmarks timed shot by shot it is {@code time off / time on}. Its bounds combine the two 99.9% confidence
 * intervals JMH reports, pessimistically: {@code [on.low / off.high, on.high / off.low]}. A target counts as met
 * only when the whole interval clears it.
 */
public final class WireLayerReport {

    /** The targets the ratios are held to (docs/performance.md); the rest are bulk benchmarks. */
    private static final double SIMPLE_QUERY_TARGET = 0.98;
    private static final double BULK_TARGET = 0.97;

    private WireLayerReport() {
    }

    /**
     * @param args JMH's command line, e.g. {@code WireLayer -prof gc}
     * @throws Exception if JMH cannot run, or the report cannot be written
     */
    public static void main(String[] args) throws Exception {
        CommandLineOptions cli;
        try {
            cli = new CommandLineOptions(args);
        } catch (CommandLineOptionException e) {
            System.err.println("bad JMH arguments: " + e.getMessage());
            System.exit(1);
            return;
        }
        if (cli.shouldHelp() || cli.shouldList() || cli.shouldListWithParams() || cli.shouldListProfilers()
                || cli.shouldListResultFormats()) {
            org.openjdk.jmh.Main.main(args);
            return;
        }
        Path out = Path.of(System.getProperty("bench.out", "target/bench"));
        Files.createDirectories(out);
        Options options = new OptionsBuilder().parent(cli)
                .resultFormat(ResultFormatType.JSON)
                .result(out.resolve("wire-layer.json").toString())
                .build();
        String table = table(new Runner(options).run());
        Files.writeString(out.resolve("wire-layer.md"), table);
        System.out.println();
        System.out.println(table);
        System.out.println("written to " + out.toAbsolutePath());
    }

    /** One row: a benchmark and its parameters but {@code layer}, with both sides. */
    private record Pair(String benchmark, String params, RunResult off, RunResult on) {
    }

    private static String table(Collection<RunResult> results) {
        Map<String, RunResult[]> byCase = new TreeMap<>();
        for (RunResult r : results) {
            BenchmarkParams p = r.getParams();
            String layer = p.getParam("layer");
            if (layer == null) {
                continue;
            }
            RunResult[] sides = byCase.computeIfAbsent(key(p), k -> new RunResult[2]);
            sides["on".equals(layer) ? 1 : 0] = r;
        }
        List<Pair> pairs = new ArrayList<>();
        byCase.forEach((k, sides) -> {
            if (sides[0] != null && sides[1] != null) {
                BenchmarkParams p = sides[0].getParams();
                pairs.add(new Pair(method(p), otherParams(p), sides[0], sides[1]));
            }
        });
        StringBuilder sb = new StringBuilder();
        sb.append("| benchmark | params | off | on | on / off | bounds (99.9%) | target | alloc off, B/op | "
                + "alloc on, B/op |\n");
        sb.append("|---|---|---|---|---|---|---|---|---|\n");
        for (Pair pair : pairs) {
            Result<?> off = pair.off.getPrimaryResult();
            Result<?> on = pair.on.getPrimaryResult();
            BenchmarkParams params = pair.off.getParams();
            boolean timed = params.getMode() != Mode.Throughput;
            TimeUnit unit = params.getTimeUnit();
            double ratio = timed ? off.getScore() / on.getScore() : on.getScore() / off.getScore();
            double[] offCi = off.getScoreConfidence();
            double[] onCi = on.getScoreConfidence();
            double low = timed ? offCi[0] / onCi[1] : onCi[0] / offCi[1];
            double high = timed ? offCi[1] / onCi[0] : onCi[1] / offCi[0];
            double target = "simpleQuery".equals(pair.benchmark) ? SIMPLE_QUERY_TARGET : BULK_TARGET;
            sb.append(String.format(Locale.ROOT, "| `%s` | %s | %s | %s | %.3f | %s | ≥ %.2f %s | %s | %s |%n",
                    pair.benchmark, pair.params, score(pair.benchmark, off, unit), score(pair.benchmark, on, unit),
                    ratio, bounds(low, high), target,
                    AbStats.Verdict.of(new AbStats.Interval(low, high), target).label(), alloc(pair.off),
                    alloc(pair.on)));
        }
        sb.append("\nMeasurement iterations a side: ").append(pairs.stream()
                .map(p -> p.benchmark + " " + p.off.getPrimaryResult().getStatistics().getN())
                .distinct().collect(Collectors.joining(", "))).append(". MB = 10^6 bytes.\n");
        return sb.toString();
    }

    private static String key(BenchmarkParams p) {
        return p.getBenchmark() + " " + p.getMode() + " " + otherParams(p);
    }

    private static String method(BenchmarkParams p) {
        String b = p.getBenchmark();
        return b.substring(b.lastIndexOf('.') + 1);
    }

    private static String otherParams(BenchmarkParams p) {
        Map<String, String> params = new LinkedHashMap<>();
        for (String k : p.getParamsKeys()) {
            if (!"layer".equals(k)) {
                params.put(k, p.getParam(k));
            }
        }
        return params.isEmpty() ? "-" : params.toString().replaceAll("[{}]", "");
    }

    /** The score as JMH reports it, and for byte-moving benchmarks the MB/s it means. */
    private static String score(String benchmark, Result<?> r, TimeUnit timeUnit) {
        String jmh = String.format(Locale.ROOT, "%,.1f ± %,.1f %s", r.getScore(), r.getScoreError(),
                r.getScoreUnit());
        OptionalLong bytes = WireLayerBenchmark.bytesPerOperation(benchmark);
        if (bytes.isEmpty() || !r.getScoreUnit().endsWith("/op")) {
            return jmh;
        }
        double secondsPerOp = r.getScore() * timeUnit.toNanos(1) / 1e9;
        return String.format(Locale.ROOT, "%,.0f MB/s (%s)", bytes.getAsLong() / secondsPerOp / 1e6, jmh);
    }

    private static String bounds(double low, double high) {
        return Double.isFinite(low) && Double.isFinite(high) && low > 0
                ? String.format(Locale.ROOT, "%.3f – %.3f", low, high)
                : "unbounded (too few samples)";
    }

    private static String alloc(RunResult r) {
        Result<?> norm = r.getSecondaryResults().get("gc.alloc.rate.norm");
        return norm == null ? "- (run with -prof gc)" : String.format(Locale.ROOT, "%,.0f", norm.getScore());
    }
}
