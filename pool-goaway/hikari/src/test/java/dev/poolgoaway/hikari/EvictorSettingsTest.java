package dev.poolgoaway.hikari;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.time.Duration;
import java.util.EnumSet;

import org.junit.jupiter.api.Test;

/** Settings are values: equal when every setting is, whatever built them. */
class EvictorSettingsTest {

    @Test
    void settingsAreEqualExactlyWhenEverySettingIs() {
        EvictorSettings defaults = EvictorSettings.defaults();
        assertEquals(defaults, EvictorSettings.builder().build());
        assertEquals(defaults.hashCode(), EvictorSettings.builder().build().hashCode());
        assertEquals(EvictorSettings.builder().tick(Duration.ofMillis(100)).build(),
                EvictorSettings.builder().tick(Duration.ofMillis(100)).build());
        assertNotEquals(defaults, EvictorSettings.builder().tick(Duration.ofMillis(100)).build());
        assertNotEquals(defaults, EvictorSettings.builder().drainWindow(Duration.ofMillis(10)).build());
        assertNotEquals(defaults, EvictorSettings.builder().maxReplacementsInFlight(3).build());
        assertNotEquals(defaults, EvictorSettings.builder().stragglerDeadline(Duration.ofSeconds(9)).build());
        assertNotEquals(defaults, EvictorSettings.builder().enabled(false).build());
        assertNotEquals(defaults, null);
    }

    @Test
    void toBuilderStartsFromEverySetting() {
        EvictorSettings own = EvictorSettings.builder().tick(Duration.ofMillis(100))
                .drainWindow(Duration.ofSeconds(2)).maxReplacementsInFlight(4)
                .stragglerDeadline(Duration.ofSeconds(30)).abortStragglers(true)
                .signals(EnumSet.of(LeaveSignal.GOAWAY)).dnsLeave(false).dnsLeaveInterval(Duration.ofSeconds(5))
                .dnsLeaveWindow(Duration.ofSeconds(20)).enabled(false).build();
        assertEquals(own, own.toBuilder().build());
        assertEquals(EvictorSettings.defaults(), EvictorSettings.defaults().toBuilder().build());
        EvictorSettings derived = own.toBuilder().tick(Duration.ofSeconds(1)).build();
        assertEquals(Duration.ofSeconds(1), derived.tick());
        assertEquals(own, derived.toBuilder().tick(Duration.ofMillis(100)).build());
    }
}
