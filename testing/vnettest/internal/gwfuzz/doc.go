// Package gwfuzz holds FuzzThroughGateway, a fuzz target that sends the
// fuzzer's frames through a vnettest switch into Switchyard's real
// gateway. It is a package of its own, with nothing else in its tests,
// for speed: `go test -fuzz` instruments every package the test binary
// links, and after each input the engine clears, copies and compares all
// their coverage counters. This binary links vnettest and what it needs
// (50,409 counters); vnettest's own test binary links its examples' TLS,
// HTTP and DNS code too (82,228), and runs about a third fewer inputs a
// second (benchmarks/RESULTS.md).
package gwfuzz
