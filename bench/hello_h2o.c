/* hello_h2o.c — the hello-world ceiling of libh2o-evloop (Debian's h2o
 * 2.2), one thread, HTTP/1.1 keep-alive, answering every request with the
 * same small JSON object as bench/hello_evhttp.c. Beside hello_evhttp it
 * tells what the HTTP library alone costs per request (bench/http_layer.sh).
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
