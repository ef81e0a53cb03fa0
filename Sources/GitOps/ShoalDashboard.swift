import Foundation

extension MonitoringStack {
    /// The file name of the shoal dashboard in the `grafana-dashboards` ConfigMap.
    public static let shoalDashboardFile = "shoal.json"

    /// The dashboard of shoal's own metrics (the coordinator's `--metrics-listen` families), as in
    /// `contrib/grafana/shoal-dashboard.json` for a Grafana of one's own; a test keeps the two equal. Its panels
    /// name a `datasource` variable, which the provisioned copy binds to the stack's Prometheus.
    static let shoalDashboardSource = #"""
        {
          "uid": "shoal",
          "title": "shoal coordinator",
          "tags": [
            "shoal"
          ],
          "timezone": "browser",
          "editable": true,
          "schemaVersion": 39,
          "version": 1,
          "refresh": "30s",
          "time": {
            "from": "now-6h",
            "to": "now"
          },
          "description": "shoal's own metrics: workflows, steps, agents, queue depth, rejected frames and journal latency.",
          "templating": {
            "list": [
              {
                "name": "datasource",
                "label": "Prometheus",
                "type": "datasource",
                "query": "prometheus",
                "current": {},
                "hide": 0,
                "refresh": 1
              },
              {
                "name": "job",
                "label": "job",
                "type": "query",
                "datasource": {
                  "type": "prometheus",
                  "uid": "${datasource}"
                },
                "query": {
                  "query": "label_values(shoal_workflows, job)",
                  "refId": "job"
                },
                "definition": "label_values(shoal_workflows, job)",
                "includeAll": true,
                "multi": true,
                "current": {
                  "text": "All",
                  "value": "$__all"
                },
                "refresh": 2,
                "hide": 0
              }
            ]
          },
          "annotations": {
            "list": []
          },
          "panels": [
            {
              "id": 1,
              "title": "Coordinator up",
              "type": "stat",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "Whether Prometheus reaches the coordinator's --metrics-listen endpoint.",
              "gridPos": {
                "x": 0,
                "y": 0,
                "w": 4,
                "h": 4
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "up{job=~\"$job\"}",
                  "legendFormat": "{{instance}}"
                }
              ],
              "fieldConfig": {
                "defaults": {},
                "overrides": []
              },
              "options": {
                "reduceOptions": {
                  "calcs": [
                    "lastNotNull"
                  ],
                  "fields": "",
                  "values": false
                },
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto"
              }
            },
            {
              "id": 2,
              "title": "Running workflows",
              "type": "stat",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "",
              "gridPos": {
                "x": 4,
                "y": 0,
                "w": 4,
                "h": 4
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "sum(shoal_workflows{job=~\"$job\",state=\"running\"})",
                  "legendFormat": "running"
                }
              ],
              "fieldConfig": {
                "defaults": {},
                "overrides": []
              },
              "options": {
                "reduceOptions": {
                  "calcs": [
                    "lastNotNull"
                  ],
                  "fields": "",
                  "values": false
                },
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto"
              }
            },
            {
              "id": 3,
              "title": "Ready steps waiting",
              "type": "stat",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "Steps whose needs are met, waiting for an agent of their role. A queue that stays above zero means too few agents of that role.",
              "gridPos": {
                "x": 8,
                "y": 0,
                "w": 4,
                "h": 4
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "sum(shoal_ready_steps{job=~\"$job\"})",
                  "legendFormat": "ready"
                }
              ],
              "fieldConfig": {
                "defaults": {},
                "overrides": []
              },
              "options": {
                "reduceOptions": {
                  "calcs": [
                    "lastNotNull"
                  ],
                  "fields": "",
                  "values": false
                },
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto"
              }
            },
            {
              "id": 4,
              "title": "Live agents",
              "type": "stat",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "",
              "gridPos": {
                "x": 12,
                "y": 0,
                "w": 4,
                "h": 4
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "sum(shoal_agents{job=~\"$job\"})",
                  "legendFormat": "agents"
                }
              ],
              "fieldConfig": {
                "defaults": {},
                "overrides": []
              },
              "options": {
                "reduceOptions": {
                  "calcs": [
                    "lastNotNull"
                  ],
                  "fields": "",
                  "values": false
                },
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto"
              }
            },
            {
              "id": 5,
              "title": "Rejected frames (5m)",
              "type": "stat",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "",
              "gridPos": {
                "x": 16,
                "y": 0,
                "w": 4,
                "h": 4
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "sum(increase(shoal_rejected_frames_total{job=~\"$job\"}[5m]))",
                  "legendFormat": "rejected"
                }
              ],
              "fieldConfig": {
                "defaults": {},
                "overrides": []
              },
              "options": {
                "reduceOptions": {
                  "calcs": [
                    "lastNotNull"
                  ],
                  "fields": "",
                  "values": false
                },
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto"
              }
            },
            {
              "id": 6,
              "title": "Journal commit p99",
              "type": "stat",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "",
              "gridPos": {
                "x": 20,
                "y": 0,
                "w": 4,
                "h": 4
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "histogram_quantile(0.99, sum by (le) (rate(shoal_journal_commit_duration_seconds_bucket{job=~\"$job\"}[5m])))",
                  "legendFormat": "p99"
                }
              ],
              "fieldConfig": {
                "defaults": {
                  "unit": "s"
                },
                "overrides": []
              },
              "options": {
                "reduceOptions": {
                  "calcs": [
                    "lastNotNull"
                  ],
                  "fields": "",
                  "values": false
                },
                "colorMode": "value",
                "graphMode": "area",
                "textMode": "auto"
              }
            },
            {
              "id": 7,
              "title": "Workflows by state",
              "type": "timeseries",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "Workflows in the journal, by state.",
              "gridPos": {
                "x": 0,
                "y": 4,
                "w": 12,
                "h": 8
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "sum by (state) (shoal_workflows{job=~\"$job\"})",
                  "legendFormat": "{{state}}"
                }
              ],
              "fieldConfig": {
                "defaults": {
                  "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "stacking": {
                      "mode": "none",
                      "group": "A"
                    }
                  }
                },
                "overrides": []
              },
              "options": {
                "legend": {
                  "displayMode": "table",
                  "placement": "right",
                  "showLegend": true
                },
                "tooltip": {
                  "mode": "multi",
                  "sort": "desc"
                }
              }
            },
            {
              "id": 8,
              "title": "Agents by role and state",
              "type": "timeseries",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "connecting: its subscription not seen yet; idle; busy; full: at capacity.",
              "gridPos": {
                "x": 12,
                "y": 4,
                "w": 12,
                "h": 8
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "sum by (role, state) (shoal_agents{job=~\"$job\"})",
                  "legendFormat": "{{role}} {{state}}"
                }
              ],
              "fieldConfig": {
                "defaults": {
                  "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "stacking": {
                      "mode": "normal",
                      "group": "A"
                    }
                  }
                },
                "overrides": []
              },
              "options": {
                "legend": {
                  "displayMode": "table",
                  "placement": "right",
                  "showLegend": true
                },
                "tooltip": {
                  "mode": "multi",
                  "sort": "desc"
                }
              }
            },
            {
              "id": 9,
              "title": "Step duration p95 by role and step",
              "type": "timeseries",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "From the agent's ack to its result.",
              "gridPos": {
                "x": 0,
                "y": 12,
                "w": 12,
                "h": 8
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "histogram_quantile(0.95, sum by (le, role, step) (rate(shoal_step_duration_seconds_bucket{job=~\"$job\"}[$__rate_interval])))",
                  "legendFormat": "{{role}} {{step}}"
                }
              ],
              "fieldConfig": {
                "defaults": {
                  "unit": "s",
                  "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "stacking": {
                      "mode": "none",
                      "group": "A"
                    }
                  }
                },
                "overrides": []
              },
              "options": {
                "legend": {
                  "displayMode": "table",
                  "placement": "right",
                  "showLegend": true
                },
                "tooltip": {
                  "mode": "multi",
                  "sort": "desc"
                }
              }
            },
            {
              "id": 10,
              "title": "Steps finished per minute",
              "type": "timeseries",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "",
              "gridPos": {
                "x": 12,
                "y": 12,
                "w": 12,
                "h": 8
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "sum by (role, outcome) (rate(shoal_step_duration_seconds_count{job=~\"$job\"}[$__rate_interval])) * 60",
                  "legendFormat": "{{role}} {{outcome}}"
                }
              ],
              "fieldConfig": {
                "defaults": {
                  "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "stacking": {
                      "mode": "normal",
                      "group": "A"
                    }
                  }
                },
                "overrides": []
              },
              "options": {
                "legend": {
                  "displayMode": "table",
                  "placement": "right",
                  "showLegend": true
                },
                "tooltip": {
                  "mode": "multi",
                  "sort": "desc"
                }
              }
            },
            {
              "id": 11,
              "title": "Ready steps by role (queue depth)",
              "type": "timeseries",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "",
              "gridPos": {
                "x": 0,
                "y": 20,
                "w": 8,
                "h": 8
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "sum by (role) (shoal_ready_steps{job=~\"$job\"})",
                  "legendFormat": "{{role}}"
                }
              ],
              "fieldConfig": {
                "defaults": {
                  "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "stacking": {
                      "mode": "none",
                      "group": "A"
                    }
                  }
                },
                "overrides": []
              },
              "options": {
                "legend": {
                  "displayMode": "table",
                  "placement": "right",
                  "showLegend": true
                },
                "tooltip": {
                  "mode": "multi",
                  "sort": "desc"
                }
              }
            },
            {
              "id": 12,
              "title": "Rejected frames by reason",
              "type": "timeseries",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "Frames refused by the coordinator (docs/protocol.md lists the reasons).",
              "gridPos": {
                "x": 8,
                "y": 20,
                "w": 8,
                "h": 8
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "sum by (reason) (rate(shoal_rejected_frames_total{job=~\"$job\"}[$__rate_interval]))",
                  "legendFormat": "{{reason}}"
                }
              ],
              "fieldConfig": {
                "defaults": {
                  "unit": "reqps",
                  "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "stacking": {
                      "mode": "none",
                      "group": "A"
                    }
                  }
                },
                "overrides": []
              },
              "options": {
                "legend": {
                  "displayMode": "table",
                  "placement": "right",
                  "showLegend": true
                },
                "tooltip": {
                  "mode": "multi",
                  "sort": "desc"
                }
              }
            },
            {
              "id": 13,
              "title": "Journal commit latency",
              "type": "timeseries",
              "datasource": {
                "type": "prometheus",
                "uid": "${datasource}"
              },
              "description": "One SQLite transaction per loop turn.",
              "gridPos": {
                "x": 16,
                "y": 20,
                "w": 8,
                "h": 8
              },
              "targets": [
                {
                  "refId": "A",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "histogram_quantile(0.5, sum by (le) (rate(shoal_journal_commit_duration_seconds_bucket{job=~\"$job\"}[$__rate_interval])))",
                  "legendFormat": "p50"
                },
                {
                  "refId": "B",
                  "datasource": {
                    "type": "prometheus",
                    "uid": "${datasource}"
                  },
                  "expr": "histogram_quantile(0.99, sum by (le) (rate(shoal_journal_commit_duration_seconds_bucket{job=~\"$job\"}[$__rate_interval])))",
                  "legendFormat": "p99"
                }
              ],
              "fieldConfig": {
                "defaults": {
                  "unit": "s",
                  "custom": {
                    "drawStyle": "line",
                    "lineWidth": 1,
                    "fillOpacity": 10,
                    "stacking": {
                      "mode": "none",
                      "group": "A"
                    }
                  }
                },
                "overrides": []
              },
              "options": {
                "legend": {
                  "displayMode": "table",
                  "placement": "right",
                  "showLegend": true
                },
                "tooltip": {
                  "mode": "multi",
                  "sort": "desc"
                }
              }
            }
          ]
        }
        """#

    /// The shoal dashboard as the stack provisions it: every panel and variable on the provisioned Prometheus
    /// datasource (uid `prometheus`), the datasource picker left out.
    static func shoalDashboard() -> String {
        // The source is a constant that a test parses: it is valid JSON.
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
