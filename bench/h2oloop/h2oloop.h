/* h2oloop.h — an h2o bench server's frame (bench/hello_h2o.c): one event
 * loop on 127.0.0.1:PORT, one handler for every path, SIGTERM/SIGINT ending
 * the loop, and a small-reply helper. */
#ifndef TLY_BENCH_H2O_LOOP_H
#define TLY_BENCH_H2O_LOOP_H

#define H2O_USE_LIBUV 0
#include <h2o.h>

struct h2oloop {
	h2o_globalconf_t config;
	h2o_context_t ctx;
	h2o_accept_ctx_t accept;
	h2o_socket_t *listener, *signals;
	int stop;
};

/* As tally serve's defaults (src/http/server.c, --max-body). */
#define H2OLOOP_MAX_BODY (32u << 20)
#define H2OLOOP_IDLE_TIMEOUT_MS 120000

/* Listens on 127.0.0.1:port; on_req answers every request. 0, or -1 with a
 * message on stderr (who: the program's name). */
int h2oloop_init(struct h2oloop *lp, const char *port,
		 int (*on_req)(h2o_handler_t *self, h2o_req_t *req), const char *who);

/* Runs until SIGTERM or SIGINT. */
void h2oloop_run(struct h2oloop *lp);

/* Closes what init opened (connections still open are left to the exit). */
void h2oloop_free(struct h2oloop *lp);

/* Watches fd (an eventfd) on the loop: cb runs when it turns readable. */
h2o_socket_t *h2oloop_watch(struct h2oloop *lp, int fd, h2o_socket_cb cb);

/* A whole reply: status, Content-Type application/json, body (copied). */
void h2oloop_reply(h2o_req_t *req, int status, const char *body, size_t len);

#endif
