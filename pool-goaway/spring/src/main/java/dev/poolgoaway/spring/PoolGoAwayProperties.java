package dev.poolgoaway.spring;

import java.time.Duration;
import java.util.EnumSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.function.Consumer;

import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.boot.context.properties.source.InvalidConfigurationPropertyValueException;

import dev.poolgoaway.hikari.EvictorSettings;
import dev.poolgoaway.hikari.LeaveSignal;

/**
 * pool-goaway's settings under {@value #PREFIX}: how every PostgreSQL HikariCP pool of the application is drained,
 * and under {@code poolgoaway.pools.<pool>} what differs for one pool (see {@code docs/spring-boot.md}). The
 * defaults are {@link EvictorSettings#defaults()}.
 */
@ConfigurationProperties(PoolGoAwayProperties.PREFIX)
public class PoolGoAwayProperties {

    /** The prefix of every property. */
    public static final String PREFIX = "poolgoaway";

    /**
     * Whether to install pool-goaway into the application's PostgreSQL HikariCP pools.
     */
    private boolean enabled = true;

    /**
     * How often every pooled connection is looked at; a request to leave on an idle connection is seen within one
     * tick. 10ms to 1m.
     */
    private Duration tick = Duration.ofMillis(250);

    /**
     * Connections asked to leave are closed at random moments within this window after the request, so that
     * instances told at once do not open their replacements in step. For a fleet: instances x pool size / the
     * connections per second the new server accepts (see the runbook). 0 (at once) to 10m.
     */
    private Duration drainWindow = Duration.ofMillis(100);

    /**
     * How many connections may be let go ahead of their replacements. 0 (the default): none while the pool may open
     * extra connections (max-extra-connections 1 or more: each goes after its replacement exists), else 1.
     */
    private int maxReplacementsInFlight = 0;

    /**
     * How many connections a drain may open beyond the pool's size (raising maximumPoolSize at run time by as much
     * at most), so that each connection asked to leave goes only after its replacement exists. 0 to 100; 0 lets
     * each go before its replacement. Keep the server's max_connections above the fleet's pool sizes plus
     * instances times this.
     */
    private int maxExtraConnections = 1;

    /**
     * A connection still in use this long after the server asked it to leave is logged at WARN (with the
     * borrower's stack when Hikari's leak detection is on). Unset: no deadline. 1ms to 1d.
     */
    private Duration stragglerDeadline;

    /**
     * Whether to also abort a connection past the straggler deadline (Connection.abort). Needs a straggler
     * deadline.
     */
    private boolean abortStragglers = false;

    /**
     * Which requests to leave are honoured: goaway (the protocol message), disconnect-requested (the
     * ParameterStatus proposal). An end of the connection always is.
     */
    private Set<LeaveSignal> signals = EnumSet.allOf(LeaveSignal.class);

    /**
     * Whether a connection whose host name no longer resolves to its address (the DNS name re-pointed at a
     * switchover) is asked to leave, like a GoAway. Hosts that are IP literals and unix sockets are never looked
     * up.
     */
    private boolean dnsLeave = true;

    /**
     * How often the hosts of the pool's connections are looked up, through the JVM's DNS cache
     * (networkaddress.cache.ttl bounds how soon a move is seen). 100ms to 10m.
     */
    private Duration dnsLeaveInterval = Duration.ofSeconds(1);

    /**
     * How long an address must be absent from every lookup before its connections are asked to leave, so that a
     * name answering with changing subsets of its addresses does not churn the pool. Unset: twice the JVM's DNS
     * cache time. 1s to 1h.
     */
    private Duration dnsLeaveWindow;

    /**
     * Settings of one pool that differ from the ones above, by HikariCP pool name (spring.datasource.hikari.pool-name)
     * or, for a pool without one, data source bean name: poolgoaway.pools.reporting.enabled=false,
     * poolgoaway.pools.reporting.drain-window=5s. Each of the settings above; an unset one is the one above.
     */
    private final Map<String, Pool> pools = new LinkedHashMap<>();

    public boolean isEnabled() {
        return enabled;
    }

    public void setEnabled(boolean enabled) {
        this.enabled = enabled;
    }

    public Duration getTick() {
        return tick;
    }

    public void setTick(Duration tick) {
        this.tick = tick;
    }

    public Duration getDrainWindow() {
        return drainWindow;
    }

    public void setDrainWindow(Duration drainWindow) {
        this.drainWindow = drainWindow;
    }

    public int getMaxReplacementsInFlight() {
        return maxReplacementsInFlight;
    }

    public void setMaxReplacementsInFlight(int maxReplacementsInFlight) {
        this.maxReplacementsInFlight = maxReplacementsInFlight;
    }

    public int getMaxExtraConnections() {
        return maxExtraConnections;
    }

    public void setMaxExtraConnections(int maxExtraConnections) {
        this.maxExtraConnections = maxExtraConnections;
    }

    public Duration getStragglerDeadline() {
        return stragglerDeadline;
    }

    public void setStragglerDeadline(Duration stragglerDeadline) {
        this.stragglerDeadline = stragglerDeadline;
    }

    public boolean isAbortStragglers() {
        return abortStragglers;
    }

    public void setAbortStragglers(boolean abortStragglers) {
        this.abortStragglers = abortStragglers;
    }

    public boolean isDnsLeave() {
        return dnsLeave;
    }

    public void setDnsLeave(boolean dnsLeave) {
        this.dnsLeave = dnsLeave;
    }

    public Duration getDnsLeaveInterval() {
        return dnsLeaveInterval;
    }

    public void setDnsLeaveInterval(Duration dnsLeaveInterval) {
        this.dnsLeaveInterval = dnsLeaveInterval;
    }

    public Duration getDnsLeaveWindow() {
        return dnsLeaveWindow;
    }

    public void setDnsLeaveWindow(Duration dnsLeaveWindow) {
        this.dnsLeaveWindow = dnsLeaveWindow;
    }

    public Set<LeaveSignal> getSignals() {
        return signals;
    }

    public void setSignals(Set<LeaveSignal> signals) {
        this.signals = signals;
    }

    public Map<String, Pool> getPools() {
        return pools;
    }

    /**
     * The settings these properties describe, checked by {@link EvictorSettings.Builder}.
     *
     * @return the settings
     * @throws InvalidConfigurationPropertyValueException naming the property whose value the builder refused
     */
    public EvictorSettings toSettings() {
        EvictorSettings.Builder builder = EvictorSettings.builder().enabled(enabled);
        String at = PREFIX + ".";
        check(at + "tick", tick, builder::tick);
        check(at + "drain-window", drainWindow, builder::drainWindow);
        check(at + "max-replacements-in-flight", maxReplacementsInFlight, builder::maxReplacementsInFlight);
        check(at + "max-extra-connections", maxExtraConnections, builder::maxExtraConnections);
        check(at + "straggler-deadline", stragglerDeadline, builder::stragglerDeadline);
        check(at + "signals", signals, builder::signals);
        check(at + "abort-stragglers", abortStragglers, builder::abortStragglers);
        check(at + "dns-leave", dnsLeave, builder::dnsLeave);
        check(at + "dns-leave-interval", dnsLeaveInterval, builder::dnsLeaveInterval);
        check(at + "dns-leave-window", dnsLeaveWindow, builder::dnsLeaveWindow);
        return build(builder, at, abortStragglers);
    }

    private static EvictorSettings build(EvictorSettings.Builder builder, String at, Object abortStragglers) {
        try {
            return builder.build();
        } catch (IllegalStateException e) {
            throw new InvalidConfigurationPropertyValueException(at + "abort-stragglers", abortStragglers,
                    e.getMessage() + " (set " + at + "straggler-deadline)");
        }
    }

    /**
     * @param key a key of {@code poolgoaway.pools}
     * @return the prefix of that pool's properties, as they are written: {@code poolgoaway.pools.reporting.}, or
     *         {@code poolgoaway.pools.[orders.pool_1].} for a key that needs Boot's brackets
     */
    static String poolPrefix(String key) {
        return PREFIX + ".pools." + (key.matches("[A-Za-z0-9-]+") ? key : "[" + key + "]") + ".";
    }

    private static <T> void check(String property, T value, Consumer<T> setter) {
        try {
            setter.accept(value);
        } catch (IllegalArgumentException e) {
            throw new InvalidConfigurationPropertyValueException(property, value, e.getMessage());
        } catch (NullPointerException e) {
            throw new InvalidConfigurationPropertyValueException(property, value, "a value is required");
        }
    }

    /**
     * One pool's settings under {@code poolgoaway.pools.<pool>}: each one set replaces the application's, each one
     * unset (null) keeps it.
     *
     * @param enabled                 {@code poolgoaway.enabled}, for this pool
     * @param tick                    {@code poolgoaway.tick}, for this pool
     * @param drainWindow             {@code poolgoaway.drain-window}, for this pool
     * @param maxReplacementsInFlight {@code poolgoaway.max-replacements-in-flight}, for this pool
     * @param maxExtraConnections     {@code poolgoaway.max-extra-connections}, for this pool
     * @param stragglerDeadline       {@code poolgoaway.straggler-deadline}, for this pool
     * @param abortStragglers         {@code poolgoaway.abort-stragglers}, for this pool
     * @param signals                 {@code poolgoaway.signals}, for this pool
     * @param dnsLeave                {@code poolgoaway.dns-leave}, for this pool
     * @param dnsLeaveInterval        {@code poolgoaway.dns-leave-interval}, for this pool
     * @param dnsLeaveWindow          {@code poolgoaway.dns-leave-window}, for this pool
     */
    public record Pool(Boolean enabled, Duration tick, Duration drainWindow, Integer maxReplacementsInFlight,
            Integer maxExtraConnections, Duration stragglerDeadline, Boolean abortStragglers, Set<LeaveSignal> signals, Boolean dnsLeave,
            Duration dnsLeaveInterval, Duration dnsLeaveWindow) {

        /**
         * The pool's settings: {@code base} (the application's) with what this entry sets.
         *
         * @param base the application's settings
         * @param key  the entry's key under {@code poolgoaway.pools}, to name a refused property
         * @return the settings
         * @throws InvalidConfigurationPropertyValueException naming the property whose value the builder refused
         */
        EvictorSettings over(EvictorSettings base, String key) {
            EvictorSettings.Builder builder = base.toBuilder();
            String at = poolPrefix(key);
            override(at + "enabled", enabled, builder::enabled);
            override(at + "tick", tick, builder::tick);
            override(at + "drain-window", drainWindow, builder::drainWindow);
            override(at + "max-replacements-in-flight", maxReplacementsInFlight, builder::maxReplacementsInFlight);
            override(at + "max-extra-connections", maxExtraConnections, builder::maxExtraConnections);
            override(at + "straggler-deadline", stragglerDeadline, builder::stragglerDeadline);
            override(at + "signals", signals, builder::signals);
            override(at + "abort-stragglers", abortStragglers, builder::abortStragglers);
            override(at + "dns-leave", dnsLeave, builder::dnsLeave);
            override(at + "dns-leave-interval", dnsLeaveInterval, builder::dnsLeaveInterval);
            override(at + "dns-leave-window", dnsLeaveWindow, builder::dnsLeaveWindow);
            return build(builder, at, abortStragglers != null ? abortStragglers : base.abortStragglers());
        }

        private static <T> void override(String property, T value, Consumer<T> setter) {
            if (value != null) {
                check(property, value, setter);
            }
        }
    }
}
