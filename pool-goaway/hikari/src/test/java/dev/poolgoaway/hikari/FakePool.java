package dev.poolgoaway.hikari;

import java.io.IOException;
import java.net.InetAddress;
import java.time.Clock;
import java.time.Instant;
import java.time.ZoneId;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.TimeUnit;

/**
 * A pool for {@link DrainLoop}'s unit tests: connections as plain objects, HikariCP's few behaviours that matter to
 * the loop (a connection asked to close on return is closed when returned; a closed one leaves a shortfall until
 * {@link #refill}; {@code maximumPoolSize} raised while the loop asks for replacements), and a clock the test
 * moves.
 */
class FakePool implements PoolView {

    /** One pooled connection and what the server said on it. */
    static final class Conn implements Signals {
        final int pid;
        Slot slot = Slot.IDLE;
        Heard heard;
        IOException pollFailure;
        Runnable duringPoll = () -> { };
        int polls;
        boolean closeOnReturn;
        boolean evictedByHikari;
        boolean reserved;
        boolean aborted;
        String evictedFor;
        Runnable listener;
        String server = "blue:5432";
        InetAddress peer;

        Conn(int pid) {
            this.pid = pid;
        }

        @Override
        public Optional<Heard> heard(Set<LeaveSignal> honoured) {
            return Optional.ofNullable(heard);
        }

        @Override
        public void poll() throws IOException {
            polls++;
            duringPoll.run();
            if (pollFailure != null) {
                throw pollFailure;
            }
        }

        @Override
        public String server() {
            return server;
        }

        @Override
        public Optional<InetAddress> peerAddress() {
            return Optional.ofNullable(peer);
        }

        @Override
        public int backendPid() {
            return pid;
        }

        @Override
        public void listen(Runnable onChange) {
            listener = onChange;
        }
    }

    final List<Conn> conns = new ArrayList<>();
    final List<Conn> closed = new ArrayList<>();
    final int size;
    int shortfall;
    /** Borrowers waiting in {@code getConnection()}: HikariCP's adder fills for them too. */
    int waiting;
    boolean shutDown;
    boolean started = true;
    boolean publicApi;
    boolean suspended;
    Throwable creationFailure;
    long connectionTimeoutMillis = 1000;
    /** The size the loop asked HikariCP to refill to, while it asks; -1 otherwise. */
    int requestedSize = -1;
    /** {@code maximumPoolSize} now: {@link #size}, or more while the loop raised it. */
    int maximum;
    /** The most {@link #maximum} ever was. */
    int highestMaximum;
    int requests;
    long nanos = TimeUnit.SECONDS.toNanos(1000);
    private int nextPid = 100;

    FakePool(int size) {
        this.size = size;
        this.maximum = size;
        this.highestMaximum = size;
        refill(size);
    }

    /** HikariCP makes {@code n} new connections (idle, nothing heard). */
    void refill(int n) {
        for (int i = 0; i < n; i++) {
            conns.add(new Conn(nextPid++));
        }
        shortfall = Math.max(0, shortfall - n);
    }

    Conn conn(int i) {
        return conns.get(i);
    }

    /** The server says {@code kind} on connections {@code from} to {@code to} (exclusive), now. */
    void hear(SignalKind kind, int from, int to) {
        for (int i = from; i < to; i++) {
            conns.get(i).heard = new PoolView.Heard(kind, clock().instant(), null, null);
        }
    }

    void borrow(Conn c) {
        c.slot = Slot.IN_USE;
    }

    /** The borrower gives it back: HikariCP closes it if it was asked to (7.x does so at once). */
    void giveBack(Conn c) {
        if (c.closeOnReturn) {
            remove(c);
        } else {
            c.slot = Slot.IDLE;
        }
    }

    private void remove(Conn c) {
        conns.remove(c);
        closed.add(c);
        shortfall++;
    }

    void advanceMillis(long ms) {
        nanos += TimeUnit.MILLISECONDS.toNanos(ms);
    }

    long markedInUse() {
        return conns.stream().filter(c -> c.closeOnReturn && c.slot == Slot.IN_USE).count();
    }

    /** The loop's wall clock, moving with {@link #nanos}. */
    Clock clock() {
        FakePool pool = this;
        return new Clock() {
            @Override
            public ZoneId getZone() {
                return ZoneOffset.UTC;
            }

            @Override
            public Clock withZone(ZoneId zone) {
                return this;
            }

            @Override
            public Instant instant() {
                return Instant.EPOCH.plusNanos(pool.nanos);
            }
        };
    }

    @Override
    public List<Conn> entries() {
        return List.copyOf(conns);
    }

    @Override
    public Signals signals(Object entry) {
        return (Conn) entry;
    }

    @Override
    public Slot slot(Object entry) {
        Conn c = (Conn) entry;
        return c.reserved ? Slot.OTHER : c.slot;
    }

    @Override
    public boolean reserve(Object entry) {
        Conn c = (Conn) entry;
        if (c.slot != Slot.IDLE || c.reserved) {
            return false;
        }
        c.reserved = true;
        return true;
    }

    @Override
    public void unreserve(Object entry) {
        ((Conn) entry).reserved = false;
    }

    @Override
    public void closeOnReturn(Object entry) {
        ((Conn) entry).closeOnReturn = true;
    }

    @Override
    public boolean evictedByHikari(Object entry) {
        return ((Conn) entry).evictedByHikari;
    }

    @Override
    public void evict(Object entry, String reason) {
        Conn c = (Conn) entry;
        c.evictedFor = reason;
        remove(c);
    }

    @Override
    public void abort(Object entry) {
        Conn c = (Conn) entry;
        c.aborted = true;
        evict(c, "aborted");
    }



    @Override
    public boolean shutDown() {
        return shutDown;
    }

    @Override
    public boolean started() {
        return started;
    }

    @Override
    public boolean canReserve() {
        return !publicApi;
    }

    @Override
    public void requestReplacements(int size) {
        requestedSize = size;
        maximum = Math.max(this.size, size);
        highestMaximum = Math.max(highestMaximum, maximum);
        requests++;
    }

    @Override
    public void endReplacements() {
        requestedSize = -1;
        maximum = size;
    }

    @Override
    public int totalConnections() {
        return conns.size();
    }

    @Override
    public int maximumPoolSize() {
        return maximum;
    }

    @Override
    public Throwable lastCreationFailure() {
        return creationFailure;
    }

    @Override
    public boolean suspended() {
        return suspended;
    }

    @Override
    public long connectionTimeoutMillis() {
        return connectionTimeoutMillis;
    }
}
