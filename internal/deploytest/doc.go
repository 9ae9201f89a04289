// Package deploytest holds the deployment test: ocdn's daemons run as the
// `ocdn` binary on separate hosts — network namespaces joined by veth links
// (internal/netns) — with real BIRD 2 routers at two ISPs, two control-plane
// replicas sharing a PostgreSQL host, an origin, and clients at the ISPs.
// It is the deployment docs/deploy.md describes, run end to end and then
// broken on purpose: a prefix withdrawn, an appliance and a replica killed,
// a router sending too many prefixes, a kernel bottleneck on a link;
// and a home line behind isp1 (a tbf, then user-space delay and loss)
// whose round trip, rate and loss are measured against their settings.
//
// It lives apart from internal/e2e, whose tests assemble components in
// process: this one builds the binary and runs it as an operator would,
// needs root, and takes a minute, so `make test` runs it on its own with
// -v, which prints the figures it asserts.
package deploytest
