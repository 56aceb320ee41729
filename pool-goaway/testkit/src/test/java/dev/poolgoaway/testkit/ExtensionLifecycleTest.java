package dev.poolgoaway.testkit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectClass;

import java.net.ConnectException;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

import org.junit.jupiter.api.Test;
import org.junit.platform.testkit.engine.EngineTestKit;

/**
 * What the extension starts, it stops: every proxy when its test method ends, the upstream when the class ends. Runs
 * a test class through the real Jupiter engine of the build (JUnit 6 by default, 5.10 and 5.12 in the CI matrix):
 * JUnit up to 5.12 closes only a {@code CloseableResource}, later ones an {@code AutoCloseable}.
 */
class ExtensionLifecycleTest {

    /** Run by the engine below only (surefire skips nested classes): records what it was given. */
    @GoAwayProxyTest
    static class Recorded {

        static final List<GoAwayProxy> proxies = new CopyOnWriteArrayList<>();
        static final List<PostgresUpstream> upstreams = new CopyOnWriteArrayList<>();

        @Test
        void first(GoAwayProxy proxy, PostgresUpstream upstream) {
            proxies.add(proxy);
            upstreams.add(upstream);
        }

        @Test
        void second(GoAwayProxy proxy, PostgresUpstream upstream) {
            proxies.add(proxy);
            upstreams.add(upstream);
        }
    }

    @Test
    void proxiesCloseAfterTheirMethodAndTheUpstreamAfterTheClass() {
        EngineTestKit.engine("junit-jupiter").selectors(selectClass(Recorded.class)).execute()
                .testEvents().assertStatistics(stats -> stats.started(2).succeeded(2));

        assertEquals(2, Recorded.proxies.size());
        assertNotEquals(Recorded.proxies.get(0).port(), Recorded.proxies.get(1).port(), "a proxy per method");
        assertSame(Recorded.upstreams.get(0), Recorded.upstreams.get(1), "one upstream per class");
        for (GoAwayProxy proxy : Recorded.proxies) {
            assertRefused(proxy.host(), proxy.port());
        }
        PostgresUpstream upstream = Recorded.upstreams.get(0);
        assertRefused(upstream.host(), upstream.port());
    }

    private static void assertRefused(String host, int port) {
        assertThrows(ConnectException.class, () -> new Socket(host, port).close(), host + ":" + port + " still open");
    }
}
