package dev.poolgoaway.spring;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.springframework.beans.BeanUtils;
import org.springframework.boot.configurationmetadata.ConfigurationMetadataProperty;
import org.springframework.boot.configurationmetadata.ConfigurationMetadataRepositoryJsonBuilder;

/**
 * The configuration metadata the configuration processor generated, read the way IDEs read it: what they show for
 * {@code poolgoaway.*}.
 */
class PoolGoAwayMetadataTest {

    private static Map<String, ConfigurationMetadataProperty> metadata() throws IOException {
        try (InputStream in = PoolGoAwayProperties.class.getResourceAsStream(
                "/META-INF/spring-configuration-metadata.json")) {
            assertThat(in).as("generated metadata").isNotNull();
            return ConfigurationMetadataRepositoryJsonBuilder.create(in).build().getAllProperties();
        }
    }

    /** Every bean property of {@link PoolGoAwayProperties}, in the kebab case of the metadata. */
    private static List<String> names() {
        return Arrays.stream(BeanUtils.getPropertyDescriptors(PoolGoAwayProperties.class))
                .filter(d -> d.getWriteMethod() != null)
                .map(d -> PoolGoAwayProperties.PREFIX + "." + d.getName().replaceAll("([A-Z])", "-$1").toLowerCase())
                .toList();
    }

    @Test
    void everyPropertyIsDescribedWithItsDefault() throws IOException {
        Map<String, ConfigurationMetadataProperty> metadata = metadata();
        assertThat(names()).hasSize(7);
        assertThat(metadata).containsOnlyKeys(names());
        metadata.forEach((name, property) -> {
            assertThat(property.getDescription()).as(name).isNotBlank();
            if (!name.equals("poolgoaway.straggler-deadline")) {   // its default is none
                assertThat(property.getDefaultValue()).as(name).isNotNull();
            }
        });
        assertThat(metadata.get("poolgoaway.tick").getDefaultValue()).isEqualTo("250ms");
        assertThat((Object[]) metadata.get("poolgoaway.signals").getDefaultValue())
                .containsExactly("goaway", "disconnect-requested");
    }
}
