import Metrics
import Prometheus

/// The process-wide Prometheus registry behind `/metrics`. swift-metrics may be bootstrapped
/// once per process; `bootstrap()` is safe to call from every application that starts.
public enum TallyMetrics {
    public static let registry = PrometheusCollectorRegistry()

    private static let bootstrapped: Bool = {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = [
            .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
            .milliseconds(20), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
            .seconds(1), .seconds(2), .seconds(5),
        ]
        MetricsSystem.bootstrap(factory)
        return true
    }()

    public static func bootstrap() {
        _ = bootstrapped
    }
}
