package dev.poolgoaway.hikari;

import java.io.IOException;
import java.time.Clock;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.IdentityHashMap;
import java.util.Iterator;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalInt;
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
 * be tested against a fake pool and a fake clock. Not thread-safe: one evictor thread calls it ({@link #close()},
 * from any thread, meets a run only where HikariCP is asked for replacements).
 *
 * <p>The rules. A connection the server ended is closed at once. One the server asked to leave goes when due (a
 * random moment within the drain window after the signal), and then only as fast as replacements are really made,
 * a replacement being a connection HikariCP made that is not itself asked to leave. By default the replacement
 * comes first: the loop asks HikariCP to fill the pool to its size plus one (raising {@code maximumPoolSize} at run
 * time by at most {@code maxExtraConnections}), and a connection goes only once a replacement was made ahead of it.
 * With {@code maxExtraConnections} 0, one goes first instead, to prove the new destination, and no more than
 * {@code maxReplacementsInFlight} are let go and not yet replaced. So whatever the new destination does
 * (unreachable, refusing, full, slow, the leaving server again), the pool has as many usable connections as plain
 * HikariCP would have (or, without extra connections, that many fewer). Never a demand estimate: a lull followed by
 * a burst finds the pool as large as before. If no replacement arrives within the pool's {@code connectionTimeout},
 * or HikariCP reports a failed attempt, the drain stalls: nothing more goes, one WARN (then a line a minute),
 * replacements are asked for again with a backoff (HikariCP stops connecting in between, if nothing was let go),
 * and the drain resumes on its own with the first replacement made. An idle one is reserved (no borrower can race),
 * polled, and evicted or given back; one in use is asked to close on return, never interrupted, unless it is a
 * straggler the user opted to abort. A suspended pool lets nothing go (it would open no replacement): the drain is
 * stalled until it is resumed. A drain episode runs from the first signal until no connection asked to leave is
 * open, or only stragglers are, and every connection let go was replaced.
 *
 * <p>When it runs. At every tick, to poll idle connections (pgjdbc reads nothing while a connection sits in the pool);
 * every {@link #DRAINING_PASS_NANOS} while draining; when a connection is due; and, through the evictor, at once when
 * something changes: a borrower's read saw a signal, a socket closed, HikariCP made a connection or one was returned.
 * So a drain goes at the pace of the events, not of the tick.
 */
final class DrainLoop {

    private static final Logger log = LoggerFactory.getLogger(DrainLoop.class);

    /**
     * How often every connection is looked at (and idle ones polled) while a drain is under way: a connection that
     * went back to the pool before it read the server's request is otherwise found only at the next tick. Between
     * passes the loop runs when something happens (a signal, a return, a new connection) and when one is due.
     */
    static final long DRAINING_PASS_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
    /** The longest wait between two requests for replacements while a drain is stalled. */
    static final long MAX_BACKOFF_NANOS = TimeUnit.MINUTES.toNanos(1);
    /** How often a stall that goes on is logged again. */
    static final long STALL_LOG_NANOS = TimeUnit.MINUTES.toNanos(1);
    /** How long after HikariCP reported a new connection the loop expects it in the pool. */
    static final long CREATION_JOIN_NANOS = TimeUnit.MILLISECONDS.toNanos(10);
    static final long CREATION_RECHECK_NANOS = TimeUnit.MILLISECONDS.toNanos(1);
    /**
     * A pool whose constructor has not completed this long after it started the evictor never will: it threw after
     * creating its metrics tracker, and nobody will ever shut it down. Far longer than the few steps between.
     */
    static final long NEVER_STARTED_NANOS = TimeUnit.SECONDS.toNanos(2);
    /**
     * How often to look while the pool's constructor runs: the first run after it has completed lists the
     * connections and gives each its listener, so that it can wake the loop; a tick (up to a minute) is too long.
     */
    static final long START_CHECK_NANOS = TimeUnit.MILLISECONDS.toNanos(50);
    /**
     * How late a source's wish to run may be served, to share a run the loop makes anyway: a quarter of a tick
     * (the drift of a few busy runs), at most this.
     */
    static final long MAX_SOURCE_COALESCE_NANOS = TimeUnit.MILLISECONDS.toNanos(100);

    private final PoolView pool;
    private final EvictorSettings settings;
    private final String poolName;
    private final Clock clock;
    private final RandomGenerator random;
    /** Who says which connections are to leave: the wire layer's signals first, then the deployment's. */
    private final List<LeaveSource> sources;
    private volatile EvictorEvents events = EvictorEvents.NONE;

    private final Map<Object, Tracked> tracked = new IdentityHashMap<>();
    private Episode episode;
    private long lastFullPass;
    private boolean passed;
    /** A drain began: poll every idle connection at once. */
    private boolean pollAll;
    /**
     * Connections the loop let go (not dead ones) less the replacements made, in this episode: positive, the pool is
     * short by as many; negative, replacements were made ahead of the connections they replace (at most
     * {@code maxExtraConnections}).
     */
    private int owed;
    /** Connections asked to leave, not dead, not yet let go (as of this pass). */
    private int toLetGo;
    /** The loop waits for a replacement: one is owed, or a connection due to go is held back for want of one. */
    private boolean waiting;
    /** Since when it waits with room for a replacement in the pool (nanos): the stall's clock. */
    private long waitingSince;
    /** The pool's size when the episode first asked for replacements: what HikariCP is asked to refill to. */
    private int sizeAtDrain = -1;
    /** The size HikariCP was last asked to fill to; -1 while it is not asked (or no longer, after a failure). */
    private int requested = -1;
    /** The drain waits for a replacement that is not coming, or for a suspended pool: nothing more goes. */
    private volatile boolean stalled;
    /** Why, while stalled. */
    private volatile String stallReason;
    /** The stall is the pool's suspension: it ends with {@code resumePool()}. */
    private boolean suspendedStall;
    /** The evictor stopped (guarded by this): nothing more is asked of HikariCP. */
    private boolean closed;
    private long stalledSince;
    private long lastStallLog;
    /** When to ask for replacements again while stalled, and the wait after that. */
    private long retryAt;
    private long backoff;
    private Throwable lastFailureSeen;
    private volatile int replacementFailures;
    private volatile String lastReplacementFailure;
    /** The public API cannot drain one connection at a time: said once per episode. */
    private boolean publicApiWarned;
    /** When HikariCP last reported a new connection not yet seen in the pool (nanos; 0: none). */
    private volatile long createdAt;
    /** The last call found a connection new to the pool. */
    private boolean joined;
    /** Runs the loop soon: given to every connection's signals. */
    private final Runnable wake;
    private long firstCall;
    private long lastCall;
    private boolean called;
    private volatile int flaggedOpen;
    /** Connections in use asked to close on return, not yet back (as of the last call; stragglers not counted). */
    private volatile int awaitingReturn;
    private volatile boolean draining;
    private volatile DrainEpisode lastDrain;

    DrainLoop(PoolView pool, EvictorSettings settings, String poolName, Clock clock, RandomGenerator random,
            Runnable wake) {
        this(pool, settings, poolName, clock, random, wake, List.of(LeaveSource.wire(settings.signals())));
    }

    /** @param sources the sources of leave signals, in order: an earlier one's answer wins */
    DrainLoop(PoolView pool, EvictorSettings settings, String poolName, Clock clock, RandomGenerator random,
            Runnable wake, List<LeaveSource> sources) {
        this.sources = List.copyOf(sources);
        this.pool = pool;
        this.wake = wake;
        this.settings = settings;
        this.poolName = poolName;
        this.clock = clock;
        this.random = random;
    }

    /** What the loop knows about one pooled connection. */
    private static final class Tracked {
        final Object entry;
        final PoolView.Signals signals;
        /** How HikariCP holds it, as of this pass. */
        PoolView.Slot slot;
        /** What the server said; null until it said anything. */
        SignalKind kind;
        Instant signalAt;
        long dueNanos;
        /** HikariCP was asked to close the connection when its borrower returns it. */
        boolean closeOnReturn;
        long closeOnReturnNanos;
        /** Closed by the loop (counted already). */
        boolean closed;
        /** In use past the straggler deadline (logged). */
        boolean straggler;
        /** Joined the pool during a drain: a replacement, unless it is asked to leave too (first read decides). */
        boolean fresh;
        /** Counted as a replacement made: asked to leave later, it was none (the leaving server again). */
        boolean replaced;

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
        lastCall = now;
        if (!pool.started()) {
            if (now - firstCall >= NEVER_STARTED_NANOS) {
                log.warn("{} - the pool never finished starting (its constructor failed): pool-goaway's evictor "
                        + "stops", poolName);
                return -1;
            }
            return START_CHECK_NANOS;
        }
        long sourcesNext = Long.MAX_VALUE;
        for (LeaveSource source : sources) {
            sourcesNext = Math.min(sourcesNext, source.refresh(now));
        }
        List<Tracked> present = track();
        long next = pool.canReserve() ? decide(present, now) : decidePublic(present, now);
        endEpisodeIfDrained();
        // A source due a moment before the loop's own next run waits for that run. Each tick is set from the last
        // one's actual start, so the ticks drift by the runs' lateness: a source's schedule set on one of them (the
        // DNS lookups, once a second) would otherwise fall just before a later tick, and cost a run of its own each
        // time (a fifth more evictor CPU at 200 connections, measured).
        long coalesce = Math.min(settings.tick().toNanos() / 4, MAX_SOURCE_COALESCE_NANOS);
        return sourcesNext < next - coalesce ? Math.max(0, sourcesNext) : next;
    }

    /** Registers new entries and forgets (and counts) those that left the pool since the last call. */
    private List<Tracked> track() {
        joined = false;
        List<?> entries = pool.entries();
        Map<Object, Tracked> seen = new IdentityHashMap<>(entries.size() * 2);
        List<Tracked> present = new ArrayList<>(entries.size());
        for (Object entry : entries) {
            Tracked t = tracked.get(entry);
            if (t == null) {
                t = new Tracked(entry, pool.signals(entry));
                t.fresh = episode != null;
                if (t.signals != null) {
                    t.signals.listen(wake);
                }
                tracked.put(entry, t);
                joined = true;
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
        // The pool as its borrowers see it, and what its borrowers heard meanwhile (no I/O).
        int awaiting = 0;
        toLetGo = 0;
        for (Tracked t : present) {
            t.slot = pool.slot(t.entry);
            if (t.signals != null && !t.closed) {
                read(t, now);
                replacement(t, now);
                toLetGo += t.kind != null && !t.kind.ended() && !t.closeOnReturn ? 1 : 0;
            }
            // A straggler left to its borrower is not being replaced: it must not stall the rest of the drain.
            awaiting += !t.closed && t.closeOnReturn && t.slot == PoolView.Slot.IN_USE && !t.straggler ? 1 : 0;
        }
        awaitingReturn = awaiting;
        creationFailures();
        suspension(now);
        // Make before break: by default (maxExtraConnections) a connection goes only once a replacement was made
        // ahead of it; else what was let go and not yet replaced is bounded. Nothing more goes while replacements
        // fail or do not come, or the pool is suspended.
        int budget = settings.maxReplacementsInFlight().orElse(settings.maxExtraConnections() > 0 ? 0 : 1) - owed;
        boolean retry = stalled && !suspendedStall && backoff > 0 && now - retryAt >= 0;
        boolean probe = false;
        if (retry) {
            // Stalled: try again, with a backoff. A pool short of what it fills to asks HikariCP again; a whole one
            // (its new connections were asked to leave too) lets one more go, as the probe.
            backoff = Math.min(2 * backoff, MAX_BACKOFF_NANOS);
            retryAt = now + backoff;
            if (sizeAtDrain >= 0 && pool.totalConnections() < fillTo()) {
                ask();
            } else {
                probe = owed <= 0;
            }
        }
        if (stalled) {
            budget = probe ? 1 : 0;
        }
        boolean heldBack = false;
        long tick = episode == null ? settings.tick().toNanos()
                : Math.min(settings.tick().toNanos(), DRAINING_PASS_NANOS);
        boolean fullPass = !passed || pollAll || now - lastFullPass >= tick;
        if (fullPass) {
            passed = true;
            pollAll = false;
            lastFullPass = now;
        }
        long next = lastFullPass + tick - now;
        // Idle connections first: one evicted frees a place HikariCP refills at once, whereas one in use asked to
        // close on return is replaced only when its borrower is done, which may be long.
        List<Tracked> order = new ArrayList<>(present);
        order.sort(Comparator.comparing(t -> t.slot != PoolView.Slot.IDLE));
        for (Tracked t : order) {
            if (t.signals == null || t.closed) {
                continue;
            }
            if (t.slot == PoolView.Slot.IN_USE) {
                if (t.kind != null && !t.closeOnReturn) {
                    if (t.kind.ended() || (now - t.dueNanos >= 0 && budget > 0)) {
                        // Marking takes a connection from the pool like an idle eviction: it is closed and replaced
                        // when it comes back, so marking them all at once could empty the pool.
                        // A dead connection was never usable: it takes nothing from the budget.
                        if (!t.kind.ended()) {
                            budget--;
                            letGo();
                        }
                        t.closeOnReturn = true;
                        t.closeOnReturnNanos = now;
                        pool.closeOnReturn(t.entry);
                        log.debug("{} - connection pid {} in use asked to leave ({}): closes when returned",
                                poolName, t.signals.backendPid(), t.kind.tag());
                    } else {
                        heldBack |= now - t.dueNanos >= 0;
                        next = untilDue(t, now, next);
                    }
                }
                straggler(t, now);
            } else if (t.slot == PoolView.Slot.IDLE) {
                if (t.kind == null && !fullPass) {
                    continue;
                }
                if (t.kind != null && !evictNow(t, now, budget)) {
                    heldBack |= now - t.dueNanos >= 0;
                    next = untilDue(t, now, next);
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
                        if (!t.kind.ended() && !t.closeOnReturn) {
                            budget--;
                            letGo();
                        }
                        pool.evict(t.entry, reason);
                        evicted = true;
                        // Asked to close on return and back (HikariCP 5.1 requites such connections before closing
                        // them): it counts as closed in use.
                        closed(t, t.closeOnReturn ? EvictionState.IN_USE : EvictionState.IDLE);
                        log.debug("{} - evicted idle connection pid {} {}", poolName, t.signals.backendPid(), reason);
                    } else if (t.kind != null) {
                        heldBack |= now - t.dueNanos >= 0;
                        next = untilDue(t, now, next);
                    }
                } finally {
                    // Checked again: HikariCP may have evicted it while it was being polled.
                    if (!evicted && !evictedByHikari(t)) {
                        pool.unreserve(t.entry);
                    }
                }
            }
        }
        if (heldBack && !stalled && (sizeAtDrain < 0 || fillTo() != requested)) {
            // Due and held back: the replacement it waits for is asked for now (HikariCP's adder opens it, within
            // maxExtraConnections beyond the pool's size).
            ask();
        }
        if (pollAll) {
            // A drain began during this pass: the server tells all its connections at once, so every idle one is
            // polled now, not a pass later.
            return 0;
        }
        next = Math.min(next, stall(present, now, heldBack));
        long created = createdAt;
        if (created != 0) {
            if (joined || now - created >= CREATION_JOIN_NANOS) {
                createdAt = 0;
            } else {
                // HikariCP reports a creation just before the new entry joins the pool: look again in a moment.
                next = Math.min(next, CREATION_RECHECK_NANOS);
            }
        }
        // Due but held back: the next replacement to arrive wakes the loop (connectionCreated); the pass is the
        // fallback.
        return next;
    }

    /**
     * A connection not yet due has the loop run when it is; one due and held back waits for a replacement (whose
     * creation wakes the loop) or the next pass, never a busy loop.
     */
    private static long untilDue(Tracked t, long now, long next) {
        return t.dueNanos - now > 0 ? Math.min(next, t.dueNanos - now) : next;
    }

    /**
     * A connection the loop is about to let go (evict idle, or ask to close on return), not a dead one: it is owed a
     * replacement, unless one was made ahead of it. HikariCP is asked to fill the pool before the connection goes:
     * when it is the last to go, the size asked for falls back to the pool's own first, so that HikariCP's adder,
     * started by the eviction, opens nothing beyond it.
     */
    private void letGo() {
        owed++;
        toLetGo--;
        ask();
    }

    /** What HikariCP is asked to fill the pool to: its size at the drain's start, and one ahead per connection. */
    private int fillTo() {
        return sizeAtDrain + Math.min(settings.maxExtraConnections(), Math.max(0, toLetGo));
    }

    /**
     * Asks HikariCP for replacements: to fill the pool to {@link #fillTo()}. Never after {@link #close()}, which
     * put the pool's sizes back (a run may still be under way when the evictor closes).
     */
    private synchronized void ask() {
        if (closed) {
            return;
        }
        if (sizeAtDrain < 0) {
            // Capped at the pool's own maximum (not raised yet here): connections the server ended during an
            // earlier drain may have been refilled to its raised size, and that one extra must not become the
            // base this drain raises from, or each drain would add one more.
            sizeAtDrain = Math.min(pool.totalConnections(), pool.maximumPoolSize());
        }
        requested = fillTo();
        pool.requestReplacements(requested);
    }

    /**
     * A connection new to the pool, at its first read: it fills a place the loop let go, and it is a replacement
     * made unless the server asked it to leave too (a leaving server reached again, a stale balancer): then it
     * counts as a failure, and the drain stalls rather than churn at connection-setup speed.
     */
    private void replacement(Tracked t, long now) {
        if (!t.fresh) {
            return;
        }
        t.fresh = false;
        // A replacement fills a place let go, or one of the places ahead the drain asked HikariCP for.
        boolean matched = owed > -settings.maxExtraConnections();
        if (matched) {
            owed--;
            waitingSince = now;
        }
        if (t.kind != null && !t.kind.ended()) {
            failed("the new connection to " + t.signals.server() + " was asked to leave too (" + t.kind.tag() + ")");
            stopAsking();
            return;
        }
        if (t.kind != null || (!matched && !stalled)) {
            return;
        }
        t.replaced = true;
        emit(() -> events.replacement(true));
        if (stalled && !suspendedStall) {
            stalled = false;
            stallReason = null;
            backoff = 0;
            log.info("{} - drain resumes: a replacement was made after {} ms stalled ({} replacement{} failed)",
                    poolName, TimeUnit.NANOSECONDS.toMillis(now - stalledSince), replacementFailures,
                    replacementFailures == 1 ? "" : "s");
        }
    }

    /** HikariCP's attempts to connect that failed since the last call, while replacements are awaited. */
    private void creationFailures() {
        Throwable failure = pool.lastCreationFailure();
        if (failure == null || failure == lastFailureSeen) {
            return;
        }
        lastFailureSeen = failure;
        if (waiting || owed > 0) {
            failed(describe(failure));
            stopAsking();
        }
    }

    /**
     * After a failed replacement (refused, or asked to leave too): if nothing was let go, the pool is as plain
     * HikariCP keeps it, and plain HikariCP would not be connecting at all. HikariCP stops asking the failing
     * destination (and a pool below its maximum, whose raised {@code minimumIdle} would let HikariCP open one for
     * each connection in use, stops growing on the leaving server); the backoff's retries ask again.
     */
    private void stopAsking() {
        if (owed <= 0 && requested >= 0) {
            pool.endReplacements();
            requested = -1;
        }
    }

    private void failed(String what) {
        replacementFailures++;
        lastReplacementFailure = what;
        emit(() -> events.replacement(false));
        if (!suspendedStall) {
            stallReason = "replacements fail (last: " + what + ")";
        }
        if (!stalled) {
            // A failed replacement stalls the drain at once: nothing more goes into a destination that refuses.
            stalled = true;
            stalledSince = lastCall;
        }
    }

    /**
     * A suspended pool opens no connection, so none asked to leave can be replaced: while connections wait to go,
     * the drain is stalled for it (one WARN), and resumes when the pool is resumed. Dead connections still go.
     */
    private void suspension(long now) {
        boolean suspended = pool.suspended();
        if (suspended && toLetGo > 0 && !suspendedStall) {
            suspendedStall = true;
            stallReason = "the pool is suspended (suspendPool()): it opens no replacement";
            if (!stalled) {
                stalled = true;
                stalledSince = now;
                backoff = 0;
            }
        } else if (!suspended && suspendedStall) {
            // Whatever stalled the drain before the suspension is looked at afresh: the retries start over.
            suspendedStall = false;
            stalled = false;
            stallReason = null;
            backoff = 0;
            log.info("{} - drain resumes: the pool was resumed after {} ms stalled", poolName,
                    TimeUnit.NANOSECONDS.toMillis(now - stalledSince));
        }
    }

    /** "SQLSTATE: message" of the first SQLException in the chain, else the innermost message; sanitized. */
    static String describe(Throwable failure) {
        Throwable innermost = failure;
        for (Throwable c = failure; c != null; c = c.getCause() == c ? null : c.getCause()) {
            if (c instanceof java.sql.SQLException sql && sql.getSQLState() != null) {
                return LogText.sanitize(sql.getSQLState() + ": " + sql.getMessage());
            }
            innermost = c;
        }
        return LogText.sanitize(innermost.getClass().getSimpleName() + ": " + innermost.getMessage());
    }

    /**
     * While replacements are owed: stalls the drain when none came within the pool's {@code connectionTimeout},
     * logs a stall once and then once a minute, and asks for replacements again with a backoff.
     *
     * @return nanoseconds until this needs to look again
     */
    private long stall(List<Tracked> present, long now, boolean heldBack) {
        long timeout = TimeUnit.MILLISECONDS.toNanos(pool.connectionTimeoutMillis());
        // No replacement within connectionTimeout while HikariCP could make one: a pool filled to what it was
        // asked makes none until a connection asked to close on return comes back, however long its borrower takes.
        boolean room = pool.totalConnections() < requested;
        boolean nowWaiting = owed > 0 || heldBack;
        if (!room || !waiting) {
            waitingSince = now;
        }
        waiting = nowWaiting;
        if (!stalled && waiting && now - waitingSince >= timeout) {
            stalled = true;
            stalledSince = now;
            stallReason = "no replacement came within connectionTimeout (" + pool.connectionTimeoutMillis() + " ms)";
        }
        if (!stalled) {
            return waiting ? waitingSince + timeout - now : Long.MAX_VALUE;
        }
        if (backoff == 0) {
            backoff = Math.max(timeout, TimeUnit.SECONDS.toNanos(1));
            retryAt = now + backoff;
            lastStallLog = now;
            warnStalled(present, now, "");
        } else if (now - lastStallLog >= STALL_LOG_NANOS) {
            lastStallLog = now;
            warnStalled(present, now, "still ");
        }
        return Math.max(1, Math.min(retryAt - now, lastStallLog + STALL_LOG_NANOS - now));
    }

    private void warnStalled(List<Tracked> present, long now, String still) {
        int flagged = 0;
        for (Tracked t : present) {
            flagged += t.flagged() ? 1 : 0;
        }
        int shortBy = Math.max(0, owed);
        log.warn("{} - drain {}stalled{}: {}; {} connection{} asked to leave kept open, {}, {} replacement{} "
                + "failed; {}", poolName, still,
                still.isEmpty() ? "" : " for " + TimeUnit.NANOSECONDS.toMillis(now - stalledSince) + " ms",
                stallReason, flagged, flagged == 1 ? "" : "s",
                shortBy == 0 ? "the pool is whole" : shortBy + " replacement" + (shortBy == 1 ? "" : "s") + " owed",
                replacementFailures, replacementFailures == 1 ? "" : "s",
                suspendedStall ? "waiting for resumePool()"
                        : "no connection goes until a replacement is made; trying again in "
                                + TimeUnit.NANOSECONDS.toMillis(Math.max(0, retryAt - now)) + " ms");
    }

    /**
     * HikariCP made a connection (its metrics tracker's report, from its adder thread): a replacement that lets
     * the next connection asked to leave go.
     */
    void connectionCreated(long now) {
        createdAt = now == 0 ? 1 : now;
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
     * The public API alone: connections are listed by the wire layer, but can be neither reserved nor evicted one
     * by one, and {@code softEvictConnections()} would close the whole pool at once, which a new destination that
     * fails would leave empty. So nothing is evicted: the drain is reported stalled, with one WARN per drain naming
     * the fix; HikariCP's own maxLifetime moves the connections, and it replaces dead ones at their next borrow.
     */
    private long decidePublic(List<Tracked> present, long now) {
        int flagged = 0;
        for (Tracked t : present) {
            if (t.signals == null) {
                continue;
            }
            read(t, now);
            flagged += t.flagged() && !t.kind.ended() ? 1 : 0;
        }
        stalled = flagged > 0;
        stallReason = stalled ? "HikariCP's internals are not reachable: nothing is evicted" : null;
        if (stalled && !publicApiWarned) {
            publicApiWarned = true;
            stalledSince = now;
            log.warn("{} - pool-goaway cannot drain this pool through HikariCP's public API alone: {} connection{} "
                    + "asked to leave stay until HikariCP's maxLifetime retires them (soft-evicting the whole pool "
                    + "could leave it empty). Fix: run with HikariCP's internals reachable (a tested HikariCP "
                    + "release, --add-opens on the module path; docs/limitations.md)", poolName, flagged,
                    flagged == 1 ? "" : "s");
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

    /**
     * Notes what the sources say, if anything new: an end of the connection outranks a request to leave, and the
     * first source to ask wins.
     */
    private void read(Tracked t, long now) {
        if (t.kind != null && t.kind.ended()) {
            return;
        }
        for (LeaveSource source : sources) {
            Optional<PoolView.Heard> heard = source.heard(t.signals);
            if (heard.isPresent() && (t.kind == null || heard.get().kind().ended())) {
                record(t, heard.get(), now);
                return;
            }
        }
    }

    /** The evictor stopped: the sources let go of what they registered, and the pool's sizes are the user's. */
    void close() {
        for (LeaveSource source : sources) {
            source.close();
        }
        synchronized (this) {
            closed = true;
            pool.endReplacements();
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
            if (t.replaced) {
                // Counted as a replacement, then asked to leave: a failure after all (so a leaving server that
                // keeps asking its new connections to leave stalls the drain, no churn).
                t.replaced = false;
                failed("the new connection to " + t.signals.server() + " was asked to leave too ("
                        + heard.kind().tag() + ")");
                stopAsking();
            }
            if (e.connections++ == 0) {
                log.info("{} - drain starts: {} from {}", poolName, heard.kind().tag(), t.signals.server());
            }
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
        if (!t.kind.ended() && owed > 0) {
            // Left to its borrower (or aborted): no longer a replacement the drain waits for.
            owed--;
        }
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
            pollAll = true;
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
        // A drain is over when the pool is whole again, too: replacements still owed keep it (and its stall) open.
        if (episode == null || waiting || owed > 0) {
            return;
        }
        Episode e = episode;
        DrainEpisode done = new DrainEpisode(List.copyOf(e.servers), e.connections, Map.copyOf(e.kinds),
                List.copyOf(e.grants), e.firstSignalAt, e.lastCloseAt, Optional.ofNullable(e.adminMessage));
        // lastDrain before draining goes false: a reader that sees neither would think no drain ever happened.
        lastDrain = done;
        episode = null;
        draining = false;
        owed = 0;
        stalled = false;
        stallReason = null;
        suspendedStall = false;
        backoff = 0;
        sizeAtDrain = -1;
        requested = -1;
        this.waiting = false;
        publicApiWarned = false;
        pool.endReplacements();
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

    /** @return connections in use asked to close on return and not back yet, as of the last call */
    int awaitingReturn() {
        return awaitingReturn;
    }

    /** @return true while the drain waits for replacements that do not come (or cannot drain: public API) */
    boolean stalled() {
        return stalled;
    }

    /** @return why the drain is stalled, while it is */
    Optional<String> stallReason() {
        return stalled ? Optional.ofNullable(stallReason) : Optional.empty();
    }

    /** @return replacements that failed (could not connect, or were asked to leave too), since the pool started */
    int replacementFailures() {
        return replacementFailures;
    }

    /** @return the last replacement failure, "SQLSTATE: message" where the server gave one; sanitized */
    Optional<String> lastReplacementFailure() {
        return Optional.ofNullable(lastReplacementFailure);
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
