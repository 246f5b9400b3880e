package promtenant

import (
	"net"
	"regexp"
	"strings"
)

// addressPattern finds what may be a network address in an upstream's
// error text: an IPv4 or IPv6 address (IPv6 possibly in brackets), or a
// host name, each with or without a port. redactAddresses checks each
// candidate before it redacts it.
var addressPattern = regexp.MustCompile(
	`\[[0-9A-Fa-f:.%]+\](?::\d{1,5})?` + // [IPv6]:port
		`|[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}` + // IPv6
		`|\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?` + // IPv4[:port]
		`|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?:\d{1,5}\b`) // host:port

// redactedAddress replaces an address in an upstream's error text.
const redactedAddress = "<address>"

// redactAddresses replaces the network addresses in an upstream's error
// text: a proxy between prom_tenant and Prometheus (a load balancer,
// another reverse proxy) may name its own upstream in its error ("dial tcp
// 10.0.0.9:9090: connect: connection refused"), which is none of a
// tenant's business, as upstreamRefusal says. Redacted are IP addresses,
// with or without a port, and host:port where the host is a DNS name with
// a dot, or a hyphen after a leading letter, or localhost; a bare word before a number ("line
// 1:5", "code:404") is not taken for a host.
func redactAddresses(text string) string {
	return addressPattern.ReplaceAllStringFunc(text, func(m string) string {
		if isAddress(m) {
			return redactedAddress
		}
		return m
	})
}

func isAddress(m string) bool {
	if net.ParseIP(strings.Trim(m, "[]")) != nil {
		return true
	}
	host, _, err := net.SplitHostPort(m)
	if err != nil {
		return false
	}
	if net.ParseIP(host) != nil || host == "localhost" {
		return true
	}
	isLetter := func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }
	if !strings.ContainsFunc(host, isLetter) {
		return false
	}
	// A dotted name, or a hyphenated one that starts with a letter
	// (prom-k8s-0); not an RFC 3339 time, "2026-12-04T23:06".
	return strings.Contains(host, ".") || isLetter(rune(host[0])) && strings.Contains(host, "-")
}
