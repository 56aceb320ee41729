package dev.poolgoaway.testkit.drill;

import java.time.Duration;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;

/**
 * What a {@link SwitchoverDrill} saw.
 *
 * @param label              the drill's label
 * @param switchover         how the old server went away
 * @param oldServer          the old server, host:port
 * @param newServer          the new server, host:port
 * @param before             how long the load ran before the switchover
 * @param observed           from the switchover until drained, or the whole observation window if not drained
 * @param oldAtSwitchover    connections open to the old server at the switchover
 * @param drainTime          from the switchover (GoAway) to the close of the last of those; empty if not drained
 * @param stillOnOld         connections still open to the old server when the drill stopped watching
 * @param projectedWait      with connections left: when {@code maxLifetime} rotation alone would retire the last
 * @param peakNewConnectionsPerSecond the most connections the new server received within one second
 * @param phases             what the application saw, by phase
 * @param timeline           connections per server and requests over time
 * @param errors             the first failures, with time and phase
 * @param note               anything that did not go as planned in the switchover itself; empty if nothing
 */
public record DrillResult(String label, Switchover switchover, String oldServer, String newServer, Duration before,
        Duration observed, int oldAtSwitchover, Optional<Duration> drainTime, int stillOnOld,
        Optional<Duration> projectedWait, int peakNewConnectionsPerSecond, Map<Phase, PhaseStats> phases,
        List<TimelinePoint> timeline, List<String> errors, String note) {

    /** @return true if every connection left the old server within the observation window */
    public boolean drained() {
        return drainTime.isPresent();
    }

    /** @return requests that failed, in all phases */
    public int failedRequests() {
        return phases.values().stream().mapToInt(PhaseStats::failed).sum();
    }

    /**
     * @return the fewest connections open beyond what the load held (open to either server, less in use and
     *         waiting), over the timeline's samples from the switchover to the end of the drain: below 0, borrowers
     *         waited for a connection the pool did not have; empty if no sample fell in the drain
     */
    public OptionalInt fewestSpareDuringDrain() {
        return duringDrain().mapToInt(p -> p.onOld() + p.onNew() - p.inUse() - p.waiting()).min();
    }

    /** @return the most requests waiting in {@code getConnection()} in one sample during the drain (0 if none) */
    public int mostWaitingDuringDrain() {
        return duringDrain().mapToInt(TimelinePoint::waiting).max().orElse(0);
    }

    private java.util.stream.Stream<TimelinePoint> duringDrain() {
        long from = before.toMillis();
        long to = from + observed.toMillis();
        return timeline.stream().filter(p -> p.millis() >= from && p.millis() <= to);
    }

    /** @return requests issued, in all phases */
    public int requests() {
        return phases.values().stream().mapToInt(PhaseStats::requests).sum();
    }

    /** @return the report, as printed at the end of a drill */
    public String report() {
        StringBuilder out = new StringBuilder();
        out.append(String.format(Locale.ROOT, "Switchover drill \"%s\": %s shutdown of %s, new connections to %s%n",
                label, switchover.name().toLowerCase(Locale.ROOT), oldServer, newServer));
        if (drained()) {
            out.append(String.format(Locale.ROOT,
                    "  drain time (switchover -> last old connection closed): %s for %d connections%n",
                    millis(drainTime.get()), oldAtSwitchover));
        } else {
            out.append(String.format(Locale.ROOT, "  NOT drained: after %s, %d of %d connections still on %s%n",
                    seconds(observed), stillOnOld, oldAtSwitchover, oldServer));
            projectedWait.ifPresent(wait -> out.append(String.format(Locale.ROOT,
                    "  projected wait for maxLifetime rotation to free it: %s more%n", minutes(wait))));
        }
        out.append(String.format(Locale.ROOT, "  requests: %,d, failed: %,d%n", requests(), failedRequests()));
        out.append(String.format(Locale.ROOT, "  peak new connections at %s: %d within one second%n", newServer,
                peakNewConnectionsPerSecond));
        fewestSpareDuringDrain().ifPresent(spare -> out.append(String.format(Locale.ROOT,
                "  during the drain: at least %d connection%s open beyond the load's, at most %d borrower%s waiting "
                        + "(timeline samples)%n", spare, spare == 1 ? "" : "s", mostWaitingDuringDrain(),
                mostWaitingDuringDrain() == 1 ? "" : "s")));
        if (!note.isEmpty()) {
            out.append("  note: ").append(note).append(System.lineSeparator());
        }
        out.append(String.format(Locale.ROOT, "  %-7s %9s %7s %24s %24s%n", "phase", "requests", "failed",
                "getConnection p50 / p99", "query p50 / p99"));
        for (Map.Entry<Phase, PhaseStats> e : phases.entrySet()) {
            PhaseStats s = e.getValue();
            if (s.requests() == 0) {
                continue;
            }
            out.append(String.format(Locale.ROOT, "  %-7s %,9d %,7d %24s %24s%n",
                    e.getKey().name().toLowerCase(Locale.ROOT), s.requests(), s.failed(), pair(s.getConnection()),
                    pair(s.query())));
        }
        for (String error : errors) {
            out.append("  failure: ").append(error).append(System.lineSeparator());
        }
        return out.toString();
    }

    /**
     * @return the timeline as CSV: millis, connections on the old and new server, requests ok and failed, the load's
     *         connections in use and its requests waiting
     */
    public String timelineCsv() {
        StringBuilder csv = new StringBuilder("millis,on_old,on_new,succeeded,failed,in_use,waiting\n");
        for (TimelinePoint p : timeline) {
            csv.append(p.millis()).append(',').append(p.onOld()).append(',').append(p.onNew()).append(',')
                    .append(p.succeeded()).append(',').append(p.failed()).append(',').append(p.inUse()).append(',')
                    .append(p.waiting()).append('\n');
        }
        return csv.toString();
    }

    /**
     * Several drills side by side, as a Markdown table: the comparison a benchmark or a drill ends with.
     *
     * @param results the drills, in the order to show them
     * @return the table
     */
    public static String comparison(List<DrillResult> results) {
        StringBuilder out = new StringBuilder(
                "| drill | drain time | failed requests | left on old server | getConnection p50 / p99 before "
                        + "| during | after | peak new conn/s |\n|---|---|---|---|---|---|---|---|\n");
        for (DrillResult r : results) {
            String drain = r.drainTime().map(DrillResult::millis).orElse("not drained in " + seconds(r.observed())
                    + r.projectedWait().map(w -> " (maxLifetime: " + minutes(w) + " more)").orElse(""));
            out.append(String.format(Locale.ROOT, "| %s | %s | %,d of %,d | %d of %d | %s | %s | %s | %d |%n",
                    r.label(), drain, r.failedRequests(), r.requests(), r.stillOnOld(), r.oldAtSwitchover(),
                    pair(r.phases().get(Phase.BEFORE).getConnection()),
                    pair(r.phases().get(Phase.DURING).getConnection()),
                    pair(r.phases().get(Phase.AFTER).getConnection()), r.peakNewConnectionsPerSecond()));
        }
        return out.toString();
    }

    private static String pair(Latency latency) {
        return latency.count() == 0 ? "-" : millis(latency.p50()) + " / " + millis(latency.p99());
    }

    private static String millis(Duration d) {
        double ms = d.toNanos() / 1e6;
        return String.format(Locale.ROOT, ms < 10 ? "%.2f ms" : "%.1f ms", ms);
    }

    private static String seconds(Duration d) {
        return String.format(Locale.ROOT, "%.1f s", d.toMillis() / 1e3);
    }

    private static String minutes(Duration d) {
        return String.format(Locale.ROOT, "%d min %02d s", d.toMinutes(), d.toSecondsPart());
    }
}
