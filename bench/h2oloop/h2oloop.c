/* h2oloop.c — the libh2o-evloop bench servers' common part (see h2oloop.h). */
#include "h2oloop.h"

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

static void on_accept(h2o_socket_t *listener, const char *err)
{
	struct h2oloop *lp = listener->data;
	h2o_socket_t *sock;

	if (err || !(sock = h2o_evloop_socket_accept(listener)))
		return;
	h2o_accept(&lp->accept, sock);
}

static void on_signal(h2o_socket_t *sock, const char *err)
{
	struct h2oloop *lp = sock->data;
	struct signalfd_siginfo si;

	(void)err;
	while (read(h2o_socket_get_fd(sock), &si, sizeof(si)) == (ssize_t)sizeof(si))
		lp->stop = 1;
}

h2o_socket_t *h2oloop_watch(struct h2oloop *lp, int fd, h2o_socket_cb cb)
{
	h2o_socket_t *s = h2o_evloop_socket_create(lp->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);

	s->data = lp;
	h2o_socket_read_start(s, cb);
	return s;
}

int h2oloop_init(struct h2oloop *lp, const char *port,
		 int (*on_req)(h2o_handler_t *self, h2o_req_t *req), const char *who)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	h2o_hostconf_t *host;
	h2o_handler_t *h;
	sigset_t set;
	char *end;
	long n = strtol(port, &end, 10);
	int fd, sfd, one = 1;

	memset(lp, 0, sizeof(*lp));
	if (*end || n < 1 || n > 65535) {
		fprintf(stderr, "%s: bad port \"%s\"\n", who, port);
		return -1;
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* blocked before any thread starts, so only the signalfd sees them */
	if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0 ||
	    (sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		fprintf(stderr, "%s: signalfd: %s\n", who, strerror(errno));
		return -1;
	}
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((unsigned short)n);
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 1024) != 0) {
		fprintf(stderr, "%s: 127.0.0.1:%ld: %s\n", who, n, strerror(errno));
		return -1;
	}
	h2o_config_init(&lp->config);
	lp->config.max_request_entity_size = H2OLOOP_MAX_BODY;
	lp->config.http1.req_timeout = H2OLOOP_IDLE_TIMEOUT_MS;
	lp->config.server_name = h2o_iovec_init(H2O_STRLIT("tally"));
	host = h2o_config_register_host(&lp->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	h = h2o_create_handler(h2o_config_register_path(host, "/", 0), sizeof(*h));
	h->on_req = on_req;
	h2o_context_init(&lp->ctx, h2o_evloop_create(), &lp->config);
	lp->accept.ctx = &lp->ctx;
	lp->accept.hosts = lp->config.hosts;
	lp->listener = h2oloop_watch(lp, fd, on_accept);
	lp->signals = h2oloop_watch(lp, sfd, on_signal);
	return 0;
}

void h2oloop_run(struct h2oloop *lp)
{
	while (!lp->stop && h2o_evloop_run(lp->ctx.loop, INT32_MAX) == 0)
		;
}

void h2oloop_free(struct h2oloop *lp)
{
	h2o_socket_close(lp->listener);
	h2o_socket_close(lp->signals);
	/* (h2o 2.2 keeps the context's 88-byte message queue: LeakSanitizer names it) */
	h2o_context_dispose(&lp->ctx);
	h2o_evloop_destroy(lp->ctx.loop);
	h2o_config_dispose(&lp->config);
}

void h2oloop_reply(h2o_req_t *req, int status, const char *body, size_t len)
{
	static h2o_generator_t gen = { NULL, NULL };
	h2o_iovec_t b = h2o_strdup(&req->pool, body, len);

	req->res.status = status;
	req->res.reason = status == 200 ? "OK" : status == 201 ? "Created" : status == 204 ? "No Content"
			: status == 404 ? "Not Found" : status < 500 ? "Bad Request" : "Internal Server Error";
	req->res.content_length = len;
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
		       H2O_STRLIT("application/json"));
	h2o_start_response(req, &gen);
	h2o_send(req, &b, 1, H2O_SEND_STATE_FINAL);
}
