//go:build cgo && linux

package nsexec

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void switchyard_nsenter_fail(const char *what, const char *path) {
	fprintf(stderr, "switchyard: %s %s: %s\n", what, path, strerror(errno));
	_exit(125);
}

__attribute__((constructor)) static void switchyard_nsenter(void) {
	const char *user = getenv("_SWITCHYARD_NSENTER_USER");
	const char *net = getenv("_SWITCHYARD_NSENTER_NET");
	int ufd = -1, nfd = -1;
	if ((user == NULL || *user == 0) && (net == NULL || *net == 0))
		return;
	// Open both first: once inside the user namespace, /proc paths may
	// resolve differently.
	if (user != NULL && *user != 0) {
		ufd = open(user, O_RDONLY | O_CLOEXEC);
		if (ufd < 0)
			switchyard_nsenter_fail("open user namespace", user);
	}
	if (net != NULL && *net != 0) {
		nfd = open(net, O_RDONLY | O_CLOEXEC);
		if (nfd < 0)
			switchyard_nsenter_fail("open network namespace", net);
	}
	if (ufd >= 0 && setns(ufd, CLONE_NEWUSER) < 0)
		switchyard_nsenter_fail("enter user namespace", user);
	if (nfd >= 0 && setns(nfd, CLONE_NEWNET) < 0)
		switchyard_nsenter_fail("enter network namespace", net);
	if (ufd >= 0)
		close(ufd);
	if (nfd >= 0)
		close(nfd);
	unsetenv("_SWITCHYARD_NSENTER_USER");
	unsetenv("_SWITCHYARD_NSENTER_NET");
}
*/
import "C"

// Available reports whether the constructor is built in.
func Available() bool { return true }
