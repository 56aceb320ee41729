package dev.poolgoaway.hikari;

import java.time.Duration;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.ToDoubleFunction;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;

import dev.poolgoaway.wire.PgGoAway;

/**
 * Micrometer meters for one pool's evictor, tagged {@code pool=<pool name>} like HikariCP's own
 * {@code hikaricp.connections.*} meters, so dashboards can join them (see {@code docs/metrics.md}).
 *
 * <ul>
 *   <li>{@value #SIGNALS} (counter, tag {@code kind}: each {@link SignalKind}'s tag, such as goaway,
 *       dns_moved, goaway_deferred, server_closed): connections found asked to leave or ended;</li>
 *   <li>{@value #EVICTIONS} (counter, tag {@code state}: idle, in_use): such connections closed;</li>
 *   <li>{@value #FLAGGED} (gauge): asked to leave and still open;</li>
 *   <li>{@value #SIGNAL_TO_CLOSE} (timer): from the server's signal to the connection's close;</li>
 *   <li>{@value #DRAIN_EPISODES} (counter): drains begun;</li>
 *   <li>{@value #REPLACEMENTS} (counter, tag {@code result}: made, failed): replacements for connections let go
 *       during a drain; failed ones (could not connect, or asked to leave too) stall the drain;</li>
 *   <li>{@value #PEERS_REFUSING} (gauge): servers this process remembers as failing on the raised startup request
 *       ({@link PgGoAway#serversRefusingGoAway()}): connections to them use pgjdbc's own request and cannot hear
 *       GoAway. One count for the whole process, shown under every pool's tag: aggregate with max, not sum.</li>
 *   <li>{@value #DNS_LOOKUPS} (counter, tag {@code result}: ok, failed): lookups of the pool's host names by the
 *       DNS leave-signal (most answered by the JVM's DNS cache); a failed one (no answer, or no address) drains
 *       nothing.</li>
 * </ul>
 *
 * <p>Every counter is registered at 0 for each of its tags when the pool starts, so the first drain shows on a
 * rate panel. The meters go when the pool shuts down (or the evictor is closed), as HikariCP's own do.
 */
public final class GoAwayMetrics {

    /** Counter of signals by kind. */
    public static final String SIGNALS = "poolgoaway.signals";
    /** Counter of evictions by state. */
    public static final String EVICTIONS = "poolgoaway.evictions";
    /** Gauge of connections asked to leave and still open. */
    public static final String FLAGGED = "poolgoaway.connections.flagged";
    /** Timer from signal to close. */
    public static final String SIGNAL_TO_CLOSE = "poolgoaway.signal.to.close";
    /** Counter of drain episodes. */
    public static final String DRAIN_EPISODES = "poolgoaway.drain.episodes";

    /** Counter of replacements by result. */
    public static final String REPLACEMENTS = "poolgoaway.replacements";
    /** Gauge of the servers the process remembers as failing on the raised startup request. */
    public static final String PEERS_REFUSING = "poolgoaway.peers.refusing";
    /** Counter of the DNS leave-signal's lookups by result. */
    public static final String DNS_LOOKUPS = "poolgoaway.dns.lookups";

    private GoAwayMetrics() {
    }

    /**
     * Binds an evictor's meters to a registry, tagged with the pool's name (known once the pool starts: the
     * meters appear then). Call once per evictor.
     *
     * @param evictor  the evictor
     * @param registry where the meters go
     */
    public static void bind(GoAwayEvictor evictor, MeterRegistry registry) {
        evictor.onAttach(poolName -> bind(evictor, poolName, registry));
    }

    private static Counter replacements(String poolName, String result, MeterRegistry registry) {
        return Counter.builder(REPLACEMENTS).tag("pool", poolName).tag("result", result)
                .description("Replacements for connections let go during a drain, by result").register(registry);
    }

    private static FunctionCounter dnsLookups(GoAwayEvictor evictor, String poolName, String result,
            ToDoubleFunction<GoAwayEvictor> count, MeterRegistry registry) {
        return FunctionCounter.builder(DNS_LOOKUPS, evictor, count).tag("pool", poolName).tag("result", result)
                .description("DNS lookups of the pool's host names, by result").register(registry);
    }

    private static void bind(GoAwayEvictor evictor, String poolName, MeterRegistry registry) {
        // Every meter of this pool, to remove when the evictor stops: Micrometer hands an existing meter back, so a
        // pool started again under the same name would otherwise get the dead evictor's gauge.
        List<Meter> meters = new CopyOnWriteArrayList<>();
        meters.add(Gauge.builder(FLAGGED, evictor, GoAwayEvictor::flaggedConnections).tag("pool", poolName)
                .description("Connections the server asked to leave that are still open").register(registry));
        meters.add(Gauge.builder(PEERS_REFUSING, PgGoAway::serversRefusingGoAway).tag("pool", poolName)
                .description("Servers this process remembers as failing on the raised startup request (no GoAway "
                        + "from them); the same count under every pool").register(registry));
        Timer signalToClose = Timer.builder(SIGNAL_TO_CLOSE).tag("pool", poolName)
                .description("Time from the server's signal to the connection's close").register(registry);
        Counter episodes = Counter.builder(DRAIN_EPISODES).tag("pool", poolName)
                .description("Drains begun").register(registry);
        meters.add(signalToClose);
        meters.add(episodes);
        // Every counter registered at 0 for its known tags now, not at its first increment: a rate panel then sees
        // a process's first drain (Micrometer's convention for known tag values).
        Map<SignalKind, Counter> signals = new EnumMap<>(SignalKind.class);
        for (SignalKind kind : SignalKind.values()) {
            signals.put(kind, Counter.builder(SIGNALS).tag("pool", poolName).tag("kind", kind.tag())
                    .description("Connections the server asked to leave, or ended").register(registry));
        }
        Map<EvictionState, Counter> evictions = new EnumMap<>(EvictionState.class);
        for (EvictionState state : EvictionState.values()) {
            evictions.put(state, Counter.builder(EVICTIONS).tag("pool", poolName).tag("state", state.tag())
                    .description("Connections closed because the server asked them to leave").register(registry));
        }
        Counter made = replacements(poolName, "made", registry);
        Counter failed = replacements(poolName, "failed", registry);
        meters.addAll(signals.values());
        meters.addAll(evictions.values());
        meters.add(made);
        meters.add(failed);
        meters.add(dnsLookups(evictor, poolName, "ok", GoAwayEvictor::dnsLookupsAnswered, registry));
        meters.add(dnsLookups(evictor, poolName, "failed", GoAwayEvictor::dnsLookupFailures, registry));
        evictor.events(new EvictorEvents() {
            /**
             * Set once the evictor stopped and its meters were removed. A run of the loop that was under way when
             * the pool shut down (a socket's close wakes it) may still report: it must not count into a removed
             * meter that a pool started again under the same name would not see.
             */
            private boolean stopped;

            @Override
            public void signal(SignalKind kind) {
                count(signals.get(kind));
            }

            @Override
            public void evicted(EvictionState state) {
                count(evictions.get(state));
            }

            @Override
            public void replacement(boolean wasMade) {
                count(wasMade ? made : failed);
            }

            private synchronized void count(Counter counter) {
                if (!stopped) {
                    counter.increment();
                }
            }

            @Override
            public void closed(Duration time) {
                signalToClose.record(time.isNegative() ? Duration.ZERO : time);
            }

            @Override
            public void episode() {
                episodes.increment();
            }

            @Override
            public synchronized void stopped() {
                stopped = true;
                meters.forEach(registry::remove);
                meters.clear();
            }
        });
    }
}
