/* err.c — see err.h. */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const code_names[TLY_NCODES] = {
	[TLY_OK] = "ok",
	[TLY_EBADJSON] = "bad_json",
	[TLY_EBADREQ] = "bad_request",
	[TLY_EUNAUTH] = "unauthorized",
	[TLY_EFORBIDDEN] = "forbidden",
	[TLY_ENOTFOUND] = "not_found",
	[TLY_ECONFLICT] = "conflict",
	[TLY_ETOOLARGE] = "too_large",
	[TLY_EINVALID] = "invalid",
	[TLY_EINTERNAL] = "internal",
	[TLY_EBUSY] = "busy",
};

void tly_err_clear(struct tly_err *e)
{
	if (!e)
		return;
	e->code = TLY_OK;
	e->offset = -1;
	e->field[0] = '\0';
	e->message[0] = '\0';
}

enum tly_code tly_err_set(struct tly_err *e, enum tly_code code, const char *field,
			  const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	e->code = code;
	e->offset = -1;
	snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
	va_start(ap, fmt);
	vsnprintf(e->message, sizeof(e->message), fmt, ap);
	va_end(ap);
	return code;
}

void tly_err_prefix_field(struct tly_err *e, const char *prefix)
{
	char buf[2 * sizeof(e->field) + 8], msg[sizeof(e->message) + sizeof(buf)];
	size_t flen;

	if (!e || !prefix || !*prefix)
		return;
	/* messages start with the path ("data.text: must be ..."): keep them whole */
	flen = strlen(e->field);
	if (flen && strncmp(e->message, e->field, flen) == 0 && e->message[flen] == ':') {
		snprintf(msg, sizeof(msg), "%s%s%s", prefix, e->field[0] == '[' ? "" : ".", e->message);
		snprintf(e->message, sizeof(e->message), "%.511s", msg);
	} else if (!flen) {
		snprintf(msg, sizeof(msg), "%s: %s", prefix, e->message);
		snprintf(e->message, sizeof(e->message), "%.511s", msg);
	}
	if (!e->field[0])
		snprintf(buf, sizeof(buf), "%s", prefix);
	else if (e->field[0] == '[')
		snprintf(buf, sizeof(buf), "%s%s", prefix, e->field);
	else
		snprintf(buf, sizeof(buf), "%s.%s", prefix, e->field);
	snprintf(e->field, sizeof(e->field), "%.255s", buf);
}

const char *tly_code_name(enum tly_code code)
{
	if (code < 0 || code >= TLY_NCODES)
		return "internal";
	return code_names[code];
}
