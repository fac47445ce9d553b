/* hello_h2o.c — the ceiling for tally's HTTP layer: an h2o (libh2o-evloop,
 * Debian's h2o 2.2) server, one thread, HTTP/1.1 keep-alive, answering every
 * request with a small JSON object. Configured like src/http/server.c (same
 * body limit, idle timeout and Server header) so the only difference from
 * tally is the work done per request.
 *
 *   build/bench/hello_h2o PORT        listens on 127.0.0.1:PORT until
 *                                     SIGTERM/SIGINT
 */
#include "h2oloop/h2oloop.h"

#include <stdio.h>

static const char hello[] = "{\"hello\":\"world\"}";

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
	(void)self;
	h2oloop_reply(req, 200, hello, sizeof(hello) - 1);
	return 0;
}

int main(int argc, char **argv)
{
	struct h2oloop lp;

	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT   (listens on 127.0.0.1)\n", argv[0]);
		return 1;
	}
	if (h2oloop_init(&lp, argv[1], on_req, "hello_h2o") != 0)
		return 1;
	h2oloop_run(&lp);
	h2oloop_free(&lp);
	return 0;
}
