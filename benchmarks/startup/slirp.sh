#!/bin/sh
# The slirp4netns set-up of a rootless user, for benchmarks/startup: the
# server in a user+network namespace of its own (unshare -Urn), slirp4netns
# attached to it, and one port forwarded through slirp4netns's API socket.
# PORT is the host port (127.0.0.1), SERVER the whoami binary. Ctrl-C
# (SIGINT to the process group) ends it all.
set -eu
dir=$(mktemp -d)
unshare -Urn "$SERVER" whoami --listen :80 2>/dev/null &
ns=$!
trap 'kill $ns ${sl:-} 2>/dev/null; rm -rf "$dir"' EXIT
trap 'exit 130' INT TERM
# Wait until unshare has made the namespaces, or slirp4netns would attach
# to ours.
while [ "$(readlink /proc/$ns/ns/net)" = "$(readlink /proc/self/ns/net)" ]; do sleep 0.001; done
slirp4netns --configure --mtu=65520 --api-socket "$dir/api" "$ns" tap0 >/dev/null 2>&1 &
sl=$!
while [ ! -S "$dir/api" ]; do sleep 0.001; done
printf '{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"127.0.0.1","host_port":%s,"guest_port":80}}' "$PORT" |
	socat -t2 - UNIX-CONNECT:"$dir/api" >/dev/null
wait $ns
