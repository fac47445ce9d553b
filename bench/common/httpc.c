/* httpc.c — the bench clients' answer reader and keys file (see httpc.h). */
#include "httpc.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_head(struct httpc_answer *a, const char *h, size_t n)
{
	const char *p = h, *end = h + n, *eol;
	int first = 1;

	a->status = 0;
	a->body_len = 0;
	a->close_after = 0;
	for (; p < end; p = eol + 2) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (!eol)
			eol = end;
		if (first) {
			if (sscanf(p, "HTTP/1.%*d %d", &a->status) != 1)
				return -1;
			first = 0;
		} else if ((size_t)(eol - p) > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
			a->body_len = strtoul(p + 15, NULL, 10);
		} else if ((size_t)(eol - p) > 11 && strncasecmp(p, "Connection:", 11) == 0) {
			const char *v = p + 11;
			while (*v == ' ')
				v++;
			if (strncasecmp(v, "close", 5) == 0)
				a->close_after = 1;
		} else if ((size_t)(eol - p) > 18 && strncasecmp(p, "Transfer-Encoding:", 18) == 0) {
			return -1;
		}
		if (eol == end)
			break;
	}
	return first ? -1 : 0;
}

int httpc_read_flat(struct httpc_answer *a, const char *buf, size_t len, size_t max_body,
		    size_t *head_len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);

	if (!end)
		return len > HTTPC_MAX_HEADER ? HTTPC_BAD : HTTPC_MORE;
	*head_len = (size_t)(end - buf) + 4;
	if (!a->have_head) {
		if (parse_head(a, buf, *head_len) != 0 || a->body_len > max_body)
			return HTTPC_BAD;
		a->have_head = 1;
	}
	return len - *head_len < a->body_len ? HTTPC_MORE : HTTPC_DONE;
}

int httpc_read(struct httpc_answer *a, struct evbuffer *in, size_t max_body)
{
	if (!a->have_head) {
		struct evbuffer_ptr pos = evbuffer_search(in, "\r\n\r\n", 4, NULL);
		size_t hlen;

		if (pos.pos < 0)
			return evbuffer_get_length(in) > HTTPC_MAX_HEADER ? HTTPC_BAD : HTTPC_MORE;
		hlen = (size_t)pos.pos + 4;
		if (parse_head(a, (const char *)evbuffer_pullup(in, (ev_ssize_t)hlen), hlen) != 0 ||
		    a->body_len > max_body)
			return HTTPC_BAD;
		evbuffer_drain(in, hlen);
		a->have_head = 1;
	}
	return evbuffer_get_length(in) < a->body_len ? HTTPC_MORE : HTTPC_DONE;
}

char **httpc_read_keys(const char *file, int *n)
{
	FILE *fp = fopen(file, "r");
	char line[512], **keys = NULL, **grown;
	int cap = 0;

	*n = 0;
	if (!fp) {
		fprintf(stderr, "cannot open the keys file %s\n", file);
		return NULL;
	}
	while (fgets(line, sizeof(line), fp)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0])
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			if (!(grown = realloc(keys, (size_t)cap * sizeof(*keys))))
				goto oom;
			keys = grown;
		}
		if (!(keys[*n] = strdup(line)))
			goto oom;
		(*n)++;
	}
	fclose(fp);
	return keys;
oom:
	fprintf(stderr, "out of memory reading %s\n", file);
	while (*n > 0)
		free(keys[--*n]);
	free(keys);
	fclose(fp);
	return NULL;
}
