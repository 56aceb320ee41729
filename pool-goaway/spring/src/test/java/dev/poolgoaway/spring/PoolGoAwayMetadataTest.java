package dev.poolgoaway.spring;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.lang.annotation.Annotation;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;
import org.springframework.beans.BeanUtils;
import org.springframework.boot.configurationmetadata.ConfigurationMetadataProperty;
import org.springframework.boot.configurationmetadata.ConfigurationMetadataRepositoryJsonBuilder;
import org.springframework.context.annotation.Conditional;

/**
 * The configuration metadata the configuration processor generated, read the way IDEs read it: what they show for
 * {@code poolgoaway.*} and for every other property the module reads.
 */
class PoolGoAwayMetadataTest {

    private static Map<String, ConfigurationMetadataProperty> metadata() throws IOException {
        try (InputStream in = PoolGoAwayProperties.class.getResourceAsStream(
                "/META-INF/spring-configuration-metadata.json")) {
            assertThat(in).as("generated metadata").isNotNull();
            return ConfigurationMetadataRepositoryJsonBuilder.create(in).build().getAllProperties();
        }
    }

    /**
     * Every bean property of {@link PoolGoAwayProperties} (a map is bound through its getter), in the kebab case of
     * the metadata.
     */
    private static List<String> names() {
        return Arrays.stream(BeanUtils.getPropertyDescriptors(PoolGoAwayProperties.class))
                .filter(d -> d.getWriteMethod() != null || Map.class.equals(d.getPropertyType()))
                .map(d -> PoolGoAwayProperties.PREFIX + "." + d.getName().replaceAll("([A-Z])", "-$1").toLowerCase())
                .toList();
    }

    /**
     * The properties the auto-configuration's conditions read: {@code poolgoaway.enabled} and
     * {@code poolgoaway.pools.<pool>.enabled} ({@link PoolGoAwayEnabledCondition}, whose are properties of
     * {@link PoolGoAwayProperties}), and the Actuator's {@code management.health.<indicator>.enabled}, from the
     * annotations themselves. Each health configuration carries the annotation of its own Boot generation; the one
     * whose class is missing is invisible to reflection.
     */
    private static List<String> conditionNames() throws ReflectiveOperationException {
        Stream.Builder<String> names = Stream.builder();
        assertThat(PoolGoAwayAutoConfiguration.class.getAnnotation(Conditional.class).value())
                .containsExactly(PoolGoAwayEnabledCondition.class);
        names.add(PoolGoAwayProperties.PREFIX + ".enabled");
        for (String config : List.of("Boot3HealthConfiguration", "Boot4HealthConfiguration")) {
            for (Annotation a : Class.forName("dev.poolgoaway.spring." + config).getAnnotations()) {
                if (a.annotationType().getSimpleName().equals("ConditionalOnEnabledHealthIndicator")) {
                    names.add("management.health." + a.annotationType().getMethod("value").invoke(a) + ".enabled");
                }
            }
        }
        return names.build().distinct().toList();
    }

    @Test
    void theConditionsPropertiesAreDescribed() throws Exception {
        Map<String, ConfigurationMetadataProperty> metadata = metadata();
        assertThat(conditionNames()).containsExactly("poolgoaway.enabled", "management.health.poolgoaway.enabled");
        ConfigurationMetadataProperty health = metadata.get("management.health.poolgoaway.enabled");
        assertThat(health).as("health indicator switch").isNotNull();
        assertThat(health.getType()).isEqualTo("java.lang.Boolean");
        assertThat(health.getDefaultValue()).isEqualTo(true);
        assertThat(health.getDescription()).contains("health indicator");
    }

    @Test
    void everyPropertyIsDescribedWithItsDefault() throws Exception {
        Map<String, ConfigurationMetadataProperty> metadata = metadata();
        assertThat(names()).hasSize(12);
        assertThat(metadata).containsOnlyKeys(Stream.concat(names().stream(), conditionNames().stream())
                .distinct().toList());
        metadata.forEach((name, property) -> {
            assertThat(property.getDescription()).as(name).isNotBlank();
            // straggler-deadline has none; dns-leave-window's is derived from the JVM's DNS cache TTL at run time;
            // pools is empty
            if (!List.of("poolgoaway.straggler-deadline", "poolgoaway.dns-leave-window", "poolgoaway.pools")
                    .contains(name)) {
                assertThat(property.getDefaultValue()).as(name).isNotNull();
            }
        });
        assertThat(metadata.get("poolgoaway.tick").getDefaultValue()).isEqualTo("250ms");
        assertThat(metadata.get("poolgoaway.max-extra-connections").getDefaultValue()).isEqualTo(1);
        assertThat(metadata.get("poolgoaway.dns-leave").getDefaultValue()).isEqualTo(true);
        assertThat(metadata.get("poolgoaway.dns-leave-interval").getDefaultValue()).isEqualTo("1s");
        assertThat(metadata.get("poolgoaway.dns-leave-window").getDescription()).contains("DNS cache");
        assertThat((Object[]) metadata.get("poolgoaway.signals").getDefaultValue())
                .containsExactly("goaway", "disconnect-requested");
        // One pool's settings: a map by pool name, whose values have every setting above.
        ConfigurationMetadataProperty pools = metadata.get("poolgoaway.pools");
        assertThat(pools.getType()).isEqualTo("java.util.Map<java.lang.String,"
                + PoolGoAwayProperties.Pool.class.getName() + ">");
        assertThat(pools.getDescription()).contains("poolgoaway.pools.reporting.enabled=false");
        assertThat(Arrays.stream(PoolGoAwayProperties.Pool.class.getRecordComponents()).map(c -> c.getName())
                .sorted())
                .containsExactlyElementsOf(Arrays.stream(BeanUtils.getPropertyDescriptors(PoolGoAwayProperties.class))
                        .filter(d -> d.getWriteMethod() != null).map(d -> d.getName()).sorted().toList());
    }
}
