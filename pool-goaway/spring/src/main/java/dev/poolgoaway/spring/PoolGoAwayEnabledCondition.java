package dev.poolgoaway.spring;

import java.util.List;
import java.util.Map;

import org.springframework.boot.autoconfigure.condition.ConditionMessage;
import org.springframework.boot.autoconfigure.condition.ConditionOutcome;
import org.springframework.boot.autoconfigure.condition.SpringBootCondition;
import org.springframework.boot.context.properties.bind.Bindable;
import org.springframework.boot.context.properties.bind.Binder;
import org.springframework.context.annotation.ConditionContext;
import org.springframework.core.type.AnnotatedTypeMetadata;

/**
 * pool-goaway is on unless {@code poolgoaway.enabled=false}, and even then for a pool whose own
 * {@code poolgoaway.pools.<pool>.enabled=true} says so: a pool's setting overrides the application's, as Boot's
 * {@code management.health.<name>.enabled} overrides {@code management.health.defaults.enabled}.
 */
final class PoolGoAwayEnabledCondition extends SpringBootCondition {

    @Override
    public ConditionOutcome getMatchOutcome(ConditionContext context, AnnotatedTypeMetadata metadata) {
        ConditionMessage.Builder message = ConditionMessage.forCondition("pool-goaway enabled");
        Binder binder = Binder.get(context.getEnvironment());
        if (binder.bind(PoolGoAwayProperties.PREFIX + ".enabled", Boolean.class).orElse(true)) {
            return ConditionOutcome.match(message.because(PoolGoAwayProperties.PREFIX + ".enabled is not false"));
        }
        List<String> on = binder.bind(PoolGoAwayProperties.PREFIX + ".pools",
                        Bindable.mapOf(String.class, PoolGoAwayProperties.Pool.class)).orElse(Map.of())
                .entrySet().stream().filter(e -> Boolean.TRUE.equals(e.getValue().enabled()))
                .map(Map.Entry::getKey).toList();
        return on.isEmpty()
                ? ConditionOutcome.noMatch(message.because(PoolGoAwayProperties.PREFIX + ".enabled is false"))
                : ConditionOutcome.match(message.because(PoolGoAwayProperties.PREFIX + ".pools." + on
                        + ".enabled is true"));
    }
}
