package dev.poolgoaway.spring;

import org.springframework.boot.context.properties.ConfigurationProperties;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

import com.zaxxer.hikari.HikariDataSource;

/** An application's own pool, declared as a bean: pool-goaway installs itself into it like into Boot's. */
// tag::own-pool[]
@Configuration(proxyBeanMethods = false)
public class ReportingPoolConfiguration {

    @Bean
    @ConfigurationProperties("app.reporting.datasource")
    public HikariDataSource reportingDataSource() {
        return new HikariDataSource();   // not started: the pool starts at its first getConnection()
    }
}
// end::own-pool[]
