package dev.poolgoaway.hikari;

import java.io.IOException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.random.RandomGenerator;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.poolgoaway.wire.LogText;

/**
 * The evictor's decisions, in the shape of OkHttp's {@code RealConnectionPool.cleanup(now)}: one call looks at every
 * entry of a {@link PoolView}, acts, and returns the delay to the next call. The time is passed in, so the rules can
 * be tested against a fake pool and a fake clock. Not thread-safe: one evictor thread calls it.
 *
 * <p>The rules. A connection the server ended is closed at once. One the server asked to leave goes when due (a
 * random moment within the drain window after the signal), and only while fewer than {@code maxReplacementsInFlight}
 * connections are being replaced: the pool's shortfall towards minimumIdle plus the connections in use already asked
 * to close on return. An idle one is reserved (no borrower can race), polled, and evicted or given back; one in use
 * is asked to close on return, never interrupted, unless it is a straggler the user opted to abort. A drain episode
 * runs from the first signal until no connection asked to leave is open, or only stragglers are.
 */
final class DrainLoop {

    private static final Logger log = LoggerFactory.getLogger(DrainLoop.class);

    /**
     * How soon to look again while connections asked to leave wait for the bound on replacements: a replacement
     * takes tens of milliseconds and may arrive at any moment, a tick is hundreds. Such a quick look handles only
     * connections already known to be asked to leave; polling the others waits for the next full pass.
     */
    static final long RECHECK_NANOS = TimeUnit.MILLISECONDS.toNanos(5);
    /**
     * How often every connection is looked at (and idle ones polled) while a drain is under way: a connection that
     * went back to the pool before it read the server's request is otherwise found only at the next tick.
     */
    static final long DRAINING_PASS_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
    /**
     * A pool whose constructor has not completed this long after it started the evictor never will: it threw after
     * creating its metrics tracker, and nobody will ever shut it down. Far longer than the few steps between.
     */
    static final long NEVER_STARTED_NANOS = TimeUnit.SECONDS.toNanos(2);

    private final PoolView pool;
    private final EvictorSettings settings;
    private final String poolName;
    private final Clock clock;
    private final RandomGenerator random;
    private volatile EvictorEvents events = EvictorEvents.NONE;

    private final Map<Object, Tracked> tracked = new IdentityHashMap<>();
    private Episode episode;
    private long lastFullPass;
    private boolean passed;
    private long firstCall;
    private boolean called;
    private volatile int flaggedOpen;
    private volatile boolean draining;
    private volatile DrainEpisode lastDrain;

    DrainLoop(PoolView pool, EvictorSettings settings, String poolName, Clock clock, RandomGenerator random) {
        this.pool = pool;
        this.settings = settings;
        this.poolName = poolName;
        this.clock = clock;
        this.random = random;
    }

    /** What the loop knows about one pooled connection. */
    private static final class Tracked {
        final Object entry;
        final PoolView.Signals signals;
        /** What the server said; null until it said anything. */
        SignalKind kind;
        Instant signalAt;
        long dueNanos;
        /** HikariCP was asked to close the connection when its borrower returns it. */
        boolean closeOnReturn;
        long closeOnReturnNanos;
        /** Public API: the last {@code softEvictConnections()} covered this connection. */
        boolean softEvicted;
        /** Closed by the loop (counted already). */
        boolean closed;
        /** In use past the straggler deadline (logged). */
        boolean straggler;

        Tracked(Object entry, PoolView.Signals signals) {
            this.entry = entry;
            this.signals = signals;
        }

        boolean flagged() {
            return kind != null && !closed;
        }
    }

    /** One drain: from the first connection asked to leave until none that was is left open. */
    private static final class Episode {
        /** When the wire layer saw the episode's first signal. */
        Instant firstSignalAt;
        /** When the episode's last connection asked to leave was closed, so far. */
        Instant lastCloseAt;
        final Set<String> servers = new LinkedHashSet<>();
        final Map<String, Integer> kinds = new TreeMap<>();
        final Set<String> grants = new LinkedHashSet<>();
        String adminMessage;
        int connections;

        Episode(Instant openedAt) {
            this.firstSignalAt = openedAt;
            this.lastCloseAt = openedAt;
        }
    }

    void events(EvictorEvents e) {
        this.events = e;
    }

    /**
     * Looks at every pooled connection once.
     *
     * @param now the loop's clock, {@link System#nanoTime()} in production
     * @return nanoseconds until the next call, or -1 once the pool is shut down
     */
    long cleanup(long now) {
        if (pool.shutDown()) {
            return -1;
        }
        if (!called) {
            called = true;
            firstCall = now;
        }
        if (!pool.started()) {
            if (now - firstCall >= NEVER_STARTED_NANOS) {
                log.warn("{} - the pool never finished starting (its constructor failed): pool-goaway's evictor "
                        + "stops", poolName);
                return -1;
            }
            return settings.tick().toNanos();
        }
        List<Tracked> present = track();
        long next = pool.canReserve() ? decide(present, now) : decidePublic(present, now);
        endEpisodeIfDrained();
        return next;
    }

    /** Registers new entries and forgets (and counts) those that left the pool since the last call. */
    private List<Tracked> track() {
        List<?> entries = pool.entries();
        Map<Object, Tracked> seen = new IdentityHashMap<>(entries.size() * 2);
        List<Tracked> present = new ArrayList<>(entries.size());
        for (Object entry : entries) {
            Tracked t = tracked.get(entry);
            if (t == null) {
                t = new Tracked(entry, pool.signals(entry));
                tracked.put(entry, t);
            }
            seen.put(entry, t);
            present.add(t);
        }
        for (Iterator<Tracked> it = tracked.values().iterator(); it.hasNext(); ) {
            Tracked t = it.next();
            if (!seen.containsKey(t.entry)) {
                // Closed by HikariCP: a connection asked to close on return came back, or an idle one went its way.
                if (t.flagged()) {
                    closed(t, t.closeOnReturn ? EvictionState.IN_USE : EvictionState.IDLE);
                }
                it.remove();
            }
        }
        return present;
    }

    private long decide(List<Tracked> present, long now) {
        int replacing = pool.shortfall();
        for (Tracked t : present) {
            if (t.closeOnReturn && !t.closed) {
                replacing++;
            }
        }
        int budget = settings.maxReplacementsInFlight(pool.maximumPoolSize()) - replacing;
        long tick = episode == null ? settings.tick().toNanos()
                : Math.min(settings.tick().toNanos(), DRAINING_PASS_NANOS);
        boolean fullPass = !passed || now - lastFullPass >= tick;
        if (fullPass) {
            passed = true;
            lastFullPass = now;
        }
        long next = lastFullPass + tick - now;
        boolean heldBack = false;
        for (Tracked t : present) {
            if (t.signals == null || t.closed) {
                continue;
            }
            PoolView.Slot slot = pool.slot(t.entry);
            if (slot == PoolView.Slot.IN_USE) {
                read(t, now);
                heldBack |= t.kind != null && !t.closeOnReturn && !t.kind.ended() && budget <= 0;
                if (t.kind != null && !t.closeOnReturn && (t.kind.ended() || budget > 0)) {
                    // Marking counts against the bound like an idle eviction: every connection marked is closed and
                    // replaced when it comes back, so marking them all at once could empty the pool.
                    t.closeOnReturn = true;
                    t.closeOnReturnNanos = now;
                    pool.closeOnReturn(t.entry);
                    budget--;
                    log.debug("{} - connection pid {} in use asked to leave ({}): closes when returned", poolName,
                            t.signals.backendPid(), t.kind.tag());
                }
                straggler(t, now);
            } else if (slot == PoolView.Slot.IDLE) {
                // What a borrower's reads recorded (no I/O); polling for more waits for the tick.
                read(t, now);
                if (t.kind == null && !fullPass) {
                    continue;
                }
                if (t.kind != null && !evictNow(t, now, budget)) {
                    heldBack |= now - t.dueNanos >= 0;
                    next = Math.min(next, Math.max(0, t.dueNanos - now));
                    continue;
                }
                if (!pool.reserve(t.entry)) {
                    continue;
                }
                boolean evicted = false;
                try {
                    if (evictedByHikari(t)) {
                        evicted = true;
                        continue;
                    }
                    if (t.kind == null) {
                        poll(t, now);
                        read(t, now);
                    }
                    if (t.kind != null && evictNow(t, now, budget)) {
                        String reason = "(pool-goaway: " + t.kind.tag()
                                + (t.kind.ended() ? ")" : ", server asked the connection to leave)");
                        pool.evict(t.entry, reason);
                        evicted = true;
                        budget--;
                        // Asked to close on return and back (HikariCP 5.1 requites such connections before closing
                        // them): it counts as closed in use.
                        closed(t, t.closeOnReturn ? EvictionState.IN_USE : EvictionState.IDLE);
                        log.debug("{} - evicted idle connection pid {} {}", poolName, t.signals.backendPid(), reason);
                    } else if (t.kind != null) {
                        heldBack |= now - t.dueNanos >= 0;
                        next = Math.min(next, Math.max(0, t.dueNanos - now));
                    }
                } finally {
                    // Checked again: HikariCP may have evicted it while it was being polled.
                    if (!evicted && !evictedByHikari(t)) {
                        pool.unreserve(t.entry);
                    }
                }
            }
        }
        return heldBack ? Math.min(next, RECHECK_NANOS) : next;
    }

    /**
     * HikariCP evicted a reserved entry (max lifetime, {@code softEvictConnections}): it cannot close one that is
     * reserved, so it left it open for the next borrow to find, which in a suspended pool never comes. Closes it as
     * HikariCP would have.
     *
     * @return true if it was so, and the entry is closed now
     */
    private boolean evictedByHikari(Tracked t) {
        if (t.closeOnReturn || !pool.evictedByHikari(t.entry)) {
            return false;
        }
        pool.evict(t.entry, "(connection was evicted)");
        if (t.flagged()) {
            closed(t, EvictionState.IDLE);
        }
        t.closed = true;
        return true;
    }

    /**
     * Dead connections go at once, and so do ones asked to close on return and found back; others when due and
     * within the bound on replacements.
     */
    private static boolean evictNow(Tracked t, long now, int budget) {
        return t.kind.ended() || t.closeOnReturn || (now - t.dueNanos >= 0 && budget > 0);
    }

    /**
     * The public API alone: connections are listed by the wire layer, cannot be reserved or polled, and the one
     * tool is {@code softEvictConnections()}. It runs whenever a connection asked to leave was not covered by the
     * last one (a replacement asked to leave too, a later drain): idle connections close now, connections in use on
     * return, like max-lifetime rotation all at once. Not again for connections it covered already, so the
     * replacements on the new server stay.
     */
    private long decidePublic(List<Tracked> present, long now) {
        boolean uncovered = false;
        for (Tracked t : present) {
            if (t.signals == null) {
                continue;
            }
            read(t, now);
            uncovered |= t.flagged() && !t.softEvicted;
        }
        if (uncovered) {
            pool.softEvictAll();
            for (Tracked t : present) {
                t.softEvicted = true;
                t.closeOnReturn |= t.kind != null;
            }
            log.debug("{} - pool-goaway (public-API fallback): soft-evicted the pool", poolName);
        }
        return settings.tick().toNanos();
    }

    private void poll(Tracked t, long now) {
        try {
            t.signals.poll();
        } catch (IOException e) {
            // The wire layer saw the connection fail: as dead as one the server closed.
            record(t, new PoolView.Heard(SignalKind.SERVER_CLOSED, clock.instant(), null, null), now);
        }
    }

    /** Notes what the server said, if anything new: an end of the connection outranks a request to leave. */
    private void read(Tracked t, long now) {
        if (t.kind != null && t.kind.ended()) {
            return;
        }
        Optional<PoolView.Heard> heard = t.signals.heard(settings.signals());
        if (heard.isPresent() && (t.kind == null || heard.get().kind().ended())) {
            record(t, heard.get(), now);
        }
    }

    private void record(Tracked t, PoolView.Heard heard, long now) {
        boolean first = t.kind == null;
        t.kind = heard.kind();
        Episode e = episode();
        e.kinds.merge(heard.kind().tag(), 1, Integer::sum);
        if (heard.adminMessage() != null && e.adminMessage == null) {
            e.adminMessage = heard.adminMessage();
        }
        if (heard.grant() != null) {
            e.grants.add(heard.grant().description());
        }
        if (first) {
            t.signalAt = heard.at();
            if (e.connections == 0 || heard.at().isBefore(e.firstSignalAt)) {
                // The drain is the server's: it starts when the first signal arrived, not when a pass found it.
                e.firstSignalAt = heard.at();
            }
            long window = settings.drainWindow().toNanos();
            t.dueNanos = now + (window > 0 ? random.nextLong(window) : 0);
            e.connections++;
            e.servers.add(t.signals.server());
        }
        emit(() -> events.signal(heard.kind()));
    }

    private void straggler(Tracked t, long now) {
        Optional<Duration> deadline = settings.stragglerDeadline();
        // Only a connection asked to close on return can straggle: one not asked yet (the bound held it back) is
        // the loop's own delay, and its borrower may be a new one.
        if (deadline.isEmpty() || !t.closeOnReturn || t.straggler
                || now - t.closeOnReturnNanos < deadline.get().toNanos()) {
            return;
        }
        t.straggler = true;
        log.warn("{} - connection pid {} to {} is still in use {} ms after it was asked to close on return ({}){}",
                poolName, t.signals.backendPid(), t.signals.server(),
                TimeUnit.NANOSECONDS.toMillis(now - t.closeOnReturnNanos), t.kind.tag(),
                settings.abortStragglers() ? ": aborting it" : "");
        if (settings.abortStragglers()) {
            // Aborted and evicted: the pool refills at once, even if the borrower never returns the connection.
            pool.abort(t.entry);
            closed(t, EvictionState.IN_USE);
        }
    }

    private void closed(Tracked t, EvictionState state) {
        t.closed = true;
        Instant at = clock.instant();
        if (episode != null && at.isAfter(episode.lastCloseAt)) {
            episode.lastCloseAt = at;
        }
        emit(() -> events.evicted(state));
        Duration time = Duration.between(t.signalAt, at);
        emit(() -> events.closed(time));
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
            episode = new Episode(clock.instant());
            draining = true;
            emit(events::episode);
        }
        return episode;
    }

    /**
     * Ends the episode when no connection asked to leave is open, or only stragglers are (logged, left to their
     * borrowers): a leaked connection must not hold the episode open for good, or merge later drains into it.
     */
    private void endEpisodeIfDrained() {
        int flagged = 0;
        boolean waiting = false;
        for (Tracked t : tracked.values()) {
            if (t.flagged()) {
                flagged++;
                waiting |= !t.straggler;
            }
        }
        flaggedOpen = flagged;
        if (episode == null || waiting) {
            return;
        }
        Episode e = episode;
        episode = null;
        draining = false;
        DrainEpisode done = new DrainEpisode(List.copyOf(e.servers), e.connections, Map.copyOf(e.kinds),
                List.copyOf(e.grants), e.firstSignalAt, e.lastCloseAt, Optional.ofNullable(e.adminMessage));
        lastDrain = done;
        log.info("{} - drained {} connection{} from {} in {} ms ({}{}){}{}", poolName, done.connections(),
                done.connections() == 1 ? "" : "s", String.join(", ", done.servers()), done.duration().toMillis(),
                done.kinds(), done.goAwayGrants().isEmpty() ? "" : "; GoAway by " + String.join(", ",
                        done.goAwayGrants()),
                done.adminMessage().map(m -> "; admin message: " + LogText.sanitize(m)).orElse(""),
                flagged > 0 ? "; " + flagged + " still in use past the straggler deadline" : "");
    }

    /** @return connections asked to leave that are still open (as of the last call) */
    int flaggedConnections() {
        return flaggedOpen;
    }

    /** @return true while a drain episode is under way */
    boolean draining() {
        return draining;
    }

    /** @return the last completed drain */
    Optional<DrainEpisode> lastDrain() {
        return Optional.ofNullable(lastDrain);
    }
}
