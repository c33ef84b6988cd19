/*
 * hello.c - the reference "minimal libevent server" for the benchmarks.
 *
 * It does the least an HTTP server built on libevent's evhttp can do: every
 * request, whatever its method and path, is answered 200 with a fixed JSON
 * body. bench/run.sh compares the daemon against it, so it is built the same
 * way the daemon's HTTP layer is: --threads N workers, each with its own
 * event_base and its own evhttp, all accepting on a dup() of one shared,
 * non-blocking listening socket. No locks are taken on the request path.
 *
 *   bench/hello [--listen HOST:PORT] [--threads N]
 *
 * --listen defaults to 127.0.0.1:8081; port 0 asks the kernel for a free
 * port. The bound address is printed on stdout ("listening on HOST:PORT")
 * once the server is ready, so a driver can wait for that line.
 * SIGINT and SIGTERM stop the process.
 */

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define HELLO_BODY "{\"status\":\"ok\"}"
#define HELLO_MAX_THREADS 256

struct worker {
    int index;
    evutil_socket_t fd; /* this worker's dup() of the listening socket */
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
};

static void usage(FILE *out, const char *argv0)
{
    fprintf(out,
            "usage: %s [--listen HOST:PORT] [--threads N]\n"
            "  --listen HOST:PORT  address to accept on (default 127.0.0.1:8081, port 0: any free port)\n"
            "  --threads N         worker event loops sharing the listening socket (default 1)\n",
            argv0);
}

/* Answers every request with 200 and the fixed JSON body. */
static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(req);
    evhttp_add_header(headers, "Content-Type", "application/json");
    evbuffer_add(evhttp_request_get_output_buffer(req), HELLO_BODY, sizeof(HELLO_BODY) - 1);
    evhttp_send_reply(req, HTTP_OK, "OK", NULL);
}

/* Splits "HOST:PORT" (or "[V6]:PORT") into host and port; false on a bad value. */
static int split_hostport(const char *spec, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    const char *h = spec;
    size_t n;

    if (spec[0] == '[') {
        const char *close = strchr(spec, ']');
        if (close == NULL || close[1] != ':')
            return 0;
        h = spec + 1;
        n = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(spec, ':');
        if (colon == NULL)
            return 0;
        n = (size_t)(colon - spec);
    }
    if (n == 0 || n >= hostlen || strlen(colon + 1) == 0 || strlen(colon + 1) >= portlen)
        return 0;
    memcpy(host, h, n);
    host[n] = '\0';
    strcpy(port, colon + 1);
    for (const char *p = port; *p; p++)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

/* Creates the shared non-blocking listening socket; -1 with a message on failure. */
static evutil_socket_t open_listener(const char *host, const char *port, char *bound, size_t boundlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    evutil_socket_t fd = -1;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "hello: cannot resolve %s:%s: %s\n", host, port, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        int one = 1;
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, SOMAXCONN) == 0 &&
            evutil_make_socket_nonblocking(fd) == 0)
            break;
        fprintf(stderr, "hello: cannot listen on %s:%s: %s\n", host, port, strerror(errno));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;

    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    char h[NI_MAXHOST], p[NI_MAXSERV];
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == 0 &&
        getnameinfo((struct sockaddr *)&ss, sslen, h, sizeof(h), p, sizeof(p),
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0)
        snprintf(bound, boundlen, ss.ss_family == AF_INET6 ? "[%s]:%s" : "%s:%s", h, p);
    else
        snprintf(bound, boundlen, "%s:%s", host, port);
    return fd;
}

/* Sets up one worker: its own base and evhttp on its own dup() of the listener. */
static int worker_init(struct worker *w, evutil_socket_t listen_fd)
{
    w->fd = dup(listen_fd);
    if (w->fd < 0) {
        fprintf(stderr, "hello: dup: %s\n", strerror(errno));
        return 0;
    }
    w->base = event_base_new();
    if (w->base == NULL) {
        fprintf(stderr, "hello: event_base_new failed\n");
        return 0;
    }
    w->http = evhttp_new(w->base);
    if (w->http == NULL) {
        fprintf(stderr, "hello: evhttp_new failed\n");
        return 0;
    }
    evhttp_set_allowed_methods(w->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
    evhttp_set_gencb(w->http, on_request, NULL);
    /* evhttp owns the fd from here on and closes it when freed. */
    if (evhttp_accept_socket(w->http, w->fd) != 0) {
        fprintf(stderr, "hello: evhttp_accept_socket failed\n");
        return 0;
    }
    return 1;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    event_base_dispatch(w->base);
    return NULL;
}

/* SIGINT/SIGTERM on the main loop: the process exits; the workers go with it. */
static void on_signal(evutil_socket_t sig, short events, void *arg)
{
    (void)events;
    (void)arg;
    fprintf(stderr, "hello: signal %d, exiting\n", (int)sig);
    exit(0);
}

int main(int argc, char **argv)
{
    const char *listen_spec = "127.0.0.1:8081";
    long nthreads = 1;
    char host[256], port[16], bound[300];

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = NULL;
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout, argv[0]);
            return 0;
        }
        if (strncmp(arg, "--listen=", 9) == 0)
            listen_spec = arg + 9;
        else if (strncmp(arg, "--threads=", 10) == 0)
            val = arg + 10;
        else if (strcmp(arg, "--listen") == 0 && i + 1 < argc)
            listen_spec = argv[++i];
        else if (strcmp(arg, "--threads") == 0 && i + 1 < argc)
            val = argv[++i];
        else {
            usage(stderr, argv[0]);
            return 1;
        }
        if (val != NULL) {
            char *end;
            errno = 0;
            nthreads = strtol(val, &end, 10);
            if (errno != 0 || *end != '\0' || nthreads < 1 || nthreads > HELLO_MAX_THREADS) {
                fprintf(stderr, "hello: --threads must be 1..%d\n", HELLO_MAX_THREADS);
                return 1;
            }
        }
    }
    if (!split_hostport(listen_spec, host, sizeof(host), port, sizeof(port))) {
        fprintf(stderr, "hello: --listen wants HOST:PORT, got '%s'\n", listen_spec);
        return 1;
    }

    signal(SIGPIPE, SIG_IGN);
    evutil_socket_t listen_fd = open_listener(host, port, bound, sizeof(bound));
    if (listen_fd < 0)
        return 2;

    struct worker *workers = calloc((size_t)nthreads, sizeof(*workers));
    if (workers == NULL) {
        fprintf(stderr, "hello: out of memory\n");
        return 2;
    }
    for (long i = 0; i < nthreads; i++) {
        workers[i].index = (int)i;
        if (!worker_init(&workers[i], listen_fd))
            return 2;
    }
    close(listen_fd); /* every worker holds its own dup() */

    /* Worker 0 runs on the main thread, which also owns the signal events. */
    struct event *sigint = evsignal_new(workers[0].base, SIGINT, on_signal, NULL);
    struct event *sigterm = evsignal_new(workers[0].base, SIGTERM, on_signal, NULL);
    if (sigint == NULL || sigterm == NULL || evsignal_add(sigint, NULL) != 0 ||
        evsignal_add(sigterm, NULL) != 0) {
        fprintf(stderr, "hello: cannot install signal handlers\n");
        return 2;
    }
    for (long i = 1; i < nthreads; i++) {
        int rc = pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]);
        if (rc != 0) {
            fprintf(stderr, "hello: pthread_create: %s\n", strerror(rc));
            return 2;
        }
    }

    printf("listening on %s threads %ld\n", bound, nthreads);
    fflush(stdout);
    event_base_dispatch(workers[0].base);
    return 0;
}
