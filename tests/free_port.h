/*
 * free_port.h — TCP ports on 127.0.0.1 for the servers tests start.
 *
 * A port the kernel picks (bind to port 0) comes from its ephemeral range,
 * where every outgoing connection of every process takes its local port
 * too: between the pick and the server's bind, a test running alongside
 * (ctest runs them in parallel) can take it. So the port is drawn at random
 * below that range, from 10000 up, and checked by binding it; the kernel's
 * own pick only when the range leaves no room below it. The same rule as
 * tests/tools/free_port.py, for the shell tests.
 */
#ifndef FP_TEST_FREE_PORT_H
#define FP_TEST_FREE_PORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Binds port (0: the kernel's pick) on 127.0.0.1 for a moment: the port
 * bound, or 0. */
static int fpt_try_port(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0), got = 0;
    if (fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof sa) && !getsockname(fd, (struct sockaddr *)&sa, &len))
        got = ntohs(sa.sin_port);
    if (fd >= 0) close(fd);
    return got;
}

/* A port free a moment ago, other than `avoid`; 0 if none. */
static int fpt_free_port(int avoid)
{
    static unsigned seed;
    if (!seed) seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16);
    int low = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d", &low) != 1) low = 32768;
        fclose(f);
    }
    for (int i = 0; i < 1000 && low - 10000 >= 1000; i++) {
        int port = 10000 + (int)(rand_r(&seed) % (unsigned)(low - 10000));
        if (port != avoid && fpt_try_port(port) == port) return port;
    }
    for (int i = 0; i < 100; i++) {
        int port = fpt_try_port(0);
        if (port && port != avoid) return port;
    }
    return 0;
}

#endif /* FP_TEST_FREE_PORT_H */
