package dev.poolgoaway.hikari;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.net.InetAddress;
import java.net.UnknownHostException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.random.RandomGenerator;

import org.junit.jupiter.api.Test;

import dev.poolgoaway.hikari.FakePool.Conn;

/**
 * The DNS leave-signal's safeguards, each against a fake resolver and the fake pool's clock; and the drain it
 * starts, through the loop itself (same pacing, same meters as a GoAway).
 */
class DnsLeaveSourceTest {

    private static final InetAddress BLUE = address(2);
    private static final InetAddress GREEN = address(3);
    private static final InetAddress THIRD = address(4);
    private static final InetAddress FOURTH = address(5);

    /** Answers what the test says; {@code null} makes the lookup fail. Counts lookups by name. */
    private final Map<String, InetAddress[]> answers = new HashMap<>();
    private final List<String> looked = new ArrayList<>();
    private final DnsLeaveSource.Resolver resolver = host -> {
        looked.add(host);
        InetAddress[] a = answers.get(host);
        if (a == null) {
            throw new UnknownHostException(host + ": lookup failed");
        }
        return a;
    };
    private final FakePool pool = new FakePool(0);
    private final DnsLeaveSource dns = new DnsLeaveSource("fake", resolver, Duration.ofSeconds(1),
            Duration.ofSeconds(2), pool.clock());

    private static InetAddress address(int last) {
        try {
            return InetAddress.getByAddress(new byte[] {127, 0, 0, (byte) last});
        } catch (UnknownHostException e) {
            throw new AssertionError(e);
        }
    }

    private Conn conn(String server, InetAddress peer) {
        Conn c = new Conn(1);
        c.server = server;
        c.peer = peer;
        return c;
    }

    /** One run of the loop: refresh, then every connection asked; a second later. */
    private Optional<PoolView.Heard> run(Conn c) {
        dns.refresh(pool.nanos);
        Optional<PoolView.Heard> heard = dns.heard(c);
        pool.advanceMillis(1000);
        return heard;
    }

    private void answer(String host, InetAddress... addresses) {
        answers.put(host, addresses);
    }

    @Test
    void aNameRepointedDrainsItsConnectionsOnceTheWindowHasPassed() {
        Conn c = conn("db.example:5432", BLUE);
        answer("db.example", BLUE);
        for (int i = 0; i < 3; i++) {
            assertTrue(run(c).isEmpty());
        }
        answer("db.example", GREEN);
        // Missing from lookups spanning the 2 s window: the first miss, a second later, two seconds later.
        assertTrue(run(c).isEmpty(), "one lookup is not enough");
        assertTrue(run(c).isEmpty(), "nor one second");
        Optional<PoolView.Heard> heard = run(c);
        assertTrue(heard.isPresent(), "gone from every lookup over the window");
        assertEquals(SignalKind.DNS_MOVED, heard.get().kind());
        assertTrue(dns.heard(conn("db.example:5432", GREEN)).isEmpty(), "connections to the new address stay");
    }

    @Test
    void twoLookupsLessThanASecondApartAreNotEnoughEvenWithAShortWindow() {
        DnsLeaveSource fast = new DnsLeaveSource("fake", resolver, Duration.ofMillis(100), Duration.ofSeconds(1),
                pool.clock());
        Conn c = conn("db.example:5432", BLUE);
        answer("db.example", BLUE);
        fast.refresh(pool.nanos);
        fast.heard(c);
        answer("db.example", GREEN);
        for (int i = 0; i < 9; i++) {
            pool.advanceMillis(100);
            fast.refresh(pool.nanos);
            assertTrue(fast.heard(c).isEmpty(), "after " + (i + 1) * 100 + " ms");
        }
        pool.advanceMillis(200);
        fast.refresh(pool.nanos);
        assertTrue(fast.heard(c).isPresent(), "missing over a second");
    }

    @Test
    void aFailedOrEmptyLookupNeverDrains() {
        Conn c = conn("db.example:5432", BLUE);
        answer("db.example", BLUE);
        run(c);
        answers.remove("db.example");
        for (int i = 0; i < 5; i++) {
            assertTrue(run(c).isEmpty(), "failed lookup " + i);
        }
        answer("db.example");
        for (int i = 0; i < 5; i++) {
            assertTrue(run(c).isEmpty(), "empty answer " + i);
        }
        answer("db.example", BLUE);
        assertTrue(run(c).isEmpty(), "resolves to it again");
        assertEquals(11, looked.size(), "looked up every interval from the run after it was first seen");
    }

    @Test
    void aLookupIsCountedOnceAnsweredSoNeitherMetersCountGoesDown() {
        // A scrape while a slow lookup is under way must not see it as answered, then as failed.
        List<Long> seenDuringLookups = new ArrayList<>();
        DnsLeaveSource[] source = new DnsLeaveSource[1];
        source[0] = new DnsLeaveSource("fake", host -> {
            seenDuringLookups.add(source[0].lookups());
            return resolver.resolve(host);
        }, Duration.ofSeconds(1), Duration.ofSeconds(2), pool.clock());
        Conn c = conn("db.example:5432", BLUE);
        answer("db.example", BLUE);
        source[0].refresh(pool.nanos);
        source[0].heard(c);
        pool.advanceMillis(1000);
        source[0].refresh(pool.nanos);
        answers.remove("db.example");
        pool.advanceMillis(1000);
        source[0].refresh(pool.nanos);
        assertEquals(List.of(0L, 1L), seenDuringLookups, "a lookup under way is not counted yet");
        assertEquals(2, source[0].lookups());
        assertEquals(1, source[0].answeredLookups());
        assertEquals(1, source[0].failedLookups());
    }

    @Test
    void aRoundRobinNameAnsweringSubsetsDoesNotChurn() {
        // Four addresses, answered two at a time in turn (a multi-value answer): each is missing from every other
        // lookup, never from all over the window.
        Conn[] conns = {conn("rr.example:5432", BLUE), conn("rr.example:5432", GREEN),
                conn("rr.example:5432", THIRD), conn("rr.example:5432", FOURTH)};
        InetAddress[][] subsets = {{BLUE, GREEN}, {THIRD, FOURTH}, {GREEN, THIRD}, {FOURTH, BLUE}};
        for (int i = 0; i < 40; i++) {
            answer("rr.example", subsets[i % subsets.length]);
            dns.refresh(pool.nanos);
            for (Conn c : conns) {
                assertTrue(dns.heard(c).isEmpty(), "lookup " + i + ": " + c.peer);
            }
            pool.advanceMillis(1000);
        }
    }

    @Test
    void eachConnectionIsJudgedAgainstTheHostItWasOpenedFor() {
        // A multi-host URL: host1 and host2; a connection to host2's address is not "gone" from host1's answer.
        Conn onHost1 = conn("host1:5432", BLUE);
        Conn onHost2 = conn("host2:5432", GREEN);
        answer("host1", BLUE);
        answer("host2", GREEN);
        for (int i = 0; i < 6; i++) {
            dns.refresh(pool.nanos);
            assertTrue(dns.heard(onHost1).isEmpty());
            assertTrue(dns.heard(onHost2).isEmpty());
            pool.advanceMillis(1000);
        }
        answer("host2", THIRD);
        for (int i = 0; i < 4; i++) {
            run(onHost2);
            dns.heard(onHost1);
        }
        assertTrue(dns.heard(onHost2).isPresent(), "host2 moved");
        assertTrue(dns.heard(onHost1).isEmpty(), "host1 did not");
    }

    @Test
    void ipLiteralsAndConnectionsWithoutAnIpPeerAreNeverLookedUp() {
        for (Conn c : List.of(conn("127.0.0.2:5432", BLUE), conn("[::1]:5432", BLUE), conn("::1:5432", BLUE),
                conn("db.example:5432", null))) {
            for (int i = 0; i < 3; i++) {
                assertTrue(run(c).isEmpty());
            }
        }
        assertEquals(List.of(), looked);
        assertNull(DnsLeaveSource.hostOf("10.1.2.3:6432"));
        assertEquals("db.example", DnsLeaveSource.hostOf("db.example:6432"));
    }

    @Test
    void lookupsFollowTheInterval() {
        Conn c = conn("db.example:5432", BLUE);
        answer("db.example", BLUE);
        dns.refresh(pool.nanos);
        dns.heard(c);
        for (int i = 0; i <= 10; i++) {
            long next = dns.refresh(pool.nanos);
            assertTrue(next > 0 && next <= Duration.ofSeconds(1).toNanos(), "next " + next);
            pool.advanceMillis(100);
        }
        assertEquals(2, looked.size(), "at 0 and at 1 s, none between: " + looked);
    }

    @Test
    void theLoopDrainsADnsMoveLikeAGoAway() {
        FakePool p = new FakePool(4);
        for (Conn c : p.conns) {
            c.server = "db.example:5432";
            c.peer = BLUE;
        }
        answer("db.example", BLUE);
        DnsLeaveSource source = new DnsLeaveSource("fake", resolver, Duration.ofSeconds(1), Duration.ofSeconds(1),
                p.clock());
        List<String> signals = new ArrayList<>();
        DrainLoop loop = new DrainLoop(p, EvictorSettings.defaults(), "fake", p.clock(), RandomGenerator.of("L64X128MixRandom"),
                () -> { }, List.of(LeaveSource.wire(EvictorSettings.defaults().signals()), source));
        loop.events(new EvictorEvents() {
            @Override
            public void signal(SignalKind kind) {
                signals.add(kind.tag());
            }
        });
        for (int i = 0; i < 3; i++) {
            loop.cleanup(p.nanos);
            p.advanceMillis(1000);
        }
        assertEquals(List.of(), signals);
        List<Conn> blue = List.copyOf(p.conns);
        answer("db.example", GREEN);
        for (int i = 0; i < 100 && blue.stream().anyMatch(p.conns::contains); i++) {
            loop.cleanup(p.nanos);
            // HikariCP fills to maximumPoolSize, as the loop raised it for a replacement made first.
            int n = p.maximum - p.conns.size();
            if (n > 0) {
                p.refill(n);
                p.conns.subList(p.conns.size() - n, p.conns.size()).forEach(c -> {
                    c.server = "db.example:5432";
                    c.peer = GREEN;
                });
                loop.connectionCreated(p.nanos);
            }
            p.advanceMillis(100);
        }
        assertTrue(blue.stream().noneMatch(p.conns::contains), "every blue connection closed");
        loop.cleanup(p.nanos);
        assertEquals(List.of("dns_moved", "dns_moved", "dns_moved", "dns_moved"), signals);
        assertEquals(4, p.conns.size(), "replaced on green");
        assertEquals(Map.of("dns_moved", 4), loop.lastDrain().orElseThrow().kinds());
    }
}
