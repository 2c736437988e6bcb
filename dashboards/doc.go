// Package dashboards holds btda's Grafana dashboards (provisioning-ready JSON,
// embedded in the binary's test tooling through Queries) and the Grafana
// provisioning files that load them.
//
// The dashboards query only metrics btda exports (README.md, "Metrics") and
// the recording rules in dashboards/rules; dashboards_test.go enforces that,
// and that every query parses as PromQL and uses Grafana's $__rate_interval.
package dashboards
