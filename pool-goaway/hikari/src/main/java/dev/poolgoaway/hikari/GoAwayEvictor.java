package dev.poolgoaway.hikari;

import java.io.IOException;
import java.sql.Connection;
import java.sql.SQLException;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import com.zaxxer.hikari.metrics.PoolStats;
import com.zaxxer.hikari.pool.HikariPool;
import com.zaxxer.hikari.util.ConcurrentBag.IConcurrentBagEntry;

import dev.poolgoaway.wire.ConnectionSignals;
import dev.poolgoaway.wire.LogText;
import dev.poolgoaway.wire.PgGoAway;
import dev.poolgoaway.wire.Termination;

/**
 * Drains one HikariCP pool of the connections the server asked to leave.
 *
 * <p>One loop, in the shape of OkHttp's connection-pool cleanup: each run looks at every pooled connection and
 * returns the delay to the next run. A connection in use whose server said GoAway (or reported
 * {@code disconnect_requested}, or ended it) is marked, so that Hikari closes it when it is returned: never aborted,
 * never interrupted. An idle connection is reserved exactly as Hikari's keepalive task reserves it (no borrower can
 * race), polled through the wire layer, and then either evicted or given back. A dead one (an admin termination, the
 * server gone) is evicted at once; one that was only asked to leave is evicted at a random moment within the drain
 * window, with a bound on replacements in flight, so the pool keeps serving and the new server sees no connection
 * storm. Evictions go through Hikari's own soft-eviction path: closing off-thread, refilling to minimumIdle and
 * Hikari's metrics are those of max-lifetime rotation.
 *
 * <p>A pool whose server never sends GoAway sees nothing from this: no eviction, no query, nothing logged above DEBUG.
 * The evictor stops by itself within one tick of the pool shutting down.
 */
public final class GoAwayEvictor implements AutoCloseable {

    private static final Logger log = LoggerFactory.getLogger(GoAwayEvictor.class);

    /** Signal kinds, as metric tags and in logs. */
    static final String GOAWAY = "goaway";
    static final String DISCONNECT_REQUESTED = "disconnect_requested";
    static final String ADMIN_TERMINATED = "admin_terminated";
    static final String SERVER_CLOSED = "server_closed";

    private final EvictorSettings settings;
    private volatile EvictorEvents events = EvictorEvents.NONE;
    private volatile String poolName = "";
    private volatile HikariAccess access;
    private volatile HikariPool pool;
    private volatile PoolStats stats;
    private volatile String group;
    private volatile ScheduledExecutorService executor;
    private volatile boolean closed;
    private final List<Consumer<String>> onAttach = new ArrayList<>();

    /** Evictor-thread state. */
    /** Keyed by Hikari's pool entry, or (public-API fallback) by the connection's signals. */
    private final Map<Object, Tracked> tracked = new IdentityHashMap<>();
    private Episode episode;
    /** The last run found a connection it had not seen before: replacements are being made. */
    private boolean connectionsArrived;
    private volatile int flaggedOpen;
    private volatile DrainEpisode lastDrain;

    GoAwayEvictor(EvictorSettings settings) {
        this.settings = settings;
    }

    /** What the evictor knows about one pooled connection. */
    private static final class Tracked {
        final ConnectionSignals signals;
        String kind;
        Instant signalAt;
        long flaggedNanos;
        long dueNanos;
        boolean dead;
        boolean marked;
        boolean evicted;
        boolean stragglerReported;

        Tracked(ConnectionSignals signals) {
            this.signals = signals;
        }
    }

    /** One drain: from the first connection asked to leave until none that was is left open. */
    private static final class Episode {
        final Instant startedAt = Instant.now();
        final Set<String> servers = new LinkedHashSet<>();
        final Map<String, Integer> kinds = new TreeMap<>();
        String adminMessage;
        int connections;
        /** Public-API fallback: the pool was soft-evicted for this drain already. */
        boolean softEvicted;
    }

    // ---- life ---------------------------------------------------------------------------------------------

    /** The wire layer's {@link PgGoAway#GROUP} of this pool's connections, for the public-API fallback. */
    void group(String name) {
        this.group = name;
    }

    /**
     * Called when the pool exists (from inside its constructor): starts the loop, last, so that nothing that fails
     * before leaves a thread behind.
     *
     * @param internals Hikari's internals, or null to run on the public API alone (see {@link #cleanupPublic})
     * @param hikari    the pool
     * @param poolStats the pool's statistics (sizes)
     * @param name      its name
     */
    synchronized void attach(HikariAccess internals, HikariPool hikari, PoolStats poolStats, String name) {
        if (closed || executor != null) {
            return;
        }
        this.access = internals;
        this.pool = hikari;
        this.stats = poolStats;
        this.poolName = name;
        if (internals == null && group == null) {
            log.warn("{} - a pgjdbc data-source pool cannot list its connections without HikariCP's internals: "
                    + "pool-goaway drains nothing in this pool (use a jdbcUrl pool for the fallback)", name);
        }
        for (Consumer<String> c : onAttach) {
            c.accept(name);
        }
        onAttach.clear();
        String threadName = "poolgoaway-evictor-" + name;
        executor = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, threadName);
            t.setDaemon(true);
            return t;
        });
        executor.schedule(this::run, settings.tick().toNanos(), TimeUnit.NANOSECONDS);
        log.debug("{} - pool-goaway evictor attached ({}, HikariCP {})", name, settings,
                HikariAccess.hikariVersion());
    }

    void events(EvictorEvents e) {
        this.events = e;
    }

    /** Runs {@code action} with the pool's name once the pool has started (now, if it has). */
    synchronized void onAttach(Consumer<String> action) {
        if (executor != null) {
            action.accept(poolName);
        } else {
            onAttach.add(action);
        }
    }

    /** Stops the loop; the pool itself is left alone. Called by itself when the pool shuts down. */
    @Override
    public synchronized void close() {
        closed = true;
        if (executor != null) {
            executor.shutdownNow();
        }
    }

    private void run() {
        long delay;
        try {
            delay = cleanup(System.nanoTime());
        } catch (Throwable e) {
            // Whatever it was, the loop must go on: a silent death would leave the pool undrained.
            log.warn("{} - pool-goaway evictor run failed; trying again next tick", poolName, e);
            delay = settings.tick().toNanos();
        }
        if (delay < 0 || closed) {
            close();
            return;
        }
        try {
            executor.schedule(this::run, delay, TimeUnit.NANOSECONDS);
        } catch (java.util.concurrent.RejectedExecutionException e) {
            // closed meanwhile
        }
    }

    // ---- the loop -----------------------------------------------------------------------------------------

    /**
     * Looks at every pooled connection once.
     *
     * @param now {@link System#nanoTime()}
     * @return nanoseconds until the next run, or -1 when the pool is shut down
     */
    long cleanup(long now) {
        if (pool.poolState == HikariPool.POOL_SHUTDOWN) {
            return -1;
        }
        HikariAccess internals = access;
        if (internals == null) {
            return cleanupPublic(now);
        }
        // Replacements in flight: what Hikari is refilling towards minimumIdle. An elastic pool above it refills
        // nothing, and nothing then holds the drain back but its window.
        int deficit = Math.max(0, stats.getMinConnections() - pool.getTotalConnections());
        int budget = settings.maxReplacementsInFlight(stats.getMaxConnections()) - deficit;
        // Short by the bound with no new connection since the last run: the new server refuses (or is down).
        boolean refillKeepsUp = budget > 0 || connectionsArrived;
        connectionsArrived = false;
        Set<Object> present = Collections.newSetFromMap(new IdentityHashMap<>());
        for (IConcurrentBagEntry entry : internals.entries()) {
            present.add(entry);
            Tracked t = tracked.get(entry);
            if (t == null) {
                t = new Tracked(signalsOf(internals.connection(entry)));
                tracked.put(entry, t);
                connectionsArrived = true;
            }
            if (t.signals == null || t.evicted) {
                continue;
            }
            int state = entry.getState();
            if (state == IConcurrentBagEntry.STATE_IN_USE) {
                flag(t, now);
                if (t.kind != null) {
                    // A marked connection is replaced when it is returned. While replacements arrive, every one is
                    // marked at once (the drain stays fast); when none does and the pool is short by the bound
                    // already, marking waits, so the pool keeps serving from the old connections rather than drain
                    // itself empty. A dead one goes regardless.
                    if (!t.marked && (t.dead || refillKeepsUp)) {
                        t.marked = true;
                        internals.markEvicted(entry);
                        log.debug("{} - connection pid {} in use asked to leave ({}): closes when returned",
                                poolName, t.signals.backendPid().orElse(0), t.kind);
                    }
                    straggler(internals, entry, t, now);
                }
            } else if (state == IConcurrentBagEntry.STATE_NOT_IN_USE) {
                // Not yet due: leave it to borrowers (it still works); it closes on return or when due.
                if (t.kind != null && !evictNow(t, now, budget)) {
                    continue;
                }
                if (!internals.reserve(entry)) {
                    continue;
                }
                boolean evicted = false;
                try {
                    if (t.kind == null) {
                        poll(t, now);
                        flag(t, now);
                    }
                    if (t.kind != null && evictNow(t, now, budget)) {
                        evict(internals, entry, t);
                        evicted = true;
                        budget--;
                    }
                } finally {
                    if (!evicted) {
                        internals.unreserve(entry);
                    }
                }
            }
        }
        forgetClosed(present);
        endEpisodeIfDrained();
        return settings.tick().toNanos();
    }

    /**
     * Dead connections go at once, and so do ones flagged while in use and now back (HikariCP 5.1 returns them to
     * the pool instead of closing them); others when due and within the bound on replacements.
     */
    private static boolean evictNow(Tracked t, long now, int budget) {
        return t.dead || t.marked || (now - t.dueNanos >= 0 && budget > 0);
    }

    /**
     * The public-API fallback, for a HikariCP whose internals the adapter does not know: the wire layer lists the
     * pool's connections (its {@link PgGoAway#GROUP}), idle ones cannot be reserved or polled, and the only tool is
     * {@code softEvictConnections()}. So the first connection found asked to leave soft-evicts the whole pool, once
     * per drain: idle connections close now, connections in use when returned: max-lifetime rotation all at once.
     */
    private long cleanupPublic(long now) {
        List<ConnectionSignals> members = group == null ? List.of() : PgGoAway.group(group);
        Set<Object> present = Collections.newSetFromMap(new IdentityHashMap<>());
        for (ConnectionSignals s : members) {
            present.add(s);
            Tracked t = tracked.computeIfAbsent(s, key -> new Tracked(s));
            flag(t, now);
            t.marked |= t.kind != null;
        }
        if (episode != null && !episode.softEvicted) {
            // Once per drain: the replacements on the new server must not be evicted again.
            episode.softEvicted = true;
            pool.softEvictConnections();
            log.debug("{} - pool-goaway (public-API fallback): soft-evicted the pool", poolName);
        }
        forgetClosed(present);
        endEpisodeIfDrained();
        return settings.tick().toNanos();
    }

    private ConnectionSignals signalsOf(Connection connection) {
        if (connection == null) {
            return null;
        }
        try {
            return PgGoAway.signals(connection).orElse(null);
        } catch (SQLException e) {
            log.debug("{} - not a pgjdbc connection, left alone: {}", poolName, e.toString());
            return null;
        }
    }

    private void poll(Tracked t, long now) {
        try {
            t.signals.poll();
        } catch (IOException e) {
            // The wire layer saw the connection fail: as dead as one the server closed.
            mark(t, SERVER_CLOSED, Instant.now(), true, now, null);
        }
    }

    /** Notes what the server said, if anything new: an end of the connection outranks a request to leave. */
    private void flag(Tracked t, long now) {
        if (t.dead) {
            return;
        }
        ConnectionSignals s = t.signals;
        Optional<Termination> end = s.termination();
        if (end.isPresent()) {
            Termination why = end.get();
            mark(t, why.adminTerminated() ? ADMIN_TERMINATED : SERVER_CLOSED, why.at(), true, now,
                    why.adminTerminated() ? why.message() : null);
        } else if (t.kind != null) {
            return;
        } else if (settings.signals().contains(LeaveSignal.GOAWAY) && s.goAwayReceived()) {
            mark(t, GOAWAY, s.goAwayReceivedAt().orElseGet(Instant::now), false, now, null);
        } else if (settings.signals().contains(LeaveSignal.DISCONNECT_REQUESTED) && s.disconnectRequested()) {
            mark(t, DISCONNECT_REQUESTED, s.disconnectRequestedAt().orElseGet(Instant::now), false, now, null);
        }
    }

    private void mark(Tracked t, String kind, Instant at, boolean dead, long now, String adminMessage) {
        boolean first = t.kind == null;
        t.kind = kind;
        t.dead = dead;
        Episode e = episode();
        e.kinds.merge(kind, 1, Integer::sum);
        if (adminMessage != null && e.adminMessage == null) {
            e.adminMessage = adminMessage;
        }
        if (first) {
            t.signalAt = at;
            t.flaggedNanos = now;
            long window = settings.drainWindow().toNanos();
            t.dueNanos = now + (window > 0 ? ThreadLocalRandom.current().nextLong(window) : 0);
            e.connections++;
            e.servers.add(t.signals.server());
        }
        emit(() -> events.signal(kind));
    }

    /** Listeners (metrics) must not break the loop's bookkeeping: they run last and their failures are logged. */
    private void emit(Runnable event) {
        try {
            event.run();
        } catch (RuntimeException e) {
            log.warn("{} - a pool-goaway metrics listener failed", poolName, e);
        }
    }

    private Episode episode() {
        if (episode == null) {
            episode = new Episode();
            emit(events::episode);
        }
        return episode;
    }

    private void evict(HikariAccess internals, IConcurrentBagEntry entry, Tracked t) {
        String reason = "(pool-goaway: " + t.kind + (t.dead ? ")" : ", server asked the connection to leave)");
        internals.evictReserved(entry, reason);
        t.evicted = true;
        // A connection flagged in use counts as such even where the Hikari line requites it before closing it.
        emit(() -> events.evicted(t.marked ? "in_use" : "idle"));
        emit(() -> events.closed(Duration.between(t.signalAt, Instant.now())));
        log.debug("{} - evicted idle connection pid {} {}", poolName, t.signals.backendPid().orElse(0), reason);
    }

    private void straggler(HikariAccess internals, IConcurrentBagEntry entry, Tracked t, long now) {
        Optional<Duration> deadline = settings.stragglerDeadline();
        if (deadline.isEmpty() || t.stragglerReported || now - t.flaggedNanos < deadline.get().toNanos()) {
            return;
        }
        t.stragglerReported = true;
        log.warn("{} - connection pid {} to {} is still in use {} ms after the server asked it to leave ({}){}",
                poolName, t.signals.backendPid().orElse(0), t.signals.server(),
                TimeUnit.NANOSECONDS.toMillis(now - t.flaggedNanos), t.kind,
                settings.abortStragglers() ? ": aborting it" : "");
        if (settings.abortStragglers()) {
            Connection c = internals.connection(entry);
            if (c != null) {
                try {
                    c.abort(Runnable::run);
                } catch (SQLException e) {
                    log.warn("{} - aborting connection pid {} failed: {}", poolName,
                            t.signals.backendPid().orElse(0), e.toString());
                }
            }
        }
    }

    /** Entries that left the bag: closed by us, or by Hikari when a marked connection came back. */
    private void forgetClosed(Set<Object> present) {
        for (Iterator<Map.Entry<Object, Tracked>> it = tracked.entrySet().iterator(); it.hasNext(); ) {
            Map.Entry<Object, Tracked> e = it.next();
            if (present.contains(e.getKey())) {
                continue;
            }
            Tracked t = e.getValue();
            if (t.kind != null && !t.evicted) {
                emit(() -> events.evicted(t.marked ? "in_use" : "idle"));
                emit(() -> events.closed(Duration.between(t.signalAt, Instant.now())));
            }
            it.remove();
        }
    }

    /** Counts the flagged connections still open, whatever their state (a reserved one counts too). */
    private void endEpisodeIfDrained() {
        int flagged = (int) tracked.values().stream().filter(t -> t.kind != null && !t.evicted).count();
        flaggedOpen = flagged;
        if (episode == null || flagged > 0) {
            return;
        }
        Episode e = episode;
        episode = null;
        DrainEpisode done = new DrainEpisode(List.copyOf(e.servers), e.connections, Map.copyOf(e.kinds),
                e.startedAt, Instant.now(), Optional.ofNullable(e.adminMessage));
        lastDrain = done;
        log.info("{} - drained {} connection{} from {} in {} ms ({}){}", poolName, done.connections(),
                done.connections() == 1 ? "" : "s", String.join(", ", done.servers()), done.duration().toMillis(),
                done.kinds(), done.adminMessage().map(m -> "; admin message: " + LogText.sanitize(m)).orElse(""));
    }

    // ---- status -------------------------------------------------------------------------------------------

    /** @return the pool's name, once the pool has started */
    public String poolName() {
        return poolName;
    }

    /** @return connections asked to leave that are still open (as of the last run) */
    public int flaggedConnections() {
        return flaggedOpen;
    }

    /** @return true while a drain is under way */
    public boolean draining() {
        return flaggedOpen > 0;
    }

    /** @return the last completed drain, if any */
    public Optional<DrainEpisode> lastDrain() {
        return Optional.ofNullable(lastDrain);
    }

    /** @return true if the evictor runs on HikariCP's public API alone (see {@code docs/how-it-works.md}) */
    public boolean publicApiFallback() {
        return executor != null && access == null;
    }

    /** @return true while the loop runs: the pool has started and neither it nor this evictor was closed */
    public boolean running() {
        ScheduledExecutorService e = executor;
        return e != null && !e.isShutdown();
    }

    /** @return the settings in force */
    public EvictorSettings settings() {
        return settings;
    }
}
