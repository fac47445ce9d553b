/* hello_evhttp.c — the ceiling for tally's HTTP layer: a libevent evhttp
 * server, one thread, HTTP/1.1 keep-alive, answering every request with a
 * small JSON object. Configured like src/http/server.c (same header and body
 * limits, same timeout) so the only difference from tally is the work done
 * per request.
 *
 *   build/bench/hello_evhttp PORT        listens on 127.0.0.1:PORT until
 *                                        SIGTERM/SIGINT
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char hello[] = "{\"hello\":\"world\"}";

static void on_request(struct evhttp_request *req, void *arg)
{
	struct evbuffer *out = evhttp_request_get_output_buffer(req);

	(void)arg;
	evbuffer_add_reference(out, hello, sizeof(hello) - 1, NULL, NULL);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	struct event_config *cfg;
	struct event_base *base;
	struct evhttp *http;
	struct event *sterm, *sint;
	char *end;
	long port;

	if (argc != 2) {
		fprintf(stderr, "usage: %s PORT   (listens on 127.0.0.1)\n", argv[0]);
		return 1;
	}
	port = strtol(argv[1], &end, 10);
	if (*end || port < 1 || port > 65535) {
		fprintf(stderr, "hello_evhttp: bad port \"%s\"\n", argv[1]);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	/* configured as tally serve configures its loops (server.c, base_new):
	 * the ceiling is the same library set up the same way */
	if ((cfg = event_config_new()))
		event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	base = cfg ? event_base_new_with_config(cfg) : NULL;
	if (cfg)
		event_config_free(cfg);
	http = base ? evhttp_new(base) : NULL;
	if (!http) {
		fprintf(stderr, "hello_evhttp: cannot create the event base\n");
		return 1;
	}
	evhttp_set_max_body_size(http, 32 << 20);
	evhttp_set_max_headers_size(http, 64 * 1024);
	evhttp_set_timeout(http, 120);
	evhttp_set_gencb(http, on_request, NULL);
	if (!evhttp_bind_socket_with_handle(http, "127.0.0.1", (ev_uint16_t)port)) {
		fprintf(stderr, "hello_evhttp: cannot listen on 127.0.0.1:%ld\n", port);
		return 1;
	}
	sterm = evsignal_new(base, SIGTERM, on_signal, base);
	sint = evsignal_new(base, SIGINT, on_signal, base);
	event_add(sterm, NULL);
	event_add(sint, NULL);
	fprintf(stderr, "hello_evhttp: listening on http://127.0.0.1:%ld\n", port);
	event_base_dispatch(base);
	event_free(sterm);
	event_free(sint);
	evhttp_free(http);
	event_base_free(base);
	return 0;
}
