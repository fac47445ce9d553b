/* server.h — the HTTP front end: routes /api/v1 onto the tally library. */
#ifndef TLY_HTTP_SERVER_H
#define TLY_HTTP_SERVER_H

#include <stddef.h>
#include <stdio.h>

struct tly;

struct tly_http_opts {
	const char *listen;   /* "ADDR:PORT" */
	size_t max_body;      /* bytes */
	size_t max_body_total; /* bytes of bodies being received, all connections; 0: the default */
	int threads;          /* event-loop workers, at most 16; 0: one */
	int export_threads;   /* connections reading one export at once; 0: one */
	int max_exports;      /* exports streaming at once; 0: TLY_HTTP_MAX_EXPORTS */
};

#define TLY_HTTP_MAX_EXPORTS 8

/* Serves until SIGTERM/SIGINT, then stops accepting, lets open responses
 * finish (10 s at most) and returns 0; non-zero when it could not start.
 * Not re-entrant: one server per process. */
int tly_http_serve(struct tly *t, const struct tly_http_opts *o);

/* Writes the route table, one "METHOD /path" line each. */
void tly_http_routes(FILE *out);

#endif
