// Package vnet shows testing/vnettest used as an outside project uses it:
// from a module of its own, testing third-party Go networking code (the
// miekg/dns client and server, net/http) over impaired in-process links.
// Everything is in its tests.
package vnet
