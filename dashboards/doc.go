// Package dashboards holds btda's Grafana dashboards (provisioning-ready JSON,
// embedded: FS) with the Grafana provisioning files that load them, and gives
// their PromQL to tests (Queries, AllQueries, Expand): the real-Prometheus
// end-to-end test runs every dashboard query against a live Prometheus.
//
// The JSON files are the source: edit them, not Grafana's copy (the
// dashboards are provisioned read-only). dashboards_test.go holds every
// dashboard to the conventions in README.md: the datasource, job and instance
// variables, a unit and a description on every panel, and queries that parse,
// name only metrics README.md's Metrics section lists (or recording rules of
// rules/*.yml), filter on job and instance and use $__rate_interval.
package dashboards
