package dev.poolgoaway.hikari;

import java.time.Duration;
import java.util.Collections;
import java.util.EnumSet;
import java.util.Objects;
import java.util.Optional;
import java.util.OptionalInt;
import java.util.Set;

/**
 * How the evictor drains a pool. Immutable; build with {@link #builder()}. Every setting has a default that suits
 * a pool under load (see {@code docs/configuration.md}).
 */
public final class EvictorSettings {

    /** Default {@link Builder#tick}: how often every pooled connection is looked at. */
    public static final Duration DEFAULT_TICK = Duration.ofMillis(250);
    /**
     * Default {@link Builder#drainWindow}: connections asked to leave are closed at random moments within it. One
     * instance needs hardly any (HikariCP opens replacements one at a time, so one pool never storms the new
     * server); 100 ms keeps a handful of instances told at once from arriving in step. A fleet sets it by the rule
     * in {@code docs/runbook.md}.
     */
    public static final Duration DEFAULT_DRAIN_WINDOW = Duration.ofMillis(100);
    /**
     * Default {@link Builder#dnsLeaveInterval}: how often the hosts of the pool's connections are looked up. The
     * JVM's DNS cache answers most lookups ({@code networkaddress.cache.ttl}, 30 s by default): detection takes
     * about that TTL, plus this interval, plus the window.
     */
    public static final Duration DEFAULT_DNS_LEAVE_INTERVAL = Duration.ofSeconds(1);
    /**
     * Default {@link Builder#maxExtraConnections}: one connection beyond the pool's size during a drain, the least
     * that lets every connection go only after its replacement exists (HikariCP opens connections one at a time,
     * so more would hardly drain faster).
     */
    public static final int DEFAULT_MAX_EXTRA_CONNECTIONS = 1;

    private final Duration tick;
    private final Duration drainWindow;
    private final int maxReplacementsInFlight;
    private final int maxExtraConnections;
    private final Duration stragglerDeadline;
    private final boolean abortStragglers;
    private final boolean enabled;
    private final Set<LeaveSignal> signals;
    private final boolean dnsLeave;
    private final Duration dnsLeaveInterval;
    private final Duration dnsLeaveWindow;

    private EvictorSettings(Builder b) {
        this.dnsLeave = b.dnsLeave;
        this.dnsLeaveInterval = b.dnsLeaveInterval;
        this.dnsLeaveWindow = b.dnsLeaveWindow;
        this.signals = Collections.unmodifiableSet(EnumSet.copyOf(b.signals));
        this.tick = b.tick;
        this.drainWindow = b.drainWindow;
        this.maxReplacementsInFlight = b.maxReplacementsInFlight;
        this.maxExtraConnections = b.maxExtraConnections;
        this.stragglerDeadline = b.stragglerDeadline;
        this.abortStragglers = b.abortStragglers;
        this.enabled = b.enabled;
    }

    /** @return the defaults */
    public static EvictorSettings defaults() {
        return builder().build();
    }

    /** @return a builder with the defaults */
    public static Builder builder() {
        return new Builder();
    }

    /**
     * @return a builder holding these settings, to derive settings that differ in a few (the Spring Boot module's
     *         per-pool properties over the application's settings)
     */
    public Builder toBuilder() {
        Builder b = new Builder();
        b.tick = tick;
        b.drainWindow = drainWindow;
        b.maxReplacementsInFlight = maxReplacementsInFlight;
        b.maxExtraConnections = maxExtraConnections;
        b.stragglerDeadline = stragglerDeadline;
        b.abortStragglers = abortStragglers;
        b.enabled = enabled;
        b.signals = EnumSet.copyOf(signals);
        b.dnsLeave = dnsLeave;
        b.dnsLeaveInterval = dnsLeaveInterval;
        b.dnsLeaveWindow = dnsLeaveWindow;
        return b;
    }

    /** @return how often the evictor looks at every pooled connection */
    public Duration tick() {
        return tick;
    }

    /** @return the window over which idle connections asked to leave are spread out */
    public Duration drainWindow() {
        return drainWindow;
    }

    /**
     * @return how many connections the evictor may let go ahead of their replacements, if set; empty by default,
     *         which means none while the pool may open extra connections ({@link #maxExtraConnections()} of 1 or
     *         more: each goes after its replacement exists), else 1: one goes first, to prove the new destination
     *         (see {@link Builder#maxReplacementsInFlight})
     */
    public OptionalInt maxReplacementsInFlight() {
        return maxReplacementsInFlight > 0 ? OptionalInt.of(maxReplacementsInFlight) : OptionalInt.empty();
    }

    /**
     * @return how many connections a drain may open beyond the pool's size, above {@code maximumPoolSize} if need
     *         be, so that connections asked to leave go only after their replacements exist (default 1; 0: each
     *         goes before its replacement, see {@link Builder#maxExtraConnections})
     */
    public int maxExtraConnections() {
        return maxExtraConnections;
    }

    /** @return how long a connection in use may stay after the server asked it to leave before it is reported */
    public Optional<Duration> stragglerDeadline() {
        return Optional.ofNullable(stragglerDeadline);
    }

    /** @return whether stragglers past the deadline are aborted (off by default: they are only logged) */
    public boolean abortStragglers() {
        return abortStragglers;
    }

    /** @return the requests to leave that are honoured */
    public Set<LeaveSignal> signals() {
        return signals;
    }

    /**
     * @return whether a connection whose host name no longer resolves to its address is asked to leave (on by
     *         default; hosts that are IP literals and unix sockets are never looked up)
     */
    public boolean dnsLeave() {
        return dnsLeave;
    }

    /** @return how often the hosts of the pool's connections are looked up (through the JVM's DNS cache) */
    public Duration dnsLeaveInterval() {
        return dnsLeaveInterval;
    }

    /**
     * @return how long an address must be absent from every lookup before its connections are asked to leave, if
     *         set; empty by default: twice the JVM's DNS cache time
     */
    public Optional<Duration> dnsLeaveWindow() {
        return Optional.ofNullable(dnsLeaveWindow);
    }

    /** @return false to install nothing at all */
    public boolean enabled() {
        return enabled;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof EvictorSettings s && tick.equals(s.tick) && drainWindow.equals(s.drainWindow)
                && maxReplacementsInFlight == s.maxReplacementsInFlight
                && maxExtraConnections == s.maxExtraConnections
                && Objects.equals(stragglerDeadline, s.stragglerDeadline) && abortStragglers == s.abortStragglers
                && enabled == s.enabled && signals.equals(s.signals) && dnsLeave == s.dnsLeave
                && dnsLeaveInterval.equals(s.dnsLeaveInterval) && Objects.equals(dnsLeaveWindow, s.dnsLeaveWindow);
    }

    @Override
    public int hashCode() {
        return Objects.hash(tick, drainWindow, maxReplacementsInFlight, maxExtraConnections, stragglerDeadline,
                abortStragglers, enabled, signals, dnsLeave, dnsLeaveInterval, dnsLeaveWindow);
    }

    @Override
    public String toString() {
        return "EvictorSettings{tick=" + tick + ", drainWindow=" + drainWindow + ", maxReplacementsInFlight="
                + (maxReplacementsInFlight > 0 ? maxReplacementsInFlight : "auto") + ", maxExtraConnections="
                + maxExtraConnections + ", stragglerDeadline="
                + stragglerDeadline + ", abortStragglers=" + abortStragglers + ", signals=" + signals + ", dnsLeave="
                + dnsLeave + (dnsLeave ? ", dnsLeaveInterval=" + dnsLeaveInterval + ", dnsLeaveWindow="
                        + (dnsLeaveWindow != null ? dnsLeaveWindow : "auto") : "") + ", enabled=" + enabled + '}';
    }

    /** Builds {@link EvictorSettings}; every setter checks its argument. */
    public static final class Builder {
        private Duration tick = DEFAULT_TICK;
        private Duration drainWindow = DEFAULT_DRAIN_WINDOW;
        private int maxReplacementsInFlight;
        private int maxExtraConnections = DEFAULT_MAX_EXTRA_CONNECTIONS;
        private Duration stragglerDeadline;
        private boolean abortStragglers;
        private boolean enabled = true;
        private Set<LeaveSignal> signals = EnumSet.allOf(LeaveSignal.class);
        private boolean dnsLeave = true;
        private Duration dnsLeaveInterval = DEFAULT_DNS_LEAVE_INTERVAL;
        private Duration dnsLeaveWindow;

        private Builder() {
        }

        /**
         * @param on whether a connection whose host name no longer resolves to its address (a DNS name re-pointed
         *           at a switchover) is asked to leave, like a GoAway (default on)
         * @return this
         */
        public Builder dnsLeave(boolean on) {
            this.dnsLeave = on;
            return this;
        }

        /**
         * @param interval how often the hosts of the pool's connections are looked up, through the JVM's DNS
         *                 cache; 100 ms to 10 minutes (default 1 s)
         * @return this
         */
        public Builder dnsLeaveInterval(Duration interval) {
            this.dnsLeaveInterval = within("dnsLeaveInterval", interval, Duration.ofMillis(100),
                    Duration.ofMinutes(10));
            return this;
        }

        /**
         * @param window an address must be absent from every lookup over this long (and from two lookups at least a
         *               second apart) before its connections are asked to leave, so that a name answering with
         *               changing subsets of its addresses does not churn the pool; 1 s to 1 hour, or null for the
         *               default: twice the JVM's DNS cache time ({@code networkaddress.cache.ttl})
         * @return this
         */
        public Builder dnsLeaveWindow(Duration window) {
            this.dnsLeaveWindow = window == null ? null
                    : within("dnsLeaveWindow", window, Duration.ofSeconds(1), Duration.ofHours(1));
            return this;
        }

        /**
         * @param honoured which requests to leave count (default: all); an end of the connection always does
         * @return this
         * @throws IllegalArgumentException if empty: use {@link #enabled(boolean)} to turn the evictor off
         */
        public Builder signals(Set<LeaveSignal> honoured) {
            if (honoured.isEmpty()) {
                throw new IllegalArgumentException("at least one LeaveSignal; use enabled(false) to turn pool-goaway off");
            }
            this.signals = EnumSet.copyOf(honoured);
            return this;
        }

        /**
         * @param tick how often every pooled connection is looked at; 10 ms to 1 minute (default 250 ms)
         * @return this
         */
        public Builder tick(Duration tick) {
            this.tick = within("tick", tick, Duration.ofMillis(10), Duration.ofMinutes(1));
            return this;
        }

        /**
         * @param window connections asked to leave are closed at random moments within this window after the
         *               signal, like max-lifetime's variance, so that instances told at once do not all open their
         *               replacements at the same moment; 0 to 10 minutes (default 100 ms; 0 closes them at once).
         *               For a fleet: instances × pool size ÷ the connections per second the new server accepts
         *               (docs/runbook.md)
         * @return this
         */
        public Builder drainWindow(Duration window) {
            this.drainWindow = within("drainWindow", window, Duration.ZERO, Duration.ofMinutes(10));
            return this;
        }

        /**
         * @param max how many connections the evictor may let go (evict idle, or ask to close on return) that no
         *            replacement has matched yet, a replacement being a connection HikariCP made that is not itself
         *            asked to leave; 0 (the default) means none while {@link #maxExtraConnections} is 1 or more,
         *            else 1. The pool never has more than this many connections fewer than plain HikariCP would,
         *            whatever the new server does
         * @return this
         */
        public Builder maxReplacementsInFlight(int max) {
            if (max < 0) {
                throw new IllegalArgumentException("maxReplacementsInFlight must be 0 (auto) or more, not " + max);
            }
            this.maxReplacementsInFlight = max;
            return this;
        }

        /**
         * @param max how many connections a drain may open beyond the pool's size when the drain began, raising
         *            HikariCP's {@code maximumPoolSize} at run time by as much at most (and putting it back when
         *            the drain ends or stalls on failing connections), so that each connection asked to leave goes
         *            only after its replacement exists: a pool of 1 keeps its connection while the replacement
         *            fails. 0 to 100 (default 1). Each pool of a fleet draining into one server holds up to this
         *            many connections more than its size meanwhile: keep {@code max_connections} above the fleet's
         *            sizes plus instances × this. 0 lets each connection go before its replacement (one ahead, see
         *            {@link #maxReplacementsInFlight})
         * @return this
         */
        public Builder maxExtraConnections(int max) {
            if (max < 0 || max > 100) {
                throw new IllegalArgumentException("maxExtraConnections must be between 0 and 100, not " + max);
            }
            this.maxExtraConnections = max;
            return this;
        }

        /**
         * @param deadline a connection in use this long after the server asked it to leave is logged (with the
         *                 borrower's stack when Hikari's leak detection is on); null for no deadline (the default)
         * @return this
         */
        public Builder stragglerDeadline(Duration deadline) {
            this.stragglerDeadline = deadline == null ? null
                    : within("stragglerDeadline", deadline, Duration.ofMillis(1), Duration.ofDays(1));
            return this;
        }

        /**
         * @param abort also abort stragglers past the deadline ({@link java.sql.Connection#abort}); off by default
         * @return this
         */
        public Builder abortStragglers(boolean abort) {
            this.abortStragglers = abort;
            return this;
        }

        /**
         * @param enabled false to make {@link PoolGoAway#install} install nothing
         * @return this
         */
        public Builder enabled(boolean enabled) {
            this.enabled = enabled;
            return this;
        }

        /**
         * @return the settings
         * @throws IllegalStateException if aborting is asked for without a straggler deadline
         */
        public EvictorSettings build() {
            if (abortStragglers && stragglerDeadline == null) {
                throw new IllegalStateException("abortStragglers needs a stragglerDeadline");
            }
            return new EvictorSettings(this);
        }

        private static Duration within(String name, Duration value, Duration min, Duration max) {
            Objects.requireNonNull(value, name);
            if (value.compareTo(min) < 0 || value.compareTo(max) > 0) {
                throw new IllegalArgumentException(name + " must be between " + min + " and " + max + ", not "
                        + value);
            }
            return value;
        }
    }
}
