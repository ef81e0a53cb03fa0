import Foundation

extension MonitoringStack {
    /// The file name of the shoal dashboard in the `grafana-dashboards` ConfigMap.
    public static let shoalDashboardFile = "shoal.json"

    /// The dashboard of shoal's own metrics (the coordinator's `--metrics-listen` families): the bytes of
    /// `contrib/grafana/shoal-dashboard.json`, the file for a Grafana of one's own, compiled in by the
    /// EmbedDashboards plugin. Its panels name a `datasource` variable, which the provisioned copy binds to the
    /// stack's Prometheus.
    static let shoalDashboardSource: String = {
        guard let file = EmbeddedDashboards.files.first(where: { $0.name == "shoal-dashboard.json" }),
            let data = Data(base64Encoded: file.base64)
        else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }()

    /// The shoal dashboard as the stack provisions it: every panel and variable on the provisioned Prometheus
    /// datasource (uid `prometheus`), the datasource picker left out.
    static func shoalDashboard() -> String {
        // The source is a file of the repository that a test parses: it is valid JSON.
        guard var object = try? JSONSerialization.jsonObject(with: Data(shoalDashboardSource.utf8)) as? [String: Any]
        else { return shoalDashboardSource }
        func bound(_ value: Any) -> Any {
            if var dictionary = value as? [String: Any] {
                if dictionary["uid"] as? String == "${datasource}" { dictionary["uid"] = datasourceUID }
                return dictionary.mapValues(bound)
            }
            if let array = value as? [Any] { return array.map(bound) }
            return value
        }
        if var templating = object["templating"] as? [String: Any], let list = templating["list"] as? [[String: Any]] {
            templating["list"] = list.filter { $0["type"] as? String != "datasource" }
            object["templating"] = templating
        }
        object["editable"] = false
        object = bound(object) as? [String: Any] ?? object
        guard
            let data = try? JSONSerialization.data(
                withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        else { return shoalDashboardSource }
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
