package dev.poolgoaway.hikari;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.time.Duration;

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
}
